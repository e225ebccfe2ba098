// Which PgBouncer pools are the application's: /health's connectionPool, /pool's database block
// and the pool-utilisation alert. The probe database's name comes from SIDECAR_PROBE_URL, the
// application database's from SIDECAR_POSTGRES_URL, the auth_user's from SHOW CONFIG.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AlertEngine } from '../../src/alerts/engine.js';
import { DEFAULT_RULES } from '../../src/alerts/rules.js';
import { loadConfig } from '../../src/config.js';
import { healthBody, poolBody } from '../../src/health.js';
import { poolScope, serverPoolFigures } from '../../src/pools.js';
import type { StackSnapshot } from '../../src/snapshot.js';
import type { PgBouncerSample } from '../../src/sources/pgbouncer.js';
import { parseConfig, parseDatabases, parsePools } from '../../src/sources/pgbouncer.js';
import type { PoolScope } from '../../src/types.js';
import * as fx from '../fixtures/pgbouncer.js';
import { pgbouncerSample, snapshot, state } from '../fixtures/snapshot.js';

const NOW = new Date('2026-01-01T00:00:01.000Z');
/** What loadConfig gives for SIDECAR_PROBE_URL=.../custom_probe and SIDECAR_POSTGRES_URL=.../app. */
const SCOPE: PoolScope = { appDatabase: 'app', probe: { database: 'custom_probe', user: 'poolguard_monitor' }, readDatabase: 'app_ro' };

/** The fixture's PgBouncer with two app users, two app databases, the auth_user and a renamed probe. */
function shared(maxDbConnections = 50): PgBouncerSample {
  return { ...pgbouncerSample(), pools: parsePools(fx.pools_shared), databases: parseDatabases(fx.databases_shared(maxDbConnections)), config: parseConfig(fx.config_with_auth_user) };
}
const snap = (pb: PgBouncerSample): StackSnapshot => snapshot({ pgbouncer: state(pb) });
const health = (s: StackSnapshot, pools: PoolScope) => healthBody(s, { isShuttingDown: false, redisStatus: 'ready', now: NOW, pools });

/** The standard fixture (app/app and the console) plus the renamed probe's pool and database entry. */
function withRenamedProbe(): PgBouncerSample {
  const pb = pgbouncerSample();
  const probeRows = { pools: parsePools(fx.pools_shared.filter((p) => p.database === 'custom_probe')), databases: parseDatabases(fx.databases_shared().filter((d) => d.name === 'custom_probe')) };
  return { ...pb, pools: [...pb.pools, ...probeRows.pools], databases: [...pb.databases, ...probeRows.databases] };
}

describe('the probe database comes from SIDECAR_PROBE_URL', () => {
  it('poolScope: the probe target and the application database of the config', () => {
    const config = loadConfig({ SIDECAR_PROBE_URL: 'postgres://poolguard_monitor@pgbouncer:6432/custom_probe', SIDECAR_POSTGRES_URL: 'postgres://poolguard_monitor@postgres:5432/app' });
    expect(poolScope(config)).toEqual(SCOPE);
    expect(poolScope(loadConfig({}))).toEqual({ appDatabase: 'app', probe: { database: 'poolguard_probe', user: 'poolguard_monitor' }, readDatabase: 'app_ro' });
    expect(poolScope(loadConfig({ SIDECAR_READ_DATABASE: 'reads' })).readDatabase).toBe('reads');
  });

  it("a renamed probe database's pool is not counted as the application's (/health, /pool)", () => {
    // Only app/app counts: sv_active 10, idle 2 + used 1; max = 25 + 5 for one user pool.
    const expected = { active: 10, idle: 3, total: 13, max: 30, utilizationPercent: 43.3 };
    expect(health(snap(withRenamedProbe()), SCOPE).database.connectionPool).toEqual({ ...expected, isPgBouncer: true, isShuttingDown: false });
    expect(poolBody(snap(withRenamedProbe()), NOW, SCOPE).database).toEqual({
      utilizationPercent: 43.3, activeConnections: 10, idleConnections: 3, totalConnections: 13, maxConnections: 30, isHealthy: true,
    });
  });

  it('no pool-utilisation alert fires for a renamed probe database (its one connection is 100 % of its pool)', () => {
    const rules = DEFAULT_RULES.filter((r) => r.name === 'pgbouncer_pool_utilization').map((r) => ({ ...r, forMs: 0 }));
    const engine = new AlertEngine(rules, { defaultForMs: 0, resolveForMs: 0, hysteresis: 0.05, context: { pools: SCOPE } });
    engine.evaluate(snap(withRenamedProbe()), 0);
    engine.evaluate(snap(withRenamedProbe()), 60_000);
    expect(engine.firing()).toEqual([]);
    // The rule observes the application's pools, not the probe's nor the admin console's.
    const observed = rules[0]!.observe(snap(withRenamedProbe()), undefined, { pools: SCOPE }).map((o) => o.labels);
    expect(observed).toEqual([{ database: 'app', user: 'app' }]);
  });

  it('the application pool still alerts when it fills up', () => {
    const pb = withRenamedProbe();
    pb.pools = pb.pools.map((p) => (p.database === 'app' ? { ...p, svActive: 28, svIdle: 0, svUsed: 0 } : p));
    const rules = DEFAULT_RULES.filter((r) => r.name === 'pgbouncer_pool_utilization').map((r) => ({ ...r, forMs: 0 }));
    const engine = new AlertEngine(rules, { defaultForMs: 0, resolveForMs: 0, hysteresis: 0.05, context: { pools: SCOPE } });
    engine.evaluate(snap(pb), 0);
    expect(engine.firing().map((a) => [a.severity, a.labels])).toEqual([['CRITICAL', { database: 'app', user: 'app' }]]);
  });

  it('src/ names the probe database in one place only: the default SIDECAR_PROBE_URL', () => {
    const src = fileURLToPath(new URL('../../src', import.meta.url));
    const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
    const hits = files(src).flatMap((f) =>
      readFileSync(f, 'utf8').split('\n').flatMap((line, i) => (/\bpoolguard_probe\b/.test(line) ? [`${f.slice(src.length + 1)}:${i + 1}: ${line.trim()}`] : [])),
    );
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatch(/^config\.ts:\d+: SIDECAR_PROBE_URL: pgUrl\.default\('postgres:\/\/poolguard_monitor@pgbouncer:6432\/poolguard_probe'\)/);
  });
});

