// /health and /pool bodies: pure functions of the snapshot (and of the config's PoolScope).
import { serverPoolFigures, type PoolFigures } from './pools.js';
import type { StackSnapshot } from './snapshot.js';
import { clientConnections, usableConnections } from './sources/postgres.js';
import type { PoolScope } from './types.js';
import { REPLICA_LAGGING_SECONDS, replicasHealth, type ReplicaHealth } from './views/replication.js';

const pct = (part: number, whole: number) => (whole > 0 ? Math.round((part / whole) * 1000) / 10 : 0);

interface Backend {
  lastPollAt: string | null;
  lastError: string | null;
  /** Restarts seen since the sidecar started (start time, run id or counters moved between polls). */
  restarts: number;
  lastRestartAt: string | null;
}

export interface HealthBody {
  healthy: boolean;
  timestamp: string;
  isShuttingDown: boolean;
  database: Backend & {
    healthy: boolean;
    responseTime: number | null;
    connectionPool: PoolFigures & { isPgBouncer: true; isShuttingDown: boolean };
  };
  pgbouncer: Backend & { healthy: boolean; version: string | null };
  postgres: Backend & { healthy: boolean; version: string | null; connections: number | null; maxConnections: number | null };
  redis: Backend & { available: boolean; connected: boolean; status: string; responseTime: number | null };
  /**
   * Every replica (SIDECAR_POSTGRES_REPLICA_URLS, when watched), in configuration order. A replica
   * that is down or behind never makes `healthy` false (reads move to the primary); it makes
   * `degraded` true.
   */
  replicas: ReplicaHealth[];
  /** Some replica is not healthy (down, broken or lagging). */
  degraded: boolean;
}

export interface HealthOptions {
  isShuttingDown: boolean;
  redisStatus: string;
  now: Date;
  pools: PoolScope;
  /** The lag from which a replica is 'lagging' (replica_lag's WARNING level); REPLICA_LAGGING_SECONDS by default. */
  replicaLaggingSeconds?: number | undefined;
}

const backend = (s: Backend): Backend => ({ lastPollAt: s.lastPollAt, lastError: s.lastError, restarts: s.restarts, lastRestartAt: s.lastRestartAt });

/** pools: which PgBouncer pools are the application's (connectionPool counts those, see pools.ts). */
export function healthBody(snap: StackSnapshot, opts: HealthOptions): HealthBody {
  const { pgbouncer, probe, postgres, redis } = snap.sources;
  const pg = postgres.sample;
  const replicas = replicasHealth(snap, opts.replicaLaggingSeconds ?? REPLICA_LAGGING_SECONDS);
  const body: HealthBody = {
    healthy: false,
    timestamp: opts.now.toISOString(),
    isShuttingDown: opts.isShuttingDown,
    // "database" is what an app sees: a query through PgBouncer.
    database: {
      healthy: probe.up,
      responseTime: probe.sample?.responseTimeMs ?? null,
      ...backend(probe),
      // The application's server connections: the pools of the application database, every user
      // but PgBouncer's auth_user and the probe; max capped by max_db_connections (pools.ts).
      connectionPool: { ...serverPoolFigures(pgbouncer.sample, opts.pools), isPgBouncer: true, isShuttingDown: opts.isShuttingDown },
    },
    pgbouncer: { healthy: pgbouncer.up, version: pgbouncer.sample?.version ?? null, ...backend(pgbouncer) },
    postgres: {
      healthy: postgres.up,
      version: pg?.version ?? null,
      connections: pg ? clientConnections(pg) : null,
      maxConnections: pg ? usableConnections(pg) : null,
      ...backend(postgres),
    },
    redis: {
      available: redis.up,
      connected: opts.redisStatus === 'ready',
      status: opts.redisStatus,
      responseTime: redis.sample?.pingMs ?? null,
      ...backend(redis),
    },
    replicas,
    degraded: replicas.some((r) => !r.healthy),
  };
  body.healthy = snap.pollCount > 0 && !opts.isShuttingDown && probe.up && pgbouncer.up && postgres.up && redis.up;
  return body;
}

/** What an unauthenticated /health caller sees instead of a backend's error text. */
export const REDACTED_ERROR = 'unavailable (details need the token)';

/**
 * /health for a caller without the token (when one is configured): the same keys and the same
 * healthy flags, but no backend error text (it can name hosts, users, TLS or auth problems) and
 * no versions. Pure: returns a copy, the input is not changed.
 */
export function redactHealth(body: HealthBody): HealthBody {
  const err = (e: string | null) => (e === null ? null : REDACTED_ERROR);
  return {
    ...body,
    database: { ...body.database, lastError: err(body.database.lastError), connectionPool: { ...body.database.connectionPool } },
    pgbouncer: { ...body.pgbouncer, version: null, lastError: err(body.pgbouncer.lastError) },
    postgres: { ...body.postgres, version: null, lastError: err(body.postgres.lastError) },
    redis: { ...body.redis, lastError: err(body.redis.lastError) },
    replicas: body.replicas.map((r) => ({ ...r, lastError: err(r.lastError) })),
  };
}

const pgFigures = (connections: number, maxConnections: number, isHealthy: boolean) => ({ connections, maxConnections, utilizationPercent: pct(connections, maxConnections), isHealthy });

/** database: the application's server connections, as /health's connectionPool; pools: every pool. */
export function poolBody(snap: StackSnapshot, now: Date, pools: PoolScope) {
  const { pgbouncer, probe, postgres, redis } = snap.sources;
  const figures = serverPoolFigures(pgbouncer.sample, pools);
  const pb = pgbouncer.sample;
  const maxClients = Number(pb?.config.max_client_conn ?? 0);
  const usedClients = pb?.lists.used_clients ?? 0;
  const info = redis.sample?.info;
  const redisClients = Number(info?.connected_clients ?? 0);
  const redisMax = Number(info?.maxclients ?? 0);
  const pg = postgres.sample;
  return {
    timestamp: now.toISOString(),
    database: {
      utilizationPercent: figures.utilizationPercent,
      activeConnections: figures.active,
      idleConnections: figures.idle,
      totalConnections: figures.total,
      maxConnections: figures.max,
      isHealthy: probe.up && pgbouncer.up,
    },
    pgbouncer: {
      clients: { used: usedClients, max: maxClients, utilizationPercent: pct(usedClients, maxClients) },
      pools: (pb?.pools ?? []).map((p) => {
        const db = pb?.databases.find((d) => d.name === p.database);
        return {
          database: p.database,
          user: p.user,
          clientActive: p.clActive,
          clientWaiting: p.clWaiting,
          serverActive: p.svActive,
          serverIdle: p.svIdle,
          serverUsed: p.svUsed,
          maxwaitSeconds: Math.round(p.maxwaitSeconds * 1e6) / 1e6,
          poolSize: db?.poolSize ?? null,
          reservePool: db?.reservePool ?? null,
          poolMode: p.poolMode,
        };
      }),
    },
    postgres: pg ? pgFigures(clientConnections(pg), usableConnections(pg), postgres.up) : { connections: null, maxConnections: null, utilizationPercent: null, isHealthy: false },
    redis: {
      isHealthy: redis.up,
      connectedClients: info ? redisClients : null,
      maxClients: info ? redisMax : null,
      utilizationPercent: info ? pct(redisClients, redisMax) : null,
      usedMemoryBytes: info ? Number(info.used_memory ?? 0) : null,
      maxMemoryBytes: info ? Number(info.maxmemory ?? 0) : null,
    },
  };
}
