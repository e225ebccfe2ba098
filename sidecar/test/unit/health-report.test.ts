// health-report.mjs (what `make up` runs inside the sidecar container) against a tiny HTTP server
// serving canned /health bodies. The script runs as a child process: async, so this process's
// server can answer it.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { buildApp } from '../../src/app.js';
import type { HealthBody } from '../../src/health.js';
import type { RedisSample } from '../../src/sources/redis.js';
import { POOLS, snapshot, state } from '../fixtures/snapshot.js';

const SCRIPT = fileURLToPath(new URL('../../health-report.mjs', import.meta.url));
const TOKEN = 'report-token-0123456789abcdef';

const healthy: HealthBody = {
  healthy: true,
  timestamp: '2026-01-01T00:00:01.000Z',
  isShuttingDown: false,
  database: {
    healthy: true, responseTime: 1.5, lastPollAt: '2026-01-01T00:00:00.000Z', lastError: null, restarts: 0, lastRestartAt: null,
    connectionPool: { active: 1, idle: 2, total: 3, max: 30, utilizationPercent: 10, isPgBouncer: true, isShuttingDown: false },
  },
  pgbouncer: { healthy: true, version: '1.24.1', lastPollAt: '2026-01-01T00:00:00.000Z', lastError: null, restarts: 0, lastRestartAt: null },
  postgres: { healthy: true, version: '17.5', connections: 5, maxConnections: 97, lastPollAt: '2026-01-01T00:00:00.000Z', lastError: null, restarts: 0, lastRestartAt: null },
  redis: { available: true, connected: true, status: 'ready', responseTime: 0.4, lastPollAt: '2026-01-01T00:00:00.000Z', lastError: null, restarts: 0, lastRestartAt: null },
  replicas: [],
  degraded: false,
};

const postgresDown: HealthBody = {
  ...healthy,
  healthy: false,
  database: { ...healthy.database, healthy: false, lastPollAt: '2026-01-01T00:00:02.000Z', lastError: 'server login has been failing' },
  postgres: { ...healthy.postgres, healthy: false, lastPollAt: '2026-01-01T00:00:03.000Z', lastError: 'connect ECONNREFUSED\n10.0.0.7:5432' },
};

interface Served { status: number; body: unknown }
let server: Server;
let port: number;
/** What the server answers next: a queue (the last one repeats). */
let answers: Served[] = [];
let seen: IncomingHttpHeaders[] = [];
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'health-report-'));
  server = createServer((req, res) => {
    seen.push(req.headers);
    const next = (answers.length > 1 ? answers.shift() : answers[0]) ?? { status: 500, body: 'no answer queued' };
    if (req.url !== '/health') {
      res.writeHead(404).end();
      return;
    }
    const text = typeof next.body === 'string' ? next.body : JSON.stringify(next.body);
    res.writeHead(next.status, { 'content-type': 'application/json' }).end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function run(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Only what the script reads: no SIDECAR_TOKEN inherited from the developer's shell.
  const base = { PATH: process.env.PATH ?? '' };
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT], { env: { ...base, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number | string }).code as number | null) : 0;
      resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
    });
  });
}

