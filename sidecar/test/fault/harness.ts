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
  result: () => Promise<{ summary: LoadSummary; ackedIds: number[]; acks: Ack[] }>;
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
    '-e', `RECONNECT_EVERY=${opts.reconnectEvery ?? 0}`,
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
      return { summary, ackedIds: acks.map((a) => a.id), acks };
    },
  };
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
