// The sidecar's connections to the stack, and the poll sources built on them.
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { describeError } from './log.js';
import { PgConnection, backoffMs } from './pg-connection.js';
import type { MoreInstances, SourceSpec, SourceSpecs } from './poller.js';
import type { StackSamples } from './snapshot.js';
import { collectBackups } from './sources/backups.js';
import { collectDisk } from './sources/disk.js';
import { collectPgBouncer, pgbouncerRestarted } from './sources/pgbouncer.js';
import { collectPostgres, postgresRestarted, type PostgresSample } from './sources/postgres.js';
import { collectProbe } from './sources/probe.js';
import { collectRedis, redisRestarted } from './sources/redis.js';
import { StatementTexts } from './sources/statements.js';
import type { Config } from './types.js';

export interface StackClients {
  pgbouncer: PgConnection;
  probe: PgConnection;
  postgres: PgConnection;
  /** One connection per watched replica (config.postgresReplicas), named by its host. */
  postgresReplicas: PgConnection[];
  redis: Redis;
  redisLastError: () => string | undefined;
  close(): Promise<void>;
}

/** onLost: a connection dropped between polls (poll again now rather than at the next tick). */
export function createClients(config: Config, logger: Logger, onLost: () => void = () => undefined): StackClients {
  const common = { connectTimeoutMs: config.sourceTimeoutMs, reconnectMaxMs: config.reconnectMaxMs, logger, onLost };
  const pgbouncer = new PgConnection({ name: 'pgbouncer', target: config.pgbouncer, passwordSetting: 'SIDECAR_PGBOUNCER_PASSWORD (or _FILE)', applicationName: 'poolguard-sidecar', ...common });
  const probe = new PgConnection({ name: 'probe', target: config.probe, passwordSetting: 'SIDECAR_POSTGRES_PASSWORD (or _FILE)', applicationName: 'poolguard-sidecar-probe', ...common });
  const postgres = new PgConnection({ name: 'postgres', target: config.postgres, passwordSetting: 'SIDECAR_POSTGRES_PASSWORD (or _FILE)', applicationName: 'poolguard-sidecar', ...common });
  const postgresReplicas = config.postgresReplicas.map(
    (target) => new PgConnection({ name: target.host, target, passwordSetting: 'SIDECAR_POSTGRES_PASSWORD (or _FILE)', applicationName: 'poolguard-sidecar', ...common }),
  );

  let redisError: string | undefined;
  const redis = new Redis({
    host: config.redis.host,
    port: config.redis.port,
    db: config.redis.db,
    username: config.redis.username,
    password: config.redis.password,
    tls: config.redis.tls ? {} : undefined,
    connectionName: 'poolguard-sidecar',
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: config.sourceTimeoutMs,
    commandTimeout: config.sourceTimeoutMs,
    retryStrategy: (times) => backoffMs(times, config.reconnectMaxMs),
    // Never reconnect-and-retry on READONLY etc.: report instead.
    reconnectOnError: () => false,
  });
  let redisFailing = false;
  redis.on('error', (err) => {
    redisError = describeError(err);
    if (!redisFailing) logger.warn({ target: 'redis', err }, 'redis connection error');
    redisFailing = true;
  });
  redis.on('close', () => {
    if (!redisFailing) onLost();
  });
  redis.on('ready', () => {
    if (redisFailing) logger.info({ target: 'redis' }, 'redis reconnected');
    redisFailing = false;
    redisError = undefined;
  });
  redis.connect().catch(() => undefined);

  return {
    pgbouncer,
    probe,
    postgres,
    postgresReplicas,
    redis,
    redisLastError: () => redisError,
    async close() {
      redis.disconnect(false);
      await Promise.all([pgbouncer.close(), probe.close(), postgres.close(), ...postgresReplicas.map((c) => c.close())]);
    },
  };
}

/** Resolves once the client is ready; rejects after ms with the last connection error. */
function waitReady(redis: Redis, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const timer = setTimeout(() => done(new Error('not connected')), ms);
    redis.on('ready', onReady);
  });
}

/** A Postgres instance's source: the same queries and restart check on the primary and on each replica. */
function postgresSource(db: PgConnection, instance: string): SourceSpec<PostgresSample> {
  // Each instance keeps the texts of the statements it has seen (a replica runs other reads).
  const texts = new StatementTexts();
  return { instance, run: () => collectPostgres(db, texts), restarted: postgresRestarted, onTimeout: () => db.drop(new Error('timeout')) };
}

/** The further instances of a kind: the replicas of the postgres kind, named by their hosts. */
export function createMoreInstances(clients: StackClients, config: Pick<Config, 'postgresReplicas'>): MoreInstances<StackSamples> {
  return { postgres: clients.postgresReplicas.map((db, i) => postgresSource(db, config.postgresReplicas[i]!.host)) };
}

export interface SourceOptions {
  sourceTimeoutMs: number;
  /** The databases PgBouncer listed in the last poll (undefined when unknown). */
  knownDatabases?: () => string[] | undefined;
  /** A read-only mount of the data volume (statfs), when watched. */
  pgdataPath?: string | undefined;
  /** The backup service's status.json, when watched. */
  backupStatusPath?: string | undefined;
  /** The primary's instance name (SIDECAR_POSTGRES_URL's host); 'postgres' when unset. */
  postgresInstance?: string | undefined;
}

export function createSources(clients: StackClients, opts: SourceOptions): SourceSpecs<StackSamples> {
  const { sourceTimeoutMs, knownDatabases = () => undefined, pgdataPath, backupStatusPath, postgresInstance = 'postgres' } = opts;
  const readyWaitMs = Math.floor(sourceTimeoutMs * 0.8);
  return {
    pgbouncer: { run: () => collectPgBouncer(clients.pgbouncer), restarted: pgbouncerRestarted, onTimeout: () => clients.pgbouncer.drop(new Error('timeout')) },
    probe: {
      run: async () => {
        try {
          return await collectProbe(clients.probe);
        } catch (err) {
          // PgBouncer answers an unknown database with a bare "SASL authentication failed"
          // (auth_query cannot run there): name the real cause when the console shows it.
          const known = knownDatabases();
          const wanted = clients.probe.database;
          if (known && !known.includes(wanted)) {
            throw new Error(`${describeError(err)} (PgBouncer has no database "${wanted}"; it has: ${known.join(', ')})`);
          }
          throw err;
        }
      },
      onTimeout: () => clients.probe.drop(new Error('timeout')),
    },
    postgres: postgresSource(clients.postgres, postgresInstance),
    redis: {
      restarted: redisRestarted,
      run: async () => {
        try {
          // ioredis reconnects on its own; until it is ready commands fail at once (no offline
          // queue), so wait for it within this poll's budget.
          if (clients.redis.status !== 'ready') await waitReady(clients.redis, readyWaitMs);
          return await collectRedis(clients.redis);
        } catch (err) {
          // "Stream isn't writeable" hides the real cause (wrong password, refused): show it.
          const cause = clients.redisLastError();
          if (cause && clients.redis.status !== 'ready') throw new Error(cause);
          // ioredis says only "Command timed out": name the peer, as for Postgres.
          if (describeError(err) === 'Command timed out') {
            throw new Error(`no answer from ${clients.redis.options.host}:${clients.redis.options.port} within ${sourceTimeoutMs} ms: paused, overloaded, or cut off by the network`);
          }
          throw err;
        }
      },
    },
    disk: { run: () => collectDisk(pgdataPath) },
    backups: { run: () => collectBackups(backupStatusPath) },
  };
}
