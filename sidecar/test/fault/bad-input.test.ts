// Bad input against the real stack: passwords full of URL-special characters end to end, the
// sidecar's three connections with wrong credentials (clear errors, no crash, recovery once
// fixed), a PgBouncer database that does not exist, and hostile HTTP.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { connect } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, Stack, image, pgClient, pgConnectError, publish, run, sleep } from '../e2e/stack.js';
import { health, record, recordSettings, waitUntil } from './harness.js';

// Every character that breaks naive URL building, plus both quotes.
const special = (name: string) => `${name}-p@ss:w/rd%25#?&"dq'sq`;
const PORTS = { postgres: 45432, pgbouncer: 46432, redis: 46379, sidecar: 48787 };
const stack = Stack.dev('poolguard-test-badinput', {
  ...publish(PORTS),
  POSTGRES_PASSWORD: special('super'),
  APP_PASSWORD: special('app'),
  MONITOR_PASSWORD: special('mon'),
  PGBOUNCER_AUTH_PASSWORD: special('auth'),
  PGBOUNCER_ADMIN_PASSWORD: special('admin'),
  PGBOUNCER_STATS_PASSWORD: special('stats'),
  REDIS_PASSWORD: special('redis'),
  SIDECAR_POLL_INTERVAL_MS: '2000',
  SIDECAR_SOURCE_TIMEOUT_MS: '1000',
});
const env = stack.env;
const started: string[] = [];

/** A sidecar container on the stack's network with env overrides, published on a host port. */
async function sidecar(name: string, port: number, overrides: Record<string, string | undefined>): Promise<string> {
  const base: Record<string, string | undefined> = {
    SIDECAR_POLL_INTERVAL_MS: '1000',
    SIDECAR_SOURCE_TIMEOUT_MS: '800',
    SIDECAR_PGBOUNCER_PASSWORD: env.PGBOUNCER_STATS_PASSWORD,
    SIDECAR_POSTGRES_PASSWORD: env.MONITOR_PASSWORD,
    SIDECAR_REDIS_PASSWORD: env.REDIS_PASSWORD,
    ...overrides,
  };
  const envArgs = Object.entries(base).flatMap(([k, v]) => (v === undefined ? [] : ['-e', `${k}=${v}`]));
  const cname = `${stack.project}-${name}`;
  await run('docker', ['rm', '-f', cname]);
  const r = await run('docker', ['run', '-d', '--name', cname, '--label', `com.docker.compose.project=${stack.project}`, '--network', `${stack.project}_backend`, '-p', `127.0.0.1:${port}:8787`, ...envArgs, image('sidecar')]);
  if (r.code !== 0) throw new Error(r.stderr);
  started.push(cname);
  await waitUntil(`${name} listening`, async () => (await health(port)) !== undefined, 20_000);
  return cname;
}

async function running(cname: string): Promise<boolean> {
  const r = await run('docker', ['inspect', '-f', '{{.State.Running}} {{.RestartCount}}', cname]);
  return r.stdout.trim() === 'true 0';
}

async function adminSql(sql: string): Promise<void> {
  const r = await stack.exec('pgbouncer', ['pgbouncer-admin', '-c', sql]);
  if (r.code !== 0) throw new Error(r.stderr);
}

beforeAll(async () => {
  await stack.compose(['down', '-v', '--remove-orphans']);
  await stack.up();
  await recordSettings(stack);
});

afterAll(async () => {
  for (const c of started) await run('docker', ['rm', '-f', c]);
  await stack.down(true);
});

describe('passwords with @ : / % # ? & and quotes', () => {
  it('work end to end: every service healthy, the migration ran, percent-encoded URLs connect', async () => {
    const h = await health(PORTS.sidecar);
    expect(h?.status, JSON.stringify(h?.body)).toBe(200);
    const enc = encodeURIComponent;
    for (const [what, port] of [['pooled', PORTS.pgbouncer], ['direct', PORTS.postgres]] as const) {
      const c = new pg.Client({ connectionString: `postgresql://${enc(env.APP_USER!)}:${enc(env.APP_PASSWORD!)}@127.0.0.1:${port}/${enc(env.APP_DB!)}` });
      await c.connect();
      expect((await c.query("SELECT to_regclass('public.ledger') AS t")).rows[0].t, what).toBe('ledger');
      await c.end();
    }
    record({
      scenario: 'passwords with special characters',
      load: 'dev stack, every password of the form <name>-p@ss:w/rd%25#?&"dq\'sq',
      injected: '.env values, unquoted',
      figures: 'all services healthy, migration applied, percent-encoded DATABASE_URL and DATABASE_URL_DIRECT connect',
    });
  });
});

