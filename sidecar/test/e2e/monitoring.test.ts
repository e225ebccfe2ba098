// The monitoring profile on the dev file (with the replica profile, so every dashboard row has a
// source): Prometheus and Alertmanager from the project's images, the rule files under promtool,
// every dashboard panel against live data, and one alert path at a time into Alertmanager.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGE_TAG, ROOT, Stack, pgClient, publish, run, sleep, until } from './stack.js';

const PORTS = { postgres: 35432, pgbouncer: 36432, redis: 36379, sidecar: 38787 };
const PROMETHEUS_PORT = 39090;
const ALERTMANAGER_PORT = 39093;
const TOKEN = 'it-monitoring-token-0123456789abcdef';
/** Prometheus's scrape and evaluation interval here; the dashboard's $__rate_interval is four of them. */
const SCRAPE_SECONDS = 5;
const RATE_INTERVAL = `${4 * SCRAPE_SECONDS}s`;
const BASE = {
  ...publish(PORTS),
  PUBLISH_PROMETHEUS_PORT: String(PROMETHEUS_PORT),
  PUBLISH_ALERTMANAGER_PORT: String(ALERTMANAGER_PORT),
  SIDECAR_TOKEN: TOKEN,
  SIDECAR_POLL_INTERVAL_MS: '1000',
  SIDECAR_SOURCE_TIMEOUT_MS: '800',
  SIDECAR_ALERT_RESOLVE_FOR_MS: '2000',
  PROMETHEUS_SCRAPE_INTERVAL: `${SCRAPE_SECONDS}s`,
  // A full backup soon after the stanza exists, so the backup panels have one.
  BACKUP_FIRST_FULL_DELAY: '5s',
};
const stack = Stack.dev('poolguard-test-monitoring', { ...BASE, COMPOSE_PROFILES: 'replica' });
const figures: Record<string, string> = {};

const prom = async (path: string): Promise<any> => (await fetch(`http://127.0.0.1:${PROMETHEUS_PORT}${path}`)).json();
const query = async (expr: string): Promise<any[]> => {
  const r = await prom(`/api/v1/query?query=${encodeURIComponent(expr)}`);
  if (r.status !== 'success') throw new Error(`${expr}: ${r.error}`);
  return r.data.result as any[];
};
/** Alertmanager's active alerts named name. */
const amAlerts = async (name: string): Promise<any[]> =>
  ((await (await fetch(`http://127.0.0.1:${ALERTMANAGER_PORT}/api/v2/alerts?active=true&silenced=false&inhibited=false`)).json()) as any[]).filter((a) => a.labels.alertname === name);

/** Memory of the profile's two containers from `docker stats`, MiB. */
async function profileMemory(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const { service, id } of await stack.containers()) {
    if (service !== 'prometheus' && service !== 'alertmanager') continue;
    const r = await run('docker', ['stats', '--no-stream', '--format', '{{.MemUsage}}', id]);
    const m = /^([\d.]+)(KiB|MiB|GiB)/.exec(r.stdout.trim());
    expect(m, `docker stats ${service}: ${r.stdout}${r.stderr}`).not.toBeNull();
    out[service] = Number(m![1]) * { KiB: 1 / 1024, MiB: 1, GiB: 1024 }[m![2] as 'KiB' | 'MiB' | 'GiB'];
  }
  return out;
}

beforeAll(async () => {
  await stack.compose(['down', '-v', '--remove-orphans']);
  await stack.up();
  // The profile on a running stack: what it adds to the start-up, measured alone.
  stack.writeEnv({ ...stack.env, ...BASE, COMPOSE_PROFILES: 'replica,monitoring' });
  const t0 = Date.now();
  await stack.up();
  figures.profileUpSeconds = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(`monitoring profile: up --wait on the running stack in ${figures.profileUpSeconds} s`);
});

afterAll(async () => {
  if (Object.keys(figures).length > 0) console.log(`monitoring figures: ${JSON.stringify(figures)}`);
  await stack.down(true);
});

