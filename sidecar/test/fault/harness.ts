// Helpers for the fault suite: the load generator container, health polling, the ledger check,
// and the rows and stack settings behind docs/reliability.md. A test run writes them to
// sidecar/.reliability/ (ignored by git); only `make reliability` turns a run whose every test
// passed into docs/reliability.md (scripts/reliability-report.mjs).
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import pg from 'pg';
import { onTestFinished } from 'vitest';
import { ROOT, image, run, until, type Stack } from '../e2e/stack.js';

export { health } from '../e2e/stack.js';

export interface LoadSummary {
  writer: string;
  clients: number;
  bankClients: number;
  bankAttempts: number;
  transfers: number;
  durationMs: number;
  attempts: number;
  acked: number;
  errors: Record<string, number>;
  longestAttemptMs: number;
  timeline: { s: number; acked: number; errors: number }[];
}

/** One acknowledged commit: its id and when its transaction started and was acknowledged (epoch ms). */
export interface Ack {
  id: number;
  startMs: number;
  endMs: number;
}

export interface LoadRun {
  name: string;
  startedAt: number;
  result: () => Promise<{ summary: LoadSummary; ackedIds: number[]; acks: Ack[]; transferIds: number[] }>;
}

/**
 * Starts the load generator (sidecar/test/loadgen/loadgen.mjs in the migrate image: node + pg)
 * on the stack's network, or on the host network against the published PgBouncer port.
 */
export async function startLoad(
  stack: Stack,
  opts: {
    clients: number; durationMs: number; writer: string; idBase: number; hostNetworkPort?: number; thinkMs?: number;
    /** Prod: the secrets folder: the password is read from app_password at every connection, TLS verified against tls_ca.crt. */
    secretsDir?: string; reconnectEvery?: number;
    /** Bank-transfer clients beside the inserting ones (seed the accounts first: seedBank). */
    bank?: number; queryTimeoutMs?: number;
  },
): Promise<LoadRun> {
  const out = mkdtempSync(join(tmpdir(), 'poolguard-load-'));
  chmodSync(out, 0o777);
  const name = `${stack.project}-load-${opts.writer}`;
  const net = opts.hostNetworkPort ? ['--network', 'host'] : ['--network', `${stack.project}_backend`];
  const target = opts.hostNetworkPort
    ? ['-e', 'PGHOST=127.0.0.1', '-e', `PGPORT=${opts.hostNetworkPort}`]
    : ['-e', 'PGHOST=pgbouncer', '-e', 'PGPORT=6432'];
  const args = [
    'run', '-d', '--name', name, '--label', `com.docker.compose.project=${stack.project}`, ...net, ...target,
    '-e', `PGUSER=${stack.env.APP_USER}`, '-e', `PGDATABASE=${stack.env.APP_DB}`,
    ...(opts.secretsDir
      ? ['-v', `${opts.secretsDir}:/secrets:ro`, '-e', 'PGPASSWORD_FILE=/secrets/app_password', '-e', 'PG_CA_FILE=/secrets/tls_ca.crt']
      : ['-e', `PGPASSWORD=${stack.env.APP_PASSWORD}`]),
    '-e', `RECONNECT_EVERY=${opts.reconnectEvery ?? 0}`, '-e', `BANK_CLIENTS=${opts.bank ?? 0}`, '-e', `BANK_ACCOUNTS=${BANK_ACCOUNTS}`,
    '-e', `QUERY_TIMEOUT_MS=${opts.queryTimeoutMs ?? 0}`,
    '-e', `CLIENTS=${opts.clients}`, '-e', `DURATION_MS=${opts.durationMs}`, '-e', `WRITER=${opts.writer}`,
    '-e', `THINK_MS=${opts.thinkMs ?? 20}`, '-e', `ID_BASE=${opts.idBase}`, '-e', 'OUT=/out', '-v', `${out}:/out`,
    '-v', `${join(ROOT, 'sidecar/test/loadgen/loadgen.mjs')}:/app/loadgen.mjs:ro`,
    '--entrypoint', 'node', image('migrate'), '/app/loadgen.mjs',
  ];
  await run('docker', ['rm', '-f', name]);
  const started = await run('docker', args);
  if (started.code !== 0) throw new Error(`load generator did not start: ${started.stderr}`);
  return {
    name,
    startedAt: Date.now(),
    result: async () => {
      const waited = await run('docker', ['wait', name], { timeoutMs: opts.durationMs + 120_000 });
      const logs = await run('docker', ['logs', name]);
      await run('docker', ['rm', '-f', name]);
      if (waited.stdout.trim() !== '0') throw new Error(`load generator exited ${waited.stdout.trim()}: ${logs.stdout}${logs.stderr}`);
      const summary = JSON.parse(logs.stdout.trim().split('\n').at(-1)!) as LoadSummary;
      const text = readFileSync(join(out, `acked-${opts.writer}.txt`), 'utf8');
      const acks = text.split('\n').filter(Boolean).map((l) => {
        const [id, startMs, endMs] = l.split(' ').map(Number) as [number, number, number];
        return { id, startMs, endMs };
      });
      if (acks.some((a) => !Number.isFinite(a.id) || !(a.endMs >= a.startMs))) throw new Error(`unreadable ledger line in acked-${opts.writer}.txt`);
      const transferIds = readFileSync(join(out, `transfers-${opts.writer}.txt`), 'utf8').split('\n').filter(Boolean).map((l) => Number(l.split(' ')[0]));
      if (transferIds.some((n) => !Number.isFinite(n))) throw new Error(`unreadable line in transfers-${opts.writer}.txt`);
      if ((opts.bank ?? 0) > 0 && summary.bankAttempts === 0) throw new Error(`the ${opts.bank} bank clients attempted no transfer`);
      return { summary, ackedIds: acks.map((a) => a.id), acks, transferIds };
    },
  };
}

