import { describe, expect, it } from 'vitest';
import { AlertEngine } from '../../src/alerts/engine.js';
import { RULE_NAMES } from '../../src/alerts/names.js';
import { DEFAULT_RULES, applyOverrides, type Rule } from '../../src/alerts/rules.js';
import type { StackSnapshot } from '../../src/snapshot.js';
import type { PgBouncerSample } from '../../src/sources/pgbouncer.js';
import type { RedisSample } from '../../src/sources/redis.js';
import { postgresSample, replicaSample } from '../fixtures/postgres.js';
import { POOLS, pgbouncerSample, snapshot, state } from '../fixtures/snapshot.js';

const rule = (name: string): Rule => DEFAULT_RULES.find((r) => r.name === name)!;
const values = (name: string, snap: StackSnapshot, prev?: StackSnapshot) => rule(name).observe(snap, prev, { pools: POOLS }).map((o) => ({ labels: o.labels, value: Math.round(o.value * 10) / 10, text: o.describe(o.value) }));

function withPool(sv: { active: number; idle: number; used: number }, waiting = 0, maxwait = 0): StackSnapshot {
  const pb = pgbouncerSample();
  pb.pools = [{ ...pb.pools[0]!, svActive: sv.active, svIdle: sv.idle, svUsed: sv.used, clWaiting: waiting, maxwaitSeconds: maxwait }];
  return snapshot({ pgbouncer: state<PgBouncerSample>(pb) });
}

