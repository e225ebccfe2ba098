// Restarts faster than a poll: the poll loop compares each good sample with the last good one
// (SourceSpec.restarted), counts a restart, and backend_restarted fires for a while. kill -9 of a
// backend on the prod file comes back in ~6 s, often between two polls, so without this the
// sidecar never saw those crashes at all.
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AlertEngine } from '../../src/alerts/engine.js';
import { DEFAULT_RULES, RESTART_ALERT_WINDOW_MS } from '../../src/alerts/rules.js';
import { healthBody } from '../../src/health.js';
import { registerMetrics } from '../../src/metrics.js';
import { Poller } from '../../src/poller.js';
import { pgbouncerRestarted, type PgBouncerStats } from '../../src/sources/pgbouncer.js';
import { postgresRestarted } from '../../src/sources/postgres.js';
import { redisRestarted } from '../../src/sources/redis.js';
import { POOLS, snapshot } from '../fixtures/snapshot.js';

const stats = (database: string, xactCount: number, queryCount = xactCount): PgBouncerStats => ({
  database, xactCount, queryCount, serverAssignmentCount: undefined, receivedBytes: 0, sentBytes: 0, xactTimeUs: 0, queryTimeUs: 0, waitTimeUs: 0,
  clientParseCount: undefined, serverParseCount: undefined, bindCount: undefined,
});

describe('restart comparers (pure)', () => {
  it('Postgres: pg_postmaster_start_time moved', () => {
    expect(postgresRestarted({ startTime: 1000.5 }, { startTime: 1000.5 })).toBeUndefined();
    expect(postgresRestarted({ startTime: 0 }, { startTime: 1000.5 })).toBeUndefined(); // nothing read before
    expect(postgresRestarted({ startTime: 1000.5 }, { startTime: 1060.25 })).toBe(
      'Postgres started again at 1970-01-01T00:17:40.250Z (pg_postmaster_start_time was 1970-01-01T00:16:40.500Z): a crash, an OOM kill or a container restart; see its log',
    );
  });

  it('Redis: run_id changed', () => {
    const info = (run_id: string, up = '3') => ({ info: { run_id, uptime_in_seconds: up } });
    expect(redisRestarted(info('aaaaaaaaaaaa'), info('aaaaaaaaaaaa'))).toBeUndefined();
    expect(redisRestarted({ info: {} }, info('bbbbbbbbbbbb'))).toBeUndefined();
    expect(redisRestarted(info('aaaaaaaaaaaa'), info('bbbbbbbbbbbb', '2'))).toBe('Redis started again (run_id aaaaaaaa… → bbbbbbbb…, up 2 s): a crash, an OOM kill or a container restart; see its log');
  });

  it('PgBouncer: a database whose totals went back; growing, new or vanished databases are no restart', () => {
    const before = { stats: [stats('pgbouncer', 40), stats('app', 9000)] };
    expect(pgbouncerRestarted(before, { stats: [stats('pgbouncer', 41), stats('app', 9100)] })).toBeUndefined();
    expect(pgbouncerRestarted(before, { stats: [stats('pgbouncer', 41), stats('other', 1)] })).toBeUndefined();
    expect(pgbouncerRestarted(before, { stats: [stats('pgbouncer', 41), stats('app', 9100, 3)] })).toMatch(/database app/);
    expect(pgbouncerRestarted(before, { stats: [stats('pgbouncer', 1), stats('app', 2)] })).toBe(
      "PgBouncer's counters went back (database pgbouncer: total_xact_count 40 → 1): it restarted; see its log",
    );
  });
});

describe('the poll loop counts restarts', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('between two good polls, and across polls where the source was down; the first poll is no restart', async () => {
    const answers: (number | Error)[] = [1, 1, 2, new Error('down'), 2, 3];
    const seen: string[] = [];
    const poller = new Poller(
      { s: { run: async () => { const a = answers.shift()!; if (a instanceof Error) throw a; return a; }, restarted: (a: number, b: number) => (a === b ? undefined : `${a} -> ${b}`) } },
      { intervalMs: 1000, timeoutMs: 500, now: () => Date.now(), onSourceRestarted: (name, reason) => seen.push(`${name}: ${reason}`) },
    );
    const counts: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      await poller.pollOnce();
      counts.push(poller.snapshot.sources.s.restarts);
    }
    expect(counts).toEqual([0, 0, 1, 1, 1, 2]);
    expect(seen).toEqual(['s: 1 -> 2', 's: 2 -> 3']);
    expect(poller.snapshot.sources.s).toMatchObject({ lastRestart: '2 -> 3', up: true });
    expect(poller.snapshot.sources.s.lastRestartAt).toBe(poller.snapshot.sources.s.lastSuccessAt);
  });
});

describe('backend_restarted, /health and the metric', () => {
  const restartedAt = '2026-01-01T00:00:00.000Z';
  const after = (ms: number) => {
    const snap = snapshot({ redis: { ...snapshot().sources.redis, restarts: 2, lastRestartAt: restartedAt, lastRestart: 'Redis started again (…)' } });
    snap.lastPollAt = new Date(Date.parse(restartedAt) + ms).toISOString();
    return snap;
  };

  it(`fires WARNING at once for the restarted backend only, and resolves ${RESTART_ALERT_WINDOW_MS / 60_000} minutes later`, () => {
    const engine = new AlertEngine(DEFAULT_RULES.filter((r) => r.name === 'backend_restarted'), { defaultForMs: 15_000, resolveForMs: 0, hysteresis: 0.05, context: { pools: POOLS } });
    engine.evaluate(snapshot(), 0);
    expect(engine.firing()).toEqual([]);
    engine.evaluate(after(1000), 1000);
    expect(engine.firing().map((a) => [a.name, a.severity, a.labels.backend, a.summary])).toEqual([
      ['backend_restarted', 'WARNING', 'redis', 'redis restarted at 2026-01-01T00:00:00.000Z (2 restarts seen since the sidecar started): Redis started again (…)'],
    ]);
    engine.evaluate(after(RESTART_ALERT_WINDOW_MS - 1), 2000);
    expect(engine.firing()).toHaveLength(1);
    engine.evaluate(after(RESTART_ALERT_WINDOW_MS), 3000);
    expect(engine.firing()).toEqual([]);
  });

  it('/health carries restarts and lastRestartAt per backend; the metric counts them', async () => {
    const snap = after(1000);
    const body = healthBody(snap, { isShuttingDown: false, redisStatus: 'ready', now: new Date(), pools: POOLS });
    expect(body.redis).toMatchObject({ restarts: 2, lastRestartAt: restartedAt });
    expect(body.postgres).toMatchObject({ restarts: 0, lastRestartAt: null });
    expect(body.healthy).toBe(true);
    const registry = new Registry();
    const engine = new AlertEngine(DEFAULT_RULES, { defaultForMs: 0, resolveForMs: 0, hysteresis: 0.05, context: { pools: POOLS } });
    registerMetrics(registry, () => ({ snapshot: snap, alerts: engine }), POOLS);
    const text = await registry.metrics();
    expect(text).toContain('poolguard_backend_restarts_total{source="redis"} 2');
    expect(text).toContain('poolguard_backend_restarts_total{source="postgres"} 0');
    expect(text).toContain('pg_postmaster_start_time_seconds{target="postgres"} 1767225600.123456');
  });
});

