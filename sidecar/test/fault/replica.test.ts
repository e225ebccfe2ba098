// The read replica (compose profile "replica") on the dev file, end to end: the standby clones
// and streams, DATABASE_URL_READ (PgBouncer's read alias, the read-only role) follows the
// replica while it is healthy and caught up and the primary otherwise, with the switch timed
// from the read load's own answers (pg_is_in_recovery() of every query), the failures counted
// and placed in time, and every row written meanwhile checked on the replica. Short routing
// thresholds (5 s max lag, back after 3 s below 1 s) keep the test short; the defaults differ
// only in numbers (30 / 5 / 10).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, Stack, health, image, pgClient, publish, run, sleep } from '../e2e/stack.js';
import { errorsText, lostInserts, record, recordSettings, startLoad, startScript, superSql, waitUntil } from './harness.js';

const PORTS = { postgres: 35452, pgbouncer: 36452, redis: 36399, sidecar: 38807 };
const REPLICA_PORT = 35453;
const MAX_LAG_S = 5;
const RETURN_AFTER_S = 3;
const stack = Stack.dev('poolguard-test-replica', {
  ...publish(PORTS),
  PUBLISH_REPLICA_PORT: String(REPLICA_PORT),
  COMPOSE_PROFILES: 'replica',
  READ_ROUTE_MAX_LAG_SECONDS: String(MAX_LAG_S),
  READ_ROUTE_RETURN_LAG_SECONDS: '1',
  READ_ROUTE_RETURN_AFTER_SECONDS: String(RETURN_AFTER_S),
  SIDECAR_POLL_INTERVAL_MS: '1000',
  SIDECAR_SOURCE_TIMEOUT_MS: '800',
  SIDECAR_ALERT_FOR_MS: '2000',
  SIDECAR_ALERT_RESOLVE_FOR_MS: '2000',
  BACKUP_SCHEDULE: 'off',
});
const env = stack.env;
const READ_DB = `${env.APP_DB}_ro`;
const reader = { user: env.APP_READ_USER!, password: env.APP_READ_PASSWORD!, database: READ_DB };
const writerCfg = { user: env.APP_USER!, password: env.APP_PASSWORD!, database: env.APP_DB! };
/**
 * A new login to the read alias. Right after a switch PgBouncer still answers a new login with
 * the old host's cached failure ("server login has been failing, cached error: ...") for up to
 * server_login_retry (0.1 s here): a client that retries gets in.
 */
async function pooledRead(): Promise<pg.Client> {
  const t0 = Date.now();
  for (;;) {
    try {
      const c = await pgClient({ port: PORTS.pgbouncer, ...reader });
      await c.query('SELECT 1');
      return c;
    } catch (err) {
      if (!/server login has been failing/.test(String(err)) || Date.now() - t0 > 3000) throw err;
      await sleep(100);
    }
  }
}
const pooledWrite = () => pgClient({ port: PORTS.pgbouncer, ...writerCfg });

/** Where PgBouncer sends a stack's read alias now: 'replica', 'primary' or the host it names. */
async function routeOf(st: Stack): Promise<string> {
  const r = await st.exec('pgbouncer', ['pgbouncer-admin', '-At', '-F', '|', '-c', 'SHOW DATABASES']);
  const readDb = `${st.env.APP_DB}_ro`;
  const host = r.stdout.split('\n').map((l) => l.split('|')).find((f) => f[0] === readDb)?.[1];
  if (host === undefined) throw new Error(`PgBouncer lists no ${readDb}: ${r.stdout}${r.stderr}`);
  return host === 'postgres-replica' ? 'replica' : host === '/var/run/postgresql' ? 'primary' : host;
}
const route = () => routeOf(stack);

/** One value (or one per row) of a superuser query in a stack's primary or replica container. */
const sqlOf = async (st: Stack, service: 'postgres' | 'postgres-replica', sql: string) => (await superSql(st, sql, service)).map((r) => r.join('\t')).join('\n');
const sqlIn = (service: 'postgres' | 'postgres-replica', sql: string) => sqlOf(stack, service, sql);

/**
 * Waits until the replica container's healthcheck fails with the standby's problem line (Docker
 * marks it "unhealthy" only after the start period and the retries: minutes), then returns the
 * lines of its log since `since` that say it did not start.
 */
