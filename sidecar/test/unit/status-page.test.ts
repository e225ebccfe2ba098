// The status page's server side: the history ring, GET /status, the page's files and headers,
// and the login that trades the token for a session cookie. The page in a browser: test/e2e/status-page.test.ts.
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { AlertItem } from '../../src/alerts/engine.js';
import { LOGIN_FAILURES_PER_MINUTE, SESSION_COOKIE, buildApp } from '../../src/app.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { poolBody } from '../../src/health.js';
import { History, MAX_HISTORY_POINTS } from '../../src/history.js';
import { PAGE_WEIGHT_BUDGET_BYTES, loadPage, pageWeight } from '../../src/page.js';
import type { StackSnapshot } from '../../src/snapshot.js';
import type { PgBouncerSample } from '../../src/sources/pgbouncer.js';
import type { RedisSample } from '../../src/sources/redis.js';
import { cardOfAlert, historyFigures } from '../../src/views/status.js';
import { POOLS, snapshot, state } from '../fixtures/snapshot.js';

const TOKEN = 'status-page-token-0123456789';
const NOW = new Date('2026-01-01T00:00:01.000Z');

function capture() {
  const lines: string[] = [];
  return { lines, logger: pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) }) };
}

async function app(snap: StackSnapshot, opts: { token?: string; alerts?: AlertItem[]; logger?: Logger; history?: History } = {}) {
  return buildApp({
    logger: opts.logger ?? pino({ level: 'silent' }),
    snapshot: () => snap,
    alerts: () => opts.alerts ?? [],
    metrics: { contentType: new Registry().contentType, render: async () => 'x_up 1\n' },
    redisStatus: () => 'ready',
    isShuttingDown: () => false,
    pools: POOLS,
    pollIntervalMs: 5000,
    token: opts.token,
    history: opts.history,
    page: loadPage(),
    now: () => NOW,
  });
}

const ALERT: AlertItem = { name: 'redis_memory', severity: 'WARNING', summary: 'Redis uses 90 MiB', labels: {}, since: '2026-01-01T00:00:00.500Z', value: 91.2, threshold: 80 };

describe('History: a ring of one point a poll', () => {
  it('keeps the newest capacity points, oldest first, and serves those after a time', () => {
    const h = new History(3, 1000);
    for (let i = 1; i <= 5; i++) h.record(i * 1000, { a: i, b: i % 2 === 0 ? null : i * 10 });
    const body = h.body();
    expect(body).toMatchObject({ capacity: 3, points: 3, intervalMs: 1000, windowSeconds: 3, t: [3000, 4000, 5000] });
    expect(body.series).toEqual({ a: [3, 4, 5], b: [30, null, 50] });
    expect(h.body(4000)).toMatchObject({ t: [5000], series: { a: [5], b: [50] } });
    expect(h.body(9000).t).toEqual([]);
  });

  it('a series that appears later has no value before it; a time going backwards is ignored', () => {
    const h = new History(4, 1000);
    h.record(1000, { a: 1 });
    h.record(2000, { a: 2, c: 7 });
    h.record(1500, { a: 99 });
    expect(h.body()).toMatchObject({ t: [1000, 2000], series: { a: [1, 2], c: [null, 7] } });
  });

  it('its memory is fixed by capacity and series: an hour at 5 s with every page series is under 100 kB', () => {
    const points = 3600 / 5;
    const h = new History(points, 5000);
    const snap = snapshot();
    for (let i = 0; i < points + 10; i++) h.record(i * 5000, historyFigures(snap, snap, POOLS, 1));
    const series = Object.keys(h.body().series).length;
    expect(series).toBeGreaterThanOrEqual(10);
    expect(h.memoryBytes).toBe(History.bytesAt(points, series));
    expect(h.memoryBytes).toBeLessThan(100 * 1024);
    expect(h.length).toBe(points);
  });

  it('refuses series past maxSeries instead of growing', () => {
    const h = new History(2, 1000, 2);
    h.record(1, { a: 1, b: 2, c: 3 });
    expect(Object.keys(h.body().series)).toEqual(['a', 'b']);
    expect(h.refusedSeries).toEqual(['c']);
  });
});

