// The real entry point as a child process: config errors, listening, graceful shutdown and
// the second-signal exit. Backends are loopback stand-ins: refused ports and a server that
// accepts connections and never answers (a hung backend).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const DIR = fileURLToPath(new URL('../..', import.meta.url));
let hung: Server;
let hungPort = 0;
const sockets: Socket[] = [];

beforeAll(async () => {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: DIR, stdio: 'pipe' });
  hung = createServer((s) => void sockets.push(s));
  await new Promise<void>((r) => hung.listen(0, '127.0.0.1', () => r()));
  hungPort = (hung.address() as AddressInfo).port;
}, 60_000);

afterAll(() => {
  for (const s of sockets) s.destroy();
  hung.close();
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Proc {
  child: ChildProcess;
  out: () => string;
  exit: Promise<{ code: number | null; ms: number }>;
}

function start(env: Record<string, string>): Proc {
  let out = '';
  const t0 = Date.now();
  const child = spawn(process.execPath, ['dist/main.js'], {
    cwd: DIR,
    env: { PATH: process.env.PATH ?? '', SIDECAR_HOST: '127.0.0.1', SIDECAR_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (out += String(d)));
  child.stderr!.on('data', (d) => (out += String(d)));
  const exit = new Promise<{ code: number | null; ms: number }>((r) => child.on('exit', (code) => r({ code, ms: Date.now() - t0 })));
  return { child, out: () => out, exit };
}

const refused = (port: number) => ({
  SIDECAR_PGBOUNCER_URL: `postgres://stats:pw@127.0.0.1:${port}/pgbouncer`,
  SIDECAR_PROBE_URL: `postgres://mon:pw@127.0.0.1:${port}/poolguard_probe`,
  SIDECAR_POSTGRES_URL: `postgres://mon:pw@127.0.0.1:${port}/app`,
  SIDECAR_REDIS_URL: `redis://127.0.0.1:${port}/0`,
});

async function waitFor(check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const listening = async (port: number) => fetch(`http://127.0.0.1:${port}/livez`).then(() => true, () => false);

describe('sidecar process', () => {
  it('bad env: exits 1 naming every bad variable, never listens', async () => {
    const port = await freePort();
    const p = start({ SIDECAR_PORT: String(port), SIDECAR_POLL_INTERVAL_MS: 'soon', SIDECAR_REDIS_URL: 'redis//nohost', SIDECAR_TOKEN: '' });
    const { code } = await p.exit;
    expect(code).toBe(1);
    expect(p.out()).toMatch(/SIDECAR_POLL_INTERVAL_MS: must be a whole number/);
    expect(p.out()).toMatch(/SIDECAR_REDIS_URL: must be a URL/);
    expect(await listening(port)).toBe(false);
  });

  it('backends down: still listens, /health 503 naming each error; SIGTERM exits 0 quickly', async () => {
    const port = await freePort();
    const dead = await freePort();
    const p = start({ SIDECAR_PORT: String(port), SIDECAR_POLL_INTERVAL_MS: '1000', SIDECAR_SOURCE_TIMEOUT_MS: '500', ...refused(dead) });
    await waitFor(() => listening(port), 10_000);
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(503);
    const body = (await health.json()) as Record<string, { lastError: string }>;
    expect(body.pgbouncer!.lastError).toMatch(/ECONNREFUSED/);
    expect(body.redis!.lastError).toMatch(/ECONNREFUSED|not connected/);
    const t0 = Date.now();
    p.child.kill('SIGTERM');
    const { code } = await p.exit;
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(p.out()).toMatch(/"msg":"shutdown complete"/);
    expect(p.out()).not.toContain(':pw@');
  });

  it('SIGTERM during a hung poll: waits for it (within the grace), exits 0; a second signal exits 1', async () => {
    const hungEnv = { ...refused(await freePort()), SIDECAR_PGBOUNCER_URL: `postgres://stats:pw@127.0.0.1:${hungPort}/pgbouncer`, SIDECAR_POLL_INTERVAL_MS: '5000', SIDECAR_SOURCE_TIMEOUT_MS: '2000', SIDECAR_SHUTDOWN_GRACE_MS: '8000' };
    const graceful = start({ SIDECAR_PORT: String(await freePort()), ...hungEnv });
    await waitFor(() => sockets.length > 0, 5000); // the first poll is stuck on the hung backend
    graceful.child.kill('SIGTERM');
    const first = await graceful.exit;
    expect(first.code).toBe(0);
    expect(graceful.out()).toMatch(/"msg":"shutdown complete"/);

    const impatient = start({ SIDECAR_PORT: String(await freePort()), ...hungEnv });
    const before = sockets.length;
    await waitFor(() => sockets.length > before, 5000);
    impatient.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    impatient.child.kill('SIGTERM');
    const second = await impatient.exit;
    expect(second.code).toBe(1);
    expect(impatient.out()).toMatch(/second SIGTERM, exiting/);
  }, 20_000); // two processes, each waiting on a hung first poll: more than vitest's 5 s on a busy machine
});