async function refusedLines(id: string, since: string): Promise<string[]> {
  const lines = async () => (await run('docker', ['logs', '--since', since, id])).stderr.split('\n').filter((l) => /replica NOT started/.test(l));
  await waitUntil('the line saying the replica did not start', async () => (await lines()).length > 0, 60_000, 500);
  await waitUntil('a healthcheck since then failing with the same problem', async () => {
    const h = (await stack.inspect(id)).State.Health as { Status: string; Log?: { Start: string; ExitCode: number; Output: string }[] } | undefined;
    const last = h?.Log?.at(-1);
    return h?.Status !== 'healthy' && last !== undefined && last.Start > since && last.ExitCode === 1 && /replica NOT started/.test(last.Output);
  }, 60_000, 500);
  return lines();
}

/** The ids of a writer's rows that a stack's replica lacks. */
const missingOnReplica = (st: Stack, writer: string, ids: number[]) => lostInserts(st, writer, ids, 'postgres-replica');

async function alerts(): Promise<{ name: string; labels: Record<string, string>; severity: string }[]> {
  const res = await fetch(`http://127.0.0.1:${PORTS.sidecar}/alerts`, { signal: AbortSignal.timeout(2000) });
  return ((await res.json()) as { items: { name: string; labels: Record<string, string>; severity: string }[] }).items;
}

interface ReadLoad {
  reads: number;
  replica: number;
  primary: number;
  errors: Record<string, number>;
  failures: { atMs: number; client: number; message: string }[];
  timeline: [number, number, number, number][];
}

/** N clients reading through a stack's read URL, in a container on its network (prod: TLS, the password from its file). */
async function startReads(st: Stack, name: string, clients: number, durationMs: number, secretsDir?: string) {
  const auth: Record<string, string> = secretsDir
    ? { PGPASSWORD_FILE: '/secrets/app_read_password', PG_CA_FILE: '/secrets/tls_ca.crt' }
    : { PGPASSWORD: st.env.APP_READ_PASSWORD! };
  return startScript(st, {
    script: 'readload.mjs', name: `reads-${name}`, image: 'migrate', timeoutMs: durationMs + 120_000,
    env: { PGHOST: 'pgbouncer', PGPORT: 6432, PGUSER: st.env.APP_READ_USER!, PGDATABASE: `${st.env.APP_DB}_ro`, ...auth, CLIENTS: clients, DURATION_MS: durationMs, THINK_MS: 10 },
    args: secretsDir ? ['-v', `${secretsDir}:/secrets:ro`] : [],
  });
}

/** The read router's switches since `since` (epoch ms), from its log lines in a stack's PgBouncer container. */
/** The read router's log lines (PgBouncer's container) from a second before `since`. */
async function routerLines(st: Stack, since: number): Promise<string[]> {
  const id = (await st.containers()).find((c) => c.service === 'pgbouncer')!.id;
  const logs = await run('docker', ['logs', '--since', new Date(since - 1000).toISOString(), id]);
  // The router never died and restarted meanwhile (it would forget its state).
  expect(logs.stdout + logs.stderr).not.toMatch(/read-router exited|unbound variable|command not found/);
  return (logs.stdout + logs.stderr).split('\n').filter((l) => l.includes('[read-router]'));
}

async function switches(st: Stack, since: number): Promise<{ atMs: number; to: string; reason: string }[]> {
  return (await routerLines(st, since)).flatMap((l) => {
    const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3}) UTC \[read-router\] \S+ -> (\w+): (.*)$/.exec(l);
    return m ? [{ atMs: Date.parse(`${m[1]}T${m[2]}Z`), to: m[3]!, reason: m[4]! }] : [];
  }).filter((w) => w.atMs >= since);
}

/** The first 100 ms bucket at or after `from` in which `who` answered and the other did not. */
function firstBucket(load: ReadLoad, from: number, who: 'replica' | 'primary'): number | undefined {
  return load.timeline.find(([t, r, p]) => t + 100 > from && (who === 'primary' ? p > 0 && r === 0 : r > 0 && p === 0))?.[0];
}

/**
 * The replica stopped for ~8 s under 50 clients reading through the read URL and 4 writing, then
 * started: when the reads moved to the primary and back (from the read load's own answers and the
 * router's log), how many failed at each switch, none in between, every row written meanwhile on
 * the replica. `whileOnPrimary` runs once the reads sit on the primary.
 */
