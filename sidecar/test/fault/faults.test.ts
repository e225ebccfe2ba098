// Fault and load suite (slow tier): every promise of the bundle as a test against the real dev
// compose stack, under load from our own generator on the compose network. Each acknowledged
// commit id is recorded client-side (the ledger) and must be in the table afterwards. Figures go
// to docs/reliability.md.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, publish, run, sleep } from '../e2e/stack.js';
import { errorsText, health, lostWrites, pgReady, record, recordSettings, startLoad, waitUntil } from './harness.js';

const PORTS = { postgres: 35432, pgbouncer: 36432, redis: 36379, sidecar: 38787 };
const POLL_MS = 5000; // the default poll interval: detection targets are stated against it
const stack = Stack.dev('poolguard-test-fault', {
  ...publish(PORTS),
  SIDECAR_POLL_INTERVAL_MS: String(POLL_MS),
  SIDECAR_ALERT_FOR_MS: '5000',
  SIDECAR_ALERT_RESOLVE_FOR_MS: '5000',
  SIDECAR_ALERT_RULES: JSON.stringify({ postgres_idle_in_transaction: { warning: 5 } }),
  PGBOUNCER_IDLE_TRANSACTION_TIMEOUT: '20',
});
const env = stack.env;
const LOAD_CLIENTS = 90;

async function containerId(service: string): Promise<string> {
  const c = (await stack.containers()).find((x) => x.service === service);
  if (!c) throw new Error(`no ${service} container`);
  return c.id;
}

const healthy = async () => (await health(PORTS.sidecar))?.status === 200;
const sidecarHealth = async () => `sidecar /health: ${JSON.stringify((await health(PORTS.sidecar))?.body ?? null).slice(0, 600)}`;

beforeAll(async () => {
  await stack.compose(['down', '-v', '--remove-orphans']);
  await stack.up();
  await recordSettings(stack);
});

afterAll(async () => {
  await stack.down(true);
});

