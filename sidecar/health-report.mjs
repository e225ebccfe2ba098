#!/usr/bin/env node
// Usage: node /app/health-report.mjs   (inside the running sidecar container; `make up` calls it)
// One look at the sidecar's /health, in words. Plain ESM, no dependencies, Node 20's global fetch.
//
//   SIDECAR_PORT        port on 127.0.0.1 [8787]
//   SIDECAR_TOKEN       bearer token; or SIDECAR_TOKEN_FILE (its contents, trailing newline
//                       stripped). Without it a token-protected sidecar hides error text and versions.
//   REPORT_WAIT_MS      keep asking every 500 ms while the answer is not 200, for up to this long
//                       [15000]: a backend can be briefly down right after start.
//
// Exit 0: every backend healthy. 1: the sidecar answers, not healthy (one line per problem).
// 2: nothing answers on 127.0.0.1:<port>. The token is never printed.
import { readFileSync } from 'node:fs';

const RETRY_EVERY_MS = 500;
const ATTEMPT_TIMEOUT_MS = 5000;

const env = process.env;
const port = env.SIDECAR_PORT || '8787';
const waitMs = /^[0-9]+$/.test(env.REPORT_WAIT_MS ?? '') ? Number(env.REPORT_WAIT_MS) : 15000;

function readToken() {
  if (env.SIDECAR_TOKEN) return env.SIDECAR_TOKEN;
  const file = env.SIDECAR_TOKEN_FILE;
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '') || undefined;
  } catch (err) {
    // Go on without it: the (redacted) report is still worth having.
    console.error(`health: cannot read SIDECAR_TOKEN_FILE ${file} (${err.code ?? 'error'}); asking without the token`);
    return undefined;
  }
}
const token = readToken();
const headers = token ? { authorization: `Bearer ${token}` } : {};
const url = `http://127.0.0.1:${port}/health`;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// Whatever is printed, the token is not (should anything ever echo it back).
const say = (line) => console.log(token ? line.split(token).join('<token>') : line);
// One line per item, whatever the backend put in its error text.
const oneLine = (s) => String(s).replace(/\s+/g, ' ').trim();

/** @returns {Promise<{ status: number, text: string } | { error: string }>} */
async function attempt(deadline) {
  const timeout = Math.min(ATTEMPT_TIMEOUT_MS, Math.max(1000, deadline - Date.now()));
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeout), redirect: 'manual' });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    const cause = err?.cause;
    const why = cause?.code ?? cause?.message ?? (err?.name === 'TimeoutError' ? `no answer within ${timeout} ms` : err?.message) ?? String(err);
    return { error: oneLine(why) };
  }
}

/** Prints the report; returns the exit code. */
async function main() {
  if (!/^[0-9]{1,5}$/.test(port)) {
    say(`health: SIDECAR_PORT must be a port number, got '${port}'`);
    return 2;
  }
  const deadline = Date.now() + waitMs;
  let last = await attempt(deadline);
  while ((last.error !== undefined || last.status !== 200) && Date.now() + RETRY_EVERY_MS <= deadline) {
    await sleep(RETRY_EVERY_MS);
    last = await attempt(deadline);
  }

  if (last.error !== undefined) {
    say(`health: the sidecar does not answer on 127.0.0.1:${port} (${last.error})`);
    return 2;
  }

  let body;
  try {
    body = JSON.parse(last.text);
  } catch {
    body = undefined;
  }
  const isObject = (v) => v !== null && typeof v === 'object';
  const part = (name) => (isObject(body) && isObject(body[name]) ? body[name] : undefined);

  // Replicas never make /health 503 (reads move to the primary): said, not failed.
  const replicas = isObject(body) && Array.isArray(body.replicas) ? body.replicas.filter(isObject) : [];
  const replicaText = (r) => `${r.instance ?? '?'} ${r.status ?? '?'}${typeof r.lagSeconds === 'number' ? `, lag ${r.lagSeconds} s` : ''}`;
  if (last.status === 200) {
    const v = (x) => (typeof x === 'string' && x !== '' ? x : 'version unknown');
    const rs = replicas.length ? `, replica ${replicas.map(replicaText).join(', ')}` : '';
    say(`health: ${body?.degraded === true ? 'DEGRADED: every backend healthy but a replica' : 'all backends healthy'} (pgbouncer ${v(part('pgbouncer')?.version)}, postgres ${v(part('postgres')?.version)}, redis ${part('redis')?.status ?? 'status unknown'}${rs})`);
    for (const r of replicas.filter((x) => x.healthy !== true)) {
      say(`  - replica ${replicaText(r)}${r.reason ? `: ${oneLine(r.reason)}` : ''}${r.lastError ? ` — ${oneLine(r.lastError)}` : ''} (reads go to the primary meanwhile)`);
    }
    return 0;
  }

  say(`health: NOT healthy (HTTP ${last.status})`);
  if (!isObject(body) || !['database', 'pgbouncer', 'postgres', 'redis'].every((k) => part(k))) {
    say(`  - the answer is not a /health body: ${oneLine(last.text).slice(0, 200) || '(empty)'}`);
    return 1;
  }
  const lines = [];
  if (body.isShuttingDown === true) lines.push('  - sidecar: shutting down');
  for (const [name, flag] of [['database', 'healthy'], ['pgbouncer', 'healthy'], ['postgres', 'healthy'], ['redis', 'available']]) {
    const p = part(name);
    if (p[flag] === true) continue;
    const error = p.lastError ? ` — ${oneLine(p.lastError)}` : '';
    const poll = p.lastPollAt ? `last poll ${p.lastPollAt}` : 'not polled yet';
    lines.push(`  - ${name}: down${error} (${poll})`);
  }
  // healthy is false with every part up only before the first poll has finished.
  if (lines.length === 0) lines.push('  - sidecar: the first poll has not finished yet');
  for (const line of lines) say(line);
  return 1;
}

process.exitCode = await main();