describe('SIDECAR_HISTORY_SECONDS', () => {
  it('sizes the ring at the poll interval (an hour at 5 s: 720 points)', () => {
    expect(loadConfig({}).historyPoints).toBe(720);
    expect(loadConfig({ SIDECAR_HISTORY_SECONDS: '600', SIDECAR_POLL_INTERVAL_MS: '1000', SIDECAR_SOURCE_TIMEOUT_MS: '500' }).historyPoints).toBe(600);
  });

  it('refuses a window that needs more than MAX_HISTORY_POINTS, saying what to change', () => {
    const err = (() => {
      try {
        loadConfig({ SIDECAR_HISTORY_SECONDS: '86400', SIDECAR_POLL_INTERVAL_MS: '1000', SIDECAR_SOURCE_TIMEOUT_MS: '500' });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain(`more than the ${MAX_HISTORY_POINTS} kept in memory: lower SIDECAR_HISTORY_SECONDS or raise SIDECAR_POLL_INTERVAL_MS`);
    expect(() => loadConfig({ SIDECAR_HISTORY_SECONDS: '10' })).toThrow(/SIDECAR_HISTORY_SECONDS: must be >= 60/);
  });
});

describe('GET /status', () => {
  it('a card per backend, OK with version and since; the pools as /pool has them, with their shares', async () => {
    const body = (await (await app(snapshot())).inject('/status')).json();
    expect(body.cards.map((c: { id: string; state: string }) => `${c.id}:${c.state}`)).toEqual(['pgbouncer:OK', 'probe:OK', 'postgres:OK', 'redis:OK', 'backups:OK']);
    expect(body.cards[0]).toMatchObject({ title: 'PgBouncer', version: '1.24.1', since: '2026-01-01T00:00:00.000Z', lastError: null });
    expect(body).toMatchObject({ pollIntervalMs: 5000, staleAfterMs: 10_000, healthy: true, lastPollAt: '2026-01-01T00:00:00.000Z' });
    const pool = poolBody(snapshot(), NOW, POOLS);
    expect(body.pgbouncer.clients).toEqual(pool.pgbouncer.clients);
    expect(body.pgbouncer.pools.map(({ clientUtilizationPercent: _c, serverUtilizationPercent: _s, ...rest }: Record<string, unknown>) => rest)).toEqual(pool.pgbouncer.pools);
    const app0 = body.pgbouncer.pools.find((p: { database: string; user: string }) => p.database === 'app' && p.user === 'app');
    // sv_active 10 + idle 2 + used 1 of pool_size 25 + reserve 5; clients 12 + 3 waiting of max_client_conn 100
    expect(app0).toMatchObject({ serverUtilizationPercent: 43.3, clientUtilizationPercent: (app0.clientActive + app0.clientWaiting) / pool.pgbouncer.clients.max * 100 });
    expect(body.postgres).toMatchObject({ connections: 27, usable: 97 });
    expect(body.postgres.byState.reduce((n: number, g: { count: number }) => n + g.count, 0)).toBe(27);
    expect(body.redis).toMatchObject({ usedMemoryBytes: 1048576, connectedClients: 7, version: '8.0.2' });
    expect(body.budget.lines.length).toBeGreaterThan(0);
  });

  it('a backend that is down is DOWN with its last error and since when; an alert makes its card WARN', async () => {
    const down = { ...state<RedisSample>(undefined, 'connect ECONNREFUSED 10.0.0.5:6379'), since: '2026-01-01T00:00:00.200Z' };
    const body = (await (await app(snapshot({ redis: down }), { alerts: [{ ...ALERT, name: 'pgbouncer_clients_waiting', labels: { database: 'app', user: 'app' } }] })).inject('/status')).json();
    const redis = body.cards.find((c: { id: string }) => c.id === 'redis');
    expect(redis).toMatchObject({ state: 'DOWN', since: '2026-01-01T00:00:00.200Z', lastError: 'connect ECONNREFUSED 10.0.0.5:6379', detail: 'down: connect ECONNREFUSED 10.0.0.5:6379', version: null });
    const pgb = body.cards.find((c: { id: string }) => c.id === 'pgbouncer');
    expect(pgb).toMatchObject({ state: 'WARN', alerts: 1, since: ALERT.since });
    expect(body.healthy).toBe(false);
    expect(body.alerts).toHaveLength(1);
  });

  it('alerts go to the card they are about', () => {
    expect(cardOfAlert({ name: 'backend_down', labels: { backend: 'redis' } }, 'postgres')).toBe('redis');
    expect(cardOfAlert({ name: 'replica_lag', labels: { target: 'postgres-replica' } }, 'postgres')).toBe('postgres-replica');
    expect(cardOfAlert({ name: 'slow_statement', labels: { target: 'postgres' } }, 'postgres')).toBe('postgres');
    expect(cardOfAlert({ name: 'connection_budget', labels: { line: 'x' } }, 'postgres')).toBe('pgbouncer');
    expect(cardOfAlert({ name: 'backup_overdue', labels: {} }, 'postgres')).toBe('backups');
    expect(cardOfAlert({ name: 'postgres_long_transaction', labels: {} }, 'postgres')).toBe('postgres');
  });

  it('history figures: a transaction rate from two polls, null for a source that is down', () => {
    const before = snapshot();
    const pb = before.sources.pgbouncer.sample!;
    const after: StackSnapshot = {
      ...snapshot({ pgbouncer: state<PgBouncerSample>({ ...pb, stats: pb.stats.map((s) => ({ ...s, xactCount: s.xactCount + 50 })) }), redis: state<RedisSample>(undefined, 'down') }),
      lastPollAt: '2026-01-01T00:00:05.000Z',
    };
    const f = historyFigures(after, before, POOLS, 2);
    expect(f['pgbouncer.xact_per_second']).toBeCloseTo((50 * pb.stats.length) / 5, 6);
    expect(f['redis.used_memory_bytes']).toBeNull();
    expect(f['alerts.firing']).toBe(2);
    expect(historyFigures(before, undefined, POOLS, 0)['pgbouncer.xact_per_second']).toBeNull();
  });
});

describe('the page: its files and headers', () => {
  it('GET / is the page with a CSP of default-src self, and every file it loads is served with it', async () => {
    const a = await app(snapshot());
    const res = await a.inject('/');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(String(res.headers['content-security-policy'])).toMatch(/^default-src 'self';/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('DENY');
    const refs = [...res.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.sort()).toEqual(['/page/favicon.svg', '/page/status.css', '/page/status.js']);
    for (const ref of refs) {
      const r = await a.inject(ref);
      expect(r.statusCode, ref).toBe(200);
      expect(r.headers['content-security-policy'], ref).toBeDefined();
    }
    expect((await a.inject('/page/status.js')).headers['content-type']).toBe('text/javascript; charset=utf-8');
    const etag = String(res.headers.etag);
    expect((await a.inject({ url: '/', headers: { 'if-none-match': etag } })).statusCode).toBe(304);
  });

  it('nothing from another origin and nothing inline: no URL with a host, no inline script, style or handler', () => {
    for (const [name, asset] of loadPage()) {
      const text = asset.body.toString('utf8');
      expect(text, name).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
      if (name === 'index.html') {
        expect(text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
        expect(text).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
      }
      if (name === 'status.js') expect(text).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|eval\(|new Function/);
    }
  });

  it(`weighs at most ${PAGE_WEIGHT_BUDGET_BYTES / 1024} kB uncompressed, every file together`, () => {
    const assets = loadPage();
    expect([...assets.keys()].sort()).toEqual(['favicon.svg', 'index.html', 'status.css', 'status.js']);
    expect(pageWeight(assets)).toBeLessThanOrEqual(PAGE_WEIGHT_BUDGET_BYTES);
  });

  it('a file that is not the page is a 404, traversal included', async () => {
    const a = await app(snapshot());
    for (const url of ['/page/tsconfig.json', '/page/..%2Fpackage.json', '/page/%2e%2e%2fsrc%2fapp.ts', '/page/index.html']) {
      expect((await a.inject(url)).statusCode, url).toBe(404);
    }
  });
});

describe('the page with a token: a login that trades it for a session cookie', () => {
  const login = (a: Awaited<ReturnType<typeof app>>, token: string) => a.inject({ method: 'POST', url: '/login', payload: { token } });
  const cookieOf = (res: { headers: Record<string, unknown> }) => String(res.headers['set-cookie'] ?? '');

  it('the page is open, its data is not; without a token configured the data is open too', async () => {
    const a = await app(snapshot(), { token: TOKEN });
    expect((await a.inject('/')).statusCode).toBe(200);
    const r = await a.inject('/status');
    expect(r.statusCode).toBe(401);
    expect(r.json()).toEqual({ error: 'Unauthorized', login: true });
    expect((await a.inject('/history')).statusCode).toBe(401);
    expect((await a.inject({ url: '/status', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode).toBe(200);
    const open = await app(snapshot());
    expect((await open.inject('/status')).statusCode).toBe(200);
    expect((await open.inject('/history')).json()).toMatchObject({ points: 0, t: [] });
    expect((await login(open, 'anything')).json()).toEqual({ ok: true, auth: false });
  });

  it('the right token sets an HttpOnly SameSite=Strict cookie that holds no token and opens /status and /history', async () => {
    const { logger, lines } = capture();
    const history = new History(10, 5000);
    history.record(1000, { x: 1 });
    const a = await app(snapshot(), { token: TOKEN, logger, history });
    const res = await login(a, TOKEN);
    expect(res.statusCode).toBe(200);
    const set = cookieOf(res);
    expect(set).toMatch(new RegExp(`^${SESSION_COOKIE}=`));
    expect(set).toMatch(/; HttpOnly/);
    expect(set).toMatch(/; SameSite=Strict/);
    expect(set).toMatch(/; Path=\//);
    expect(set).not.toContain(TOKEN);
    const cookie = set.split(';')[0]!;
    expect((await a.inject({ url: '/status', headers: { cookie } })).statusCode).toBe(200);
    expect((await a.inject({ url: '/history', headers: { cookie } })).json()).toMatchObject({ points: 1, t: [1000], series: { x: [1] } });
    expect((await a.inject({ url: '/history?after=1000', headers: { cookie } })).json()).toMatchObject({ t: [] });
    // Only the page's data takes the cookie: /metrics and /pool stay bearer-only.
    expect((await a.inject({ url: '/metrics', headers: { cookie } })).statusCode).toBe(401);
    // A tampered or forged cookie is refused.
    const [name, value] = cookie.split('=') as [string, string];
    const forged = `${name}=${String(Date.now() + 3_600_000)}.${value.split('.').at(-1)}`;
    expect((await a.inject({ url: '/status', headers: { cookie: forged } })).statusCode).toBe(401);
    expect((await a.inject({ url: '/status', headers: { cookie: `${name}=9999999999999` } })).statusCode).toBe(401);
    // Logging out clears it.
    expect(cookieOf(await a.inject({ method: 'POST', url: '/logout' }))).toMatch(new RegExp(`^${SESSION_COOKIE}=;`));
    expect(lines.join('\n')).not.toContain(TOKEN);
    expect(lines.some((l) => l.includes('status page login'))).toBe(true);
  });

  it('a wrong token: 401, no cookie, a log line without the token; past the limit a minute, 429', async () => {
    const { logger, lines } = capture();
    const a = await app(snapshot(), { token: TOKEN, logger });
    const wrong = `${TOKEN}-wrong`;
    const res = await login(a, wrong);
    expect(res.statusCode).toBe(401);
    expect(res.headers['set-cookie']).toBeUndefined();
    for (let i = 1; i < LOGIN_FAILURES_PER_MINUTE; i++) await login(a, wrong);
    const limited = await login(a, TOKEN);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBe('60');
    expect(lines.join('\n')).not.toContain(TOKEN);
    expect(lines.filter((l) => l.includes('status page login failed'))).toHaveLength(LOGIN_FAILURES_PER_MINUTE);
  });

  it('only a JSON body logs in: a form post (another site could send one) is refused, and the token never goes in a URL', async () => {
    const a = await app(snapshot(), { token: TOKEN });
    const form = await a.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${TOKEN}` });
    expect(form.statusCode).toBe(415);
    expect(form.headers['set-cookie']).toBeUndefined();
    expect((await a.inject({ method: 'GET', url: `/login?token=${TOKEN}` })).statusCode).toBe(404);
    expect((await a.inject({ method: 'POST', url: '/login', payload: { nothing: TOKEN } })).statusCode).toBe(400);
  });
});
