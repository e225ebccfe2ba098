// The connection budget (GET /plan, make plan): can the pools PgBouncer may open, plus the
// direct connections, fit in what Postgres accepts, and can the apps' pools fit in what PgBouncer
// accepts? Each line gives its figures, PASS/WARN/FAIL and one sentence of advice. Pure: the
// input comes from the live snapshot (planInputFromSnapshot) or from rendered settings before a
// deploy (the plan CLI).
import { ADMIN_CONSOLE_DB } from '../pools.js';
import { postgresInstances, type StackSnapshot } from '../snapshot.js';
import type { PlanSettings } from '../types.js';

export type PlanStatus = 'PASS' | 'WARN' | 'FAIL';

export interface PlanDatabase {
  /** PgBouncer's [databases] entry. */
  name: string;
  poolSize: number;
  reservePool: number;
  /** max_db_connections for this entry (0: no limit). */
  maxDbConnections: number;
  /** The users that have (or will have) a pool in it: each may open pool + reserve server connections. */
  users: string[];
  /** Where its server connections go: the primary, or elsewhere (a replica: not in the primary's budget). */
  onPrimary: boolean;
  /** Counted against the primary even when it points elsewhere now (the read alias moves there when the replica is down). */
  mayMoveToPrimary?: boolean;
}

export interface PlanInput {
  postgres: { maxConnections: number; superuserReservedConnections: number; reservedConnections: number };
  pgbouncer: { instances: number; maxClientConn: number; databases: PlanDatabase[] };
  /** Direct connections to the primary that do not go through PgBouncer (WAL senders do not count since Postgres 12). */
  direct: { sidecar: number; migrations: number; backups: number; humans: number };
  /** PgBouncer client slots the bundle itself holds per instance (the sidecar's console and probe, the read router's console). */
  consoleSlots: number;
  /** The apps: instances × their pool size (client connections to PgBouncer); undefined when not given. */
  app?: { instances: number; pool: number } | undefined;
}

export interface PlanLine {
  name: string;
  status: PlanStatus;
  /** The inequality with its figures, e.g. "82 ≤ 92". */
  figures: string;
  advice: string;
}

export interface PlanBody {
  status: PlanStatus;
  lines: PlanLine[];
}

/** Above this share of a limit a line warns. */
export const PLAN_WARN_SHARE = 0.9;

/** The most server connections one PgBouncer database entry can open: its users' pools, capped by max_db_connections. */
export function databaseCap(d: PlanDatabase): number {
  const pools = d.users.length * (d.poolSize + d.reservePool);
  return d.maxDbConnections > 0 ? Math.min(d.maxDbConnections, pools) : pools;
}

const worst = (a: PlanStatus, b: PlanStatus): PlanStatus => (a === 'FAIL' || b === 'FAIL' ? 'FAIL' : a === 'WARN' || b === 'WARN' ? 'WARN' : 'PASS');
const grade = (used: number, limit: number): PlanStatus => (used > limit ? 'FAIL' : used > PLAN_WARN_SHARE * limit ? 'WARN' : 'PASS');

