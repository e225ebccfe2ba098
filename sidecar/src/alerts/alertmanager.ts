// Delivers the sidecar's own alerts to Alertmanager's API v2 (POST /api/v2/alerts), as Prometheus
// does: every firing alert with startsAt and an endsAt a few resend periods ahead, sent again every
// resend period (so Alertmanager never resolves it by timeout while it fires, and does resolve it
// if the sidecar dies), and a resolved one once with endsAt = the resolution. A severity change is
// the old severity resolved and the new one firing (severity is a label: another alert to
// Alertmanager, as with two Prometheus rules). Runs in the background: never blocks polling.
import type { Logger } from 'pino';
import { describeError } from '../log.js';
import type { AlertItem, Transition } from './engine.js';

export interface AlertmanagerOptions {
  /** Alertmanager's base URL (http://alertmanager:9093). */
  url: string;
  timeoutMs: number;
  retries: number;
  /** How often firing alerts are sent again; endsAt is ENDS_AFTER_RESENDS of these ahead. */
  resendMs: number;
  /** Where a person sees the alert: the sidecar's status page. */
  generatorURL: string;
  logger: Logger;
  fetchImpl?: typeof fetch;
  backoffMs?: number;
}

/** As Prometheus (4 x its resend delay): a sidecar that stops sending has its alerts resolved after this many periods. */
export const ENDS_AFTER_RESENDS = 4;

/** One alert as API v2 takes it. */
export interface PostableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL: string;
}

/**
 * The labels Alertmanager groups and routes on: alertname, severity (WARNING or CRITICAL, as
 * monitoring/alerts.yml's rules write it), the alert's own labels, and source="poolguard-sidecar"
 * (the rule files' alerts carry no source label: an Alertmanager route can tell the paths apart).
 */
export function alertLabels(a: Pick<AlertItem, 'name' | 'severity' | 'labels'>): Record<string, string> {
  return { ...a.labels, alertname: a.name, severity: a.severity, source: 'poolguard-sidecar' };
}

export function postable(a: AlertItem, endsAt: Date, generatorURL: string): PostableAlert {
  return {
    labels: alertLabels(a),
    annotations: { summary: a.summary, value: String(a.value), threshold: String(a.threshold) },
    startsAt: a.since,
    endsAt: endsAt.toISOString(),
    generatorURL,
  };
}

export interface AlertmanagerDelivery {
  /** A transition from the engine: sent at once. */
  transition(t: Transition, now?: Date): Promise<boolean>;
  /** Every alert firing now, sent again (call every resendMs). */
  resend(firing: AlertItem[], now?: Date): Promise<boolean>;
  idle(): Promise<void>;
}

export function createAlertmanager(opts: AlertmanagerOptions): AlertmanagerDelivery {
  const fetchImpl = opts.fetchImpl ?? fetch;
  const endpoint = new URL('api/v2/alerts', opts.url.endsWith('/') ? opts.url : `${opts.url}/`).toString();
  const inFlight = new Set<Promise<boolean>>();
  const ahead = (now: Date) => new Date(now.getTime() + ENDS_AFTER_RESENDS * opts.resendMs);

  async function post(alerts: PostableAlert[], what: string): Promise<boolean> {
    if (alerts.length === 0) return true;
    const body = JSON.stringify(alerts);
    let lastError = '';
    for (let attempt = 1; attempt <= opts.retries + 1; attempt += 1) {
      try {
        const res = await fetchImpl(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(opts.timeoutMs) });
        if (res.ok) return true;
        lastError = `HTTP ${res.status}: ${(await res.text().catch(() => '')).slice(0, 200)}`;
        if (res.status < 500 && res.status !== 429) break; // Alertmanager refuses the body: retrying will not help
      } catch (err) {
        lastError = describeError(err);
      }
      if (attempt <= opts.retries) await new Promise((r) => setTimeout(r, (opts.backoffMs ?? 500) * 2 ** (attempt - 1)));
    }
    opts.logger.error({ alertmanager: endpoint, alerts: alerts.length, what, error: lastError }, 'alert delivery to Alertmanager failed');
    return false;
  }

  const track = (p: Promise<boolean>) => {
    const q = p.finally(() => inFlight.delete(q));
    inFlight.add(q);
    return q;
  };

  return {
    transition(t, now = new Date()) {
      const a = t.alert;
      const alerts: PostableAlert[] = [];
      if (t.kind === 'resolved') alerts.push(postable(a, now, opts.generatorURL));
      else alerts.push(postable(a, ahead(now), opts.generatorURL));
      if (t.kind === 'severity_changed' && t.previousSeverity !== undefined) {
        alerts.push(postable({ ...a, severity: t.previousSeverity }, now, opts.generatorURL));
      }
      return track(post(alerts, `${a.name} ${t.kind}`));
    },
    resend(firing, now = new Date()) {
      return track(post(firing.map((a) => postable(a, ahead(now), opts.generatorURL)), 'resend'));
    },
    async idle() {
      await Promise.allSettled([...inFlight]);
    },
  };
}
