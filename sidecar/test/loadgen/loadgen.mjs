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
//              QUERY_TIMEOUT_MS client-side bound on every query (0 = none): what an app sets so a
//                               black-holed connection errors instead of hanging
//              BANK_CLIENTS     extra clients doing bank transfers (default 0): read two balances,
//                               write both back moved by an amount and record the transfer, in one
//                               BANK_ISOLATION transaction (serializable | repeatable read), over
//                               BANK_ACCOUNTS accounts of bank_accounts (writer = $WRITER, seeded
//                               by the harness). Acknowledged transfers go to
//                               $OUT/transfers-$WRITER.txt as "id startMs endMs"; the total of the
//                               balances must never change, and each balance must equal the
//                               seed plus its transfers (no lost update, partial or duplicate).
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
const queryTimeoutMs = Number(env.QUERY_TIMEOUT_MS ?? 0);
const bankClients = Math.min(200, Number(env.BANK_CLIENTS ?? 0));
const bankAccounts = Number(env.BANK_ACCOUNTS ?? 20);
const bankIsolation = env.BANK_ISOLATION ?? 'serializable';
if (!['serializable', 'repeatable read'].includes(bankIsolation)) throw new Error(`BANK_ISOLATION must be serializable or repeatable read, got ${bankIsolation}`);
const password = env.PGPASSWORD_FILE ? () => readFileSync(env.PGPASSWORD_FILE, 'utf8').replace(/\n$/, '') : undefined;

const t0 = Date.now();
const deadline = t0 + durationMs;
let stopping = false;
const stop = () => { stopping = true; };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

const acked = [];
const transfers = [];
let bankAttempts = 0;
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

// One insert into the ledger: acknowledged means this id must survive anything.
async function insertTxn(client, index, seq) {
  const id = idBase + index * 10_000_000 + seq;
  const started = Date.now();
  await client.query('BEGIN');
  await client.query('INSERT INTO ledger (id, writer, amount) VALUES ($1, $2, $3)', [id, writer, index]);
  await client.query('COMMIT');
  acked.push(`${id} ${started} ${Date.now()}`);
}

// One transfer: read both balances, write them back moved by amount, record it. The isolation
// level must turn a concurrent change of either balance into a serialization failure (40001).
async function bankTxn(client, index, seq) {
  const id = idBase + 5_000_000_000 + index * 10_000_000 + seq;
  const src = Math.floor(Math.random() * bankAccounts);
  let dst = Math.floor(Math.random() * (bankAccounts - 1));
  if (dst >= src) dst += 1;
  const started = Date.now();
  bankAttempts += 1;
  await client.query(`BEGIN ISOLATION LEVEL ${bankIsolation.toUpperCase()}`);
  try {
    const rows = (await client.query('SELECT id, balance FROM bank_accounts WHERE writer = $1 AND id = ANY($2::int[])', [writer, [src, dst]])).rows;
    const balance = Object.fromEntries(rows.map((r) => [r.id, Number(r.balance)]));
    if (balance[src] === undefined || balance[dst] === undefined) throw new Error(`bank_accounts has no accounts ${src} and ${dst} for ${writer} (not seeded)`);
    const amount = Math.min(balance[src], 1 + Math.floor(Math.random() * 10));
    await client.query('UPDATE bank_accounts SET balance = $3 WHERE writer = $1 AND id = $2', [writer, src, balance[src] - amount]);
    await client.query('UPDATE bank_accounts SET balance = $3 WHERE writer = $1 AND id = $2', [writer, dst, balance[dst] + amount]);
    await client.query('INSERT INTO bank_transfers (id, writer, src, dst, amount) VALUES ($1, $2, $3, $4, $5)', [id, writer, src, dst, amount]);
    await client.query('COMMIT');
  } catch (err) {
    // A server error (a SQLSTATE: 40001 above all) leaves a connection to roll back and reuse; a
    // timeout or a broken connection does not (a ROLLBACK would only wait out the timeout again).
    if (/^[0-9A-Z]{5}$/.test(err?.code ?? '')) await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  transfers.push(`${id} ${started} ${Date.now()}`);
}

async function worker(index, txn) {
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
      const c = new pg.Client({
        connectionTimeoutMillis, application_name: `loadgen-${index}`, ...(queryTimeoutMs > 0 ? { query_timeout: queryTimeoutMs } : {}),
        ...(ssl ? { ssl } : {}), ...(password ? { password } : {}),
      });
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
    const started = Date.now();
    attempts += 1;
    try {
      await txn(client, index, seq);
      bump('acked');
      onThisConnection += 1;
    } catch (err) {
      noteError(err);
      // A serialization failure leaves the connection usable; anything else may not have.
      if (err?.code !== '40001') {
        client.end().catch(() => undefined);
        client = undefined;
        await sleep(100);
      }
    } finally {
      seq += 1;
      longestAttemptMs = Math.max(longestAttemptMs, Date.now() - started);
    }
    if (thinkMs > 0) await sleep(thinkMs);
  }
  await client?.end().catch(() => undefined);
}

await Promise.all([
  ...Array.from({ length: clients }, (_, i) => worker(i, insertTxn)),
  ...Array.from({ length: bankClients }, (_, i) => worker(clients + i, bankTxn)),
]);
writeFileSync(`${out}/acked-${writer}.txt`, acked.join('\n') + (acked.length ? '\n' : ''));
writeFileSync(`${out}/transfers-${writer}.txt`, transfers.join('\n') + (transfers.length ? '\n' : ''));
const summary = {
  writer,
  clients,
  durationMs: Date.now() - t0,
  attempts,
  acked: acked.length,
  bankClients,
  bankAttempts,
  transfers: transfers.length,
  errors: Object.fromEntries([...errors].sort((a, b) => b[1] - a[1])),
  longestAttemptMs,
  timeline: [...timeline].sort((a, b) => a[0] - b[0]).map(([s, v]) => ({ s, ...v })),
};
process.stdout.write(JSON.stringify(summary) + '\n');
process.exit(0);
