// Helpers for the fault suite: the load generator container, health polling, the ledger check,
// and the rows and stack settings behind docs/reliability.md. A test run writes them to
// sidecar/.reliability/ (ignored by git); only `make reliability` turns a run whose every test
// passed into docs/reliability.md (scripts/reliability-report.mjs).
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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
 * Runs one of sidecar/test/loadgen's node scripts detached in a project image, labelled with the
 * stack's project (so `down` removes it too); result() waits for it to exit 0 and returns the
 * JSON of its last stdout line. Every test client container goes through here.
 */
export async function startScript(
  stack: Stack,
  opts: { script: string; name: string; image: 'migrate' | 'sidecar'; env: Record<string, string | number>; args?: string[]; network?: string; timeoutMs: number },
): Promise<{ name: string; startedAt: number; result: <T>() => Promise<T> }> {
  const name = `${stack.project}-${opts.name}`;
  const args = [
    'run', '-d', '--name', name, '--label', `com.docker.compose.project=${stack.project}`, '--network', opts.network ?? `${stack.project}_backend`,
    ...Object.entries(opts.env).flatMap(([k, v]) => ['-e', `${k}=${v}`]), ...(opts.args ?? []),
    '-v', `${join(ROOT, 'sidecar/test/loadgen', opts.script)}:/app/${opts.script}:ro`, '--entrypoint', 'node', image(opts.image), `/app/${opts.script}`,
  ];
  await run('docker', ['rm', '-f', name]);
  const started = await run('docker', args);
  if (started.code !== 0) throw new Error(`${opts.script} did not start: ${started.stderr}`);
  return {
    name,
    startedAt: Date.now(),
    result: async <T>() => {
      const waited = await run('docker', ['wait', name], { timeoutMs: opts.timeoutMs });
      const logs = await run('docker', ['logs', name]);
      await run('docker', ['rm', '-f', name]);
      if (waited.stdout.trim() !== '0') throw new Error(`${opts.script} (${name}) exited ${waited.stdout.trim() || '?'}: ${logs.stdout}${logs.stderr}`);
      const last = logs.stdout.trim().split('\n').at(-1) ?? '';
      try {
        return JSON.parse(last) as T;
      } catch {
        throw new Error(`${opts.script} (${name}) printed no JSON summary: ${logs.stdout.slice(-500)}${logs.stderr.slice(-500)}`);
      }
    },
  };
}

