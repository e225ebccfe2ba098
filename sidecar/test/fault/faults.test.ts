// Fault and load suite (slow tier): every promise of the bundle as a test against the real dev
// compose stack, under load from our own generator on the compose network. Each acknowledged
// commit id is recorded client-side (the ledger) and must be in the table afterwards. Figures go
// to docs/reliability.md.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, publish, run, sleep, until } from '../e2e/stack.js';
import {
  backendDown, bankText, checkBank, errorsText, health, type Backend, lostInserts, partition, pgReady, record, recordSettings, redisText, seedBank, startLoad, startRedisLedger, superSql, waitUntil,
} from './harness.js';

const PORTS = { postgres: 35432, pgbouncer: 36432, redis: 36379, sidecar: 38787 };
const POLL_MS = 5000; // the default poll interval: detection targets are stated against it
const SOURCE_TIMEOUT_MS = 2000; // the default SIDECAR_SOURCE_TIMEOUT_MS
/** What the bank's transfers fail with among themselves, fault or not (retried by the client). */
const BANK_CONFLICT = /could not serialize access|deadlock detected/;
const stack = Stack.dev('poolguard-test-fault', {
  ...publish(PORTS),
  SIDECAR_POLL_INTERVAL_MS: String(POLL_MS),
  SIDECAR_ALERT_FOR_MS: '5000',
  SIDECAR_ALERT_RESOLVE_FOR_MS: '5000',
  SIDECAR_ALERT_RULES: JSON.stringify({ postgres_idle_in_transaction: { warning: 5 } }),
  PGBOUNCER_IDLE_TRANSACTION_TIMEOUT: '20',
});
const env = stack.env;
// With the bank clients (10) the load takes 90 of max_client_conn 100: the sidecar (2) and the
// console keep room to reconnect.
const LOAD_CLIENTS = 80;

async function containerId(service: string): Promise<string> {
  const c = (await stack.containers()).find((x) => x.service === service);
  if (!c) throw new Error(`no ${service} container`);
  return c.id;
}

/**
 * An admin-console connection once PgBouncer is quiet: clients of an earlier load that just
 * disconnected can linger in its count for a moment, so wait until only this console and the
 * sidecar's two connections remain. Returns the slots they take and the free ones.
 */
