// The connection budget: the shipped settings pass; a bigger pool fails naming the inequality;
// the read alias counts against the primary (it moves there); several PgBouncers multiply.
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RULES } from '../../src/alerts/rules.js';
import { buildApp } from '../../src/app.js';
import type { PgBouncerSample } from '../../src/sources/pgbouncer.js';
import { loadPlanSettings } from '../../src/config.js';
import { databaseCap, plan, planInputFromSettings, type PlanInput } from '../../src/views/plan.js';
import { POOLS, snapshot, state } from '../fixtures/snapshot.js';

const shipped = (over: { poolSize?: number; instances?: number; app?: PlanInput['app'] } = {}): PlanInput => ({
  postgres: { maxConnections: 100, superuserReservedConnections: 3, reservedConnections: 0 },
  pgbouncer: {
    instances: over.instances ?? 1,
    maxClientConn: 100,
    databases: [
      { name: 'app', poolSize: over.poolSize ?? 25, reservePool: 5, maxDbConnections: 50, users: ['app', 'pgbouncer_auth'], onPrimary: true },
      { name: 'poolguard_probe', poolSize: 1, reservePool: 5, maxDbConnections: 1, users: ['poolguard_monitor'], onPrimary: true },
      { name: 'app_ro', poolSize: over.poolSize ?? 25, reservePool: 5, maxDbConnections: 50, users: ['app_reader'], onPrimary: false, mayMoveToPrimary: true },
    ],
  },
  direct: { sidecar: 1, migrations: 1, backups: 2, humans: 3 },
  consoleSlots: 3,
  app: over.app,
});

describe('plan', () => {
  it('caps each database by max_db_connections', () => {
    expect(databaseCap(shipped().pgbouncer.databases[0]!)).toBe(50); // 2 × 30 = 60, capped at 50
    expect(databaseCap({ name: 'x', poolSize: 10, reservePool: 0, maxDbConnections: 0, users: ['a', 'b'], onPrimary: true })).toBe(20);
  });

  it('the shipped settings pass, each line with its figures', () => {
    const p = plan(shipped({ app: { instances: 4, pool: 20 } }));
    expect(p.status).toBe('PASS');
    expect(p.lines[0]).toMatchObject({ status: 'PASS', figures: expect.stringContaining('1 × (app 50 + poolguard_probe 1 + app_ro 30)') });
    expect(p.lines[0]!.figures).toMatch(/= 81 ≤ max_connections 100 − superuser_reserved 3 − reserved 0 − direct 7 .* = 90$/);
  });

  it('a default pool of 60 fails, naming the inequality and what to change', () => {
    const p = plan(shipped({ poolSize: 60 }));
    expect(p.status).toBe('FAIL');
    const server = p.lines.find((l) => l.name.startsWith('server connections'))!;
    expect(server.status).toBe('FAIL');
    expect(server.figures).toMatch(/= 101 ≤ .* = 90$/);
    expect(server.advice).toMatch(/11 more server connections than Postgres accepts.*default_pool_size/);
    expect(p.lines.filter((l) => l.name.startsWith('pool of')).map((l) => l.figures)).toEqual(['pool_size 60 > max_db_connections 50', 'pool_size 60 > max_db_connections 50']);
  });

  it('two PgBouncer instances double the server side; too many app connections fail on the client side', () => {
    expect(plan(shipped({ instances: 2 })).lines[0]).toMatchObject({ status: 'FAIL', figures: expect.stringMatching(/^2 × .* = 162 ≤/) });
    const p = plan(shipped({ app: { instances: 6, pool: 17 } }));
    expect(p.lines.find((l) => l.name.startsWith('client'))).toMatchObject({ status: 'FAIL', figures: 'app instances 6 × app pool 17 = 102 ≤ max_client_conn 100 − console slots 3 = 97' });
    expect(plan(shipped({ app: { instances: 6, pool: 15 } })).lines.find((l) => l.name.startsWith('client'))!.status).toBe('WARN');
  });
});