/** A scratch folder the script containers (another uid) can write. */
function outDir(prefix: string): string {
  const out = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(out, 0o777);
  return out;
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
  const out = outDir('poolguard-load-');
  const target: Record<string, string | number> = opts.hostNetworkPort ? { PGHOST: '127.0.0.1', PGPORT: opts.hostNetworkPort } : { PGHOST: 'pgbouncer', PGPORT: 6432 };
  const auth: Record<string, string> = opts.secretsDir
    ? { PGPASSWORD_FILE: '/secrets/app_password', PG_CA_FILE: '/secrets/tls_ca.crt' }
    : { PGPASSWORD: stack.env.APP_PASSWORD ?? '' };
  const script = await startScript(stack, {
    script: 'loadgen.mjs', name: `load-${opts.writer}`, image: 'migrate', timeoutMs: opts.durationMs + 120_000,
    network: opts.hostNetworkPort ? 'host' : undefined,
    env: {
      ...target, ...auth, PGUSER: stack.env.APP_USER ?? '', PGDATABASE: stack.env.APP_DB ?? '',
      RECONNECT_EVERY: opts.reconnectEvery ?? 0, BANK_CLIENTS: opts.bank ?? 0, BANK_ACCOUNTS, QUERY_TIMEOUT_MS: opts.queryTimeoutMs ?? 0,
      CLIENTS: opts.clients, DURATION_MS: opts.durationMs, WRITER: opts.writer, THINK_MS: opts.thinkMs ?? 20, ID_BASE: opts.idBase, OUT: '/out',
    },
    args: ['-v', `${out}:/out`, ...(opts.secretsDir ? ['-v', `${opts.secretsDir}:/secrets:ro`] : [])],
  });
  return {
    name: script.name,
    startedAt: script.startedAt,
    result: async () => {
      const summary = await script.result<LoadSummary>();
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

/**
 * psql as the superuser over a Postgres container's socket (dev and prod alike; the primary, or
 * the replica with service 'postgres-replica'); rows of tab-separated fields.
 */
export async function superSql(stack: Stack, sql: string, service: 'postgres' | 'postgres-replica' = 'postgres'): Promise<string[][]> {
  const r = await stack.exec(service, ['psql', '-X', '-v', 'ON_ERROR_STOP=1', '-h', '/var/run/postgresql', '-U', 'postgres', '-d', stack.env.APP_DB ?? 'app', '-At', '-F', '\t', '-c', sql]);
  if (r.code !== 0) throw new Error(`${service}: psql -c "${sql.slice(0, 80)}" failed: ${r.stderr}`);
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
  summary: { acked: number; incrAcked: number; incrAttempts: number; longestAttemptMs: number; longestAttemptAtMs: number; longestCommandMs: number; longestCommandAtMs: number; maxLoopDelayMs: number; errors: Record<string, number>; perSecond: number[] };
  check: { acked: number; lost: number; missing: number[]; counter: number; incrAcked: number; incrAttempts: number };
}

/**
 * Starts the Redis ledger (sidecar/test/loadgen/redis-ledger.mjs in the sidecar image) on the
 * stack's network; result() waits for it, then runs its check against Redis.
 */
export async function startRedisLedger(stack: Stack, opts: { clients: number; durationMs: number; writer: string; secretsDir?: string }): Promise<{ name: string; startedAt: number; result: () => Promise<RedisLedger> }> {
  const out = outDir('poolguard-redis-ledger-');
  const ledger = (name: string, env: Record<string, string | number>, timeoutMs: number) => startScript(stack, {
    script: 'redis-ledger.mjs', name, image: 'sidecar', timeoutMs,
    env: { ...env, WRITER: opts.writer, OUT: '/out', ...(opts.secretsDir ? { REDIS_PASSWORD_FILE: '/secrets/redis_password' } : { REDIS_PASSWORD: stack.env.REDIS_PASSWORD ?? '' }) },
    args: ['-v', `${out}:/out`, ...(opts.secretsDir ? ['-v', `${opts.secretsDir}:/secrets:ro`] : [])],
  });
  const writing = await ledger(`redis-ledger-${opts.writer}`, { CLIENTS: opts.clients, DURATION_MS: opts.durationMs }, opts.durationMs + 120_000);
  return {
    name: writing.name,
    startedAt: writing.startedAt,
    result: async () => {
      const summary = await writing.result<RedisLedger['summary']>();
      const check = await (await ledger(`redis-ledger-${opts.writer}-check`, { VERIFY: 1 }, 120_000)).result<RedisLedger['check']>();
      if (check.acked === 0) throw new Error(`the Redis ledger acknowledged no write: ${JSON.stringify(summary.errors)}`);
      return { summary, check };
    },
  };
}

export const redisText = (r: RedisLedger) =>
  `redis: ${r.check.acked} SETs acknowledged, ${r.check.lost} lost; counter ${r.check.counter} for ${r.check.incrAcked} acknowledged INCRs (${r.check.incrAttempts} attempted)`;

/**
 * The acknowledged ids of a writer missing from the ledger (must be none), read as the superuser
 * over a Postgres container's socket (dev and prod alike; the primary, or the replica).
 */
export async function lostInserts(stack: Stack, writer: string, acked: number[], service: 'postgres' | 'postgres-replica' = 'postgres'): Promise<number> {
  const present = new Set((await superSql(stack, `SELECT id FROM ledger WHERE writer = '${writer}'`, service)).map((r) => Number(r[0])));
  return acked.filter((id) => !present.has(id)).length;
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

/**
 * The memory high-water mark of a container's cgroup, in bytes, reset first when reset is set
 * (cgroup v1 memory.max_usage_in_bytes, v2 memory.peak; cgroupfs and systemd layouts). Throws
 * when none is readable: a reading of nothing never passes.
 */
export function cgroupMemoryPeak(fullId: string, reset = false): number {
  const root = '/sys/fs/cgroup';
  const files = [
    `${root}/memory/docker/${fullId}/memory.max_usage_in_bytes`, `${root}/memory/system.slice/docker-${fullId}.scope/memory.max_usage_in_bytes`,
    `${root}/system.slice/docker-${fullId}.scope/memory.peak`, `${root}/docker/${fullId}/memory.peak`,
  ];
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8').trim();
    } catch {
      continue;
    }
    if (!/^\d+$/.test(text)) continue;
    if (!reset) return Number(text);
    writeFileSync(f, '0');
    return Number(readFileSync(f, 'utf8').trim());
  }
  throw new Error(`no readable memory high-water mark for container ${fullId} (tried ${files.join(', ')})`);
}

/**
 * The host PID of a container's main process: PID 1, or its first child when PID 1 is tini (the
 * postgres and backup images run under tini, so that orphans are not reaped by the postmaster).
 * kill -9 of it is a crash of the server itself.
 */
export async function mainPid(container: string): Promise<{ pid: string; comm: string }> {
  const pid1 = (await run('docker', ['inspect', '-f', '{{.State.Pid}}', container])).stdout.trim();
  if (!/^[1-9]\d*$/.test(pid1)) throw new Error(`container ${container} has no running process (${pid1})`);
  const comm = (await run('ps', ['-o', 'comm=', '-p', pid1])).stdout.trim();
  if (comm !== 'tini') return { pid: pid1, comm };
  // tini is also the reaper of detached processes (pgBackRest's async archive-push): its first
  // child, the one it started, is the server.
  const first = (await run('ps', ['--ppid', pid1, '-o', 'pid=', '--sort=start_time'])).stdout.trim().split('\n')[0]?.trim() ?? '';
  if (!/^[1-9]\d*$/.test(first)) throw new Error(`tini (host PID ${pid1}) in ${container} has no child`);
  return { pid: first, comm: (await run('ps', ['-o', 'comm=', '-p', first])).stdout.trim() };
}

export type Backend = 'pgbouncer' | 'postgres' | 'redis';

/** Whether a /health body reports the backend down (Redis says available, the others healthy). */
export function backendDown(body: any, service: Backend): boolean {
  return service === 'redis' ? body?.redis?.available === false : body?.[service]?.healthy === false;
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
