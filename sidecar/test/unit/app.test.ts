import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { AlertItem } from '../../src/alerts/engine.js';
import { buildApp } from '../../src/app.js';
import { REDACTED_ERROR, redactHealth, type HealthBody } from '../../src/health.js';
import type { StackSnapshot } from '../../src/snapshot.js';
import type { PgBouncerSample } from '../../src/sources/pgbouncer.js';
import type { PostgresSample } from '../../src/sources/postgres.js';
import type { RedisSample } from '../../src/sources/redis.js';
import { POOLS, pgbouncerSample, snapshot, state } from '../fixtures/snapshot.js';

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
    pools: POOLS,
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
        // the app database's one user pool (app/app): sv_active 10, idle 2 + used 1;
        // max = 1 pool x (pool_size 25 + reserve 5), under max_db_connections 50
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

  it('/health and /pool take the application and probe databases from deps.pools', async () => {
    // A probe database renamed to custom_probe, holding its one server connection.
    const pb = pgbouncerSample();
    pb.pools.push({ ...pb.pools[0]!, database: 'custom_probe', user: 'poolguard_monitor', clActive: 1, clWaiting: 0, svActive: 0, svIdle: 1, svUsed: 0, maxwaitSeconds: 0 });
    pb.databases.push({ ...pb.databases[0]!, name: 'custom_probe', poolSize: 1, reservePool: 0, maxConnections: 1 });
    const a = await buildApp({
      logger: pino({ level: 'silent' }), snapshot: () => snapshot({ pgbouncer: state<PgBouncerSample>(pb) }), alerts: () => [],
      metrics: { contentType: new Registry().contentType, render: async () => '' }, redisStatus: () => 'ready', isShuttingDown: () => false,
      pools: { appDatabase: 'app', probe: { database: 'custom_probe', user: 'poolguard_monitor' }, readDatabase: 'app_ro' }, pollIntervalMs: 5000,
    });
    expect((await a.inject('/health')).json().database.connectionPool).toMatchObject({ active: 10, idle: 3, total: 13, max: 30, utilizationPercent: 43.3 });
    expect((await a.inject('/pool')).json().database).toMatchObject({ activeConnections: 10, idleConnections: 3, totalConnections: 13, maxConnections: 30 });
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
    // The 1 KiB body limit decides, not the missing POST route: over it 413, under it 404.
    const post = (bytes: number) => a.inject({ method: 'POST', url: '/health', payload: 'x'.repeat(bytes), headers: { 'content-type': 'text/plain' } });
    expect((await post(5000)).statusCode).toBe(413);
    expect((await post(1025)).statusCode).toBe(413);
    expect((await post(1024)).statusCode).toBe(404);
  });
});