export function plan(input: PlanInput): PlanBody {
  const lines: PlanLine[] = [];
  const { postgres: pg, pgbouncer: pgb, direct } = input;

  const usable = Math.max(0, pg.maxConnections - pg.superuserReservedConnections - pg.reservedConnections);
  const directTotal = direct.sidecar + direct.migrations + direct.backups + direct.humans;
  const forPgBouncer = usable - directTotal;
  const counted = pgb.databases.filter((d) => d.onPrimary || d.mayMoveToPrimary);
  const perInstance = counted.reduce((n, d) => n + databaseCap(d), 0);
  const serverSide = perInstance * pgb.instances;
  const parts = counted.map((d) => `${d.name} ${databaseCap(d)}`).join(' + ');
  const serverStatus = grade(serverSide, forPgBouncer);
  lines.push({
    name: 'server connections: PgBouncer against Postgres',
    status: serverStatus,
    figures: `${pgb.instances} × (${parts || '0'}) = ${serverSide} ≤ max_connections ${pg.maxConnections} − superuser_reserved ${pg.superuserReservedConnections} − reserved ${pg.reservedConnections} − direct ${directTotal} (sidecar ${direct.sidecar}, migrations ${direct.migrations}, backups ${direct.backups}, humans ${direct.humans}) = ${forPgBouncer}`,
    advice: serverStatus === 'FAIL'
      ? `PgBouncer may open ${serverSide - forPgBouncer} more server connections than Postgres accepts: clients will see "sorry, too many clients already"; lower default_pool_size or max_db_connections, or raise max_connections.`
      : serverStatus === 'WARN'
        ? `Within ${Math.round((1 - serverSide / Math.max(1, forPgBouncer)) * 100)} % of the limit: a migration or a human session at a busy moment may be refused.`
        : `Room for ${forPgBouncer - serverSide} more server connections.`,
  });

  for (const d of pgb.databases) {
    if (d.maxDbConnections > 0 && d.poolSize > d.maxDbConnections) {
      lines.push({
        name: `pool of ${d.name}: one user's pool against max_db_connections`,
        status: 'WARN',
        figures: `pool_size ${d.poolSize} > max_db_connections ${d.maxDbConnections}`,
        advice: 'The pool can never fill: max_db_connections caps it first; raise max_db_connections or lower the pool size.',
      });
    }
  }

  const clientLimit = pgb.maxClientConn - input.consoleSlots;
  if (input.app) {
    const clients = input.app.instances * input.app.pool;
    const st = grade(clients, clientLimit);
    lines.push({
      name: 'client connections: apps against PgBouncer',
      status: st,
      figures: `app instances ${input.app.instances} × app pool ${input.app.pool} = ${clients} ≤ max_client_conn ${pgb.maxClientConn} − console slots ${input.consoleSlots} = ${clientLimit}`,
      advice: st === 'FAIL'
        ? `${clients - clientLimit} app connections would be refused ("no more connections allowed (max_client_conn)"); raise max_client_conn or give each instance a smaller pool.`
        : st === 'WARN'
          ? 'Close to max_client_conn: a deploy that starts new instances before stopping old ones can run out.'
          : `Room for ${clientLimit - clients} more client connections.`,
    });
  } else {
    lines.push({
      name: 'client connections: apps against PgBouncer',
      status: 'PASS',
      figures: `max_client_conn ${pgb.maxClientConn} − console slots ${input.consoleSlots} = ${clientLimit} for the apps`,
      advice: 'Give APP_INSTANCES and APP_POOL to check your apps against it.',
    });
  }

  return { status: lines.reduce<PlanStatus>((s, l) => worst(s, l.status), 'PASS'), lines };
}

/** Direct connections to the primary the bundle budgets for (docs: README "Connection budget"). */
export const DIRECT_CONNECTIONS: PlanInput['direct'] = { sidecar: 1, migrations: 1, backups: 2, humans: 3 };

/** The live settings as the last poll saw them; undefined while PgBouncer or the primary has not answered. */
export interface LiveSettings {
  postgres: PlanInput['postgres'] | undefined;
  pgbouncer:
    | {
        maxClientConn: number;
        databases: { name: string; host: string; poolSize: number; reservePool: number; maxConnections: number }[];
        pools: { database: string; user: string }[];
      }
    | undefined;
  /** PgBouncer's admin console: a database entry of its own that opens no server connection. */
  adminDatabase: string;
  /** Hosts of the watched replicas: entries pointing there are not in the primary's budget. */
  replicaHosts: string[];
  /** The read alias (it moves to the primary when the replica is down or behind). */
  readDatabase: string;
  /** The read router holds one console slot when the replica profile is on. */
  routerOn: boolean;
  /** PgBouncer's auth_user: its pool in the read alias stays on the replica (on the primary the alias uses the app entry's). */
  authUser: string | undefined;
}

