// Helpers for the fault suite: the load generator container, health polling, the ledger check
// and the generated report (docs/reliability.md).
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
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

export interface LoadRun {
  name: string;
  startedAt: number;
  result: () => Promise<{ summary: LoadSummary; ackedIds: number[] }>;
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
      return { summary, ackedIds: text.split('\n').filter(Boolean).map(Number) };
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

/** Rows of docs/reliability.md: appended by each test file, rendered once by the global teardown. */
export const ROWS_FILE = join(ROOT, 'sidecar/.reliability-rows.jsonl');

export function record(row: ReportRow): void {
  appendFileSync(ROWS_FILE, JSON.stringify(row) + '\n');
  console.log(`[reliability] ${row.scenario}: ${row.figures}`);
}

export function writeReport(meta: string): void {
  if (!existsSync(ROWS_FILE)) return;
  const rows = readFileSync(ROWS_FILE, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as ReportRow);
  if (rows.length === 0) return;
  rows.sort((a, b) => a.scenario.localeCompare(b.scenario, 'en', { numeric: true }));
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const text = [
    '# poolguard reliability report',
    '',
    '<!-- Generated by the fault suite (sidecar/test/fault, `make test`); do not edit by hand. -->',
    '',
    meta,
    '',
    '| scenario | load | injected | measured |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${esc(r.scenario)} | ${esc(r.load)} | ${esc(r.injected)} | ${esc(r.figures)} |`),
    '',
  ].join('\n');
  mkdirSync(join(ROOT, 'docs'), { recursive: true });
  writeFileSync(join(ROOT, 'docs/reliability.md'), text);
}

export function errorsText(errors: Record<string, number>): string {
  const entries = Object.entries(errors);
  if (entries.length === 0) return 'no client errors';
  return (
    entries.slice(0, 3).map(([m, n]) => `${n}× "${m.slice(0, 70)}"`).join(', ') + (entries.length > 3 ? `, +${entries.length - 3} other kinds` : '')
  );
}