describe("the sidecar's connections with bad credentials", () => {
  it('wrong stats password, wrong monitor password, wrong Redis password, missing Redis password, unknown PgBouncer database: clear errors, the rest reported, no crash, recovery once fixed', async () => {
    const [pgb, mon, red, nored, nodb] = await Promise.all([
      sidecar('wrong-stats', 48801, { SIDECAR_PGBOUNCER_PASSWORD: 'wrong-stats-password' }),
      sidecar('wrong-monitor', 48802, { SIDECAR_POSTGRES_PASSWORD: 'wrong-monitor-password' }),
      sidecar('wrong-redis', 48803, { SIDECAR_REDIS_PASSWORD: 'wrong-redis-password' }),
      sidecar('no-redis-pw', 48804, { SIDECAR_REDIS_PASSWORD: undefined }),
      sidecar('no-db', 48805, { SIDECAR_PROBE_URL: 'postgres://poolguard_monitor@pgbouncer:6432/no_such_db' }),
    ]);
    await sleep(2500);
    const h = async (port: number) => (await health(port))!;
    const a = await h(48801);
    expect(a.status).toBe(503);
    expect(a.body.pgbouncer.lastError).toMatch(/SASL authentication failed|password authentication failed/);
    expect([a.body.database.healthy, a.body.postgres.healthy, a.body.redis.available]).toEqual([true, true, true]);
    const b = await h(48802);
    expect(b.body.postgres.lastError).toMatch(/password authentication failed for user "poolguard_monitor"|SASL authentication failed/);
    expect(b.body.database.lastError).toMatch(/password authentication failed|SASL authentication failed/);
    expect([b.body.pgbouncer.healthy, b.body.redis.available]).toEqual([true, true]);
    const c = await h(48803);
    expect(c.body.redis.lastError).toMatch(/WRONGPASS/);
    expect([c.body.pgbouncer.healthy, c.body.postgres.healthy, c.body.database.healthy]).toEqual([true, true, true]);
    const d = await h(48804);
    expect(d.body.redis.lastError).toMatch(/NOAUTH/);
    const e = await h(48805);
    expect(e.body.database.lastError).toMatch(/PgBouncer has no database "no_such_db"/);
    expect(e.body.pgbouncer.healthy).toBe(true);
    for (const cname of [pgb, mon, red, nored, nodb]) expect(await running(cname), cname).toBe(true);

    // Fix each backend so that it accepts what the sidecar has; the sidecar recovers by itself.
    const t0 = Date.now();
    const userlist = (await stack.exec('pgbouncer', ['cat', '/var/run/pgbouncer/userlist.txt'])).stdout;
    const fixed = userlist.replace(/^"pgbouncer_stats" ".*"$/m, '"pgbouncer_stats" "wrong-stats-password"');
    const pgbId = (await stack.containers()).find((x) => x.service === 'pgbouncer')!.id;
    const w = await run('docker', ['exec', '-i', pgbId, 'sh', '-c', 'cat > /var/run/pgbouncer/userlist.txt'], { input: fixed });
    expect(w.code, w.stderr).toBe(0);
    await adminSql('RELOAD');
    const recoverStats = await waitUntil('stats recovery', async () => (await h(48801)).body.pgbouncer.healthy === true, 15_000);
    // Put the real stats password back for the rest of the suite.
    expect((await run('docker', ['exec', '-i', pgbId, 'sh', '-c', 'cat > /var/run/pgbouncer/userlist.txt'], { input: userlist })).code).toBe(0);
    await adminSql('RELOAD');
    const redisId = (await stack.containers()).find((x) => x.service === 'redis')!.id;
    await run('docker', ['exec', '-e', `REDISCLI_AUTH=${env.REDIS_PASSWORD}`, redisId, 'redis-cli', '--no-auth-warning', 'CONFIG', 'SET', 'requirepass', 'wrong-redis-password']);
    const recoverRedis = await waitUntil('redis recovery', async () => (await h(48803)).body.redis.available === true, 15_000);
    await run('docker', ['exec', '-e', 'REDISCLI_AUTH=wrong-redis-password', redisId, 'redis-cli', '--no-auth-warning', 'CONFIG', 'SET', 'requirepass', env.REDIS_PASSWORD!]);
    const superPg = new pg.Client({ host: '127.0.0.1', port: PORTS.postgres, user: env.POSTGRES_USER, password: env.POSTGRES_PASSWORD, database: env.APP_DB });
    await superPg.connect();
    await superPg.query("ALTER ROLE poolguard_monitor PASSWORD 'wrong-monitor-password'");
    const recoverMon = await waitUntil('monitor recovery', async () => (await h(48802)).status === 200, 15_000);
    await superPg.query(`ALTER ROLE poolguard_monitor PASSWORD '${env.MONITOR_PASSWORD!.replace(/'/g, "''")}'`);
    await superPg.end();
    for (const cname of [pgb, mon, red, nored, nodb]) await run('docker', ['rm', '-f', cname]);
    record({
      scenario: 'bad sidecar credentials',
      load: 'idle stack; five extra sidecars, each with one bad setting',
      injected: 'wrong stats / monitor / Redis password, no Redis password, probe database that does not exist',
      figures: `each: 503 with lastError naming the cause (SASL/password authentication failed, WRONGPASS, NOAUTH, 'PgBouncer has no database "no_such_db"'), the other backends reported healthy, 0 restarts; ` +
        `recovered ${(recoverStats / 1000).toFixed(1)} s / ${(recoverRedis / 1000).toFixed(1)} s / ${(recoverMon / 1000).toFixed(1)} s after the stats / Redis / monitor password was fixed (total ${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    });
  });
});

describe('hostile HTTP', () => {
  const TOKEN = 'fault-suite-token-0123456789';
  const port = 48810;

  function raw(opts: { method: string; path: string; headers?: Record<string, string>; body?: Buffer }): Promise<number> {
    return new Promise((resolve) => {
      // The status counts as soon as it arrives: a server that refuses a body may close the
      // connection before the client has sent it all (the later reset is then ignored).
      // agent: false: a connection of its own each time (Node's default agent keeps sockets
      // alive, and one the server closed after a refusal would fail the next request).
      const req = request({ host: '127.0.0.1', port, method: opts.method, path: opts.path, headers: opts.headers, timeout: 5000, agent: false }, (res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
        res.on('error', () => undefined);
      });
      req.on('error', () => resolve(-1));
      req.on('timeout', () => req.destroy());
      if (opts.body) req.write(opts.body);
      req.end();
    });
  }

  it('404 JSON, 401 without echo, huge headers and bodies refused, thousands of random requests: no crash, bounded RSS', async () => {
    // Thousands of fresh connections from one address (the host, through docker's port
    // forwarding): above the default per-address rate, which the flood test in prod.test.ts covers.
    const cname = await sidecar('http', port, { SIDECAR_TOKEN: TOKEN, SIDECAR_HTTP_NEW_CONNECTIONS_PER_SECOND: '100000', SIDECAR_HTTP_MAX_CONNECTIONS_PER_ADDRESS: '1000' });
    const rss = async () => Number(/VmRSS:\s+(\d+)/.exec((await run('docker', ['exec', cname, 'cat', '/proc/1/status'])).stdout)?.[1] ?? 0);
    const nf = await fetch(`http://127.0.0.1:${port}/no/such/path`);
    expect(nf.status).toBe(404);
    expect(await nf.json()).toMatchObject({ error: 'Not Found' });
    for (const auth of [undefined, 'Bearer wrong-token-abcdefgh', `Bearer ${'Z'.repeat(4000)}`, 'Basic dXNlcjpwYXNz', TOKEN]) {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: auth ? { authorization: auth } : {} });
      const text = await res.text();
      expect(res.status, auth?.slice(0, 20)).toBe(401);
      if (auth) expect(text).not.toContain(auth.slice(7, 30));
    }
    expect((await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect(await raw({ method: 'GET', path: '/health', headers: { 'x-big': 'a'.repeat(64 * 1024) } })).toBe(431);
    // The 1 KiB body limit, not the missing POST route, decides: 512 B of text gets through to
    // the 404; 2 KiB and 2 MiB are refused with 413 (or the connection is closed while the client
    // still sends: the server does not read what it refuses). Never a 404 for those.
    const post = (bytes: number) => raw({ method: 'POST', path: '/health', headers: { 'content-type': 'text/plain' }, body: Buffer.alloc(bytes, 'x') });
    expect(await post(512)).toBe(404);
    for (const bytes of [2048, 2 * 1024 * 1024]) {
      const seen: number[] = [];
      for (let i = 0; i < 5; i += 1) seen.push(await post(bytes));
      expect(seen.filter((st) => st !== 413 && st !== -1), `${bytes} B: ${seen.join(' ')}`).toEqual([]);
      expect(seen, `${bytes} B: ${seen.join(' ')}`).toContain(413);
    }

    const before = await rss();
    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
    const paths = ['/health', '/metrics', '/pool', '/alerts', '/livez', '/readyz', '/', '/%%', '/..%2f..%2fetc/passwd', '/health?x=' + 'y'.repeat(2000)];
    const statuses = new Map<number, number>();
    let oversized = 0; // bodies over the 1 KiB limit: the server may answer 413 and close mid-upload
    const N = 3000;
    for (let i = 0; i < N; i += 25) {
      const batch = await Promise.all(
        Array.from({ length: 25 }, () => {
          const r = randomBytes(8);
          const headers: Record<string, string> = { 'x-r': randomBytes(16 + (r[0]! % 200)).toString('hex') };
          if (r[1]! % 3 === 0) headers.authorization = `Bearer ${randomBytes(r[2]! % 64).toString('base64')}`;
          if (r[1]! % 5 === 0) headers['content-type'] = 'application/json';
          const method = methods[r[3]! % methods.length]!;
          const body = method === 'GET' || method === 'HEAD' ? undefined : randomBytes(r[4]! * 8);
          if (body && body.length > 1024) oversized += 1;
          return raw({ method, path: paths[r[5]! % paths.length]! + (r[6]! % 2 ? `/${r[7]}` : ''), headers, body });
        }),
      );
      for (const s of batch) statuses.set(s, (statuses.get(s) ?? 0) + 1);
    }
    const after = await rss();
    expect(await running(cname)).toBe(true);
    expect((await fetch(`http://127.0.0.1:${port}/livez`)).status).toBe(200);
    expect(statuses.get(-1) ?? 0).toBeLessThanOrEqual(oversized);
    expect(statuses.get(500) ?? 0).toBe(0);
    const growthMb = (after - before) / 1024;
    record({
      scenario: 'hostile HTTP',
      load: `${N} random requests (methods, paths, headers, bodies, tokens), 25 at a time, loopback`,
      injected: 'unknown paths, wrong/missing/oversized tokens, 64 KiB header, 2 MiB body',
      figures: `404 JSON; 401 for every bad token (none echoed); 431 for the big header; POST of 512 B → 404, 2 KiB and 2 MiB → 413 (the 1 KiB body limit); /health ${(await health(port))?.status}; statuses ${[...statuses].sort((x, y) => x[0] - y[0]).map(([s, n]) => `${s === -1 ? 'closed mid-upload (body > 1 KiB)' : s}×${n}`).join(' ')}; no 500, no crash; RSS ${(before / 1024).toFixed(1)} → ${(after / 1024).toFixed(1)} MiB`,
    });
    expect(growthMb).toBeLessThan(30);
  });
});

describe("PgBouncer's entrypoint with bad settings", () => {
  it('reports every bad value at once, prints no secret and never starts; a socket directory is a valid POSTGRES_HOST', async () => {
    const secrets = ['-e', 'PGBOUNCER_AUTH_PASSWORD=auth-s3cret', '-e', 'PGBOUNCER_ADMIN_PASSWORD=admin-s3cret', '-e', 'PGBOUNCER_STATS_PASSWORD=stats-s3cret'];
    const bad = await run('docker', ['run', '--rm', ...secrets,
      '-e', 'PGBOUNCER_DEFAULT_POOL_SIZE=lots', '-e', 'PGBOUNCER_POOL_MODE=sometimes', '-e', 'PGBOUNCER_NO_SUCH_SETTING=1', '-e', 'PGBOUNCER_AUTH_FILE=/tmp/users.txt',
      '-e', 'POSTGRES_HOST=db;rm -rf /', '-e', 'POSTGRES_PORT=99999', '-e', 'APP_DB=app db', '-e', 'PGBOUNCER_SERVER_LOGIN_RETRY=soon',
      // The replica profile on, with no replica host and a return mark above the max lag.
      '-e', 'POOLGUARD_PROFILES=monitoring,replica', '-e', 'READ_ROUTE_MAX_LAG_SECONDS=10', '-e', 'READ_ROUTE_RETURN_LAG_SECONDS=20', '-e', 'READ_ROUTE_INTERVAL=0',
      image('pgbouncer')], { timeoutMs: 30_000 });
    const out = bad.stdout + bad.stderr;
    expect(bad.code).toBe(1);
    for (const m of [/PGBOUNCER_DEFAULT_POOL_SIZE must be a whole number/, /PGBOUNCER_POOL_MODE must be session, transaction or statement/,
      /PGBOUNCER_NO_SUCH_SETTING: 'no_such_setting' is not a setting/, /PGBOUNCER_AUTH_FILE: 'auth_file' is fixed by this image/, /POSTGRES_HOST must be a host name, an address or a Unix socket directory/,
      /POSTGRES_PORT must be a port number/, /APP_DB must be a plain identifier/, /PGBOUNCER_SERVER_LOGIN_RETRY must be a number of seconds >= 0 such as 0.5, got 'soon'/,
      /READ_REPLICA_HOST must be the replica's host name \(the replica profile is on\)/, /READ_ROUTE_INTERVAL must be a whole number of seconds >= 1, got '0'/,
      /READ_ROUTE_RETURN_LAG_SECONDS \(20\) must be below READ_ROUTE_MAX_LAG_SECONDS \(10\)/]) expect(out).toMatch(m);
    expect(out).not.toMatch(/s3cret/);
    expect(out).not.toMatch(/process up/);

    const name = `${stack.project}-pgb-socket`;
    await run('docker', ['rm', '-f', name]);
    started.push(name);
    expect((await run('docker', ['run', '-d', '--name', name, ...secrets, '-e', 'POSTGRES_HOST=/var/run/postgresql', image('pgbouncer')])).code).toBe(0);
    let logs = '';
    await waitUntil('PgBouncer rendered its config', async () => {
      const r = await run('docker', ['logs', name]);
      logs = r.stdout + r.stderr;
      return /process up/.test(logs);
    }, 20_000);
    expect(logs).toMatch(/database app -> \/var\/run\/postgresql:5432/);
    expect(logs).not.toMatch(/s3cret/);
    record({ scenario: 'bad PgBouncer settings', load: 'none', injected: 'PGBOUNCER_DEFAULT_POOL_SIZE=lots, PGBOUNCER_POOL_MODE=sometimes, an unknown PGBOUNCER_ setting, PGBOUNCER_AUTH_FILE (managed), POSTGRES_HOST with a shell command, POSTGRES_PORT=99999, APP_DB with a space', figures: 'seven bad values (pool size, pool mode, unknown setting, managed setting, host, port, database name) reported together, exit 1 before starting, no secret printed; a socket directory accepted as POSTGRES_HOST' });
  });
});

describe('session features through the pooled URL (transaction mode)', () => {
  const pooled = () => pgClient({ port: PORTS.pgbouncer, user: env.APP_USER, password: env.APP_PASSWORD, database: env.APP_DB });

  it('SET, LISTEN and SQL PREPARE are accepted but are not the session\'s: a SET leaks to another client, LISTEN hears nothing, PREPARE is gone on another server; protocol-level statements past max_prepared_statements are evicted, not errors', async () => {
    const a = await pooled();
    const b = await pooled();
    try {
      // 1. A session SET runs on whichever server connection the statement got, and stays there:
      // PgBouncer runs server_reset_query (DISCARD ALL) only in session mode.
      await a.query("SET poolguard.marker = 'set-by-a'");
      let leakedToB = 0;
      for (let i = 0; i < 50; i += 1) {
        if ((await b.query("SELECT current_setting('poolguard.marker', true) AS v")).rows[0].v === 'set-by-a') leakedToB += 1;
      }
      // The safe form: SET LOCAL inside the transaction that needs it.
      await b.query('BEGIN');
      await b.query("SET LOCAL poolguard.local = 'b-only'");
      const inside = (await b.query("SELECT current_setting('poolguard.local', true) AS v")).rows[0].v;
      await b.query('COMMIT');
      let localLeaked = 0;
      for (let i = 0; i < 20; i += 1) {
        if ((await a.query("SELECT current_setting('poolguard.local', true) AS v")).rows[0].v === 'b-only') localLeaked += 1;
      }

      // 2. LISTEN registers the server connection, which goes back to the pool at once.
      const heardByA: string[] = [];
      const heardByB: string[] = [];
      a.on('notification', (n) => heardByA.push(n.channel));
      b.on('notification', (n) => heardByB.push(n.channel));
      await a.query('LISTEN poolguard_channel');
      const notifier = await pooled();
      for (let i = 0; i < 5; i += 1) await notifier.query("NOTIFY poolguard_channel, 'hello'");
      await notifier.end();
      await sleep(1500);
      for (let i = 0; i < 20; i += 1) await b.query('SELECT 1');

      // 3. SQL PREPARE: the statement lives on one server connection; hold that one (LIFO: the
      // last used) in another client's transaction and EXECUTE lands elsewhere.
      await a.query('PREPARE poolguard_stmt AS SELECT 42 AS answer');
      await b.query('BEGIN');
      await b.query('SELECT 1');
      const executeError = await a.query('EXECUTE poolguard_stmt').then(() => '', (e: Error) => e.message);
      await b.query('COMMIT');

      // 4. Protocol-level prepared statements (what Prisma and node-postgres' named queries send):
      // PgBouncer tracks them per client and prepares them on whichever server runs them; past
      // max_prepared_statements a server's cache evicts the oldest rather than failing.
      const max = Number((await adminQuery('SHOW CONFIG')).find((r) => r.key === 'max_prepared_statements')!.value);
      const n = max + 50;
      const errors: string[] = [];
      for (let i = 0; i < n; i += 1) {
        await a.query({ name: `poolguard_q${i}`, text: `SELECT $1::int + ${i} AS v`, values: [1] }).catch((e: Error) => errors.push(e.message));
      }
      const again = (await a.query({ name: 'poolguard_q0', text: 'SELECT $1::int + 0 AS v', values: [41] })).rows[0].v;
      record({
        scenario: 'session features through PgBouncer (transaction mode)',
        load: 'two app clients on the pooled URL, idle stack',
        injected: "SET poolguard.marker; SET LOCAL in a transaction; LISTEN + 5 NOTIFY; SQL PREPARE then EXECUTE while the preparing server is busy; " + `${n} named protocol-level statements (max_prepared_statements ${max}) then the first again`,
        figures: `session SET accepted, seen by the other client in ${leakedToB} of 50 statements; SET LOCAL seen inside its transaction ("${inside}"), by the other client ${localLeaked} of 20 times; ` +
          `LISTEN accepted, notifications heard by the listener ${heardByA.length}, by the other client ${heardByB.length}; EXECUTE on another server: "${executeError}"; ` +
          `${n} protocol-level statements: ${errors.length} errors, the first re-used after eviction returned ${again}`,
      });
      expect(leakedToB, 'a session SET leaks to other clients').toBeGreaterThan(0);
      expect(inside).toBe('b-only');
      expect(localLeaked).toBe(0);
      expect(heardByA).toEqual([]);
      expect(executeError).toMatch(/prepared statement "poolguard_stmt" does not exist/);
      expect(errors).toEqual([]);
      expect(again).toBe(41);
    } finally {
      await a.query('RESET ALL').catch(() => undefined);
      await a.end();
      await b.end();
    }
  });
});

describe('bad bytes and bad requests on the database ports', () => {
  const ok = async () => {
    const c = await pgClient({ port: PORTS.pgbouncer, user: env.APP_USER, password: env.APP_PASSWORD, database: env.APP_DB });
    try {
      return (await c.query('SELECT 1 AS one')).rows[0].one === 1;
    } finally {
      await c.end();
    }
  };

  /** Sends bytes on a fresh socket; resolves with what came back and whether the server closed it (within ms). */
  function sendRaw(port: number, bytes: Buffer, ms = 10_000): Promise<{ reply: Buffer; closed: boolean; closedMs: number }> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      const t0 = Date.now();
      const s = connect(port, '127.0.0.1', () => s.write(bytes));
      const timer = setTimeout(() => { s.destroy(); resolve({ reply: Buffer.concat(chunks), closed: false, closedMs: ms }); }, ms);
      s.on('data', (d) => chunks.push(d));
      s.on('error', () => undefined);
      s.on('close', () => { clearTimeout(timer); resolve({ reply: Buffer.concat(chunks), closed: true, closedMs: Date.now() - t0 }); });
    });
  }

  it('garbage bytes and a raw TLS ClientHello on 6432 and 5432, an unknown database and user, a 100 MB query, a result larger than the client can hold: an error for that client alone; the servers and other clients carry on', async () => {
    const ids = Object.fromEntries((await stack.containers()).map((c) => [c.service, c.id]));
    const restarts = async () => Object.fromEntries(await Promise.all(['postgres', 'pgbouncer', 'sidecar'].map(async (s) => [s, (await stack.inspect(ids[s]!)).RestartCount ?? 0])));
    const before = await restarts();
    const lines: string[] = [];
    // A TLS 1.2 ClientHello record header and start, as a client that speaks TLS first sends.
    const clientHello = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]), randomBytes(160)]);
    // Random bytes can announce a long packet and then stop: the server waits for the rest until
    // its login timeout (PgBouncer client_login_timeout 60 s, Postgres authentication_timeout
    // 60 s). Meanwhile everybody else is served; then each such connection is closed.
    const probes = (['PgBouncer', 'Postgres'] as const).map((what) => {
      const port = what === 'PgBouncer' ? PORTS.pgbouncer : PORTS.postgres;
      return { what, garbage: Promise.all(Array.from({ length: 20 }, () => sendRaw(port, randomBytes(4096), 75_000))), tls: sendRaw(port, clientHello, 75_000) };
    });
    await sleep(1000);
    expect(await ok(), 'other clients while garbage connections are open').toBe(true);
    for (const p of probes) {
      const garbage = await p.garbage;
      const tls = await p.tls;
      expect(garbage.filter((g) => !g.closed), `${p.what} closes every garbage connection within its login timeout`).toEqual([]);
      expect(tls.closed, `${p.what} closes a raw TLS connection`).toBe(true);
      const times = garbage.map((g) => g.closedMs).sort((x, y) => x - y);
      lines.push(`${p.what}: 20 × 4 KiB of random bytes all closed (${times.filter((t) => t < 1000).length} at once, the last after ${(times.at(-1)! / 1000).toFixed(1)} s; login timeouts 60 s), a raw ClientHello closed after ${tls.closedMs} ms ("${printable(tls.reply)}")`);
    }
    expect(await ok(), 'other clients after the garbage').toBe(true);
    const unknownDb = await pgConnectError({ port: PORTS.pgbouncer, user: env.APP_USER, password: env.APP_PASSWORD, database: 'no_such_db' });
    const unknownUser = await pgConnectError({ port: PORTS.pgbouncer, user: 'no_such_user', password: 'x', database: env.APP_DB });
    const sslToDev = await pgConnectError({ port: PORTS.pgbouncer, user: env.APP_USER, password: env.APP_PASSWORD, database: env.APP_DB, ssl: { rejectUnauthorized: false } });
    expect(unknownDb?.message).toBeTruthy();
    expect(unknownUser?.message).toBeTruthy();
    lines.push(`unknown database: "${unknownDb?.message}"; unknown user: "${unknownUser?.message}"; TLS to the dev PgBouncer (TLS off): "${sslToDev?.message ?? 'connected'}"`);

    // 100 MB of query text through the pooler.
    const big = await pgClient({ port: PORTS.pgbouncer, user: env.APP_USER, password: env.APP_PASSWORD, database: env.APP_DB });
    const t0 = Date.now();
    const bigResult = await big.query(`SELECT length('${'x'.repeat(100 * 2 ** 20)}') AS n`).then((r) => `answered ${r.rows[0].n}`, (e: Error) => `error "${e.message}"`);
    const bigMs = Date.now() - t0;
    await big.end().catch(() => undefined);
    expect(await ok(), 'other clients after the 100 MB query').toBe(true);
    lines.push(`100 MB query: ${bigResult} in ${(bigMs / 1000).toFixed(1)} s`);

    // A result of about 2 GB for a psql limited to 256 MB of memory (psql reads whole results).
    const huge = await run('docker', ['run', '--rm', '--memory', '256m', '--network', `${stack.project}_backend`, '-e', `PGPASSWORD=${env.APP_PASSWORD}`, '--entrypoint', 'psql', image('pgbouncer'),
      `host=pgbouncer port=6432 dbname=${env.APP_DB} user=${env.APP_USER}`, '-Atc', "SELECT repeat('x', 1000000) FROM generate_series(1, 2000)"], { timeoutMs: 240_000 });
    const hugeOut = (huge.stderr.trim().split('\n').at(-1) ?? '').slice(0, 120);
    const admin = await pgClient({ port: PORTS.pgbouncer, user: env.PGBOUNCER_ADMIN_USER, password: env.PGBOUNCER_ADMIN_PASSWORD, database: 'pgbouncer' });
    const active = async () => (await admin.query('SHOW POOLS')).rows.filter((r) => r.database === env.APP_DB).reduce((n, r) => n + Number(r.sv_active), 0);
    const releasedMs = await waitUntil('the huge result\'s server connection released', async () => (await active()) === 0, 60_000, 200);
    await admin.end();
    expect(huge.code, `psql with a 2 GB result: ${huge.stderr.slice(-300)}`).not.toBe(0);
    expect(await ok(), 'other clients after the huge result').toBe(true);
    lines.push(`2 GB result to a psql with 256 MB: exit ${huge.code} ("${hugeOut}"), its server connection released ${(releasedMs / 1000).toFixed(1)} s later`);

    const after = await restarts();
    expect(after).toEqual(before);
    const h = await health(PORTS.sidecar);
    expect(h?.status).toBe(200);
    record({
      scenario: 'bad bytes and requests on the database ports',
      load: 'dev stack, one probing client at a time, then an ordinary client',
      injected: 'random bytes, raw TLS ClientHello, unknown database, unknown user, TLS to a non-TLS PgBouncer, 100 MB query, 2 GB result',
      figures: `${lines.join('; ')}; no restart of Postgres, PgBouncer or the sidecar; ordinary clients answered after each; /health 200`,
    });
  });
});

