// Whose PgBouncer pools are whose, and the application's server-connection figures. Pure
// functions of a PgBouncer sample and the PoolScope from the config; health.ts (/health, /pool)
// and the pool-utilisation alert rule read them.
import type { PgBouncerDatabase, PgBouncerPool, PgBouncerSample } from './sources/pgbouncer.js';
import type { Config, PoolScope } from './types.js';

export interface PoolFigures {
  active: number;
  idle: number;
  total: number;
  max: number;
  utilizationPercent: number;
}

/** PgBouncer's admin console: a virtual database of this fixed name (SHOW commands only). */
export const ADMIN_CONSOLE_DB = 'pgbouncer';

/** The application's database, the probe's target and the read alias, from the config. */
export function poolScope(config: Pick<Config, 'postgres' | 'probe' | 'readDatabase'>): PoolScope {
  return { appDatabase: config.postgres.database, probe: { database: config.probe.database, user: config.probe.user }, readDatabase: config.readDatabase };
}

type PoolKey = Pick<PgBouncerPool, 'database' | 'user'>;

/**
 * The sidecar's own pools: the admin console's and the probe's. The probe's database entry is the
 * sidecar's alone (pool_size 1 in the bundle), so every pool on it is the probe's; a probe pointed
 * at the application's database only has its own user's pool there.
 */
export function isSidecarPool(p: PoolKey, scope: PoolScope): boolean {
  if (p.database === ADMIN_CONSOLE_DB) return true;
  if (p.database !== scope.probe.database) return false;
  return scope.probe.database !== scope.appDatabase || p.user === scope.probe.user;
}

/** PgBouncer's auth_user (SHOW CONFIG), or undefined when auth_query is not used. */
const authUserOf = (sample: PgBouncerSample): string | undefined => sample.config.auth_user || undefined;

/** A pool of the application: on the application database, neither the sidecar's nor auth_query's. */
export function isAppPool(p: PoolKey, scope: PoolScope, authUser: string | undefined): boolean {
  return p.database === scope.appDatabase && p.user !== authUser && !isSidecarPool(p, scope);
}

const pct = (part: number, whole: number) => (whole > 0 ? Math.round((part / whole) * 1000) / 10 : 0);

/** Server connections a pool holds: linked to a client (active) or not (idle, used, tested, login). */
const held = (p: PgBouncerPool) => ({ active: p.svActive, idle: p.svIdle + p.svUsed + p.svTested + p.svLogin });

/** PgBouncer's cap on server connections for one database: max_db_connections (0 = none). */
const capped = (n: number, db: PgBouncerDatabase) => (db.maxConnections > 0 ? Math.min(n, db.maxConnections) : n);

/**
 * The application's server connections (/health connectionPool, /pool database): what the pools
 * of the application database hold, for every user but PgBouncer's auth_user (its auth_query
 * connection is PgBouncer's, not the app's) and the sidecar's probe. Other databases, the
 * probe's database entry and the admin console are not counted.
 *
 * max: PgBouncer gives each (database, user) pool up to pool_size + reserve_pool_size server
 * connections, and caps the database's connections, all its pools together, at
 * max_db_connections. So max = min(max_db_connections when > 0, number of counted pools x
 * (pool_size + reserve_pool_size)), from the database's SHOW DATABASES row. PgBouncer creates a
 * pool at a user's first login: max grows as the app's users connect (0 before any has). The
 * auth_user's connection also counts against max_db_connections inside PgBouncer; per-user
 * pool_size from a [users] section is not read (SHOW USERS is not polled).
 */
export function serverPoolFigures(sample: PgBouncerSample | undefined, scope: PoolScope): PoolFigures {
  if (!sample) return { active: 0, idle: 0, total: 0, max: 0, utilizationPercent: 0 };
  const authUser = authUserOf(sample);
  const pools = sample.pools.filter((p) => isAppPool(p, scope, authUser));
  const active = pools.reduce((n, p) => n + held(p).active, 0);
  const idle = pools.reduce((n, p) => n + held(p).idle, 0);
  const db = sample.databases.find((d) => d.name === scope.appDatabase);
  const max = db ? capped(pools.length * (db.poolSize + db.reservePool), db) : 0;
  const total = active + idle;
  return { active, idle, total, max, utilizationPercent: pct(total, max) };
}

/** One pool's server connections against what PgBouncer lets that pool open (the alert's unit). */
export function poolFigures(p: PgBouncerPool, db: PgBouncerDatabase | undefined): PoolFigures {
  const { active, idle } = held(p);
  const max = db ? capped(db.poolSize + db.reservePool, db) : 0;
  return { active, idle, total: active + idle, max, utilizationPercent: pct(active + idle, max) };
}