describe('under load', () => {
  it('kill -9 Postgres mid-load: 0 acknowledged writes lost, errors not hangs, PgBouncer and the sidecar recover', async () => {
    const writer = 'kill-postgres';
    const load = await startLoad(stack, { clients: LOAD_CLIENTS, durationMs: 35_000, writer, idBase: 1e12 });
    await sleep(8000);
    const pgId = await containerId('postgres');
    const killedAt = Date.now();
    expect((await run('docker', ['kill', '-s', 'KILL', pgId])).code).toBe(0);
    const detectMs = await waitUntil('sidecar reports postgres down', async () => {
      const h = await health(PORTS.sidecar);
      return h?.status === 503 && h.body.postgres.healthy === false;
    }, 30_000, 50);
    const downBody = (await health(PORTS.sidecar))!.body;
    await sleep(2000);
    expect((await stack.compose(['start', 'postgres'])).code).toBe(0);
    const startedAt = Date.now();
    await waitUntil('postgres accepts connections', () => pgReady(PORTS.postgres, env), 60_000, 50);
    const readyAt = Date.now();
    const recoverMs = await waitUntil('sidecar healthy again', healthy, 30_000, 50);
    const { summary, ackedIds } = await load.result();
    const lost = await lostWrites(stack, PORTS.postgres, writer, ackedIds);
    const ackedAfterRestart = summary.timeline.filter((t) => t.s * 1000 > readyAt - load.startedAt).reduce((n, t) => n + t.acked, 0);
    record({
      scenario: '1. kill -9 Postgres',
      load: `${summary.clients} clients, ${(summary.durationMs / 1000).toFixed(0)} s`,
      injected: `docker kill -s KILL postgres at ${((killedAt - load.startedAt) / 1000).toFixed(1)} s; compose start 2 s after detection`,
      figures: `acknowledged ${summary.acked}, lost ${lost}; ${errorsText(summary.errors)}; longest attempt ${(summary.longestAttemptMs / 1000).toFixed(1)} s (query_wait_timeout 120 s); ` +
        `sidecar detected down in ${(detectMs / 1000).toFixed(1)} s, healthy ${(recoverMs / 1000).toFixed(1)} s after Postgres accepted connections (Postgres up ${((readyAt - startedAt) / 1000).toFixed(1)} s after start); ` +
        `${ackedAfterRestart} commits after the restart (PgBouncer reconnected by itself)`,
    });
    expect(lost).toBe(0);
    expect(summary.acked).toBeGreaterThan(1000);
    expect(Object.keys(summary.errors).length).toBeGreaterThan(0);
    expect(summary.longestAttemptMs).toBeLessThan(120_000);
    expect(downBody.postgres.lastError).toBeTruthy();
    expect(detectMs).toBeLessThanOrEqual(POLL_MS + 1000);
    expect(recoverMs).toBeLessThanOrEqual(POLL_MS + 1000);
    expect(ackedAfterRestart).toBeGreaterThan(0);
  });

  it('stop PgBouncer (SIGINT) mid-load: in-flight transactions complete, new ones refused, exits before the grace; load resumes', async () => {
    const writer = 'stop-pgbouncer';
    const load = await startLoad(stack, { clients: LOAD_CLIENTS, durationMs: 30_000, writer, idBase: 2e12 });
    await sleep(8000);
    const id = await containerId('pgbouncer');
    const stopAt = Date.now();
    const stopped = await stack.compose(['stop', 'pgbouncer']);
    const stopMs = Date.now() - stopAt;
    expect(stopped.code).toBe(0);
    const exitCode = (await stack.inspect(id)).State.ExitCode;
    await sleep(3000);
    expect((await stack.compose(['start', 'pgbouncer'])).code).toBe(0);
    const restartAt = Date.now();
    const { summary, ackedIds, acks } = await load.result();
    const lost = await lostWrites(stack, PORTS.postgres, writer, ackedIds);
    // In flight at the stop signal and acknowledged after it: counted from the ledger's timings.
    const inFlightCompleted = acks.filter((a) => a.startMs < stopAt && a.endMs > stopAt).length;
    const resumed = summary.timeline.filter((t) => t.s * 1000 > restartAt - load.startedAt + 1000).reduce((n, t) => n + t.acked, 0);
    record({
      scenario: '2. stop PgBouncer (SIGINT)',
      load: `${summary.clients} clients, ${(summary.durationMs / 1000).toFixed(0)} s`,
      injected: `docker compose stop pgbouncer at ${((stopAt - load.startedAt) / 1000).toFixed(1)} s (grace 30 s), start 3 s later`,
      figures: `stop took ${(stopMs / 1000).toFixed(1)} s, exit code ${exitCode}; ${inFlightCompleted} transactions in flight at the stop signal were acknowledged after it; ` +
        `acknowledged ${summary.acked}, lost ${lost}; refused: ${errorsText(summary.errors)}; ${resumed} commits after the restart`,
    });
    expect(lost).toBe(0);
    expect(exitCode).toBe(0);
    expect(stopMs).toBeLessThan(30_000);
    expect(inFlightCompleted, 'transactions in flight at SIGINT that still committed').toBeGreaterThan(0);
    expect(resumed).toBeGreaterThan(0);
  });

  it('150 clients against max_client_conn 100: exactly the excess refused, the rest complete; the client alert fires and resolves', async () => {
    // Start from a resolved alert (an earlier load may have fired it).
    await waitUntil('no client-utilisation alert before the burst', async () => {
      const a = await fetch(`http://127.0.0.1:${PORTS.sidecar}/alerts`).then((r) => r.json() as Promise<{ items: { name: string }[] }>);
      return !a.items.some((x) => x.name === 'pgbouncer_client_utilization');
    }, 60_000, 500);
    const admin = new pg.Client({ host: '127.0.0.1', port: PORTS.pgbouncer, user: env.PGBOUNCER_ADMIN_USER, password: env.PGBOUNCER_ADMIN_PASSWORD, database: 'pgbouncer' });
    await admin.connect();
    // Clients of an earlier load that just disconnected can linger in PgBouncer's count for a
    // moment: start once only this console and the sidecar's two connections remain.
    await waitUntil('earlier clients gone', async () => {
      const lists = Object.fromEntries((await admin.query('SHOW LISTS')).rows.map((r) => [r.list, Number(r.items)]));
      return (await admin.query('SHOW CLIENTS')).rows.length <= 3 && lists.used_clients! <= 3 && lists.login_clients === 0;
    }, 30_000, 200);
    const taken = (await admin.query('SHOW CLIENTS')).rows.length;
    const maxClientConn = Number((await admin.query('SHOW CONFIG')).rows.find((r) => r.key === 'max_client_conn').value);
    const free = maxClientConn - taken;
    const clients: pg.Client[] = [];
    const refused: string[] = [];
    const attempts = 150;
    // One after another: a refused connection holds a client slot for the moment PgBouncer
    // takes to send the error, so in a simultaneous burst more than the excess can be refused
    // (seen: 92 of 150 refused instead of 53). Held one by one, exactly the excess must be.
    for (let i = 0; i < attempts; i += 1) {
      const c = new pg.Client({ host: '127.0.0.1', port: PORTS.pgbouncer, user: env.APP_USER, password: env.APP_PASSWORD, database: env.APP_DB, application_name: `over-${i}` });
      c.on('error', () => undefined);
      try {
        await c.connect();
        clients.push(c);
      } catch (err) {
        refused.push((err as Error).message);
      }
    }
    let completed = 0;
    try {
      await Promise.all(clients.map(async (c, i) => {
        await c.query('BEGIN');
        await c.query("INSERT INTO ledger (id, writer) VALUES ($1, 'over-subscription')", [5e12 + i]);
        await c.query('COMMIT');
        completed += 1;
      }));
      const firedMs = await waitUntil(`client-utilisation alert (${clients.length} clients held)`, async () => {
        const a = await fetch(`http://127.0.0.1:${PORTS.sidecar}/alerts`).then((r) => r.json() as Promise<{ items: { name: string }[] }>);
        return a.items.some((x) => x.name === 'pgbouncer_client_utilization');
      }, 30_000, 200, sidecarHealth);
      await Promise.all(clients.map((c) => c.end()));
      const resolvedMs = await waitUntil('client-utilisation alert resolved', async () => {
        const a = await fetch(`http://127.0.0.1:${PORTS.sidecar}/alerts`).then((r) => r.json() as Promise<{ items: { name: string }[] }>);
        return !a.items.some((x) => x.name === 'pgbouncer_client_utilization');
      }, 40_000, 200);
      record({
        scenario: '5. over-subscription',
        load: `${attempts} clients connecting one after another and holding on, max_client_conn ${maxClientConn}, ${taken} slots held by console/sidecar`,
        injected: 'one connection and one write transaction per client',
        figures: `${clients.length} connected and ${completed} committed, ${refused.length} refused (expected ${attempts - free}), all with "${[...new Set(refused)].join('", "')}"; ` +
          `client-utilisation alert fired ${(firedMs / 1000).toFixed(1)} s after the burst, resolved ${(resolvedMs / 1000).toFixed(1)} s after release`,
      });
      expect(refused.length).toBe(attempts - free);
      expect(new Set(refused)).toEqual(new Set(['no more connections allowed (max_client_conn)']));
      expect(completed).toBe(free);
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await admin.end();
    }
  });

  it('a leaked idle-in-transaction session: the alert names pid and application_name; idle_transaction_timeout cuts it and the alert resolves', async () => {
    const leak = new pg.Client({ host: '127.0.0.1', port: PORTS.pgbouncer, user: env.APP_USER, password: env.APP_PASSWORD, database: env.APP_DB, application_name: 'leaky-job' });
    let cutError = '';
    let ended = false;
    let cutAt = 0;
    leak.on('error', (e) => { cutError = e.message; cutAt ||= Date.now(); });
    leak.on('end', () => { ended = true; cutAt ||= Date.now(); });
    await leak.connect();
    await leak.query('BEGIN');
    const pid = (await leak.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const t0 = Date.now();
    const firedMs = await waitUntil('leak alert', async () => {
      const a = await fetch(`http://127.0.0.1:${PORTS.sidecar}/alerts`).then((r) => r.json() as Promise<{ items: { name: string; labels: Record<string, string> }[] }>);
      return a.items.some((x) => x.name === 'postgres_idle_in_transaction' && x.labels.pid === String(pid) && x.labels.application_name === 'leaky-job');
    }, 30_000, 200);
    // Only watch: a query here would end the idleness the timeout measures.
    await waitUntil('PgBouncer cuts the session', async () => cutError !== '' || ended, 40_000, 200);
    const resolvedMs = await waitUntil('leak alert resolved', async () => {
      const a = await fetch(`http://127.0.0.1:${PORTS.sidecar}/alerts`).then((r) => r.json() as Promise<{ items: { name: string; labels: Record<string, string> }[] }>);
      return !a.items.some((x) => x.name === 'postgres_idle_in_transaction' && x.labels.pid === String(pid));
    }, 30_000, 200);
    await leak.end().catch(() => undefined);
    record({
      scenario: '6. leaked transaction',
      load: 'one app session through PgBouncer left idle in transaction',
      injected: 'BEGIN, then nothing; PGBOUNCER_IDLE_TRANSACTION_TIMEOUT=20, leak alert threshold 5 s',
      figures: `alert named pid ${pid} and application_name "leaky-job" after ${(firedMs / 1000).toFixed(1)} s; PgBouncer cut the client ${((cutAt - t0) / 1000).toFixed(1)} s after BEGIN ("${cutError}"); alert resolved ${(resolvedMs / 1000).toFixed(1)} s later`,
    });
    // Cut by PgBouncer at idle_transaction_timeout (20 s after BEGIN, checked about once a second),
    // with an error the client saw: not an idle connection that merely ended.
    const cutAfterS = (cutAt - t0) / 1000;
    expect(cutAfterS).toBeGreaterThanOrEqual(19);
    expect(cutAfterS).toBeLessThanOrEqual(25);
    expect(cutError).toMatch(/idle transaction timeout|Connection terminated unexpectedly/);
  });

  it('stop and start Redis: the sidecar stays up, /health follows', async () => {
    const stopAt = Date.now();
    expect((await stack.compose(['stop', 'redis'])).code).toBe(0);
    await waitUntil('redis reported down', async () => {
      const h = await health(PORTS.sidecar);
      return h?.status === 503 && h.body.redis.available === false;
    }, 20_000, 50);
    const downMs = Date.now() - stopAt; // from the stop command, not from its return
    const h = (await health(PORTS.sidecar))!.body;
    expect(h.database.healthy).toBe(true);
    expect((await fetch(`http://127.0.0.1:${PORTS.sidecar}/livez`)).status).toBe(200);
    expect((await stack.compose(['start', 'redis'])).code).toBe(0);
    const started = Date.now();
    const upMs = await waitUntil('redis reported up', healthy, 30_000, 50);
    record({
      scenario: '3. stop/start Redis',
      load: 'idle stack',
      injected: 'docker compose stop redis; start',
      figures: `/health 503 with redis down ${(downMs / 1000).toFixed(1)} s after the stop began (lastError "${h.redis.lastError}"); sidecar stayed up; 200 again ${(upMs / 1000).toFixed(1)} s after start returned (${((Date.now() - started) / 1000).toFixed(1)} s)`,
    });
    expect(upMs).toBeLessThanOrEqual(POLL_MS + 1000 + 5000);
  });

  it('make down during load: no acknowledged transaction lost, every container exits by itself (no SIGKILL)', async () => {
    const writer = 'make-down';
    // On the host network against the published port, so that `down` can remove the network.
    const load = await startLoad(stack, { clients: LOAD_CLIENTS, durationMs: 20_000, writer, idBase: 7e12, hostNetworkPort: PORTS.pgbouncer });
    await sleep(6000);
    const since = Math.floor(Date.now() / 1000) - 1;
    const downAt = Date.now();
    await stack.down(false);
    const downMs = Date.now() - downAt;
    const until = Math.floor(Date.now() / 1000) + 1;
    const events = await run('docker', ['events', '--since', String(since), '--until', String(until), '--filter', `label=com.docker.compose.project=${stack.project}`, '--filter', 'event=kill', '--format', '{{.Actor.Attributes.name}} {{.Actor.Attributes.signal}}']);
    const kills = events.stdout.trim().split('\n').filter(Boolean);
    const sigkills = kills.filter((k) => / (9|SIGKILL)$/.test(k));
    const { summary, ackedIds } = await load.result();
    await stack.up();
    const lost = await lostWrites(stack, PORTS.postgres, writer, ackedIds);
    record({
      scenario: '7. make down during load',
      load: `${summary.clients} clients (host network), ${(summary.durationMs / 1000).toFixed(0)} s`,
      injected: `docker compose down (what make down runs) at 6 s, then up again`,
      figures: `down took ${(downMs / 1000).toFixed(1)} s; signals sent: ${kills.join(', ')}; SIGKILLs: ${sigkills.length}; acknowledged ${summary.acked}, lost ${lost} after up`,
    });
    expect(sigkills).toEqual([]);
    expect(lost).toBe(0);
  });
});