function tokenFile(content: string): string {
  const file = join(dir, `token-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, content);
  return file;
}

describe('health-report.mjs', () => {
  it('200: one line with the versions, exit 0; the token from SIDECAR_TOKEN_FILE (newline stripped) is sent', async () => {
    answers = [{ status: 200, body: healthy }];
    seen = [];
    const r = await run({ SIDECAR_PORT: String(port), SIDECAR_TOKEN_FILE: tokenFile(`${TOKEN}\n`), REPORT_WAIT_MS: '200' });
    expect(r.stdout).toBe('health: all backends healthy (pgbouncer 1.24.1, postgres 17.5, redis ready)\n');
    expect(r.code).toBe(0);
    expect(seen.map((h) => h.authorization)).toEqual([`Bearer ${TOKEN}`]);
    expect(r.stdout + r.stderr).not.toContain(TOKEN);
  });

  it('200 with a replica: said on the line; a replica that is down is DEGRADED with a line of its own, still exit 0', async () => {
    const streaming = { instance: 'postgres-replica', healthy: true, status: 'streaming', lagSeconds: 0 };
    answers = [{ status: 200, body: { ...healthy, replicas: [streaming], degraded: false } }];
    let r = await run({ SIDECAR_PORT: String(port), REPORT_WAIT_MS: '200' });
    expect(r.stdout).toBe('health: all backends healthy (pgbouncer 1.24.1, postgres 17.5, redis ready, replica postgres-replica streaming, lag 0 s)\n');
    expect(r.code).toBe(0);
    const down = { instance: 'postgres-replica', healthy: false, status: 'down', lagSeconds: null, reason: 'no answer', lastError: 'connect ECONNREFUSED\n172.18.0.5:5432' };
    answers = [{ status: 200, body: { ...healthy, replicas: [down], degraded: true } }];
    r = await run({ SIDECAR_PORT: String(port), REPORT_WAIT_MS: '200' });
    expect(r.stdout).toBe([
      'health: DEGRADED: every backend healthy but a replica (pgbouncer 1.24.1, postgres 17.5, redis ready, replica postgres-replica down)',
      '  - replica postgres-replica down: no answer — connect ECONNREFUSED 172.18.0.5:5432 (reads go to the primary meanwhile)',
      '',
    ].join('\n'));
    expect(r.code).toBe(0);
  });

  it('SIDECAR_TOKEN works too; without either no Authorization header is sent', async () => {
    answers = [{ status: 200, body: healthy }];
    seen = [];
    expect((await run({ SIDECAR_PORT: String(port), SIDECAR_TOKEN: TOKEN })).code).toBe(0);
    expect((await run({ SIDECAR_PORT: String(port) })).code).toBe(0);
    expect(seen.map((h) => h.authorization)).toEqual([`Bearer ${TOKEN}`, undefined]);
  });

  it('503: the status, then one line per unhealthy part with its error and last poll; exit 1 after the wait', async () => {
    answers = [{ status: 503, body: postgresDown }];
    seen = [];
    const started = Date.now();
    const r = await run({ SIDECAR_PORT: String(port), SIDECAR_TOKEN_FILE: tokenFile(TOKEN), REPORT_WAIT_MS: '1200' });
    expect(r.code).toBe(1);
    expect(r.stdout.split('\n')).toEqual([
      'health: NOT healthy (HTTP 503)',
      '  - database: down — server login has been failing (last poll 2026-01-01T00:00:02.000Z)',
      '  - postgres: down — connect ECONNREFUSED 10.0.0.7:5432 (last poll 2026-01-01T00:00:03.000Z)',
      '',
    ]);
    // Asked every 500 ms for up to 1200 ms: 3 times (2 on a very slow machine).
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.length).toBeLessThanOrEqual(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    expect(r.stdout + r.stderr).not.toContain(TOKEN);
  });

  it('a redacted body, redis down and shutting down: each named', async () => {
    const body: HealthBody = {
      ...healthy, healthy: false, isShuttingDown: true,
      pgbouncer: { ...healthy.pgbouncer, version: null },
      postgres: { ...healthy.postgres, version: null },
      redis: { ...healthy.redis, available: false, connected: false, status: 'reconnecting', lastError: 'unavailable (details need the token)', lastPollAt: null },
    };
    answers = [{ status: 503, body }];
    const r = await run({ SIDECAR_PORT: String(port), REPORT_WAIT_MS: '0' });
    expect(r.code).toBe(1);
    expect(r.stdout.split('\n')).toEqual([
      'health: NOT healthy (HTTP 503)',
      '  - sidecar: shutting down',
      '  - redis: down — unavailable (details need the token) (not polled yet)',
      '',
    ]);
  });

  it('retries while the answer is not 200: 503, 503, then 200 gives exit 0', async () => {
    answers = [{ status: 503, body: postgresDown }, { status: 503, body: postgresDown }, { status: 200, body: healthy }];
    seen = [];
    const r = await run({ SIDECAR_PORT: String(port), REPORT_WAIT_MS: '5000' });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('health: all backends healthy (pgbouncer 1.24.1, postgres 17.5, redis ready)\n');
    expect(seen.length).toBe(3);
  });

  it('503 with every part up (before the first poll): says so', async () => {
    answers = [{ status: 503, body: { ...healthy, healthy: false } }];
    const r = await run({ SIDECAR_PORT: String(port), REPORT_WAIT_MS: '0' });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('health: NOT healthy (HTTP 503)\n  - sidecar: the first poll has not finished yet\n');
  });

  it('against the real app: full error text with the token, the redacted one without', async () => {
    const app = await buildApp({
      logger: pino({ level: 'silent' }),
      snapshot: () => snapshot({ redis: state<RedisSample>(undefined, 'WRONGPASS invalid username-password pair') }),
      alerts: () => [], metrics: { contentType: 'text/plain', render: async () => '' }, redisStatus: () => 'reconnecting',
      isShuttingDown: () => false, pools: POOLS, pollIntervalMs: 5000, token: TOKEN,
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const appPort = String((app.server.address() as AddressInfo).port);
      const withToken = await run({ SIDECAR_PORT: appPort, SIDECAR_TOKEN_FILE: tokenFile(`${TOKEN}\n`), REPORT_WAIT_MS: '0' });
      expect(withToken.code).toBe(1);
      expect(withToken.stdout).toBe('health: NOT healthy (HTTP 503)\n  - redis: down — WRONGPASS invalid username-password pair (last poll 2026-01-01T00:00:00.000Z)\n');
      const without = await run({ SIDECAR_PORT: appPort, REPORT_WAIT_MS: '0' });
      expect(without.code).toBe(1);
      expect(without.stdout).toBe('health: NOT healthy (HTTP 503)\n  - redis: down — unavailable (details need the token) (last poll 2026-01-01T00:00:00.000Z)\n');
    } finally {
      await app.close();
    }
  });

  it('an answer that is not a /health body: exit 1 with a line saying so', async () => {
    answers = [{ status: 503, body: 'Service Unavailable' }];
    const r = await run({ SIDECAR_PORT: String(port), REPORT_WAIT_MS: '0' });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('health: NOT healthy (HTTP 503)\n  - the answer is not a /health body: Service Unavailable\n');
  });

  it('nothing listening: exit 2 with the reason', async () => {
    // A port that was free a moment ago: listen on an ephemeral one, then close it.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const free = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const r = await run({ SIDECAR_PORT: String(free), SIDECAR_TOKEN_FILE: tokenFile(TOKEN), REPORT_WAIT_MS: '600' });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe(`health: the sidecar does not answer on 127.0.0.1:${free} (ECONNREFUSED)\n`);
    expect(r.stdout + r.stderr).not.toContain(TOKEN);
  });
});