describe('rules (pure functions of the snapshot)', () => {
  it('the table implements exactly the names config.ts validates SIDECAR_ALERT_RULES against', () => {
    expect(DEFAULT_RULES.map((r) => r.name)).toEqual([...RULE_NAMES]);
  });

  it.each([
    ['pgbouncer_pool_utilization', withPool({ active: 20, idle: 4, used: 4 }), [{ labels: { database: 'app', user: 'app' }, value: 93.3 }]],
    ['pgbouncer_pool_utilization', withPool({ active: 0, idle: 5, used: 0 }), [{ labels: { database: 'app', user: 'app' }, value: 16.7 }]],
    ['pgbouncer_clients_waiting', withPool({ active: 30, idle: 0, used: 0 }, 4, 1.25), [{ labels: { database: 'app', user: 'app' }, value: 1.3 }]],
    ['pgbouncer_clients_waiting', withPool({ active: 3, idle: 0, used: 0 }, 0, 0), []],
    ['pgbouncer_client_utilization', snapshot(), [{ labels: {}, value: 10 }]],
    ['postgres_connections', snapshot(), [{ labels: {}, value: 27.8 }]],
    ['postgres_idle_in_transaction', snapshot(), [{ labels: { pid: '4242', application_name: 'worker', client_addr: '172.18.0.9', usename: 'app', datname: 'app' }, value: 75.4 }]],
    ['postgres_long_transaction', snapshot(), [{ labels: {}, value: 95.2 }]],
    ['redis_memory', snapshot(), [{ labels: {}, value: 0.4 }]],
    ['replica_lag', snapshot(), []],
    // The configured primary itself in recovery, primary unknown: receive = replay while streaming is caught up.
    ['replica_lag', snapshot({ postgres: state(replicaSample()) }), [{ labels: { target: 'postgres' }, value: 0 }]],
    ['replica_lag', snapshot({ postgres: state(replicaSample({ receive_lsn_bytes: '50335744', replay_age_seconds: 7 })) }), [{ labels: { target: 'postgres' }, value: 7 }]],
  ])('%s', (name, snap, expected) => {
    expect(values(name, snap).map(({ labels, value }) => ({ labels, value }))).toEqual(expected);
  });

  it('idle-in-transaction text names pid, application_name and client address', () => {
    expect(values('postgres_idle_in_transaction', snapshot())[0]?.text).toMatch(/pid 4242 \(application_name "worker", client 172\.18\.0\.9/);
  });

  it('backend_down: one observation per backend, 1 when down', () => {
    const snap = snapshot({ redis: state<RedisSample>(undefined, 'connect ECONNREFUSED') });
    expect(values('backend_down', snap).map((o) => [o.labels.backend, o.value])).toEqual([['pgbouncer', 0], ['probe', 0], ['postgres', 0], ['redis', 1], ['disk', 0], ['backups', 0]]);
    expect(values('backend_down', snap)[3]?.text).toBe('redis is down: connect ECONNREFUSED');
  });

  it('redis_rejected_connections: the increase since the previous poll', () => {
    const at = (n: number) => {
      const s = snapshot();
      s.sources.redis.sample!.info.rejected_connections = String(n);
      return s;
    };
    expect(values('redis_rejected_connections', at(5))).toEqual([]);
    expect(values('redis_rejected_connections', at(5), at(5))[0]?.value).toBe(0);
    expect(values('redis_rejected_connections', at(9), at(5))[0]?.value).toBe(4);
  });

  it('overrides change thresholds, remove levels, disable rules', () => {
    const rules = applyOverrides(DEFAULT_RULES, { pgbouncer_pool_utilization: { warning: 50, critical: null, forMs: 1 }, redis_memory: { enabled: false } });
    const r = rules.find((x) => x.name === 'pgbouncer_pool_utilization')!;
    expect([r.warning, r.critical, r.forMs]).toEqual([50, undefined, 1]);
    expect(rules.some((x) => x.name === 'redis_memory')).toBe(false);
  });
});

describe('alert engine: for-duration and hysteresis', () => {
  const only = (name: string, forMs: number) => applyOverrides(DEFAULT_RULES, {}).filter((r) => r.name === name).map((r) => ({ ...r, forMs }));

  // [t (ms), pool total (of 30)] -> expected [firing severity | null, transition kinds]
  it.each([
    {
      title: 'fires only after holding for `for`, one noisy poll does not fire it',
      steps: [
        [0, 27, null, []], [5000, 10, null, []], [10000, 27, null, []], [15000, 27, null, []], [20000, 27, 'CRITICAL', ['firing']],
      ],
    },
    {
      title: 'hysteresis: stays CRITICAL just under the threshold, de-escalates below it minus 5 %, resolves only after resolveFor',
      steps: [
        [0, 25, null, []], [10000, 25, 'WARNING', ['firing']], [15000, 28, 'CRITICAL', ['severity_changed']],
        [20000, 26, 'CRITICAL', []], // 86.7 % >= 90 x 0.95 = 85.5 %
        [25000, 25, 'WARNING', ['severity_changed']], // 83.3 % < 85.5 %, >= 80 x 0.95
        [30000, 23, 'WARNING', []], // 76.7 % >= 76 %
        [35000, 20, 'WARNING', []], // 66.7 %: clear, pending resolve
        [40000, 25, 'WARNING', []], // back above: no flap
        [45000, 20, 'WARNING', []], [55000, 20, null, ['resolved']],
      ],
    },
  ])('$title', ({ steps }) => {
    const engine = new AlertEngine(only('pgbouncer_pool_utilization', 10_000), { defaultForMs: 10_000, resolveForMs: 10_000, hysteresis: 0.05, context: { pools: POOLS } });
    for (const [t, total, severity, kinds] of steps as [number, number, string | null, string[]][]) {
      const transitions = engine.evaluate(withPool({ active: total, idle: 0, used: 0 }), t);
      expect(transitions.map((x) => x.kind), `t=${t}`).toEqual(kinds);
      expect(engine.firing()[0]?.severity ?? null, `t=${t}`).toBe(severity);
    }
  });

  it('an instance that vanishes (session ended) resolves after resolveFor; items carry value, threshold, since', () => {
    const engine = new AlertEngine(only('postgres_idle_in_transaction', 0), { defaultForMs: 10_000, resolveForMs: 5000, hysteresis: 0.05, context: { pools: POOLS } });
    expect(engine.evaluate(snapshot(), 1000).map((t) => t.kind)).toEqual(['firing']);
    expect(engine.firing()).toEqual([
      expect.objectContaining({ name: 'postgres_idle_in_transaction', severity: 'WARNING', value: 75.4, threshold: 60, since: new Date(1000).toISOString(), labels: expect.objectContaining({ pid: '4242' }) }),
    ]);
    const gone = snapshot({ postgres: state(postgresSample({ idleInTransaction: [] })) });
    expect(engine.evaluate(gone, 2000)).toEqual([]);
    expect(engine.evaluate(gone, 7000).map((t) => t.kind)).toEqual(['resolved']);
    expect(engine.firing()).toEqual([]);
    expect(engine.countsByRule()).toEqual([{ rule: 'postgres_idle_in_transaction', severity: 'WARNING', count: 0 }, { rule: 'postgres_idle_in_transaction', severity: 'CRITICAL', count: 0 }]);
  });
});