describe('GET /plan (live settings from the snapshot)', () => {
  const appFor = (snap: ReturnType<typeof snapshot>) => buildApp({
    logger: pino({ level: 'silent' }), snapshot: () => snap, alerts: () => [],
    metrics: { contentType: new Registry().contentType, render: async () => '' }, redisStatus: () => 'ready', isShuttingDown: () => false,
    pools: POOLS, pollIntervalMs: 5000,
  });

  it('answers with the lines and the apps\' side when asked; 400 for half an app; 503 while PgBouncer is down', async () => {
    const a = await appFor(snapshot());
    const res = await a.inject('/plan?appInstances=4&appPool=20');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.status).toMatch(/^(PASS|WARN|FAIL)$/);
    expect(body.lines.map((l: { name: string }) => l.name)).toEqual(expect.arrayContaining(['server connections: PgBouncer against Postgres', 'client connections: apps against PgBouncer']));
    expect(body.lines.find((l: { name: string }) => l.name.startsWith('client')).figures).toBe('app instances 4 × app pool 20 = 80 ≤ max_client_conn 100 − console slots 2 = 98');
    expect((await a.inject('/plan?appInstances=4')).statusCode).toBe(400);
    const down = await appFor(snapshot({ pgbouncer: { ...snapshot().sources.pgbouncer, up: false, sample: undefined } }));
    const r = await down.inject('/plan');
    expect([r.statusCode, r.json().message]).toEqual([503, expect.stringMatching(/PgBouncer did not answer/)]);
  });
});

describe('connection_budget alert', () => {
  it('one observation per line, 2 for a failing one, naming its figures; nothing while PgBouncer is down', () => {
    const rule = DEFAULT_RULES.find((r) => r.name === 'connection_budget')!;
    const healthy = rule.observe(snapshot(), undefined, { pools: POOLS });
    expect(healthy.map((o) => [o.labels.line, o.value])).toEqual([['server connections: PgBouncer against Postgres', 0], ['client connections: apps against PgBouncer', 0]]);
    const pgb = snapshot().sources.pgbouncer.sample!;
    const big = { ...pgb, databases: pgb.databases.map((d) => ({ ...d, poolSize: 100, maxConnections: 0 })) };
    const failing = rule.observe(snapshot({ pgbouncer: state(big) }), undefined, { pools: POOLS });
    const server = failing.find((o) => o.labels.line!.startsWith('server'))!;
    expect(server.value).toBe(2);
    expect(server.describe(2)).toMatch(/^connection budget, server connections: PgBouncer against Postgres: 1 × \(.*\) = \d+ ≤ .*more server connections than Postgres accepts/);
    expect(rule.observe(snapshot({ pgbouncer: state<PgBouncerSample>(undefined, 'down') }), undefined, { pools: POOLS })).toEqual([]);
  });
});

describe('make plan before a deploy (PLAN_* settings)', () => {
  const run = (env: Record<string, string>) => plan(planInputFromSettings(loadPlanSettings(env)));

  it('the shipped settings pass, with the replica profile too; a default pool of 60 fails naming the inequality', () => {
    expect(run({}).status).toBe('PASS');
    const replica = run({ PLAN_PROFILES: 'replica', PLAN_APP_INSTANCES: '4', PLAN_APP_POOL: '20' });
    expect(replica.status).toBe('PASS');
    expect(replica.lines[0]!.figures).toMatch(/^1 × \(app 50 \+ poolguard_probe 1 \+ app_ro 30\) = 81 ≤/);
    expect(replica.lines[1]!.figures).toBe('app instances 4 × app pool 20 = 80 ≤ max_client_conn 100 − console slots 3 = 97');
    const big = run({ PLAN_DEFAULT_POOL_SIZE: '60' });
    expect(big.status).toBe('FAIL');
    expect(big.lines[0]).toMatchObject({ status: 'FAIL', figures: expect.stringMatching(/= 101 ≤ max_connections 100 .* = 90$/) });
  });

  it('bad settings: every problem named, nothing computed', () => {
    expect(() => loadPlanSettings({ PLAN_DEFAULT_POOL_SIZE: 'lots', PLAN_APP_POOL: '3', PLAN_TYPO: '1' })).toThrow(
      /PLAN_TYPO: unknown variable[\s\S]*PLAN_DEFAULT_POOL_SIZE: must be a whole number \(got "lots"\)/,
    );
    expect(() => loadPlanSettings({ PLAN_APP_POOL: '3' })).toThrow(/give both/);
  });
});