/** The plan's input from live settings: users are the pools PgBouncer has now (at least one per database). */
export function planInputFromLive(live: LiveSettings, app?: PlanInput['app']): PlanInput | undefined {
  if (!live.postgres || !live.pgbouncer) return undefined;
  const users = (db: string) => [...new Set(live.pgbouncer!.pools.filter((p) => p.database === db).map((p) => p.user))];
  const databases = live.pgbouncer.databases
    .filter((d) => d.name !== live.adminDatabase)
    .map((d): PlanDatabase => {
      const onPrimary = !live.replicaHosts.includes(d.host);
      const u = users(d.name).filter((user) => onPrimary || user !== live.authUser);
      return {
        name: d.name, poolSize: d.poolSize, reservePool: d.reservePool, maxDbConnections: d.maxConnections,
        users: u.length > 0 ? u : ['(its first user)'], onPrimary, mayMoveToPrimary: !onPrimary && d.name === live.readDatabase,
      };
    });
  return {
    postgres: live.postgres,
    pgbouncer: { instances: 1, maxClientConn: live.pgbouncer.maxClientConn, databases },
    direct: DIRECT_CONNECTIONS,
    consoleSlots: 2 + (live.routerOn ? 1 : 0),
    app,
  };
}

/** The live settings in a snapshot: PgBouncer's and the primary's from the last poll. */
export function liveSettingsOf(snap: StackSnapshot, readDatabase: string): LiveSettings {
  const instances = postgresInstances(snap);
  const pg = instances[0]?.state.sample;
  const pgb = snap.sources.pgbouncer.sample;
  return {
    postgres: pg && { maxConnections: pg.maxConnections, superuserReservedConnections: pg.superuserReservedConnections, reservedConnections: pg.reservedConnections },
    pgbouncer: pgb && { maxClientConn: Number(pgb.config.max_client_conn ?? 0), databases: pgb.databases, pools: pgb.pools },
    adminDatabase: ADMIN_CONSOLE_DB,
    replicaHosts: instances.slice(1).map((i) => i.instance),
    readDatabase,
    routerOn: instances.length > 1,
    authUser: pgb?.config.auth_user,
  };
}

/**
 * The plan's input from rendered settings (before a deploy): the bundle's [databases] entries as
 * pgbouncer/pgbouncer.ini and the read router write them. The app entry holds the app's pool and
 * PgBouncer's auth pool; the read alias the read role's (and, on the replica, its own auth pool),
 * counted against the primary: it moves there when the replica is down or behind.
 */
export function planInputFromSettings(s: PlanSettings): PlanInput {
  const entry = (name: string, users: string[], onPrimary: boolean): PlanDatabase => ({
    name, poolSize: s.defaultPoolSize, reservePool: s.reservePoolSize, maxDbConnections: s.maxDbConnections, users, onPrimary, mayMoveToPrimary: !onPrimary,
  });
  return {
    postgres: { maxConnections: s.maxConnections, superuserReservedConnections: s.superuserReservedConnections, reservedConnections: s.reservedConnections },
    pgbouncer: {
      instances: s.pgbouncerInstances,
      maxClientConn: s.maxClientConn,
      databases: [
        entry('app', [s.appUser, s.authUser], true),
        { name: s.probe.database, poolSize: 1, reservePool: s.reservePoolSize, maxDbConnections: 1, users: [s.probe.user], onPrimary: true },
        // On the replica its auth pool is there too; moved to the primary, logins use the app
        // entry's auth pool (auth_dbname): only the read role's pool lands on the primary.
        entry('app_ro', [s.appReadUser], !s.replica),
      ],
    },
    direct: DIRECT_CONNECTIONS,
    consoleSlots: 2 + (s.replica ? 1 : 0),
    app: s.app,
  };
}