describe('the monitoring profile', () => {
  it('promtool: both rule files check, and their unit tests pass', async () => {
    const img = `poolguard/prometheus:${IMAGE_TAG}`;
    const m = join(ROOT, 'monitoring');
    const check = await run('docker', ['run', '--rm', '--network', 'none', '-v', `${m}:/m:ro`, '--entrypoint', 'promtool', img, 'check', 'rules', '/m/alerts.yml', '/m/alerts-exporters.yml']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    const test = await run('docker', ['run', '--rm', '--network', 'none', '-v', `${m}:/m:ro`, '-w', '/m/tests', '--entrypoint', 'promtool', img, 'test', 'rules', 'alerts.test.yml', 'alerts-exporters.test.yml'], { timeoutMs: 120_000 });
    expect(test.code, test.stdout + test.stderr).toBe(0);
    expect(test.stdout + test.stderr).toMatch(/SUCCESS/);
  });

  it('Prometheus and Alertmanager run as their own non-root users, publish on 127.0.0.1 only, and Prometheus scrapes the sidecar with its token', async () => {
    for (const [service, uid] of [['prometheus', '10005'], ['alertmanager', '10006']] as const) {
      expect((await stack.exec(service, ['id', '-u'])).stdout.trim(), service).toBe(uid);
    }
    const ports = await stack.mustCompose(['ps', '--format', '{{.Service}} {{.Ports}}']);
    expect(ports).toMatch(new RegExp(`^prometheus 127\\.0\\.0\\.1:${PROMETHEUS_PORT}->9090/tcp$`, 'm'));
    expect(ports).toMatch(new RegExp(`^alertmanager 127\\.0\\.0\\.1:${ALERTMANAGER_PORT}->9093/tcp$`, 'm'));
    const targets = await until('the sidecar target up', async () => {
      const t = (await prom('/api/v1/targets')).data.activeTargets as any[];
      const sidecar = t.find((x) => x.labels.job === 'poolguard-sidecar');
      return sidecar?.health === 'up' ? t : undefined;
    }, 60_000, 1000);
    expect(targets.value.map((t: any) => `${t.labels.job} ${t.health}`).sort()).toEqual(['alertmanager up', 'poolguard-sidecar up', 'prometheus up']);
    // The sidecar's /metrics refuses a scrape without the token: the target is up because Prometheus sends it.
    expect((await fetch(`http://127.0.0.1:${PORTS.sidecar}/metrics`)).status).toBe(401);
    expect((await stack.exec('prometheus', ['cat', '/run/poolguard-prometheus/prometheus.yml'])).stdout).not.toContain(TOKEN);
  });

  it('loads every rule of monitoring/alerts.yml', async () => {
    const file = readFileSync(join(ROOT, 'monitoring/alerts.yml'), 'utf8');
    const alerting = [...file.matchAll(/^\s*- alert: (\S+)/gm)].length;
    const recording = [...file.matchAll(/^\s*- record: (\S+)/gm)].length;
    const groups = (await prom('/api/v1/rules')).data.groups as any[];
    const rules = groups.flatMap((g) => g.rules as any[]);
    expect(rules.filter((r) => r.type === 'alerting')).toHaveLength(alerting);
    expect(rules.filter((r) => r.type === 'recording')).toHaveLength(recording);
    expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`)).toEqual([]);
    figures.rules = `${alerting} alerting, ${recording} recording`;
  });

  it('every panel of the dashboard returns data from this Prometheus (variables substituted)', async () => {
    // Some traffic of each kind, and a Redis key (redis_db_keys has a series only for a database with keys).
    const c = await pgClient({ port: PORTS.pgbouncer, user: stack.env.APP_USER!, password: stack.env.APP_PASSWORD!, database: stack.env.APP_DB! });
    for (let i = 0; i < 20; i++) await c.query('SELECT count(*) FROM pg_class');
    await c.end();
    const setKey = await stack.exec('redis', ['sh', '-c', `REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli SET poolguard:monitoring-test 1`]);
    expect(setKey.stdout.trim(), setKey.stderr).toBe('OK');
    const dashboard = JSON.parse(readFileSync(join(ROOT, 'monitoring/dashboards/poolguard.json'), 'utf8')) as { panels: { type: string; title: string; targets?: { expr: string }[] }[]; templating: { list: { name: string }[] } };
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'target', 'database']);
    const substitute = (expr: string) => expr.replaceAll('$__rate_interval', RATE_INTERVAL).replaceAll('$target', 'postgres').replaceAll('$database', '.*');
    const exprs = dashboard.panels.filter((p) => p.type !== 'row').flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: substitute(t.expr) })));
    expect(exprs.length).toBeGreaterThan(30);
    for (const { panel, expr } of exprs) expect(expr, panel).not.toMatch(/\$/);
    // At least two scrapes plus the longest rate window, and the first backup done: until every expression answers.
    const started = Date.now();
    let empty: string[] = [];
    const done = await until('every panel expression to return data', async () => {
      empty = [];
      for (const { panel, expr } of exprs) if ((await query(expr)).length === 0) empty.push(`${panel}: ${expr}`);
      return empty.length === 0 && Date.now() - started >= (2 + 4) * SCRAPE_SECONDS * 1000 ? true : undefined;
    }, 180_000, 2000, async () => `no data: ${empty.join(' | ')}`);
    figures.panelsChecked = `${dashboard.panels.filter((p) => p.type !== 'row').length} panels, ${exprs.length} expressions, all with data after ${(done.ms / 1000).toFixed(0)} s`;
    const mem = await profileMemory();
    figures.memoryMiB = Object.entries(mem).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
  });

  it('one alert path: by default Prometheus\'s rules deliver and the sidecar does not; switched, the sidecar delivers and Prometheus has no rules; each alert arrives once', async () => {
    const redis = (await stack.containers()).find((c) => c.service === 'redis')!.id;
    const downOnce = async (source: string | undefined) => {
      expect(await amAlerts('backend_down')).toEqual([]);
      await run('docker', ['stop', redis]);
      try {
        const seen = await until('backend_down for redis in Alertmanager', async () => {
          const a = (await amAlerts('backend_down')).filter((x) => x.labels.backend === 'redis');
          return a.length > 0 ? a : undefined;
        }, 60_000, 500);
        // Give the other path, if it were on, time to deliver too.
        await sleep(3 * SCRAPE_SECONDS * 1000);
        const all = (await amAlerts('backend_down')).filter((x) => x.labels.backend === 'redis');
        expect(all, JSON.stringify(all)).toHaveLength(1);
        expect(all[0].labels.source).toBe(source);
        expect(all[0].labels.severity).toBe('CRITICAL');
        return seen.ms;
      } finally {
        await run('docker', ['start', redis]);
      }
    };
    const promMs = await downOnce(undefined);
    await until('the Prometheus alert resolved', async () => (await amAlerts('backend_down')).length === 0, 120_000, 1000);

    // The other path: the sidecar posts, Prometheus only records. Preflight refuses both at once.
    const both = join(stack.dir, 'both.env');
    const bothEnv = { ...stack.env, ...BASE, COMPOSE_PROFILES: 'replica,monitoring', SIDECAR_ALERTMANAGER_URL: 'http://alertmanager:9093', POOLGUARD_PROJECT: stack.project, POOLGUARD_IMAGE_TAG: IMAGE_TAG };
    writeFileSync(both, Object.entries(bothEnv).map(([k, v]) => `${k}=${v}\n`).join(''));
    const refused = await run(join(ROOT, 'scripts/preflight.sh'), ['dev', '-p', stack.project, '--env-file', both]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/SIDECAR_ALERTMANAGER_URL is set and PROMETHEUS_RULES is on: both would send every alert to Alertmanager/);
    stack.writeEnv({ ...stack.env, ...BASE, COMPOSE_PROFILES: 'replica,monitoring', PROMETHEUS_RULES: 'off', SIDECAR_ALERTMANAGER_URL: 'http://alertmanager:9093' });
    await stack.up();
    expect((await prom('/api/v1/rules')).data.groups).toEqual([]);
    const sidecarMs = await downOnce('poolguard-sidecar');
    // Resolved by the sidecar (endsAt = the resolution) once Redis is back and the resolve delay passed.
    await until('the sidecar alert resolved', async () => (await amAlerts('backend_down')).length === 0, 60_000, 500);
    figures.alertPaths = `backend_down in Alertmanager ${(promMs / 1000).toFixed(1)} s after docker stop (Prometheus rules), ${(sidecarMs / 1000).toFixed(1)} s (sidecar); one alert each time`;
  });
});
