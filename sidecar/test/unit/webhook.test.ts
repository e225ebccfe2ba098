import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Transition } from '../../src/alerts/engine.js';
import { createWebhook } from '../../src/alerts/webhook.js';

const transition: Transition = {
  kind: 'firing',
  alert: { name: 'backend_down', severity: 'CRITICAL', summary: 'redis is down', labels: { backend: 'redis' }, since: '2026-01-01T00:00:00.000Z', value: 1, threshold: 1 },
};

let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/** A real HTTP receiver on loopback answering with the given status codes in turn. */
async function receiver(statuses: number[], delayMs = 0): Promise<{ url: string; bodies: unknown[] }> {
  const bodies: unknown[] = [];
  server = createServer((req: IncomingMessage, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      bodies.push({ ...(JSON.parse(data) as object), auth: req.headers.authorization });
      setTimeout(() => res.writeHead(statuses.shift() ?? 200).end(), delayMs);
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return { url: `http://user:secret@127.0.0.1:${(server.address() as AddressInfo).port}/hook?key=abc`, bodies };
}

function logs() {
  const lines: Record<string, unknown>[] = [];
  return { lines, logger: pino({}, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) }) };
}

describe('alert webhook', () => {
  it('POSTs the transition as JSON, retrying 5xx until it is accepted', async () => {
    const { url, bodies } = await receiver([503, 500, 200]);
    const { logger, lines } = logs();
    const hook = createWebhook({ url, timeoutMs: 1000, retries: 3, logger, backoffMs: 10 });
    expect(await hook.send(transition)).toBe(true);
    expect(bodies).toHaveLength(3);
    expect(bodies[0]).toMatchObject({ source: 'poolguard', status: 'firing', transition: 'firing', alert: { name: 'backend_down', severity: 'CRITICAL' }, auth: `Basic ${Buffer.from('user:secret').toString('base64')}` });
    expect(lines).toEqual([]);
  });

  it('gives up after the retries with one error log that carries no credentials; times out a hung receiver', async () => {
    const { url, bodies } = await receiver([500, 500, 500], 0);
    const { logger, lines } = logs();
    expect(await createWebhook({ url, timeoutMs: 1000, retries: 2, logger, backoffMs: 10 }).send(transition)).toBe(false);
    expect(bodies).toHaveLength(3);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'alert webhook delivery failed', error: 'HTTP 500', alert: 'backend_down' });
    expect(JSON.stringify(lines)).not.toMatch(/secret|key=abc/);

    server!.close();
    const slow = await receiver([200], 2000);
    const t0 = Date.now();
    const hung = logs();
    expect(await createWebhook({ url: slow.url, timeoutMs: 200, retries: 0, logger: hung.logger }).send(transition)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(String(hung.lines[0]?.error)).toMatch(/abort|timeout/i);
  });
});
