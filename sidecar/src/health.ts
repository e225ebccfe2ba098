// /health and /pool bodies: pure functions of the snapshot.
import type { StackSnapshot } from './snapshot.js';
import type { PgBouncerSample } from './sources/pgbouncer.js';

export interface PoolFigures {
  active: number;
  idle: number;
  total: number;
  max: number;
  utilizationPercent: number;
}

const pct = (part: number, whole: number) => (whole > 0 ? Math.round((part / whole) * 1000) / 10 : 0);

/** Server connections of the application's pools (every pool but the admin console and probe). */
export function serverPoolFigures(sample: PgBouncerSample | undefined, appDb?: string): PoolFigures {
  if (!sample) return { active: 0, idle: 0, total: 0, max: 0, utilizationPercent: 0 };
  const isApp = (db: string) => db !== 'pgbouncer' && db !== 'poolguard_probe' && (appDb === undefined || db === appDb);
  let active = 0;
  let idle = 0;
  for (const p of sample.pools) {
    if (!isApp(p.database)) continue;
    active += p.svActive;
    idle += p.svIdle + p.svUsed + p.svTested + p.svLogin;
  }
  let max = 0;
  for (const d of sample.databases) {
    if (!isApp(d.name)) continue;
    const perPool = d.poolSize + d.reservePool;
    max += d.maxConnections > 0 ? Math.min(perPool, d.maxConnections) : perPool;
  }
  const total = active + idle;
  return { active, idle, total, max, utilizationPercent: pct(total, max) };
}

export interface HealthBody {
  healthy: boolean;
  timestamp: string;
  isShuttingDown: boolean;
  database: {
    healthy: boolean;
    responseTime: number | null;
    lastPollAt: string | null;
    lastError: string | null;
    connectionPool: PoolFigures & { isPgBouncer: true; isShuttingDown: boolean };
  };
  pgbouncer: { healthy: boolean; version: string | null; lastPollAt: string | null; lastError: string | null };
  redis: {
    available: boolean;
    connected: boolean;
    status: string;
    responseTime: number | null;
    lastPollAt: string | null;
    lastError: string | null;
  };
}

export function healthBody(snap: StackSnapshot, opts: { isShuttingDown: boolean; redisStatus: string; now: Date }): HealthBody {
  const { pgbouncer, probe, redis } = snap.sources;
  const database = {
    healthy: probe.up,
    responseTime: probe.sample?.responseTimeMs ?? null,
    lastPollAt: probe.lastPollAt,
    lastError: probe.lastError,
    connectionPool: { ...serverPoolFigures(pgbouncer.sample), isPgBouncer: true as const, isShuttingDown: opts.isShuttingDown },
  };
  const body: HealthBody = {
    healthy: false,
    timestamp: opts.now.toISOString(),
    isShuttingDown: opts.isShuttingDown,
    database,
    pgbouncer: { healthy: pgbouncer.up, version: pgbouncer.sample?.version ?? null, lastPollAt: pgbouncer.lastPollAt, lastError: pgbouncer.lastError },
    redis: {
      available: redis.up,
      connected: opts.redisStatus === 'ready',
      status: opts.redisStatus,
      responseTime: redis.sample?.pingMs ?? null,
      lastPollAt: redis.lastPollAt,
      lastError: redis.lastError,
    },
  };
  body.healthy = snap.pollCount > 0 && !opts.isShuttingDown && database.healthy && pgbouncer.up && redis.up;
  return body;
}
