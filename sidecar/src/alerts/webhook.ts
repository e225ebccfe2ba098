// Delivers alert transitions as JSON POSTs with a timeout and retries. Delivery runs in the
// background: it never blocks polling; a failure is logged and dropped.
import type { Logger } from 'pino';
import { describeError } from '../log.js';
import type { Transition } from './engine.js';

export interface WebhookOptions {
  url: string;
  timeoutMs: number;
  retries: number;
  logger: Logger;
  fetchImpl?: typeof fetch;
  backoffMs?: number;
}

export function createWebhook(opts: WebhookOptions): { send: (t: Transition) => Promise<boolean>; idle: () => Promise<void> } {
  const fetchImpl = opts.fetchImpl ?? fetch;
  const inFlight = new Set<Promise<boolean>>();
  // fetch refuses URLs with credentials: send them as Basic auth instead.
  const target = new URL(opts.url);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (target.username || target.password) {
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`).toString('base64')}`;
    target.username = '';
    target.password = '';
  }
  const endpoint = target.toString();
  const where = `${target.protocol}//${target.host}${target.pathname}`; // for logs: no credentials, no query

  async function deliver(t: Transition): Promise<boolean> {
    const body = JSON.stringify({ source: 'poolguard', status: t.kind === 'resolved' ? 'resolved' : 'firing', transition: t.kind, previousSeverity: t.previousSeverity, alert: t.alert });
    let lastError = '';
    for (let attempt = 1; attempt <= opts.retries + 1; attempt += 1) {
      try {
        const res = await fetchImpl(endpoint, {
          method: 'POST',
          headers,
          body,
          signal: AbortSignal.timeout(opts.timeoutMs),
        });
        if (res.ok) return true;
        lastError = `HTTP ${res.status}`;
        if (res.status < 500 && res.status !== 429) break; // the receiver refuses it: do not retry
      } catch (err) {
        lastError = describeError(err);
      }
      if (attempt <= opts.retries) await new Promise((r) => setTimeout(r, (opts.backoffMs ?? 500) * 2 ** (attempt - 1)));
    }
    opts.logger.error({ webhook: where, alert: t.alert.name, transition: t.kind, error: lastError }, 'alert webhook delivery failed');
    return false;
  }

  return {
    send(t) {
      const p = deliver(t).finally(() => inFlight.delete(p));
      inFlight.add(p);
      return p;
    },
    async idle() {
      await Promise.allSettled([...inFlight]);
    },
  };
}
