// Bad input against the real stack: passwords full of URL-special characters end to end, the
// sidecar's three connections with wrong credentials (clear errors, no crash, recovery once
// fixed), a PgBouncer database that does not exist, and hostile HTTP.
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, image, publish, run, sleep } from '../e2e/stack.js';
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
    const cname = await sidecar('http', port, { SIDECAR_TOKEN: TOKEN });
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
      '-e', 'POSTGRES_HOST=db;rm -rf /', '-e', 'POSTGRES_PORT=99999', '-e', 'APP_DB=app db', image('pgbouncer')], { timeoutMs: 30_000 });
    const out = bad.stdout + bad.stderr;
    expect(bad.code).toBe(1);
    for (const m of [/PGBOUNCER_DEFAULT_POOL_SIZE must be a whole number/, /PGBOUNCER_POOL_MODE must be session, transaction or statement/,
      /PGBOUNCER_NO_SUCH_SETTING: 'no_such_setting' is not a setting/, /PGBOUNCER_AUTH_FILE: 'auth_file' is fixed by this image/, /POSTGRES_HOST must be a host name, an address or a Unix socket directory/,
      /POSTGRES_PORT must be a port number/, /APP_DB must be a plain identifier/]) expect(out).toMatch(m);
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