describe("connectionPool counts the application database's pools, every user but the auth_user", () => {
  // Counted: app/app (active 10; idle 2 + used 1) and app/reporting (active 3; idle 1 + tested 1 + login 1).
  // Not counted: app/pgbouncer_auth (the auth_user), billing/app (another database),
  // custom_probe/poolguard_monitor (the probe), pgbouncer/pgbouncer_stats (the console).
  it('/health and /pool: exact figures; max = min(max_db_connections 50, 2 pools x (25 + 5))', () => {
    const s = snap(shared());
    expect(health(s, SCOPE).database.connectionPool).toEqual({ active: 13, idle: 6, total: 19, max: 50, utilizationPercent: 38, isPgBouncer: true, isShuttingDown: false });
    expect(poolBody(s, NOW, SCOPE).database).toEqual({ utilizationPercent: 38, activeConnections: 13, idleConnections: 6, totalConnections: 19, maxConnections: 50, isHealthy: true });
    // The per-pool detail still lists every pool, the ones not counted included.
    expect(poolBody(s, NOW, SCOPE).pgbouncer.pools.map((p) => `${p.database}/${p.user}`)).toEqual([
      'app/app', 'app/reporting', 'app/pgbouncer_auth', 'billing/app', 'custom_probe/poolguard_monitor', 'pgbouncer/pgbouncer_stats',
    ]);
  });

  it.each([
    [50, 50, 38], // max_db_connections caps the two pools' 60
    [0, 60, 31.7], // 0 = no database limit: 2 x (25 + 5)
    [100, 60, 31.7], // a limit above what the pools can hold changes nothing
    [12, 12, 158.3], // more open than the limit says (lowered on a reload): shown as it is
  ])('max_db_connections %i: max %i, utilisation %s %', (maxDb, max, pct) => {
    expect(serverPoolFigures(shared(maxDb), SCOPE)).toEqual({ active: 13, idle: 6, total: 19, max, utilizationPercent: pct });
  });

  it('without an auth_user in SHOW CONFIG every user of the database counts', () => {
    const pb = { ...shared(0), config: parseConfig(fx.config) };
    expect(serverPoolFigures(pb, SCOPE)).toEqual({ active: 13, idle: 7, total: 20, max: 90, utilizationPercent: 22.2 });
  });

  it('a probe pointed at the application database: only its own pool is left out', () => {
    const pb = shared(0);
    pb.pools = pb.pools.map((p) => (p.database === 'custom_probe' ? { ...p, database: 'app' } : p));
    const scope: PoolScope = { appDatabase: 'app', probe: { database: 'app', user: 'poolguard_monitor' }, readDatabase: 'app_ro' };
    expect(serverPoolFigures(pb, scope)).toEqual({ active: 13, idle: 6, total: 19, max: 60, utilizationPercent: 31.7 });
  });

  it('no sample, or no application database in SHOW DATABASES: zeros', () => {
    expect(serverPoolFigures(undefined, SCOPE)).toEqual({ active: 0, idle: 0, total: 0, max: 0, utilizationPercent: 0 });
    expect(serverPoolFigures(shared(), { ...SCOPE, appDatabase: 'nope' })).toEqual({ active: 0, idle: 0, total: 0, max: 0, utilizationPercent: 0 });
  });
});
