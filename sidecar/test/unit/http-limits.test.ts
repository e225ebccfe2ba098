// The sidecar's HTTP limits on a real socket (buildApp never listens; this test does, on loopback).
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { HTTP_LIMITS, buildApp, type HttpLimits } from '../../src/app.js';
import { POOLS, snapshot } from '../fixtures/snapshot.js';

const open: Socket[] = [];
let close: (() => Promise<void>) | undefined;

afterEach(async () => {
  for (const s of open.splice(0)) s.destroy();
  await close?.();
  close = undefined;
});

async function listen(limits: Partial<HttpLimits>): Promise<{ port: number; logLines: Record<string, unknown>[] }> {
  const logLines: Record<string, unknown>[] = [];
  const app = await buildApp({
    logger: pino({ level: 'info' }, { write: (l: string) => void logLines.push(JSON.parse(l) as Record<string, unknown>) }),
    snapshot: () => snapshot(),
    alerts: () => [],
    metrics: { contentType: new Registry().contentType, render: async () => 'x_up 1\n' },
    redisStatus: () => 'ready',
    isShuttingDown: () => false,
    pools: POOLS,
    pollIntervalMs: 5000,
    limits: { ...HTTP_LIMITS, ...limits },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  close = () => app.close();
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return { port: address.port, logLines };
}

/** Opens a socket; resolves with it once connected, and records when the server closes it. */
function socket(port: number): Promise<Socket & { closedAt?: number }> {
  return new Promise((resolve, reject) => {
    const s: Socket & { closedAt?: number } = connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', () => undefined);
    s.on('close', () => { s.closedAt = Date.now(); });
    s.once('error', reject);
    open.push(s);
  });
}

const waitFor = async (cond: () => boolean, ms: number) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
};

async function get(port: number, path = '/livez'): Promise<number> {
  return (await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) })).status;
}

describe('HTTP limits', () => {
  it('the defaults are what the README states', () => {
    expect(HTTP_LIMITS).toEqual({
      maxConnections: 512, maxConnectionsPerAddress: 64, newConnectionsPerSecondPerAddress: 50, headersTimeoutMs: 5000, requestTimeoutMs: 10_000,
      idleTimeoutMs: 10_000, keepAliveTimeoutMs: 5000, maxRequestsPerSocket: 0, checkIntervalMs: 1000,
    });
  });

  it('1500 requests on one kept socket are all answered 200 (a per-socket limit would answer the rest 503)', async () => {
    const { port } = await listen({});
    const s = await socket(port);
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => { text += d; });
    s.write('GET /health HTTP/1.1\r\nHost: sidecar\r\n\r\n'.repeat(1500));
    const count = (status: number) => text.split(`HTTP/1.1 ${status} `).length - 1;
    expect(await waitFor(() => count(200) + count(503) >= 1500, 10_000), `answers: 200×${count(200)} 503×${count(503)}`).toBe(true);
    expect([count(200), count(503)]).toEqual([1500, 0]);
  });

  it('closes sockets from one address beyond its cap at once, says so once, and serves again when they go', async () => {
    const { port, logLines } = await listen({ maxConnectionsPerAddress: 3 });
    const held = [await socket(port), await socket(port), await socket(port)];
    const extra = await socket(port);
    expect(await waitFor(() => extra.closedAt !== undefined, 2000), 'the fourth socket is closed').toBe(true);
    const extra2 = await socket(port);
    expect(await waitFor(() => extra2.closedAt !== undefined, 2000)).toBe(true);
    expect(held.every((s) => s.closedAt === undefined)).toBe(true);
    expect(logLines.filter((l) => l.msg === 'too many connections from one address: closing new ones')).toHaveLength(1);
    held[0]!.destroy();
    await waitFor(() => false, 100);
    expect(await get(port)).toBe(200);
  });

  it('closes new sockets from one address beyond its rate (a bucket of twice the rate), then lets them in again', async () => {
    const { port } = await listen({ newConnectionsPerSecondPerAddress: 5 });
    const sockets = [];
    for (let i = 0; i < 14; i += 1) sockets.push(await socket(port));
    await waitFor(() => false, 200);
    const closed = sockets.filter((s) => s.closedAt !== undefined).length;
    expect(closed, 'the 10-socket bucket and about one refill let 10 or 11 in').toBeGreaterThanOrEqual(3);
    expect(closed).toBeLessThanOrEqual(4);
    for (const s of sockets) s.destroy();
    await waitFor(() => false, 1100); // five tokens back
    expect(await get(port)).toBe(200);
  });

  it('closes a slowloris socket (a request head that never ends) after headersTimeout', async () => {
    const { port } = await listen({ headersTimeoutMs: 300, requestTimeoutMs: 600, checkIntervalMs: 100, idleTimeoutMs: 10_000 });
    const slow = await socket(port);
    const t0 = Date.now();
    slow.write('GET /health HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => slow.write('X-Drip: 1\r\n'), 50); // traffic, so not the idle timeout
    try {
      expect(await waitFor(() => slow.closedAt !== undefined, 3000)).toBe(true);
    } finally {
      clearInterval(drip);
    }
    const after = slow.closedAt! - t0;
    expect(after).toBeGreaterThanOrEqual(300);
    expect(after).toBeLessThan(1500);
  });

  it('closes a socket with no traffic after the idle timeout', async () => {
    const { port } = await listen({ idleTimeoutMs: 300 });
    const idle = await socket(port);
    const t0 = Date.now();
    expect(await waitFor(() => idle.closedAt !== undefined, 3000)).toBe(true);
    expect(idle.closedAt! - t0).toBeGreaterThanOrEqual(250);
  });
});
