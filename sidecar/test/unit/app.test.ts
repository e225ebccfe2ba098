import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { AlertItem } from '../../src/alerts/engine.js';
import { buildApp } from '../../src/app.js';
import type { StackSnapshot } from '../../src/snapshot.js';
import type { RedisSample } from '../../src/sources/redis.js';
import { snapshot, state } from '../fixtures/snapshot.js';

const TOKEN = 'test-token-0123456789abcdef';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { logger, lines };
}

async function app(snap: StackSnapshot, opts: { shuttingDown?: boolean; token?: string; alerts?: AlertItem[] } = {}) {
  return buildApp({
    logger: pino({ level: 'silent' }),
    snapshot: () => snap,
    alerts: () => opts.alerts ?? [],
    metrics: { contentType: new Registry().contentType, render: async () => 'x_up 1\n' },
    redisStatus: () => (snap.sources.redis.up ? 'ready' : 'reconnecting'),
    isShuttingDown: () => opts.shuttingDown ?? false,
    pollIntervalMs: 5000,
    token: opts.token,
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
        lastPollAt: '2026-01-01T00:00:00.000Z',
        lastError: null,
        // app pool: sv_active 10, idle 2 + used 1; max = pool_size 25 + reserve 5
        connectionPool: { active: 10, idle: 3, total: 13, max: 30, utilizationPercent: 43.3, isPgBouncer: true, isShuttingDown: false },
      },
      pgbouncer: { healthy: true, version: '1.24.1' },
      // 26 client backends from the fixture + the sidecar's own session; 100 - 3 usable
      postgres: { healthy: true, connections: 27, maxConnections: 97 },
      redis: { available: true, connected: true, status: 'ready', responseTime: 0.4 },
    });
  });

  it('/health: 503 with Retry-After and the failing backend named; the others still reported', async () => {
    const res = await (await app(snapshot({ redis: state<RedisSample>(undefined, 'WRONGPASS invalid username-password pair') }))).inject('/health');
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json()).toMatchObject({
      healthy: false,
      database: { healthy: true },
      postgres: { healthy: true },
      redis: { available: false, connected: false, lastError: 'WRONGPASS invalid username-password pair' },
    });
  });

  it('/readyz: 503 before the first poll and while shutting down; /livez always 200', async () => {
    expect((await (await app(snapshot({}, 0))).inject('/readyz')).statusCode).toBe(503);
    expect((await (await app(snapshot())).inject('/readyz')).statusCode).toBe(200);
    const closing = await app(snapshot(), { shuttingDown: true });
    expect((await closing.inject('/readyz')).json()).toEqual({ ready: false, isShuttingDown: true });
    expect((await closing.inject('/health')).json()).toMatchObject({ healthy: false, isShuttingDown: true, database: { connectionPool: { isShuttingDown: true } } });
    expect((await closing.inject('/livez')).statusCode).toBe(200);
  });

  it('/pool: database utilisation plus per-pool PgBouncer detail', async () => {
    const body = (await (await app(snapshot())).inject('/pool')).json();
    expect(body.database).toEqual({ utilizationPercent: 43.3, activeConnections: 10, idleConnections: 3, totalConnections: 13, maxConnections: 30, isHealthy: true });
    expect(body.pgbouncer.clients).toEqual({ used: 10, max: 100, utilizationPercent: 10 });
    expect(body.pgbouncer.pools[0]).toEqual({
      database: 'app', user: 'app', clientActive: 12, clientWaiting: 3, serverActive: 10, serverIdle: 2, serverUsed: 1,
      maxwaitSeconds: 1.25, poolSize: 25, reservePool: 5, poolMode: 'transaction',
    });
    expect(body.redis).toMatchObject({ isHealthy: true, connectedClients: 7, maxClients: 1000, utilizationPercent: 0.7 });
    expect(body.postgres).toEqual({ connections: 27, maxConnections: 97, utilizationPercent: 27.8, isHealthy: true });
  });

  it('/alerts: strings and structured items', async () => {
    const item: AlertItem = { name: 'backend_down', severity: 'CRITICAL', summary: 'redis is down: ECONNREFUSED', labels: { backend: 'redis' }, since: '2026-01-01T00:00:00.000Z', value: 1, threshold: 1 };
    const body = (await (await app(snapshot(), { alerts: [item] })).inject('/alerts')).json();
    expect(body).toEqual({ alerts: ['CRITICAL: redis is down: ECONNREFUSED'], count: 1, timestamp: '2026-01-01T00:00:01.000Z', items: [item] });
  });

  it('unknown paths get a JSON 404; bodies over the limit are refused', async () => {
    const a = await app(snapshot());
    const res = await a.inject('/nope?x=1');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: 'Not Found', message: 'no route for GET /nope' });
    const big = await a.inject({ method: 'POST', url: '/health', payload: 'x'.repeat(5000), headers: { 'content-type': 'text/plain' } });
    expect([404, 413]).toContain(big.statusCode);
  });
});

describe('bearer token', () => {
  it('guards /pool, /alerts and /metrics; /health, /livez, /readyz stay open', async () => {
    const { logger, lines } = capture();
    const a = await buildApp({
      logger, snapshot: () => snapshot(), alerts: () => [], metrics: { contentType: new Registry().contentType, render: async () => 'x_up 1\n' }, redisStatus: () => 'ready',
      isShuttingDown: () => false, pollIntervalMs: 5000, token: TOKEN,
    });
    for (const url of ['/pool', '/alerts', '/metrics']) {
      expect((await a.inject(url)).statusCode, url).toBe(401);
      const wrong = await a.inject({ url, headers: { authorization: 'Bearer wrong-token-value-xyz' } });
      expect(wrong.statusCode, url).toBe(401);
      expect(wrong.body).not.toContain('wrong-token-value-xyz');
      const huge = await a.inject({ url, headers: { authorization: `Bearer ${'A'.repeat(8000)}` } });
      expect(huge.statusCode, url).toBe(401);
      expect((await a.inject({ url, headers: { authorization: `Bearer ${TOKEN}` } })).statusCode, url).toBe(200);
    }
    for (const url of ['/health', '/livez', '/readyz']) expect((await a.inject(url)).statusCode, url).toBe(200);
    const logged = JSON.stringify(lines);
    expect(logged).not.toContain('wrong-token-value-xyz');
    expect(logged).not.toContain(TOKEN);
    expect(lines.filter((l) => l.msg === 'unauthorized request').map((l) => l.authorization)).toEqual(['missing', 'wrong token', 'wrong token', 'missing', 'wrong token', 'wrong token', 'missing', 'wrong token', 'wrong token']);
  });
});
