// The sidecar's alerts to Alertmanager's API v2, against a local HTTP server standing in for
// Alertmanager's endpoint (the real one: test/e2e/monitoring.test.ts).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ENDS_AFTER_RESENDS, alertLabels, createAlertmanager, type PostableAlert } from '../../src/alerts/alertmanager.js';
import type { AlertItem } from '../../src/alerts/engine.js';
import { loadConfig } from '../../src/config.js';

const ALERT: AlertItem = { name: 'pgbouncer_clients_waiting', severity: 'CRITICAL', summary: '7 clients wait in app/app', labels: { database: 'app', user: 'app' }, since: '2026-01-01T00:00:00.000Z', value: 7, threshold: 5 };
const NOW = new Date('2026-01-01T00:01:00.000Z');

let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

async function receiver(statuses: number[] = []) {
  const posts: { path: string; body: PostableAlert[] }[] = [];
  server = createServer((req: IncomingMessage, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      posts.push({ path: req.url ?? '', body: JSON.parse(data) as PostableAlert[] });
      res.writeHead(statuses.shift() ?? 200).end();
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { posts, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const lines: string[] = [];
const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
const delivery = (url: string) => createAlertmanager({ url, timeoutMs: 1000, retries: 2, resendMs: 60_000, generatorURL: 'http://127.0.0.1:8787/', logger, backoffMs: 5 });

describe('alerts to Alertmanager (API v2)', () => {
  it('firing: labels, annotations, startsAt = since, endsAt four resends ahead, to /api/v2/alerts', async () => {
    const { posts, url } = await receiver();
    expect(await delivery(url).transition({ kind: 'firing', alert: ALERT }, NOW)).toBe(true);
    expect(posts).toEqual([{
      path: '/api/v2/alerts',
      body: [{
        labels: { alertname: 'pgbouncer_clients_waiting', severity: 'CRITICAL', source: 'poolguard-sidecar', database: 'app', user: 'app' },
        annotations: { summary: '7 clients wait in app/app', value: '7', threshold: '5' },
        startsAt: '2026-01-01T00:00:00.000Z',
        endsAt: new Date(NOW.getTime() + ENDS_AFTER_RESENDS * 60_000).toISOString(),
        generatorURL: 'http://127.0.0.1:8787/',
      }],
    }]);
  });

  it('resolved: endsAt = the resolution; a severity change resolves the old severity and fires the new one', async () => {
    const { posts, url } = await receiver();
    const am = delivery(`${url}/`);
    await am.transition({ kind: 'resolved', alert: ALERT }, NOW);
    await am.transition({ kind: 'severity_changed', alert: ALERT, previousSeverity: 'WARNING' }, NOW);
    expect(posts[0]!.body.map((a) => [a.labels.severity, a.endsAt])).toEqual([['CRITICAL', NOW.toISOString()]]);
    expect(posts[1]!.body.map((a) => [a.labels.severity, a.endsAt === NOW.toISOString() ? 'now' : 'ahead'])).toEqual([['CRITICAL', 'ahead'], ['WARNING', 'now']]);
  });

  it('resend: every firing alert again in one post; nothing to send posts nothing', async () => {
    const { posts, url } = await receiver();
    const am = delivery(url);
    await am.resend([ALERT, { ...ALERT, labels: { database: 'app', user: 'other' } }], NOW);
    await am.resend([], NOW);
    expect(posts).toHaveLength(1);
    expect(posts[0]!.body.map((a) => a.labels.user)).toEqual(['app', 'other']);
  });

  it('retries a 503, gives up on a 400 at once, and logs the failure without throwing', async () => {
    const { posts, url } = await receiver([503, 200, 400]);
    const am = delivery(url);
    expect(await am.transition({ kind: 'firing', alert: ALERT }, NOW)).toBe(true);
    expect(posts).toHaveLength(2);
    expect(await am.transition({ kind: 'firing', alert: ALERT }, NOW)).toBe(false);
    expect(posts).toHaveLength(3);
    expect(lines.some((l) => l.includes('alert delivery to Alertmanager failed') && l.includes('HTTP 400'))).toBe(true);
    // Nobody listening: the retries run out, the poll loop never sees an error.
    const dead = createAlertmanager({ url: 'http://127.0.0.1:9', timeoutMs: 200, retries: 1, resendMs: 1000, generatorURL: 'x', logger, backoffMs: 5 });
    expect(await dead.transition({ kind: 'firing', alert: ALERT }, NOW)).toBe(false);
  });

  it('labels: the severity as the rule files write it and the sidecar as source, whatever the alert carries', () => {
    expect(alertLabels({ name: 'x', severity: 'WARNING', labels: { target: 'postgres', severity: 'bogus' } })).toEqual({ target: 'postgres', alertname: 'x', severity: 'WARNING', source: 'poolguard-sidecar' });
  });

  it('configuration: off by default; SIDECAR_ALERTMANAGER_URL turns it on with the webhook timeout and retries', () => {
    expect(loadConfig({}).alerts.alertmanager).toBeUndefined();
    expect(loadConfig({ SIDECAR_ALERTMANAGER_URL: '' }).alerts.alertmanager).toBeUndefined();
    expect(loadConfig({ SIDECAR_ALERTMANAGER_URL: 'http://alertmanager:9093', SIDECAR_ALERTMANAGER_RESEND_MS: '30000' }).alerts.alertmanager).toEqual({
      url: 'http://alertmanager:9093', timeoutMs: 5000, retries: 3, resendMs: 30_000, generatorURL: 'http://127.0.0.1:8787/',
    });
    expect(() => loadConfig({ SIDECAR_ALERTMANAGER_RESEND_MS: '300000' })).toThrow(/SIDECAR_ALERTMANAGER_RESEND_MS: must be <= 240000/);
    expect(() => loadConfig({ SIDECAR_ALERTMANAGER_URL: 'alertmanager:9093' })).toThrow(/SIDECAR_ALERTMANAGER_URL: must be a URL/);
  });
});
