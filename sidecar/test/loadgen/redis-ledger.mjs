// poolguard Redis ledger: N clients writing to Redis and recording every acknowledged write,
// then (VERIFY=1) a check that each one is still there. Runs in the sidecar image (node +
// ioredis in /app/node_modules), mounted at /app/redis-ledger.mjs, on the stack's network.
// Each client loops: SET $WRITER:<id> <id>, then INCR $WRITER:counter; a write counts as
// acknowledged when Redis replied OK / the new value. Commands are never queued offline or resent
// after a reconnect (an unanswered write is "unknown", not acknowledged), so the check is exact:
//   every acknowledged SET key exists with its value (lost = 0),
//   the counter is >= the acknowledged INCRs (a lower value lost increments) and <= the attempts.
// Environment: REDIS_HOST [redis] REDIS_PORT [6379] REDIS_PASSWORD | REDIS_PASSWORD_FILE
//              CLIENTS [10] DURATION_MS [20000] THINK_MS [10] WRITER OUT [/out]
//              COMMAND_TIMEOUT_MS [2000]
//              VERIFY=1   read $OUT/redis-$WRITER.json and check it against Redis instead
// Output: write mode: $OUT/redis-$WRITER.json {acked ids, incrAcked, incrAttempts} and a JSON
// summary on stdout (perSecond: acknowledged SETs in each second of the run; the longest attempt
// and the longest single command with when they started, ms since the start; maxLoopDelayMs: how
// late this process's timers ran at worst); verify mode: {acked, lost, missing (first 10), counter, incrAcked, incrAttempts}.
import { readFileSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Redis from 'ioredis';

const env = process.env;
const writer = env.WRITER;
if (!writer) throw new Error('WRITER is required');
const out = env.OUT ?? '/out';
const password = env.REDIS_PASSWORD_FILE ? readFileSync(env.REDIS_PASSWORD_FILE, 'utf8').replace(/\r?\n$/, '') : env.REDIS_PASSWORD;
const options = {
  host: env.REDIS_HOST ?? 'redis',
  port: Number(env.REDIS_PORT ?? 6379),
  password,
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  commandTimeout: Number(env.COMMAND_TIMEOUT_MS ?? 2000),
  retryStrategy: () => 200,
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ledgerFile = `${out}/redis-${writer}.json`;

if (env.VERIFY === '1') {
  const written = JSON.parse(readFileSync(ledgerFile, 'utf8'));
  const r = new Redis({ ...options, retryStrategy: () => null });
  await r.connect();
  const missing = [];
  for (let i = 0; i < written.acked.length; i += 1000) {
    const ids = written.acked.slice(i, i + 1000);
    const values = await r.mget(ids.map((id) => `${writer}:${id}`));
    ids.forEach((id, k) => { if (values[k] !== String(id)) missing.push(id); });
  }
  const counter = Number((await r.get(`${writer}:counter`)) ?? 0);
  await r.quit();
  process.stdout.write(JSON.stringify({ acked: written.acked.length, lost: missing.length, missing: missing.slice(0, 10), counter, incrAcked: written.incrAcked, incrAttempts: written.incrAttempts }) + '\n');
  process.exit(0);
}

const clients = Math.min(200, Number(env.CLIENTS ?? 10));
const durationMs = Math.min(600_000, Number(env.DURATION_MS ?? 20_000));
const thinkMs = Number(env.THINK_MS ?? 10);
const t0 = Date.now();
const deadline = t0 + durationMs;
const acked = [];
let incrAcked = 0;
let incrAttempts = 0;
let attempts = 0;
let longestAttemptMs = 0;
let longestAttemptAtMs = 0;
/** The longest single command (SET or INCR) from send to reply or error, and when it started. */
let longestCommandMs = 0;
let longestCommandAtMs = 0;
// How late this process's own timers ran (a busy machine delays every timer, ioredis's
// commandTimeout included): the summary reports the worst, so a late timeout is told apart from a
// command that hung.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const timed = async (promise) => {
  const started = Date.now();
  try {
    return await promise;
  } finally {
    const ms = Date.now() - started;
    if (ms > longestCommandMs) { longestCommandMs = ms; longestCommandAtMs = started - t0; }
  }
};
/** Acknowledged SETs per second since the start (index = second): shows when writes stopped and resumed. */
const perSecond = [];
const errors = new Map();
const noteError = (err) => {
  const msg = (err && err.message) || String(err);
  errors.set(msg, (errors.get(msg) ?? 0) + 1);
};

async function worker(index) {
  const r = new Redis(options);
  r.on('error', () => undefined);
  await r.connect().catch(noteError);
  let seq = 0;
  while (Date.now() < deadline) {
    const id = index * 10_000_000 + seq;
    seq += 1;
    const started = Date.now();
    attempts += 1;
    try {
      if ((await timed(r.set(`${writer}:${id}`, String(id)))) !== 'OK') throw new Error('SET did not answer OK');
      acked.push(id);
      const sec = Math.floor((Date.now() - t0) / 1000);
      perSecond[sec] = (perSecond[sec] ?? 0) + 1;
      incrAttempts += 1;
      await timed(r.incr(`${writer}:counter`));
      incrAcked += 1;
    } catch (err) {
      noteError(err);
      await sleep(100);
    } finally {
      if (Date.now() - started > longestAttemptMs) { longestAttemptMs = Date.now() - started; longestAttemptAtMs = started - t0; }
    }
    if (thinkMs > 0) await sleep(thinkMs);
  }
  r.disconnect();
}

await Promise.all(Array.from({ length: clients }, (_, i) => worker(i)));
loopDelay.disable();
writeFileSync(ledgerFile, JSON.stringify({ acked, incrAcked, incrAttempts }));
process.stdout.write(JSON.stringify({
  writer, clients, durationMs: Date.now() - t0, attempts, acked: acked.length, incrAcked, incrAttempts, longestAttemptMs, longestAttemptAtMs, longestCommandMs, longestCommandAtMs,
  maxLoopDelayMs: Math.round(loopDelay.max / 1e6),
  perSecond: Array.from(perSecond, (n) => n ?? 0),
  errors: Object.fromEntries([...errors].sort((a, b) => b[1] - a[1])),
}) + '\n');
process.exit(0);
