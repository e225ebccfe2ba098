// poolguard load generator: N clients doing write transactions through PgBouncer, recording
// every acknowledged commit (the ledger). Runs in a container on the stack's compose network
// (the migrate image: node + pg), mounted at /app/loadgen.mjs. Bounded: stops at DURATION_MS
// or on SIGTERM/SIGINT, finishing the transactions in flight, then writes:
//   $OUT/acked-$WRITER.txt   one acknowledged commit per line: "id startMs endMs" (epoch ms of
//                            BEGIN and of the COMMIT's acknowledgement)
//   stdout                   a JSON summary (acked, errors by message, longest attempt, timeline)
// Environment: PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE CLIENTS DURATION_MS WRITER OUT ID_BASE
//              THINK_MS (pause between transactions, default 20), CONNECT_TIMEOUT_MS (5000)
//              PGPASSWORD_FILE  read the password from this file at every connection (as an app
//                               that re-reads its secret would; instead of PGPASSWORD)
//              PG_CA_FILE       TLS with verify-full against this CA (PgBouncer in prod)
//              RECONNECT_EVERY  open a new connection after this many transactions (0 = never)
import { readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';

const env = process.env;
const clients = Math.min(500, Number(env.CLIENTS ?? 90));
const durationMs = Math.min(600_000, Number(env.DURATION_MS ?? 20_000));
const thinkMs = Number(env.THINK_MS ?? 20);
const writer = env.WRITER ?? `run-${Date.now()}`;
const out = env.OUT ?? '/out';
const connectionTimeoutMillis = Number(env.CONNECT_TIMEOUT_MS ?? 5000);
// Ids: ID_BASE + client * 10^7 + sequence, unique across runs that use distinct bases.
const idBase = Number(env.ID_BASE ?? Date.now() * 1000);
const reconnectEvery = Number(env.RECONNECT_EVERY ?? 0);
const ssl = env.PG_CA_FILE ? { ca: readFileSync(env.PG_CA_FILE, 'utf8'), servername: env.PGHOST, rejectUnauthorized: true } : undefined;
const password = env.PGPASSWORD_FILE ? () => readFileSync(env.PGPASSWORD_FILE, 'utf8').replace(/\n$/, '') : undefined;

const t0 = Date.now();
const deadline = t0 + durationMs;
let stopping = false;
const stop = () => { stopping = true; };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

const acked = [];
const errors = new Map();
const timeline = new Map(); // second -> { acked, errors }
let longestAttemptMs = 0;
let attempts = 0;
const sec = () => Math.floor((Date.now() - t0) / 1000);
const bump = (field) => {
  const s = sec();
  const e = timeline.get(s) ?? { acked: 0, errors: 0 };
  e[field] += 1;
  timeline.set(s, e);
};
const noteError = (err) => {
  const msg = (err && (err.message || err.code)) || String(err);
  errors.set(msg, (errors.get(msg) ?? 0) + 1);
  bump('errors');
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function worker(index) {
  let seq = 0;
  let client;
  let onThisConnection = 0;
  while (!stopping && Date.now() < deadline) {
    if (client && reconnectEvery > 0 && onThisConnection >= reconnectEvery) {
      await client.end().catch(() => undefined);
      client = undefined;
    }
    if (!client) {
      onThisConnection = 0;
      const c = new pg.Client({ connectionTimeoutMillis, application_name: `loadgen-${index}`, ...(ssl ? { ssl } : {}), ...(password ? { password } : {}) });
      c.on('error', () => undefined);
      try {
        await c.connect();
        client = c;
      } catch (err) {
        noteError(err);
        c.end().catch(() => undefined);
        await sleep(200);
        continue;
      }
    }
    const id = idBase + index * 10_000_000 + seq;
    seq += 1;
    const started = Date.now();
    attempts += 1;
    try {
      await client.query('BEGIN');
      await client.query('INSERT INTO ledger (id, writer, amount) VALUES ($1, $2, $3)', [id, writer, index]);
      await client.query('COMMIT');
      acked.push(`${id} ${started} ${Date.now()}`); // acknowledged: this id must survive anything
      bump('acked');
      onThisConnection += 1;
    } catch (err) {
      noteError(err);
      client.end().catch(() => undefined);
      client = undefined;
      await sleep(100);
    } finally {
      longestAttemptMs = Math.max(longestAttemptMs, Date.now() - started);
    }
    if (thinkMs > 0) await sleep(thinkMs);
  }
  await client?.end().catch(() => undefined);
}

await Promise.all(Array.from({ length: clients }, (_, i) => worker(i)));
writeFileSync(`${out}/acked-${writer}.txt`, acked.join('\n') + (acked.length ? '\n' : ''));
const summary = {
  writer,
  clients,
  durationMs: Date.now() - t0,
  attempts,
  acked: acked.length,
  errors: Object.fromEntries([...errors].sort((a, b) => b[1] - a[1])),
  longestAttemptMs,
  timeline: [...timeline].sort((a, b) => a[0] - b[0]).map(([s, v]) => ({ s, ...v })),
};
process.stdout.write(JSON.stringify(summary) + '\n');
process.exit(0);