async function quietPgBouncer(): Promise<{ admin: pg.Client; taken: number; maxClientConn: number; free: number }> {
  const admin = new pg.Client({ host: '127.0.0.1', port: PORTS.pgbouncer, user: env.PGBOUNCER_ADMIN_USER, password: env.PGBOUNCER_ADMIN_PASSWORD, database: 'pgbouncer' });
  await admin.connect();
  await waitUntil('earlier clients gone', async () => {
    const lists = Object.fromEntries((await admin.query('SHOW LISTS')).rows.map((r) => [r.list, Number(r.items)]));
    return (await admin.query('SHOW CLIENTS')).rows.length <= 3 && lists.used_clients! <= 3 && lists.login_clients === 0;
  }, 30_000, 200);
  const taken = (await admin.query('SHOW CLIENTS')).rows.length;
  const maxClientConn = Number((await admin.query('SHOW CONFIG')).rows.find((r) => r.key === 'max_client_conn').value);
  return { admin, taken, maxClientConn, free: maxClientConn - taken };
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
    await seedBank(stack, writer);
    const load = await startLoad(stack, { clients: LOAD_CLIENTS, bank: 10, durationMs: 35_000, writer, idBase: 1e12 });
    await sleep(8000);
    const pgId = await containerId('postgres');
    const killedAt = Date.now();
    expect((await run('docker', ['kill', '-s', 'KILL', pgId])).code).toBe(0);
    const detectMs = await waitUntil('sidecar reports postgres down', async () => {
      const h = await health(PORTS.sidecar);
      return h?.status === 503 && backendDown(h.body, 'postgres');
    }, 30_000, 50);
    const downBody = (await health(PORTS.sidecar))!.body;
    await sleep(2000);
    expect((await stack.compose(['start', 'postgres'])).code).toBe(0);
    const startedAt = Date.now();
    await waitUntil('postgres accepts connections', () => pgReady(PORTS.postgres, env), 60_000, 50);
    const readyAt = Date.now();
    const recoverMs = await waitUntil('sidecar healthy again', healthy, 30_000, 50);
    const { summary, ackedIds, transferIds } = await load.result();
    const lost = await lostInserts(stack, writer, ackedIds);
    const bank = await checkBank(stack, writer, transferIds);
    const ackedAfterRestart = summary.timeline.filter((t) => t.s * 1000 > readyAt - load.startedAt).reduce((n, t) => n + t.acked, 0);
    record({
      scenario: '1. kill -9 Postgres',
      load: `${summary.clients} inserting + ${summary.bankClients} bank clients, ${(summary.durationMs / 1000).toFixed(0)} s`,
      injected: `docker kill -s KILL postgres at ${((killedAt - load.startedAt) / 1000).toFixed(1)} s; compose start 2 s after detection`,
      figures: `acknowledged ${summary.acked}, lost ${lost}; ${bankText(bank)}; ${errorsText(summary.errors)}; longest attempt ${(summary.longestAttemptMs / 1000).toFixed(1)} s (query_wait_timeout 120 s); ` +
        `sidecar detected down in ${(detectMs / 1000).toFixed(1)} s, healthy ${(recoverMs / 1000).toFixed(1)} s after Postgres accepted connections (Postgres up ${((readyAt - startedAt) / 1000).toFixed(1)} s after start); ` +
        `${ackedAfterRestart} commits after the restart (PgBouncer reconnected by itself)`,
    });
    expect(lost).toBe(0);
    expect(bank, bankText(bank)).toMatchObject({ lost: 0, mismatched: 0, held: true });
    expect(bank.acked).toBeGreaterThan(50);
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
    await seedBank(stack, writer);
    const load = await startLoad(stack, { clients: LOAD_CLIENTS, bank: 10, durationMs: 30_000, writer, idBase: 2e12 });
    await sleep(8000);
    const id = await containerId('pgbouncer');
    // A transaction of our own that holds a server connection across the stop signal: it must be
    // allowed to finish (a statement that runs past the signal, then INSERT and COMMIT after it).
    // The load's own count is a figure: whether a load transaction straddles the signal depends
    // on the load's timing at that moment (it once read 0 on a busy CI machine).
    const probeId = 2e12 - 1;
    const probe = new pg.Client({ host: '127.0.0.1', port: PORTS.pgbouncer, user: env.APP_USER, password: env.APP_PASSWORD, database: env.APP_DB, application_name: 'in-flight-probe' });
    await probe.connect();
    await probe.query('BEGIN');
    await probe.query('SELECT 1'); // the transaction now holds a server connection
    const probeDone = (async () => {
      await probe.query('SELECT pg_sleep(2)');
      await probe.query('INSERT INTO ledger (id, writer, amount) VALUES ($1, $2, 0)', [probeId, `${writer}-probe`]);
      await probe.query('COMMIT');
      return { committedAt: Date.now() };
    })().catch((err: Error) => ({ error: err.message })).finally(() => probe.end().catch(() => undefined));
    await sleep(300);
    const stopAt = Date.now();
    const stopped = await stack.compose(['stop', 'pgbouncer']);
    const stopMs = Date.now() - stopAt;
    expect(stopped.code).toBe(0);
    const exitCode = (await stack.inspect(id)).State.ExitCode;
    const probeResult = await probeDone;
    const probeRows = await superSql(stack, `SELECT count(*) FROM ledger WHERE writer = '${writer}-probe'`);
    await sleep(3000);
    expect((await stack.compose(['start', 'pgbouncer'])).code).toBe(0);
    const restartAt = Date.now();
    const { summary, ackedIds, acks, transferIds } = await load.result();
    const lost = await lostInserts(stack, writer, ackedIds);
    const bank = await checkBank(stack, writer, transferIds);
    // In flight at the stop signal and acknowledged after it: counted from the ledger's timings.
    const inFlightCompleted = acks.filter((a) => a.startMs < stopAt && a.endMs > stopAt).length;
    const resumed = summary.timeline.filter((t) => t.s * 1000 > restartAt - load.startedAt + 1000).reduce((n, t) => n + t.acked, 0);
    record({
      scenario: '2. stop PgBouncer (SIGINT)',
      load: `${summary.clients} clients, ${(summary.durationMs / 1000).toFixed(0)} s`,
      injected: `docker compose stop pgbouncer at ${((stopAt - load.startedAt) / 1000).toFixed(1)} s (grace 30 s), start 3 s later`,
      figures: `stop took ${(stopMs / 1000).toFixed(1)} s, exit code ${exitCode}; a transaction holding a server at the signal ran a statement past it, then INSERT and COMMIT: ${'error' in probeResult ? `failed (${probeResult.error})` : `committed ${((probeResult.committedAt - stopAt) / 1000).toFixed(1)} s after the signal`}; ` +
        `${inFlightCompleted} load transactions in flight at the stop signal were acknowledged after it; ` +
        `acknowledged ${summary.acked}, lost ${lost}; ${bankText(bank)}; refused: ${errorsText(summary.errors)}; ${resumed} commits after the restart`,
    });
    expect(lost).toBe(0);
    expect(bank, bankText(bank)).toMatchObject({ lost: 0, mismatched: 0, held: true });
    expect(exitCode).toBe(0);
    expect(stopMs).toBeLessThan(30_000);
    expect(probeResult, 'the transaction holding a server at SIGINT finishes and commits').not.toHaveProperty('error');
    expect('committedAt' in probeResult && probeResult.committedAt > stopAt + 1000, 'it committed after the signal').toBe(true);
    expect(probeRows[0]?.[0], 'its row is in the table').toBe('1');
    expect(resumed).toBeGreaterThan(0);
  });

  it('150 clients against max_client_conn 100: exactly the excess refused, the rest complete; the client alert fires and resolves', async () => {
    // Start from a resolved alert (an earlier load may have fired it).
    await waitUntil('no client-utilisation alert before the burst', async () => {
      const a = await fetch(`http://127.0.0.1:${PORTS.sidecar}/alerts`).then((r) => r.json() as Promise<{ items: { name: string }[] }>);
      return !a.items.some((x) => x.name === 'pgbouncer_client_utilization');
    }, 60_000, 500);
    const { admin, taken, maxClientConn, free } = await quietPgBouncer();
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

  // PgBouncer checks max_client_conn when a startup packet arrives, against
  // get_active_client_count(), which is the number of client objects allocated
  // (slab_active_count(client_cache), src/objects.c): sockets accepted whose startup has not
  // been read yet count, and so do clients refused in the same event-loop round (freed clients
  // are kept on justfree_client_list for one loop). So when every startup of a burst arrives
  // in the same round, more than the excess is refused, by PgBouncer's design and by no client's
  // fault; one after another (the test above) exactly the excess is. What a client can count on:
  // every refusal is the max_client_conn error, every admitted client is served, and a refused
  // client that retries after a moment gets in while there is room.
  it('a simultaneous burst of 150 connections: every refusal is max_client_conn, every admitted client served, and the refused ones take exactly the free slots on retry', async () => {
    const { admin, taken, maxClientConn, free } = await quietPgBouncer();
    const attempts = 150;
    const connect = (i: number) => {
      const c = new pg.Client({ host: '127.0.0.1', port: PORTS.pgbouncer, user: env.APP_USER, password: env.APP_PASSWORD, database: env.APP_DB, application_name: `burst-${i}`, connectionTimeoutMillis: 60_000 });
      c.on('error', () => undefined);
      return c.connect().then(() => c, (e: Error) => e.message);
    };
    const held: pg.Client[] = [];
    try {
      const t0 = Date.now();
      const outcomes = await Promise.all(Array.from({ length: attempts }, (_, i) => connect(i)));
      const connectMs = Date.now() - t0;
      const first = outcomes.filter((o): o is pg.Client => typeof o !== 'string');
      held.push(...first);
      const refusals = outcomes.filter((o): o is string => typeof o === 'string');
      // Retry the refused ones one at a time, as a client with a backoff would.
      const retried: string[] = [];
      for (let i = 0; i < refusals.length; i += 1) {
        const o = await connect(1000 + i);
        if (typeof o === 'string') retried.push(o);
        else held.push(o);
      }
      let served = 0;
      await Promise.all(held.map(async (c) => {
        if ((await c.query('SELECT 1 AS one')).rows[0].one === 1) served += 1;
      }));
      const kinds = [...new Set([...refusals, ...retried])];
      record({
        scenario: '5b. simultaneous burst',
        load: `${attempts} node-postgres clients connecting in the same tick, max_client_conn ${maxClientConn}, ${taken} slots held by the console and the sidecar`,
        injected: 'one connection per client, all held; the refused ones retried one at a time',
        figures: `${first.length} admitted at once, ${refusals.length} refused (the excess is ${attempts - free}) in ${(connectMs / 1000).toFixed(1)} s; on retry ${refusals.length - retried.length} more admitted, ${retried.length} refused; ${held.length} held and ${served} served; errors: ${kinds.map((k) => `"${k}"`).join(', ')}`,
      });
      expect(kinds).toEqual(['no more connections allowed (max_client_conn)']);
      expect(refusals.length, 'at least the excess refused').toBeGreaterThanOrEqual(attempts - free);
      expect(held.length, 'once retried, every free slot taken').toBe(free);
      expect(retried.length).toBe(attempts - free);
      expect(served).toBe(free);
    } finally {
      await Promise.all(held.map((c) => c.end().catch(() => undefined)));
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
      return h?.status === 503 && backendDown(h.body, 'redis');
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

  // docker pause freezes every process of a container (SIGSTOP-like, through the freezer
  // cgroup): the kernel still accepts packets for it, so peers see a server that never answers.
  const paused = { postgres: 11e12, pgbouncer: 12e12, redis: 13e12 } as const;
  for (const [service, idBase] of Object.entries(paused) as [Backend, number][]) {
    it(`docker pause ${service} for 10 s under load: clients stall, not fail; 0 lost, the bank invariant holds; the sidecar reports it within poll + source timeout`, async () => {
      const writer = `pause-${service}`;
      await seedBank(stack, writer);
      const durationMs = 30_000;
      const load = await startLoad(stack, { clients: 30, bank: 10, durationMs, writer, idBase });
      const redis = await startRedisLedger(stack, { clients: 10, durationMs, writer });
      await sleep(8000);
      const cid = await containerId(service);
      const pausedAt = Date.now();
      // The freezer can fail to freeze a process caught in uninterruptible I/O (Postgres under
      // load: "unable to freeze"); Docker then reports an error and leaves it running. Try again.
      const paused = await until('docker pause', async () => {
        const r = await run('docker', ['pause', cid]);
        if (r.code !== 0) console.warn(`docker pause ${service}: ${r.stderr.trim()}; retrying`);
        return r.code === 0 || undefined;
      }, 10_000, 200);
      expect(paused.value).toBe(true);
      let cause = '';
      const detectMs = await waitUntil(`sidecar reports ${service} down`, async () => {
        const h = await health(PORTS.sidecar);
        const down = h?.status === 503 && backendDown(h.body, service);
        if (down) cause = String(h.body[service].lastError);
        return down;
      }, 20_000, 50, sidecarHealth);
      await sleep(Math.max(0, 10_000 - (Date.now() - pausedAt)));
      expect((await run('docker', ['unpause', cid])).code).toBe(0);
      const resumedAt = Date.now();
      const recoverMs = await waitUntil('sidecar healthy again', healthy, 30_000, 50, sidecarHealth);
      const { summary, ackedIds, transferIds } = await load.result();
      const r = await redis.result();
      const lost = await lostInserts(stack, writer, ackedIds);
      const bank = await checkBank(stack, writer, transferIds);
      const after = summary.timeline.filter((t) => t.s * 1000 > resumedAt - load.startedAt).reduce((n, t) => n + t.acked, 0);
      record({
        scenario: `10. docker pause ${service} (10 s)`,
        load: `${summary.clients} inserting + ${summary.bankClients} bank clients (no client-side timeout), 10 Redis clients (2 s command timeout), ${(durationMs / 1000).toFixed(0)} s`,
        injected: `docker pause at ${((pausedAt - load.startedAt) / 1000).toFixed(1)} s, unpause ${((resumedAt - pausedAt) / 1000).toFixed(1)} s later`,
        figures: `sidecar reported it down after ${(detectMs / 1000).toFixed(1)} s ("${cause.slice(0, 90)}"), healthy ${(recoverMs / 1000).toFixed(1)} s after unpause; ` +
          `Postgres clients: longest attempt ${(summary.longestAttemptMs / 1000).toFixed(1)} s, ${errorsText(summary.errors)}, ${after} commits after unpause; ` +
          `inserts acknowledged ${summary.acked}, lost ${lost}; ${bankText(bank)}; ${redisText(r)}, Redis client errors: ${errorsText(r.summary.errors)}`,
      });
      expect(lost).toBe(0);
      expect(bank, bankText(bank)).toMatchObject({ lost: 0, mismatched: 0, held: true });
      expect(r.check.lost, redisText(r)).toBe(0);
      expect(r.check.counter).toBeGreaterThanOrEqual(r.check.incrAcked);
      expect(after, 'commits after unpause').toBeGreaterThan(0);
      // Detected within one poll plus the source timeout (+1 s of slack for the test's own polling).
      expect(detectMs).toBeLessThanOrEqual(POLL_MS + SOURCE_TIMEOUT_MS + 1000);
      expect(cause).toMatch(/no answer within|no answer from/);
      expect(recoverMs).toBeLessThanOrEqual(POLL_MS + 1000);
      if (service !== 'redis') {
        // No client-side timeout: a paused backend stalls a client for as long as the pause, no longer.
        expect(summary.longestAttemptMs).toBeGreaterThanOrEqual(8_000);
        expect(summary.longestAttemptMs).toBeLessThan(10_000 + 5_000);
      } else {
        // Redis clients carry a 2 s command timeout: they see errors; Postgres clients see none but
        // the bank's own serialization failures and deadlocks (its contention, not the fault).
        expect(Object.keys(r.summary.errors).length).toBeGreaterThan(0);
        expect(Object.keys(summary.errors).filter((m) => !BANK_CONFLICT.test(m))).toEqual([]);
      }
    });
  }

  it('partition clients from PgBouncer for 10 s (packets dropped): clients with a 5 s query timeout get errors within it, not hangs; 0 lost, the bank invariant holds; load resumes after the heal', async () => {
    const writer = 'partition-clients';
    await seedBank(stack, writer);
    const load = await startLoad(stack, { clients: 30, bank: 10, durationMs: 35_000, writer, idBase: 14e12, queryTimeoutMs: 5000 });
    await sleep(8000);
    const admin = new pg.Client({ host: '127.0.0.1', port: PORTS.pgbouncer, user: env.PGBOUNCER_ADMIN_USER, password: env.PGBOUNCER_ADMIN_PASSWORD, database: 'pgbouncer' });
    await admin.connect();
    try {
      // The load's connections at the cut: PgBouncer must let go of every one of them.
      const loadIp = (await run('docker', ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', load.name])).stdout.trim();
      const portsFromLoad = async () => new Set((await admin.query('SHOW CLIENTS')).rows.filter((c) => c.addr === loadIp).map((c) => Number(c.port)));
      const before = await portsFromLoad();
      expect(before.size, 'the load is connected').toBeGreaterThan(30);
      const cutAt = Date.now();
      const heal = await partition(load.name, await containerId('pgbouncer'));
      await sleep(3000);
      const during = (await health(PORTS.sidecar))!;
      await sleep(7000);
      await heal();
      const healedAt = Date.now();
      const releasedMs = await waitUntil('PgBouncer lets go of the connections cut off', async () => {
        const now = await portsFromLoad();
        return [...before].every((p) => !now.has(p));
      }, 150_000, 200);
      const { summary, ackedIds, transferIds } = await load.result();
      const lost = await lostInserts(stack, writer, ackedIds);
      const bank = await checkBank(stack, writer, transferIds);
      const cutS = (cutAt - load.startedAt) / 1000;
      const healS = (healedAt - load.startedAt) / 1000;
      const inCut = summary.timeline.filter((t) => t.s >= Math.ceil(cutS) + 6 && t.s < Math.floor(healS)).reduce((n, t) => n + t.acked, 0);
      const after = summary.timeline.filter((t) => t.s > healS + 1).reduce((n, t) => n + t.acked, 0);
      record({
        scenario: '11. partition clients | PgBouncer (10 s)',
        load: `${summary.clients} inserting + ${summary.bankClients} bank clients with query_timeout 5 s and connect timeout 5 s, 35 s`,
        injected: `iptables DROP both ways between the load container and PgBouncer at ${cutS.toFixed(1)} s, healed at ${healS.toFixed(1)} s`,
        figures: `longest attempt ${(summary.longestAttemptMs / 1000).toFixed(1)} s; ${errorsText(summary.errors)}; ${inCut} commits in the cut's last seconds, ${after} after the heal; ` +
          `PgBouncer released all ${before.size} connections cut off ${(releasedMs / 1000).toFixed(1)} s after the heal; sidecar during the cut: ${during.status} (it is not cut off); ` +
          `inserts acknowledged ${summary.acked}, lost ${lost}; ${bankText(bank)}`,
      });
      expect(lost).toBe(0);
      expect(bank, bankText(bank)).toMatchObject({ lost: 0, mismatched: 0, held: true });
      expect(summary.longestAttemptMs, 'bounded by the client timeouts').toBeLessThan(5000 + 1500);
      expect(Object.keys(summary.errors).join(' ')).toMatch(/timeout/i);
      expect(inCut).toBe(0);
      expect(after).toBeGreaterThan(100);
      expect(during.status).toBe(200);
      expect(releasedMs, 'within the keepalive bound (tcp_keepidle 60 + 6 x 10 s)').toBeLessThan(130_000);
    } finally {
      await admin.end();
    }
  });

  for (const service of ['pgbouncer', 'postgres', 'redis'] as const) {
    it(`partition the sidecar from ${service} for 10 s: /health names ${service} and the cause within poll + source timeout, the sidecar stays live, recovers after the heal`, async () => {
      const sidecarId = await containerId('sidecar');
      const cutAt = Date.now();
      const heal = await partition(sidecarId, await containerId(service));
      let body: any;
      try {
        const detectMs = await waitUntil(`sidecar reports ${service} down`, async () => {
          const h = await health(PORTS.sidecar);
          body = h?.body;
          return h?.status === 503 && backendDown(body, service);
        }, 20_000, 50, sidecarHealth);
        const live = await fetch(`http://127.0.0.1:${PORTS.sidecar}/livez`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status);
        const others = (['pgbouncer', 'postgres', 'redis'] as const).filter((s) => s !== service);
        const othersUp = others.every((s) => (s === 'redis' ? body.redis.available : body[s].healthy) === true);
        await sleep(Math.max(0, 10_000 - (Date.now() - cutAt)));
        const cause = String(body[service].lastError);
        await heal();
        const recoverMs = await waitUntil('sidecar healthy again', healthy, 30_000, 50, sidecarHealth);
        record({
          scenario: `12. partition sidecar | ${service} (10 s)`,
          load: 'idle stack',
          injected: `iptables DROP both ways between the sidecar and ${service}, healed after 10 s`,
          figures: `/health 503 naming ${service} after ${(detectMs / 1000).toFixed(1)} s: "${cause}"; /livez ${live}; ${others.join(', ')} still reported up: ${othersUp}; healthy ${(recoverMs / 1000).toFixed(1)} s after the heal`,
        });
        expect(detectMs).toBeLessThanOrEqual(POLL_MS + SOURCE_TIMEOUT_MS + 1000);
        expect(cause).toMatch(/no answer within|no answer from/);
        expect(live).toBe(200);
        expect(othersUp, JSON.stringify(body).slice(0, 600)).toBe(true);
        expect(recoverMs).toBeLessThanOrEqual(POLL_MS + SOURCE_TIMEOUT_MS + 1000);
      } catch (err) {
        await heal().catch(() => undefined);
        throw err;
      }
    });
  }

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
    const lost = await lostInserts(stack, writer, ackedIds);
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