/** psql as the superuser over the Postgres container's socket (dev and prod alike); rows of tab-separated fields. */
export async function superSql(stack: Stack, sql: string): Promise<string[][]> {
  const r = await stack.exec('postgres', ['psql', '-X', '-v', 'ON_ERROR_STOP=1', '-h', '/var/run/postgresql', '-U', 'postgres', '-d', stack.env.APP_DB ?? 'app', '-At', '-F', '\t', '-c', sql]);
  if (r.code !== 0) throw new Error(`psql -c "${sql.slice(0, 80)}" failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
}

export const BANK_ACCOUNTS = 20;
export const BANK_SEED = 1000;

/** Creates the bank tables (once) and seeds BANK_ACCOUNTS accounts of BANK_SEED for writer. */
export async function seedBank(stack: Stack, writer: string): Promise<void> {
  const app = stack.env.APP_USER ?? 'app';
  await superSql(stack, `CREATE TABLE IF NOT EXISTS bank_accounts (writer text, id int, balance bigint NOT NULL CHECK (balance >= 0), PRIMARY KEY (writer, id));
    CREATE TABLE IF NOT EXISTS bank_transfers (id bigint PRIMARY KEY, writer text NOT NULL, src int NOT NULL, dst int NOT NULL, amount bigint NOT NULL);
    GRANT SELECT, INSERT, UPDATE ON bank_accounts, bank_transfers TO "${app}";
    INSERT INTO bank_accounts SELECT '${writer}', g, ${BANK_SEED} FROM generate_series(0, ${BANK_ACCOUNTS - 1}) g ON CONFLICT DO NOTHING`);
}

export interface BankCheck {
  /** Acknowledged transfers, and those of them not in bank_transfers (must be 0). */
  acked: number;
  lost: number;
  /** Transfers in the table that the client never saw acknowledged (a commit whose answer was cut: allowed). */
  unacknowledged: number;
  total: number;
  expectedTotal: number;
  /** Accounts whose balance differs from the seed plus its recorded transfers (lost update or partial transaction). */
  mismatched: number;
  held: boolean;
}

/** The bank invariant after a run: total unchanged, every balance explained by its transfers, no acknowledged transfer lost. */
export async function checkBank(stack: Stack, writer: string, transferIds: number[]): Promise<BankCheck> {
  const [[total = '', n = '']] = (await superSql(stack, `SELECT coalesce(sum(balance), 0), count(*) FROM bank_accounts WHERE writer = '${writer}'`)) as [string[]];
  if (Number(n) !== BANK_ACCOUNTS) throw new Error(`bank_accounts holds ${n} accounts for ${writer}, expected ${BANK_ACCOUNTS} (not seeded?)`);
  const mismatched = (await superSql(stack, `SELECT a.id FROM bank_accounts a
      LEFT JOIN (SELECT src AS id, -sum(amount) AS d FROM bank_transfers WHERE writer = '${writer}' GROUP BY src
                 UNION ALL SELECT dst, sum(amount) FROM bank_transfers WHERE writer = '${writer}' GROUP BY dst) t ON t.id = a.id
      WHERE a.writer = '${writer}' GROUP BY a.id, a.balance HAVING a.balance <> ${BANK_SEED} + coalesce(sum(t.d), 0)`)).length;
  const present = new Set((await superSql(stack, `SELECT id FROM bank_transfers WHERE writer = '${writer}'`)).map((r) => Number(r[0])));
  const lost = transferIds.filter((id) => !present.has(id)).length;
  const expectedTotal = BANK_ACCOUNTS * BANK_SEED;
  return {
    acked: transferIds.length, lost, unacknowledged: present.size - (transferIds.length - lost), total: Number(total), expectedTotal, mismatched,
    held: lost === 0 && mismatched === 0 && Number(total) === expectedTotal,
  };
}

export const bankText = (b: BankCheck) =>
  `bank: ${b.acked} transfers acknowledged, ${b.lost} lost, ${b.unacknowledged} committed unacknowledged; total ${b.total} of ${b.expectedTotal}, ${b.mismatched} balances unexplained (invariant ${b.held ? 'held' : 'BROKEN'})`;

export interface RedisLedger {
  summary: { acked: number; incrAcked: number; incrAttempts: number; longestAttemptMs: number; errors: Record<string, number> };
  check: { acked: number; lost: number; missing: number[]; counter: number; incrAcked: number; incrAttempts: number };
}

/**
 * Starts the Redis ledger (sidecar/test/loadgen/redis-ledger.mjs in the sidecar image) on the
 * stack's network; result() waits for it, then runs its check against Redis.
 */
export async function startRedisLedger(stack: Stack, opts: { clients: number; durationMs: number; writer: string; secretsDir?: string }): Promise<{ result: () => Promise<RedisLedger> }> {
  const out = mkdtempSync(join(tmpdir(), 'poolguard-redis-ledger-'));
  chmodSync(out, 0o777);
  const name = `${stack.project}-redis-ledger-${opts.writer}`;
  const base = [
    '--network', `${stack.project}_backend`, '--label', `com.docker.compose.project=${stack.project}`,
    ...(opts.secretsDir ? ['-v', `${opts.secretsDir}:/secrets:ro`, '-e', 'REDIS_PASSWORD_FILE=/secrets/redis_password'] : ['-e', `REDIS_PASSWORD=${stack.env.REDIS_PASSWORD}`]),
    '-e', `WRITER=${opts.writer}`, '-e', 'OUT=/out', '-v', `${out}:/out`,
    '-v', `${join(ROOT, 'sidecar/test/loadgen/redis-ledger.mjs')}:/app/redis-ledger.mjs:ro`,
    '--entrypoint', 'node', image('sidecar'), '/app/redis-ledger.mjs',
  ];
  await run('docker', ['rm', '-f', name]);
  const started = await run('docker', ['run', '-d', '--name', name, '-e', `CLIENTS=${opts.clients}`, '-e', `DURATION_MS=${opts.durationMs}`, ...base]);
  if (started.code !== 0) throw new Error(`redis ledger did not start: ${started.stderr}`);
  return {
    result: async () => {
      const waited = await run('docker', ['wait', name], { timeoutMs: opts.durationMs + 120_000 });
      const logs = await run('docker', ['logs', name]);
      await run('docker', ['rm', '-f', name]);
      if (waited.stdout.trim() !== '0') throw new Error(`redis ledger exited ${waited.stdout.trim()}: ${logs.stdout}${logs.stderr}`);
      const summary = JSON.parse(logs.stdout.trim().split('\n').at(-1)!) as RedisLedger['summary'];
      const verify = await run('docker', ['run', '--rm', '-e', 'VERIFY=1', ...base], { timeoutMs: 120_000 });
      if (verify.code !== 0) throw new Error(`redis ledger check failed: ${verify.stdout}${verify.stderr}`);
      const check = JSON.parse(verify.stdout.trim().split('\n').at(-1)!) as RedisLedger['check'];
      if (check.acked === 0) throw new Error(`the Redis ledger acknowledged no write: ${JSON.stringify(summary.errors)}`);
      return { summary, check };
    },
  };
}

export const redisText = (r: RedisLedger) =>
  `redis: ${r.check.acked} SETs acknowledged, ${r.check.lost} lost; counter ${r.check.counter} for ${r.check.incrAcked} acknowledged INCRs (${r.check.incrAttempts} attempted)`;

/** Acknowledged ledger ids missing from the table, read over the Postgres container's socket (prod has no published port). */
export async function lostInserts(stack: Stack, writer: string, acked: number[]): Promise<number> {
  const present = new Set((await superSql(stack, `SELECT id FROM ledger WHERE writer = '${writer}'`)).map((r) => Number(r[0])));
  return acked.filter((id) => !present.has(id)).length;
}

/** Acknowledged ids missing from the table (must be none). */
export async function lostWrites(stack: Stack, port: number, writer: string, acked: number[]): Promise<number> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: stack.env.APP_USER, password: stack.env.APP_PASSWORD, database: stack.env.APP_DB });
  await c.connect();
  try {
    const rows = await c.query('SELECT id FROM ledger WHERE writer = $1', [writer]);
    const present = new Set(rows.rows.map((r) => Number(r.id)));
    return acked.filter((id) => !present.has(id)).length;
  } finally {
    await c.end();
  }
}

async function netnsOf(container: string): Promise<{ pid: string; ips: string[] }> {
  const r = await run('docker', ['inspect', '-f', '{{.State.Pid}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}', container]);
  const [pid = '', ...ips] = r.stdout.trim().split(/\s+/);
  if (r.code !== 0 || !/^[1-9]\d*$/.test(pid) || ips.length === 0) throw new Error(`no running container ${container} with an address: ${r.stdout}${r.stderr}`);
  return { pid, ips };
}

async function iptablesIn(pid: string, args: string[]): Promise<void> {
  const r = await run('nsenter', ['-t', pid, '-n', 'iptables', '-w', ...args]);
  if (r.code !== 0) throw new Error(`nsenter -t ${pid} -n iptables ${args.join(' ')} failed: ${r.stderr}`);
}

/**
 * A network partition between two containers: every packet from one to the other is dropped on
 * arrival, in each one's network namespace (iptables through nsenter from the host), so each
 * peer sees a black hole (no reset, no "unreachable"), and nothing else is cut. Returns heal().
 */
export async function partition(a: string, b: string): Promise<() => Promise<void>> {
  const [na, nb] = await Promise.all([netnsOf(a), netnsOf(b)]);
  const rules: [string, string[]][] = [
    ...nb.ips.map((ip): [string, string[]] => [na.pid, ['INPUT', '-s', ip, '-j', 'DROP']]),
    ...na.ips.map((ip): [string, string[]] => [nb.pid, ['INPUT', '-s', ip, '-j', 'DROP']]),
  ];
  for (const [pid, rule] of rules) await iptablesIn(pid, ['-I', ...rule]);
  return async () => {
    for (const [pid, rule] of rules) await iptablesIn(pid, ['-D', ...rule]);
  };
}

/** Polls until check() passes; returns the ms it took. */
export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, stepMs = 100, context?: () => Promise<string>): Promise<number> {
  return (await until(what, async () => (await check()) || undefined, timeoutMs, stepMs, context)).ms;
}

export async function pgReady(port: number, env: Record<string, string>): Promise<boolean> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: env.APP_USER, password: env.APP_PASSWORD, database: env.APP_DB, connectionTimeoutMillis: 1000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

export interface ReportRow {
  scenario: string;
  load: string;
  injected: string;
  figures: string;
}

/** Where a run leaves its rows, the stacks' settings and (make reliability) vitest's results. */
export const RELIABILITY_DIR = join(ROOT, 'sidecar/.reliability');
export const ROWS_FILE = join(RELIABILITY_DIR, 'rows.jsonl');
export const SETTINGS_FILE = join(RELIABILITY_DIR, 'settings.jsonl');

/**
 * A row of the report, committed when the test finishes, with the test's file, name and final
 * state: the report program takes rows of passed tests only, and refuses to write while any
 * test failed, was skipped, or passed without a row.
 */
export function record(row: ReportRow): void {
  onTestFinished(({ task }) => {
    mkdirSync(RELIABILITY_DIR, { recursive: true });
    const entry = { ...row, file: basename(task.file.filepath), test: task.name, state: task.result?.state ?? 'unknown' };
    appendFileSync(ROWS_FILE, JSON.stringify(entry) + '\n');
    console.log(`[reliability] ${row.scenario} (${entry.state}): ${row.figures}`);
  });
}

/**
 * The settings a stack really runs with, for the report's header: PgBouncer's SHOW CONFIG
 * (pool sizes, timeouts), the versions of PgBouncer, Postgres and Redis, the sidecar's poll and
 * alert timings from its container's environment, and the host's cores. Read, never typed.
 */
export async function recordSettings(stack: Stack): Promise<void> {
  const ids = Object.fromEntries((await stack.containers()).map((c) => [c.service, c.id]));
  const admin = async (sql: string) => {
    const r = await run('docker', ['exec', ids.pgbouncer!, 'pgbouncer-admin', '-At', '-F', '\t', '-c', sql]);
    if (r.code !== 0 || r.stdout.trim() === '') throw new Error(`pgbouncer-admin -c '${sql}' read nothing: ${r.stderr}`);
    return r.stdout.trim().split('\n').map((l) => l.split('\t'));
  };
  const config = Object.fromEntries((await admin('SHOW CONFIG')).map(([k, v]) => [k!, v ?? '']));
  const pgbouncerVersion = (await admin('SHOW VERSION'))[0]![0]!;
  const pgv = await run('docker', ['exec', ids.postgres!, 'psql', '-X', '-h', '/var/run/postgresql', '-U', 'postgres', '-d', 'postgres', '-Atc', "SELECT current_setting('server_version') || '|' || current_setting('max_connections') || '|' || current_setting('superuser_reserved_connections')"]);
  const [postgresVersion, maxConnections, superuserReserved] = pgv.stdout.trim().split('|');
  if (!/^\d+$/.test(maxConnections ?? '') || !/^\d+$/.test(superuserReserved ?? '')) throw new Error(`settings of ${stack.project}: unreadable Postgres settings "${pgv.stdout.trim()}" ${pgv.stderr}`);
  const redisv = await run('docker', ['exec', ids.redis!, 'redis-server', '--version']);
  const sidecarEnv = Object.fromEntries((await stack.inspect(ids.sidecar!)).Config.Env.filter((e) => e.startsWith('SIDECAR_') && !/PASSWORD|TOKEN/.test(e)).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  const settings = {
    stack: `${stack.project} (${basename(stack.file)})`,
    cores: cpus().length,
    pgbouncer: pgbouncerVersion,
    postgres: postgresVersion,
    redis: /v=(\S+)/.exec(redisv.stdout)?.[1],
    max_connections: maxConnections,
    superuser_reserved_connections: superuserReserved,
    ...Object.fromEntries(['pool_mode', 'default_pool_size', 'min_pool_size', 'reserve_pool_size', 'reserve_pool_timeout', 'max_client_conn', 'max_db_connections', 'query_wait_timeout', 'idle_transaction_timeout', 'server_idle_timeout', 'client_tls_sslmode'].map((k) => [k, config[k]])),
    sidecar_poll_interval_ms: sidecarEnv.SIDECAR_POLL_INTERVAL_MS,
    sidecar_down_poll_interval_ms: sidecarEnv.SIDECAR_DOWN_POLL_INTERVAL_MS,
    sidecar_alert_for_ms: sidecarEnv.SIDECAR_ALERT_FOR_MS,
    sidecar_alert_resolve_for_ms: sidecarEnv.SIDECAR_ALERT_RESOLVE_FOR_MS,
  };
  const missing = Object.entries(settings).filter(([, v]) => v === undefined || v === '').map(([k]) => k);
  if (missing.length) throw new Error(`settings of ${stack.project} read nothing for: ${missing.join(', ')}`);
  mkdirSync(RELIABILITY_DIR, { recursive: true });
  appendFileSync(SETTINGS_FILE, JSON.stringify(settings) + '\n');
}

export function errorsText(errors: Record<string, number>): string {
  const entries = Object.entries(errors);
  if (entries.length === 0) return 'no client errors';
  return (
    entries.slice(0, 3).map(([m, n]) => `${n}× "${m.slice(0, 70)}"`).join(', ') + (entries.length > 3 ? `, +${entries.length - 3} other kinds` : '')
  );
}