function printable(b: Buffer): string {
  return b.toString('latin1').replace(/[^\x20-\x7e]+/g, ' ').trim().slice(0, 100);
}

async function adminQuery(sql: string): Promise<Record<string, string>[]> {
  const c = await pgClient({ port: PORTS.pgbouncer, user: env.PGBOUNCER_ADMIN_USER, password: env.PGBOUNCER_ADMIN_PASSWORD, database: 'pgbouncer' });
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end();
  }
}

describe('bad secret files', () => {
  // Each kind of bad file, as a user could leave it.
  const kinds: [string, (path: string) => void, RegExp][] = [
    ['empty', (p) => writeFileSync(p, ''), /is empty/],
    ['only whitespace', (p) => writeFileSync(p, '   \n'), /holds only whitespace/],
    ['CRLF lines', (p) => writeFileSync(p, 'one\r\ntwo\r\n'), /holds a carriage return/],
    ['a directory', (p) => mkdirSync(p), /is a directory, not a file/],
    ['unreadable by the services', (p) => { writeFileSync(p, 'fine-but-private\n'); chmodSync(p, 0o600); chownSync(p, 0, 0); }, /is not readable by the services/],
  ];

  it('scripts/up.sh prod: each kind in each secret file is refused before anything starts, naming the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'poolguard-test-badsecret-'));
    const good = join(dir, 'good');
    expect((await run(join(ROOT, 'scripts/gen-secrets.sh'), [good])).code).toBe(0);
    // The CAs' keys are no compose secrets (root-only files beside them, for re-issuing).
    const names = readdirSync(good).filter((n) => n !== 'tls_ca.key' && n !== 'pgbackrest_ca.key');
    const stackB = Stack.prod('poolguard-test-badsecret', { PUBLISH_SIDECAR_PORT: '48899' });
    const seen: string[] = [];
    for (const name of names) {
      for (const [kind, make, message] of kinds) {
        if (/\.(crt|key)$/.test(name) && kind !== 'empty' && kind !== 'a directory' && kind !== 'unreadable by the services') continue; // PEM files are many lines
        const secrets = join(dir, `${name}-${kind.replace(/\W+/g, '-')}`);
        expect((await run('cp', ['-a', good, secrets])).code).toBe(0); // keeps the group and modes gen-secrets set
        rmSync(join(secrets, name), { recursive: true, force: true });
        make(join(secrets, name));
        const r = await run(join(ROOT, 'scripts/up.sh'), ['prod', '-p', stackB.project, '--env-file', stackB.envFile], { env: { POOLGUARD_SECRETS_DIR: secrets }, timeoutMs: 60_000 });
        const out = r.stdout + r.stderr;
        expect(r.code, `${name} ${kind}: ${out}`).not.toBe(0);
        expect(out, `${name} ${kind}`).toMatch(new RegExp(`secret file ${join(secrets, name).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*${message.source}`));
        seen.push(`${name}/${kind}`);
      }
    }
    const ps = await stackB.compose(['ps', '-a', '-q']);
    expect(ps.stdout.trim(), 'no container was created').toBe('');
    record({
      scenario: 'bad secret files (prod file, before start)',
      load: 'none',
      injected: `${seen.length} cases: ${kinds.map((k) => k[0]).join(', ')} in each of ${names.length} secret files (PEM files: empty, directory, unreadable only)`,
      figures: `scripts/up.sh prod refused every case before starting anything, naming the file and the fault; 0 containers created`,
    });
  });

  it("each image's entrypoint reads VAR_FILE by the same rules: a clear error naming the file, exit 1, nothing started", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'poolguard-test-imgsecret-'));
    chmodSync(dir, 0o755);
    const images: [Parameters<typeof image>[0], string, string[]][] = [
      ['postgres', 'POSTGRES_PASSWORD_FILE', []],
      ['pgbouncer', 'PGBOUNCER_AUTH_PASSWORD_FILE', ['-e', 'PGBOUNCER_ADMIN_PASSWORD=x', '-e', 'PGBOUNCER_STATS_PASSWORD=y']],
      ['redis', 'REDIS_PASSWORD_FILE', []],
      ['migrate', 'APP_PASSWORD_FILE', ['-e', 'DATABASE_URL_DIRECT=postgres://app@postgres:5432/app']],
      ['sidecar', 'SIDECAR_TOKEN_FILE', []],
    ];
    const lines: string[] = [];
    for (const [img, variable, extra] of images) {
      for (const [kind, make, message] of kinds) {
        const path = join(dir, `${img}-${kind.replace(/\W+/g, '-')}`);
        make(path);
        const r = await run('docker', ['run', '--rm', '-v', `${path}:/run/secrets/s:ro`, '-e', `${variable}=/run/secrets/s`, ...extra, image(img)], { timeoutMs: 60_000 });
        const out = r.stdout + r.stderr;
        expect(r.code, `${img} ${kind}: ${out}`).toBe(1);
        const expected = kind === 'unreadable by the services' ? `${variable}: cannot read /run/secrets/s \\(permission denied for uid \\d+\\)` : `${variable}: /run/secrets/s ${message.source}`;
        expect(out, `${img} ${kind}`).toMatch(new RegExp(expected));
        expect(out, `${img} ${kind}: started anyway`).not.toMatch(/database system is ready|process up|Ready to accept connections|first poll done|migrations complete/i);
      }
      lines.push(`${img} (${variable})`);
    }
    record({
      scenario: "bad secret files (each image's reader)",
      load: 'none',
      injected: `${kinds.map((k) => k[0]).join(', ')} mounted as the secret file of ${lines.join(', ')}`,
      figures: 'every image exits 1 before starting with "<VAR>_FILE: <path> is empty / holds only whitespace / holds a carriage return / is a directory, not a file / cannot read (permission denied for uid N)"; the same rules and messages as the sidecar (one shared scripts/secret-env.sh, tested against sidecar/src/secrets.ts)',
    });
  });
});