async function stopUnderReads(st: Stack, opts: { file: string; idBase: number; secretsDir?: string; whileOnPrimary?: () => Promise<void> }): Promise<void> {
  const DURATION = 40_000;
  const readDb = `${st.env.APP_DB}_ro`;
  const writer = `replica-stop-${opts.file}`;
  const reads = await startReads(st, `stop-${opts.file}`, 50, DURATION, opts.secretsDir);
  const writes = await startLoad(st, { clients: 4, durationMs: DURATION, writer, idBase: opts.idBase, thinkMs: 20, secretsDir: opts.secretsDir });
  await sleep(6000);
  const tStop = Date.now();
  await st.mustCompose(['stop', 'postgres-replica']);
  await waitUntil('the read alias on the primary', async () => (await routeOf(st)) === 'primary', 20_000, 100);
  await opts.whileOnPrimary?.();
  await sleep(8000);
  const tStart = Date.now();
  await st.mustCompose(['start', 'postgres-replica']);
  await waitUntil('the read alias back on the replica', async () => (await routeOf(st)) === 'replica', 60_000, 100);
  const load = await reads.result<ReadLoad>();
  const wrote = await writes.result();
  const toPrimary = firstBucket(load, tStop, 'primary');
  const toReplica = firstBucket(load, tStart, 'replica');
  expect(toPrimary, 'reads answered by the primary after the stop').toBeDefined();
  expect(toReplica, 'reads answered by the replica after the start').toBeDefined();
  const switchMs = toPrimary! - tStop;
  const returnMs = toReplica! - tStart;
  // Failures only around the two switches (from the stop to 2 s after the router's move, and
  // 2 s either side of its move back: PgBouncer answers with a cached login error for up to
  // server_login_retry after each), none while the reads sat on either server.
  const moves = await switches(st, tStop);
  expect(moves.map((m) => m.to)).toEqual(['primary', 'replica']);
  const away = moves[0]!;
  const back = moves[1]!;
  const inStop = (t: number) => t >= tStop - 500 && t <= away.atMs + 2000;
  const inReturn = (t: number) => t >= back.atMs - 2000 && t <= back.atMs + 2000;
  const stopFailures = load.failures.filter((f) => inStop(f.atMs));
  const atStop = stopFailures.length;
  // Per client: its query in flight at the stop fails; a client that failed again (its reconnect
  // or next query before the move) shows a failure beyond the ones in flight.
  const perClient = new Map<number, number>();
  const byMessage: Record<string, number> = {};
  for (const f of stopFailures) {
    perClient.set(f.client, (perClient.get(f.client) ?? 0) + 1);
    byMessage[f.message] = (byMessage[f.message] ?? 0) + 1;
  }
  const beyondInFlight = atStop - perClient.size;
  const stopKinds = errorsText(byMessage);
  const atReturn = load.failures.filter((f) => inReturn(f.atMs)).length;
  const elsewhere = load.failures.filter((f) => !inStop(f.atMs) && !inReturn(f.atMs));
  await waitUntil('the replica caught up', async () => (await missingOnReplica(st, writer, wrote.ackedIds)) === 0, 30_000, 500);
  const missing = await missingOnReplica(st, writer, wrote.ackedIds);
  record({
    scenario: `Replica stopped and started under reads (${opts.file} file)`,
    load: `50 clients reading through ${readDb} (${load.reads} reads: ${load.replica} on the replica, ${load.primary} on the primary) + 4 writing through PgBouncer (${wrote.ackedIds.length} commits)`,
    injected: 'docker compose stop postgres-replica for ~8 s, then start',
    figures: `router moved the reads ${((away.atMs - tStop) / 1000).toFixed(1)} s after the stop ("${away.reason.slice(0, 60)}"), reads answered by the primary ${(switchMs / 1000).toFixed(1)} s after it (${atStop} failed reads at that switch, from ${perClient.size} of 50 clients, ${beyondInFlight} beyond one per client: ${stopKinds}); moved back ${((back.atMs - tStart) / 1000).toFixed(1)} s after the start ("${back.reason}"), answered by the replica ${(returnMs / 1000).toFixed(1)} s after it (${atReturn} failed at that switch); ${elsewhere.length} failures elsewhere; ${missing} of ${wrote.ackedIds.length} rows written meanwhile missing on the replica; ${errorsText(load.errors)}`,
  });
  expect(elsewhere.map((f) => `${new Date(f.atMs).toISOString()} ${f.message}`)).toEqual([]);
  // Only what was in flight fails at the stop: each client has at most one transaction in
  // flight, so no more failures than clients (before the router held new queries while it moved
  // the alias, reconnects failed too: 26 to 231 failed reads).
  // On failure, the router's own account of the switch (a PAUSE that failed, a check that hung).
  const routerSaid = atStop > 50 ? (await routerLines(st, tStop - 1000)).filter((l) => Date.parse(`${l.slice(0, 10)}T${l.slice(11, 23)}Z`) <= away.atMs + 1000).join('\n') : '';
  expect(atStop, `failed reads at the stop: ${stopKinds}\nthe router's log around it:\n${routerSaid}`).toBeLessThanOrEqual(50);
  // The move back waited out the hysteresis (nothing made the router skip it).
  expect(back.atMs - tStart).toBeGreaterThanOrEqual(RETURN_AFTER_S * 1000);
  expect(back.reason).toMatch(new RegExp(`<= 1 s for ${RETURN_AFTER_S} s$`));
  expect(missing).toBe(0);
  expect(wrote.summary.acked).toBeGreaterThan(0);
  expect(switchMs).toBeLessThan(10_000);
}

