import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { SourceState } from '../../src/poller.js';
import type { StackSnapshot } from '../../src/snapshot.js';
import type { RedisSample } from '../../src/sources/redis.js';
import * as fx from '../fixtures/pgbouncer.js';
import { parseDatabases, parsePools } from '../../src/sources/pgbouncer.js';

function state<T>(sample: T | undefined, error: string | null = null): SourceState<T> {
  return {
    up: sample !== undefined,
    sample,
    lastPollAt: '2026-01-01T00:00:00.000Z',
    lastSuccessAt: sample !== undefined ? '2026-01-01T00:00:00.000Z' : null,
    lastError: error,
    durationMs: 3,
    consecutiveFailures: sample !== undefined ? 0 : 1,
    errorsTotal: 0,
  };
}

function snapshot(over: Partial<StackSnapshot['sources']> = {}, pollCount = 1): StackSnapshot {
  return {
    pollCount,
    lastPollAt: '2026-01-01T00:00:00.000Z',
    sources: {
      pgbouncer: state({ version: '1.24.1', pools: parsePools(fx.pools_1_24), databases: parseDatabases(fx.databases_1_24), stats: [], lists: {}, config: {} }),
      probe: state({ responseTimeMs: 1.5 }),
      redis: state({ pingMs: 0.4, info: {}, keyspace: {} }),
      ...over,
    },
  };
}

async function app(snap: StackSnapshot, shuttingDown = false) {
  return buildApp({
    logger: pino({ level: 'silent' }),
    snapshot: () => snap,
    redisStatus: () => (snap.sources.redis.up ? 'ready' : 'reconnecting'),
    isShuttingDown: () => shuttingDown,
    pollIntervalMs: 5000,
    now: () => new Date('2026-01-01T00:00:01.000Z'),
  });
}

describe('routes', () => {
  it('/health: 200 with the seeds shape when every backend is up', async () => {
    const res = await (await app(snapshot())).inject('/health');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      healthy: true,
      timestamp: '2026-01-01T00:00:01.000Z',
      database: {
        healthy: true,
        responseTime: 1.5,
        // app pool: sv_active 10, idle 2 + used 1; max = pool_size 25 + reserve 5
        connectionPool: { active: 10, idle: 3, total: 13, max: 30, utilizationPercent: 43.3, isPgBouncer: true, isShuttingDown: false },
      },
      pgbouncer: { healthy: true, version: '1.24.1' },
      redis: { available: true, connected: true, status: 'ready', responseTime: 0.4 },
    });
  });

  it('/health: 503 with Retry-After and the failing backend named', async () => {
    const res = await (await app(snapshot({ redis: state<RedisSample>(undefined, 'WRONGPASS invalid username-password pair') }))).inject('/health');
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json()).toMatchObject({ healthy: false, database: { healthy: true }, redis: { available: false, connected: false, lastError: 'WRONGPASS invalid username-password pair' } });
  });

  it('/readyz: 503 before the first poll and while shutting down; /livez always 200', async () => {
    expect((await (await app(snapshot({}, 0))).inject('/readyz')).statusCode).toBe(503);
    expect((await (await app(snapshot())).inject('/readyz')).statusCode).toBe(200);
    const closing = await app(snapshot(), true);
    expect((await closing.inject('/readyz')).json()).toEqual({ ready: false, isShuttingDown: true });
    expect((await closing.inject('/health')).json()).toMatchObject({ healthy: false, isShuttingDown: true, database: { connectionPool: { isShuttingDown: true } } });
    expect((await closing.inject('/livez')).statusCode).toBe(200);
  });

  it('unknown paths get a JSON 404', async () => {
    const res = await (await app(snapshot())).inject('/nope?x=1');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: 'Not Found', message: 'no route for GET /nope' });
  });
});