describe('bearer token', () => {
  it('guards /pool, /alerts and /metrics; /health, /livez, /readyz stay open', async () => {
    const { logger, lines } = capture();
    const a = await buildApp({
      logger, snapshot: () => snapshot(), alerts: () => [], metrics: { contentType: new Registry().contentType, render: async () => 'x_up 1\n' }, redisStatus: () => 'ready',
      isShuttingDown: () => false, pools: POOLS, pollIntervalMs: 5000, token: TOKEN,
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

describe('bearer token: the auth scheme is case-insensitive (RFC 7235 2.1, RFC 6750 2.1)', () => {
  it('Bearer, bearer, BEARER and bEaReR all pass on /pool, /alerts and /metrics', async () => {
    const a = await app(snapshot(), { token: TOKEN });
    for (const url of ['/pool', '/alerts', '/metrics']) {
      for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
        expect((await a.inject({ url, headers: { authorization: `${scheme} ${TOKEN}` } })).statusCode, `${scheme} ${url}`).toBe(200);
      }
    }
  });

  it('a wrong token is still 401, whatever the scheme case; so are other schemes and a missing space', async () => {
    const a = await app(snapshot(), { token: TOKEN });
    for (const url of ['/pool', '/alerts', '/metrics']) {
      for (const authorization of ['bearer wrong-token-value-xyz', 'BEARER wrong-token-value-xyz', `bearer ${TOKEN}x`, `bearer ${TOKEN.slice(1)}`, `Basic ${TOKEN}`, `bearer${TOKEN}`, 'bearer ']) {
        const res = await a.inject({ url, headers: { authorization } });
        expect(res.statusCode, `${authorization} ${url}`).toBe(401);
        expect(res.json()).toEqual({ error: 'Unauthorized' });
      }
    }
  });
});

/** Every key path of a JSON value, with the type of its leaf (null counts as its own type). */
function shape(v: unknown, path = ''): string[] {
  if (v !== null && typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => shape(x, `${path}.${k}`));
  return [path];
}

describe('/health with a token configured', () => {
  // redis and postgres down with error text; pgbouncer and the probe up.
  const failing = () => snapshot({
    redis: state<RedisSample>(undefined, 'WRONGPASS invalid username-password pair'),
    postgres: state<PostgresSample>(undefined, 'connect ECONNREFUSED 10.0.0.7:5432 (user sidecar)'),
  });

  it('without a token: same keys, status and Retry-After; error text and versions redacted', async () => {
    const full = await (await app(failing())).inject('/health');
    const res = await (await app(failing(), { token: TOKEN })).inject('/health');
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.headers.vary).toBe('Authorization');
    const body = res.json<HealthBody>();
    expect(shape(body)).toEqual(shape(full.json()));
    expect(body.redis.lastError).toBe(REDACTED_ERROR);
    expect(body.postgres.lastError).toBe(REDACTED_ERROR);
    expect(body.pgbouncer.lastError).toBeNull();
    expect(body.database.lastError).toBeNull();
    expect(body.pgbouncer.version).toBeNull();
    expect(body.postgres.version).toBeNull();
    expect(res.body).not.toContain('WRONGPASS');
    expect(res.body).not.toContain('10.0.0.7');
    expect(res.body).not.toContain('1.24.1');
    // Everything else is as it was.
    expect(body).toEqual({
      ...full.json<HealthBody>(),
      pgbouncer: { ...full.json<HealthBody>().pgbouncer, version: null },
      postgres: { ...full.json<HealthBody>().postgres, version: null, lastError: REDACTED_ERROR },
      redis: { ...full.json<HealthBody>().redis, lastError: REDACTED_ERROR },
    });
  });

  it('with a wrong token, another scheme or a malformed header: redacted, never 401', async () => {
    const a = await app(failing(), { token: TOKEN });
    for (const authorization of ['Bearer wrong-token-value-xyz', 'bearer wrong-token-value-xyz', `Bearer ${TOKEN}x`, `Basic ${TOKEN}`, `Bearer${TOKEN}`, `Bearer ${'A'.repeat(8000)}`, '']) {
      const res = await a.inject({ url: '/health', headers: { authorization } });
      expect(res.statusCode, authorization.slice(0, 40)).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.json<HealthBody>().redis.lastError, authorization.slice(0, 40)).toBe(REDACTED_ERROR);
      expect(res.json<HealthBody>().pgbouncer.version).toBeNull();
    }
  });

  it('with the token (any case of the scheme): the full detail, as without a configured token', async () => {
    const open = (await (await app(failing())).inject('/health')).json<HealthBody>();
    expect(open.redis.lastError).toBe('WRONGPASS invalid username-password pair');
    expect(open.pgbouncer.version).toBe('1.24.1');
    const a = await app(failing(), { token: TOKEN });
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      const res = await a.inject({ url: '/health', headers: { authorization: `${scheme} ${TOKEN}` } });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.json(), scheme).toEqual(open);
    }
  });

  it('healthy: 200 and no Retry-After either way; versions only with the token', async () => {
    const a = await app(snapshot(), { token: TOKEN });
    const anon = await a.inject('/health');
    expect(anon.statusCode).toBe(200);
    expect(anon.headers['retry-after']).toBeUndefined();
    expect(anon.json()).toMatchObject({ healthy: true, pgbouncer: { healthy: true, version: null, lastError: null }, postgres: { healthy: true, version: null, connections: 27 } });
    const authed = await a.inject({ url: '/health', headers: { authorization: `bearer ${TOKEN}` } });
    expect(authed.statusCode).toBe(200);
    expect(authed.json()).toMatchObject({ healthy: true, pgbouncer: { version: '1.24.1' }, postgres: { version: expect.any(String) } });
    expect(authed.json<HealthBody>().postgres.version).not.toBeNull();
  });

  it('without a configured token /health is unchanged: full detail, open, no Vary', async () => {
    const res = await (await app(failing())).inject('/health');
    expect(res.statusCode).toBe(503);
    expect(res.headers.vary).toBeUndefined();
    expect(res.json()).toMatchObject({ pgbouncer: { version: '1.24.1' }, redis: { lastError: 'WRONGPASS invalid username-password pair' }, postgres: { lastError: 'connect ECONNREFUSED 10.0.0.7:5432 (user sidecar)' } });
    // A header makes no difference.
    expect((await (await app(failing())).inject({ url: '/health', headers: { authorization: 'Bearer whatever-it-is' } })).json()).toEqual(res.json());
  });

  it('redactHealth is pure: the input body is not changed', async () => {
    const body = (await (await app(failing())).inject('/health')).json<HealthBody>();
    const copy = structuredClone(body);
    const red = redactHealth(body);
    expect(body).toEqual(copy);
    expect(red).not.toBe(body);
    expect(red.redis.lastError).toBe(REDACTED_ERROR);
  });
});