describe('read replica (dev file, profile replica)', () => {
  beforeAll(async () => {
    await stack.compose(['down', '-v', '--remove-orphans']);
    await stack.up();
    await recordSettings(stack);
    // The router moves the read alias to the replica at its first good look.
    await waitUntil('the read alias on the replica', async () => (await route()) === 'replica', 60_000, 250);
  });

  afterAll(async () => {
    await stack.down(true);
  });

  it('streams from its own slot, with the primary\'s settings, and the read URL reaches it', async () => {
    expect(await sqlIn('postgres', "SELECT application_name || '|' || state FROM pg_stat_replication")).toBe('postgres-replica|streaming');
    expect(await sqlIn('postgres', 'SELECT slot_name || \'|\' || active FROM pg_replication_slots')).toBe('poolguard_replica|true');
    const settings = "SELECT string_agg(name || '=' || setting, ',' ORDER BY name) FROM pg_settings WHERE name IN ('max_connections','max_wal_senders','max_worker_processes','max_locks_per_transaction','max_prepared_transactions')";
    const standbySettings = await sqlIn('postgres-replica', settings);
    expect(standbySettings).toBe(await sqlIn('postgres', settings));
    expect(await sqlIn('postgres-replica', 'SELECT pg_is_in_recovery()')).toBe('t');
    record({ scenario: 'Replica: bring-up (dev file)', load: 'none', injected: 'COMPOSE_PROFILES=replica', figures: `postgres-replica streaming from slot poolguard_replica (active); the standby's settings equal the primary's: ${standbySettings}` });
    const c = await pooledRead();
    try {
      expect((await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r).toBe(true);
    } finally {
      await c.end();
    }
  });

  it('a row written through the pooled primary URL is readable through the read URL within 2 s', async () => {
    const w = await pooledWrite();
    const r = await pooledRead();
    const times: number[] = [];
    try {
      await w.query("DELETE FROM ledger WHERE writer = 'visibility'");
      for (let i = 1; i <= 20; i++) {
        await w.query("INSERT INTO ledger (id, writer, amount) VALUES ($1, 'visibility', 1)", [9_000_000_000 + i]);
        const t0 = performance.now();
        for (;;) {
          const row = (await r.query('SELECT pg_is_in_recovery() AS r, EXISTS (SELECT FROM ledger WHERE id = $1) AS seen', [9_000_000_000 + i])).rows[0];
          expect(row.r).toBe(true);
          if (row.seen) break;
          if (performance.now() - t0 > 2000) throw new Error(`row ${i} not readable through ${READ_DB} after 2 s`);
          await sleep(2);
        }
        times.push(performance.now() - t0);
      }
    } finally {
      await w.end();
      await r.end();
    }
    times.sort((a, b) => a - b);
    const p50 = times[Math.floor(times.length / 2)]!;
    const max = times.at(-1)!;
    record({ scenario: 'Replica: write on the primary, read through the read URL', load: '20 single-row commits, one at a time', injected: 'none', figures: `visible on the replica after p50 ${p50.toFixed(1)} ms, max ${max.toFixed(1)} ms (bound 2000 ms)` });
    expect(max).toBeLessThan(2000);
  });

  it('replication lag under a 50-client write load through PgBouncer, from the sidecar\'s samples', async () => {
    const DURATION = 30_000;
    const writes = await startLoad(stack, { clients: 50, durationMs: DURATION, writer: 'replica-lag', idBase: 7_200_000_000, thinkMs: 5 });
    /** The value of a family's sample with target=TARGET (any other labels). */
    const sample = (text: string, name: string, target: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`target="${target}"`));
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
    };
    const lag: number[] = [];
    const bytes: number[] = [];
    const replayLag: number[] = [];
    const routes = new Set<string>();
    let lastPoll = '';
    const until = Date.now() + DURATION - 1000;
    while (Date.now() < until) {
      const text = await (await fetch(`http://127.0.0.1:${PORTS.sidecar}/metrics`)).text();
      const polls = /^poolguard_polls_total (\d+)$/m.exec(text)?.[1] ?? '';
      if (polls !== lastPoll) {
        lastPoll = polls;
        lag.push(sample(text, 'pg_replication_lag_seconds', 'postgres-replica'));
        bytes.push(sample(text, 'poolguard_pg_replication_lag_bytes', 'postgres-replica'));
        replayLag.push(sample(text, 'poolguard_pg_stat_replication_replay_lag_seconds', 'postgres'));
        routes.add(await route());
      }
      await sleep(200);
    }
    const wrote = await writes.result();
    const pct = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
    const ms = (x: number) => `${(x * 1000).toFixed(0)} ms`;
    const replayKnown = replayLag.filter(Number.isFinite);
    record({
      scenario: 'Replica lag under writes',
      load: `50 clients writing through PgBouncer for ${DURATION / 1000} s (${wrote.summary.acked} commits, ${(wrote.summary.acked / (DURATION / 1000)).toFixed(0)}/s)`,
      injected: 'none',
      figures: `${lag.length} sidecar polls: lag p50 ${ms(pct(lag, 0.5))}, p99 ${ms(pct(lag, 0.99))}, max ${ms(Math.max(...lag))}; bytes behind p50 ${pct(bytes, 0.5)}, p99 ${pct(bytes, 0.99)}; Postgres's replay_lag p50 ${replayKnown.length ? ms(pct(replayKnown, 0.5)) : 'n/a'}, p99 ${replayKnown.length ? ms(pct(replayKnown, 0.99)) : 'n/a'}; reads stayed on: ${[...routes].join(', ')}`,
    });
    // A measurement that reads nothing fails.
    expect(lag.length).toBeGreaterThanOrEqual(15);
    expect(lag.every(Number.isFinite) && bytes.every(Number.isFinite)).toBe(true);
    expect(wrote.summary.acked).toBeGreaterThan(1000);
  });

  it('a real Prisma 7 client with readReplicas over the pooled URLs: writes, $primary() and transactions on the primary, other reads on the replica', async () => {
    // sidecar/test/clients/prisma: Prisma 7.10 with @prisma/adapter-pg and
    // @prisma/extension-read-replicas 0.5, installed from its lock file (no install scripts:
    // Prisma 7's client needs no engine binary), its client generated from the schema there.
    const dir = join(ROOT, 'sidecar/test/clients/prisma');
    const ci = await run('npm', ['ci', '--no-audit', '--no-fund', '--ignore-scripts'], { env: { npm_config_loglevel: 'error' }, timeoutMs: 240_000, cwd: dir });
    expect(ci.code, ci.stderr).toBe(0);
    const gen = await run(join(dir, 'node_modules/.bin/prisma'), ['generate'], { env: { PRISMA_SCHEMA_ENGINE_BINARY: '/bin/true', PRISMA_HIDE_UPDATE_MESSAGE: '1' }, cwd: dir });
    expect(gen.code, gen.stdout + gen.stderr).toBe(0);
    // Which server answered, asked from inside a model query (a view: Prisma reads it like a table).
    await sqlIn('postgres', `CREATE OR REPLACE VIEW server_role AS SELECT pg_is_in_recovery() AS in_recovery, current_user::text AS usr; GRANT SELECT ON server_role TO ${env.APP_USER}, ${reader.user}`);
    const url = (u: string, pw: string, db: string) => `postgresql://${u}:${encodeURIComponent(pw)}@127.0.0.1:${PORTS.pgbouncer}/${db}`;
    const r = await run(join(dir, 'node_modules/.bin/tsx'), ['check.ts', 'prisma'], {
      env: { DATABASE_URL: url(writerCfg.user, writerCfg.password, writerCfg.database), DATABASE_URL_READ: url(reader.user, reader.password, READ_DB) }, cwd: dir, timeoutMs: 60_000,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(out).toEqual({
      findMany: `replica as ${reader.user}`,
      primaryFindMany: `primary as ${env.APP_USER}`,
      rawDefault: `primary as ${env.APP_USER}`,
      transaction: `primary as ${env.APP_USER}`,
      replicaRaw: `replica as ${reader.user}`,
      writeThroughReplica: expect.stringMatching(/25006/),
      createdSeenOnReplica: true,
    });
    record({ scenario: 'Replica: a Prisma 7 client with readReplicas', load: 'one client, each kind of call once', injected: 'none', figures: Object.entries(out).map(([k, v]) => `${k}: ${String(v).slice(0, 60)}`).join('; ') });
  });

  it('the read URL cannot write on the replica, whatever the client sets', async () => {
    const c = await pooledRead();
    try {
      const codes: string[] = [];
      for (const sql of ["INSERT INTO ledger (id, writer) VALUES (1, 'x')", "BEGIN READ WRITE; INSERT INTO ledger (id, writer) VALUES (1, 'x')"]) {
        codes.push(await c.query(sql).then(() => 'ok', (e: { code?: string }) => e.code ?? '?'));
        await c.query('ROLLBACK').catch(() => undefined);
      }
      // 25006 read_only_sql_transaction; BEGIN READ WRITE is refused up front during recovery (0A000).
      expect(codes).toEqual(['25006', '0A000']);
      record({ scenario: 'Replica: the read URL cannot write', load: 'one client on the read URL (the replica)', injected: 'INSERT; BEGIN READ WRITE + INSERT', figures: `SQLSTATE ${codes.join(', ')} (on the primary, in the stop test: 25006, and 42501 for a read-write transaction)` });
    } finally {
      await c.end();
    }
  });

  it('replica stopped under a 50-client read load: reads move to the primary, return after it caught up, nothing written meanwhile is missing', async () => {
    await stopUnderReads(stack, {
      file: 'dev', idBase: 7_000_000_000,
      // While reads are on the primary, the read URL still cannot write (a permission error there).
      whileOnPrimary: async () => {
        const c = await pooledRead();
        const onPrimary = await c.query('SELECT pg_is_in_recovery() AS r').then((q) => q.rows[0].r as boolean);
        const code = (sql: string) => c.query(sql).then(() => 'ok', (e: { code?: string }) => e.code ?? '?');
        // The role's default (read-only transactions) refuses first; overridden, the grants do.
        const writeCode = await code("INSERT INTO ledger (id, writer) VALUES (1, 'x')");
        const overriddenCode = await code("BEGIN READ WRITE; INSERT INTO ledger (id, writer) VALUES (1, 'x')");
        await c.query('ROLLBACK').catch(() => undefined);
        await c.end();
        expect(onPrimary).toBe(false);
        expect([writeCode, overriddenCode]).toEqual(['25006', '42501']);
      },
    });
  });

  it('replay paused under writes: lag grows, the sidecar alerts, reads move to the primary; resumed: they move back', async () => {
    const DURATION = 35_000;
    const reads = await startReads(stack, 'pause', 20, DURATION);
    const writes = await startLoad(stack, { clients: 4, durationMs: DURATION, writer: 'replica-pause', idBase: 7_100_000_000, thinkMs: 20 });
    await sleep(3000);
    const tPause = Date.now();
    await sqlIn('postgres-replica', 'SELECT pg_wal_replay_pause()');
    const movedMs = await waitUntil('reads moved to the primary', async () => (await route()) === 'primary', 30_000, 100);
    await waitUntil('the replica_lag alert', async () => (await alerts()).some((a) => a.name === 'replica_lag'), 30_000, 250);
    const lagAlertMs = Date.now() - tPause;
    const tResume = Date.now();
    await sqlIn('postgres-replica', 'SELECT pg_wal_replay_resume()');
    const backMs = await waitUntil('reads back on the replica', async () => (await route()) === 'replica', 30_000, 100);
    const load = await reads.result<ReadLoad>();
    const wrote = await writes.result();
    record({
      scenario: 'Replica replay paused under writes',
      load: `4 clients writing (${wrote.ackedIds.length} commits), 20 reading through ${READ_DB} (${load.reads} reads)`,
      injected: 'pg_wal_replay_pause() on the replica, resumed once reads had moved',
      figures: `reads on the primary ${(movedMs / 1000).toFixed(1)} s after the pause (max lag ${MAX_LAG_S} s), replica_lag alert seen ${(lagAlertMs / 1000).toFixed(1)} s after it; back on the replica ${(backMs / 1000).toFixed(1)} s after resume (${RETURN_AFTER_S} s below the return mark); ${load.failures.length} failed reads`,
    });
    expect(movedMs).toBeGreaterThanOrEqual((MAX_LAG_S - 1) * 1000);
    expect(backMs).toBeGreaterThanOrEqual(RETURN_AFTER_S * 1000 - 1000);
    expect(tResume).toBeGreaterThan(tPause);
  });

  it('a broken stream with an idle primary: the sidecar shows it broken and growing, reads move after the max lag and return once it streams', async () => {
    // The replication role refused, its walsender ended: the WAL receiver cannot reconnect. No
    // writes meanwhile, so by LSN the replica is as current as the primary.
    await sqlIn('postgres', `ALTER ROLE ${env.REPLICATION_USER} NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_replication`);
    const tBreak = Date.now();
    try {
      const movedMs = await waitUntil('reads moved to the primary', async () => (await route()) === 'primary', 30_000, 100);
      const h = (await health(PORTS.sidecar))?.body;
      const replica = h?.replicas?.[0] as { status: string; lagSeconds: number | null } | undefined;
      const moves = await switches(stack, tBreak);
      record({
        scenario: 'Replica stream broken, primary idle',
        load: 'none (nothing to replicate: by LSN the replica is current)',
        injected: 'the replication role set NOLOGIN and its walsender terminated',
        figures: `reads on the primary ${(movedMs / 1000).toFixed(1)} s after the break ("${moves[0]?.reason ?? '?'}"); the sidecar's replica status ${replica?.status}, lag ${replica?.lagSeconds} s`,
      });
      expect(movedMs).toBeGreaterThanOrEqual((MAX_LAG_S - 1) * 1000);
      expect(replica?.status).toBe('broken');
    } finally {
      await sqlIn('postgres', `ALTER ROLE ${env.REPLICATION_USER} LOGIN`);
    }
    await waitUntil('reads back on the replica once it streams', async () => (await route()) === 'replica', 60_000, 250);
    expect(await sqlIn('postgres', 'SELECT state FROM pg_stat_replication')).toBe('streaming');
  });

  it('primary stopped: new logins to the read alias work and read from the replica', async () => {
    await stack.mustCompose(['stop', 'postgres']);
    try {
      await waitUntil('the read alias on the replica', async () => (await route()) === 'replica', 20_000, 100);
      const c = await pooledRead();
      try {
        const row = (await c.query('SELECT pg_is_in_recovery() AS r, count(*)::int AS n FROM ledger')).rows[0];
        expect(row.r).toBe(true);
        expect(row.n).toBeGreaterThan(0);
      } finally {
        await c.end();
      }
      // The sidecar says the primary is down (503) and the replica answering (its stream broken).
      await waitUntil('the sidecar reporting the primary down', async () => (await health(PORTS.sidecar))?.body?.postgres?.healthy === false, 15_000, 250);
      const h = await health(PORTS.sidecar);
      expect(h?.status).toBe(503);
      expect(h?.body?.replicas?.map((r: { instance: string }) => r.instance)).toEqual(['postgres-replica']);
      expect(h?.body?.replicas?.[0]?.status).not.toBe('down');
      record({ scenario: 'Replica: primary stopped', load: 'new logins to the read URL', injected: 'docker compose stop postgres', figures: `a new login to ${READ_DB} read from the replica (pg_is_in_recovery true); /health ${h?.status} (postgres down), the replica listed as ${h?.body?.replicas?.[0]?.status}` });
    } finally {
      await stack.mustCompose(['start', 'postgres']);
      await stack.up();
    }
  });

  it('a replica whose slot is gone, or whose data belongs to another cluster, says so in one line and stays unhealthy: no re-clone, no restart loop', async () => {
    await stack.mustCompose(['stop', 'postgres-replica']);
    await sqlIn('postgres', "SELECT pg_drop_replication_slot('poolguard_replica')");
    const since = new Date().toISOString();
    await stack.mustCompose(['start', 'postgres-replica']);
    const id = (await stack.containers()).find((c) => c.service === 'postgres-replica')!.id;
    const lines = await refusedLines(id, since);
    await sleep(3000); // still one line a few healthchecks later
    const logs = (await run('docker', ['logs', '--since', since, id])).stderr;
    expect(lines).toHaveLength(1);
    expect(logs.split('\n').filter((l) => /replica NOT started/.test(l))).toHaveLength(1);
    expect(lines[0]).toMatch(/slot poolguard_replica is gone/);
    expect(logs).not.toMatch(/cloning the primary/);
    const info = await stack.inspect(id);
    expect(info.State.Status).toBe('running');
    expect(info.RestartCount ?? 0).toBe(0);
    // Reads stay on the primary while the replica is out.
    expect(await route()).toBe('primary');
    // A data directory of another cluster: refused the same way.
    await stack.mustCompose(['stop', 'postgres-replica']);
    const volume = `${stack.project}_pgdata_replica`;
    const foreign = await run('docker', ['run', '--rm', '-v', `${volume}:/var/lib/postgresql/data`, '--entrypoint', 'bash', image('postgres'), '-c',
      'rm -rf /var/lib/postgresql/data/* && initdb -D /var/lib/postgresql/data >/dev/null && touch /var/lib/postgresql/data/standby.signal']);
    expect(foreign.code, foreign.stderr).toBe(0);
    const since2 = new Date().toISOString();
    await stack.mustCompose(['start', 'postgres-replica']);
    const foreignLines = await refusedLines(id, since2);
    expect(foreignLines).toHaveLength(1);
    expect(foreignLines[0]).toMatch(/belongs to another cluster/);
    record({ scenario: 'Replica: slot gone, foreign data directory', load: 'none', injected: 'pg_drop_replication_slot on the primary, then a fresh initdb in the replica\'s volume', figures: `one line each, healthcheck failing with it, running, 0 restarts, no clone: "${lines[0]!.replace(/^.*replica NOT started: /, '').slice(0, 70)}…", "${foreignLines[0]!.replace(/^.*replica NOT started: /, '').slice(0, 70)}…"; a new volume then cloned afresh` });
    // What the lines say to do works: a new volume clones afresh (the slot is created again).
    await stack.mustCompose(['rm', '-sf', 'postgres-replica']);
    await run('docker', ['volume', 'rm', volume]);
    await stack.up();
    await waitUntil('the read alias on the replica again', async () => (await route()) === 'replica', 60_000, 250);
  });
});

describe('read replica (prod file, profile replica)', () => {
  // TLS to PgBouncer, every password from its secret file, read-only roots: the same switch.
  const secretsDir = join(mkdtempSync(join(tmpdir(), 'poolguard-test-replica-prod-')), 'secrets');
  const prod = Stack.prod('poolguard-test-replica-prod', {
    PUBLISH_SIDECAR_PORT: '38808',
    COMPOSE_PROFILES: 'replica',
    READ_ROUTE_MAX_LAG_SECONDS: String(MAX_LAG_S),
    READ_ROUTE_RETURN_LAG_SECONDS: '1',
    READ_ROUTE_RETURN_AFTER_SECONDS: String(RETURN_AFTER_S),
    BACKUP_SCHEDULE: 'off',
  }, secretsDir);

  beforeAll(async () => {
    const gen = await run(join(ROOT, 'scripts/gen-secrets.sh'), [secretsDir]);
    expect(gen.code, gen.stderr).toBe(0);
    await prod.compose(['down', '-v', '--remove-orphans']);
    await prod.up();
    await recordSettings(prod);
    await waitUntil('the read alias on the replica', async () => (await routeOf(prod)) === 'replica', 60_000, 250);
  });

  afterAll(async () => {
    await prod.down(true);
  });

  it('replica stopped under a 50-client read load over TLS: reads move to the primary and back, nothing written meanwhile is missing', async () => {
    await stopUnderReads(prod, { file: 'prod', idBase: 7_300_000_000, secretsDir });
  });
});
