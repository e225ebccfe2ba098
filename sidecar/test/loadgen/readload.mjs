// poolguard read load: N clients reading through the read URL (PgBouncer's read alias), each
// recording which server answered (pg_is_in_recovery(): the replica or the primary) and every
// failure, with times. Runs in a container on the stack's network (the migrate image: node +
// pg), mounted at /app/readload.mjs. Bounded: stops at DURATION_MS or on SIGTERM/SIGINT,
// finishing the queries in flight, then prints one JSON line:
//   { reads, replica, primary, errors: {message: n}, failures: [{atMs, client, message}] (the first 2000),
//     timeline: [[bucketStartMs, replicaAnswers, primaryAnswers, failures], ...] in 100 ms buckets,
//     firstPrimaryAt / lastPrimaryAt / firstReplicaAt / lastReplicaAt (epoch ms, null when none) }
// Environment: PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE CLIENTS DURATION_MS THINK_MS (10)
//              PGPASSWORD_FILE, PG_CA_FILE (as loadgen.mjs), QUERY_TIMEOUT_MS (5000)
import { readFileSync } from 'node:fs';
import pg from 'pg';

const env = process.env;
const clients = Math.min(200, Number(env.CLIENTS ?? 50));
const durationMs = Math.min(600_000, Number(env.DURATION_MS ?? 20_000));
const thinkMs = Number(env.THINK_MS ?? 10);
const queryTimeoutMs = Number(env.QUERY_TIMEOUT_MS ?? 5000);
const ssl = env.PG_CA_FILE ? { ca: readFileSync(env.PG_CA_FILE, 'utf8'), servername: env.PGHOST, rejectUnauthorized: true } : undefined;
const password = env.PGPASSWORD_FILE ? () => readFileSync(env.PGPASSWORD_FILE, 'utf8').replace(/\n$/, '') : undefined;

const t0 = Date.now();
const deadline = t0 + durationMs;
let stopping = false;
process.on('SIGTERM', () => { stopping = true; });
process.on('SIGINT', () => { stopping = true; });

const BUCKET_MS = 100;
const buckets = new Map(); // bucket start -> [replica, primary, failures]
const bump = (i) => {
  const b = Math.floor(Date.now() / BUCKET_MS) * BUCKET_MS;
  const row = buckets.get(b) ?? [0, 0, 0];
  row[i]++;
  buckets.set(b, row);
};
const seen = { r: { first: null, last: null }, p: { first: null, last: null } };
let reads = 0;
let replica = 0;
const failures = [];
const errors = new Map();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function client(index) {
  let c;
  while (!stopping && Date.now() < deadline) {
    try {
      if (!c) {
        c = new pg.Client({ ssl, connectionTimeoutMillis: 5000, query_timeout: queryTimeoutMs || undefined, ...(password ? { password } : {}) });
        c.on('error', () => undefined);
        await c.connect();
      }
      const r = await c.query('SELECT pg_is_in_recovery() AS r, (SELECT coalesce(max(id), 0) FROM ledger) AS max_id');
      const who = r.rows[0].r ? 'r' : 'p';
      const now = Date.now();
      seen[who].first ??= now;
      seen[who].last = now;
      reads++;
      if (who === 'r') replica++;
      bump(who === 'r' ? 0 : 1);
    } catch (err) {
      const message = String(err?.message ?? err).slice(0, 200);
      if (failures.length < 2000) failures.push({ atMs: Date.now(), client: index, message });
      bump(2);
      errors.set(message, (errors.get(message) ?? 0) + 1);
      const dead = c;
      c = undefined;
      await dead?.end().catch(() => undefined);
      await sleep(50);
      continue;
    }
    await sleep(thinkMs);
  }
  await c?.end().catch(() => undefined);
}

await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
console.log(JSON.stringify({
  reads, replica, primary: reads - replica, durationMs: Date.now() - t0, errors: Object.fromEntries(errors), failures,
  timeline: [...buckets].sort(([a], [b]) => a - b).map(([t, row]) => [t, ...row]),
  firstReplicaAt: seen.r.first, lastReplicaAt: seen.r.last, firstPrimaryAt: seen.p.first, lastPrimaryAt: seen.p.last,
}));
