// The prod compose file under faults and a security review: kill -9 of the sidecar (restart
// policy), what the host can reach, secrets in responses, SCRAM only, Redis auth.
// No packet is sent to a container address: reachability is checked from the host's routing
// table (a route through the default gateway means the host cannot reach the network).
import http from 'node:http';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, Stack, run, sleep } from '../e2e/stack.js';
import { backendDown, bankText, cgroupMemoryPeak, checkBank, type Backend, errorsText, lostInserts, mainPid, partition, record, recordSettings, redisText, seedBank, startLoad, startRedisLedger, startScript, superSql, waitUntil } from './harness.js';

const SIDECAR_PORT = 38788;
let stack: Stack;
let secrets: Record<string, string> = {};

async function id(service: string): Promise<string> {
  return (await stack.containers()).find((c) => c.service === service)!.id;
}

beforeAll(async () => {
  const secretsDir = join(mkdtempSync(join(tmpdir(), 'poolguard-test-fault-prod-')), 'secrets');
  // Backups: the first full soon, the schedule looked at every 2 s, and a small archive queue so
  // the WAL-dropped test needs only a few segments.
  stack = Stack.prod('poolguard-test-fault-prod', { PUBLISH_SIDECAR_PORT: String(SIDECAR_PORT), BACKUP_FIRST_FULL_DELAY: '2s', BACKUP_CHECK_INTERVAL: '2s', BACKUP_ARCHIVE_QUEUE_MAX: '64MB' }, secretsDir);
  expect((await run(join(ROOT, 'scripts/gen-secrets.sh'), [secretsDir])).code).toBe(0);
  // Secret files full of URL-special characters and quotes (gen-secrets makes URL-safe ones):
  // the whole stack must work with them.
  for (const f of readdirSync(secretsDir).filter((n) => !/\.(crt|key)$/.test(n))) {
    const value = `${f}-p@ss:w/rd%25#?&"dq'sq-${readFileSync(join(secretsDir, f), 'utf8').slice(0, 12)}`;
    writeFileSync(join(secretsDir, f), value);
    secrets[f] = value;
  }
  await stack.compose(['down', '-v', '--remove-orphans']);
  await stack.up();
  await recordSettings(stack);
});

afterAll(async () => {
  await stack?.down(true);
});

/** /health with the token (prod requires it for the error text); undefined when the sidecar does not answer. */
async function authHealth(): Promise<{ status: number; body: any } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${SIDECAR_PORT}/health`, { headers: { authorization: `Bearer ${secrets.sidecar_token}` }, signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: await res.json() };
  } catch {
    return undefined;
  }
}

/** Whether /health reports the service down (for PgBouncer, the probe through it counts too). */
const reportsDown = (b: any, service: Backend) => backendDown(b, service) || (service === 'pgbouncer' && b.database.healthy === false);

const ready = async () => fetch(`http://127.0.0.1:${SIDECAR_PORT}/readyz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status === 200, () => false);

describe('prod stack: faults and security', () => {
  it('kill -9 the sidecar: the restart policy brings it back, ready within one poll', async () => {
    const sid = await id('sidecar');
    const pid = (await run('docker', ['inspect', '-f', '{{.State.Pid}}', sid])).stdout.trim();
    const killedAt = Date.now();
    expect((await run('kill', ['-9', pid])).code).toBe(0);
    await waitUntil('sidecar gone', async () => !(await ready()), 10_000, 20);
    const readyMs = await waitUntil('sidecar ready again', ready, 30_000, 50);
    const info = await stack.inspect(sid);
    record({
      scenario: '4. kill -9 the sidecar (prod file)',
      load: 'idle prod stack',
      injected: 'kill -9 of the sidecar process (restart: unless-stopped)',
      figures: `restarted by Docker (restart count ${info.RestartCount ?? '?'}), /readyz 200 ${(readyMs / 1000).toFixed(1)} s after the kill (poll interval 5 s; the first poll runs before it listens)`,
    });
    expect(info.RestartCount, 'restarted by the restart policy, once').toBe(1);
    expect(readyMs).toBeLessThanOrEqual(5000 + 1000 + 2000); // Docker's restart delay + start + one poll
    expect(Date.now() - killedAt).toBeLessThan(30_000);
  });

  it('the host has no route to the backend network and no published port but the sidecar', async () => {
    const net = await run('docker', ['network', 'inspect', `${stack.project}_backend`, '-f', '{{.Internal}} {{index .Options "com.docker.network.bridge.inhibit_ipv4"}}']);
    expect(net.stdout.trim()).toBe('true true');
    const rows: string[] = [];
    for (const service of ['postgres', 'pgbouncer', 'redis']) {
      const info = await stack.inspect(await id(service));
      expect(Object.values(info.NetworkSettings.Ports ?? {}).flat().filter(Boolean), service).toEqual([]);
      const ip = (await run('docker', ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', info.Id])).stdout.trim();
      // Routing table lookup only (no packet): a local route would name a docker bridge. The
      // lookup must answer (a route via some device): a failing or silent `ip` proves nothing.
      expect(ip, `${service} address`).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      const lookup = await run('ip', ['route', 'get', ip]);
      const route = lookup.stdout;
      expect(lookup.code, `ip route get ${ip}: ${lookup.stderr}`).toBe(0);
      expect(route, service).toMatch(new RegExp(`^${ip.replace(/\./g, '\\.')} (via \\S+ )?dev \\S+`));
      expect(route, service).not.toMatch(/dev (br-|docker)/);
      rows.push(`${service} ${ip}: no host route (${route.trim().split('\n')[0]?.replace(/\s+/g, ' ').slice(0, 40)}…)`);
    }
    const sidecar = await stack.inspect(await id('sidecar'));
    expect(Object.entries(sidecar.NetworkSettings.Ports).filter(([, b]) => b && b.length).map(([p, b]) => `${p} ${b![0]!.HostIp}`)).toEqual(['8787/tcp 127.0.0.1']);
    record({ scenario: 'security: network', load: 'prod stack', injected: 'routing-table lookup of each backend address', figures: `backend network internal with no host address; ${rows.join('; ')}; only the sidecar published (127.0.0.1)` });
  });

  it('containers: non-root, read-only, no capabilities, no-new-privileges; no secret in env, logs or HTTP responses', async () => {
    // Each secret as written, and as it would look JSON-escaped, URL-encoded or SQL-quoted.
    const values = [...new Set(Object.values(secrets).flatMap((v) => [v, JSON.stringify(v).slice(1, -1), encodeURIComponent(v), v.replace(/'/g, "''")]))];
    expect(values.length).toBeGreaterThan(Object.keys(secrets).length * 3); // the special characters make the forms differ
    const found: string[] = [];
    for (const { service, id: cid } of await stack.containers()) {
      const info = await stack.inspect(cid);
      expect(info.HostConfig.ReadonlyRootfs, service).toBe(true);
      expect(info.HostConfig.CapDrop, service).toEqual(['ALL']);
      expect(info.HostConfig.SecurityOpt, service).toContain('no-new-privileges:true');
      if (service !== 'migrate') {
        const uid = (await stack.exec(service, ['id', '-u'])).stdout.trim();
        expect(Number(uid), service).toBeGreaterThan(0);
        const status = (await stack.exec(service, ['cat', '/proc/1/status'])).stdout;
        expect(/CapEff:\s+0+$/m.test(status), `${service} effective capabilities`).toBe(true);
        expect(/NoNewPrivs:\s+1/.test(status), `${service} NoNewPrivs`).toBe(true);
      }
      for (const v of values) if (info.Config.Env.join('\n').includes(v)) found.push(`${service} env`);
    }
    const logs = await stack.mustCompose(['logs', '--no-color']);
    for (const v of values) if (logs.includes(v)) found.push('logs');
    const auth = { authorization: `Bearer ${secrets.sidecar_token}` };
    // The status page's session: the token traded for a cookie, which must not carry it either.
    const login = await fetch(`http://127.0.0.1:${SIDECAR_PORT}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: secrets.sidecar_token }) });
    expect(login.status).toBe(200);
    const session = { cookie: (login.headers.get('set-cookie') ?? '').split(';')[0]! };
    const loginText = `${[...login.headers].join('\n')}\n${await login.text()}`;
    for (const v of values) if (loginText.includes(v)) found.push('/login');
    for (const path of ['/health', '/livez', '/readyz', '/pool', '/alerts', '/metrics', '/queries', '/plan', '/sessions', '/', '/page/status.js', '/status', '/history', '/nope']) {
      for (const headers of [auth, {}, session]) {
        const res = await fetch(`http://127.0.0.1:${SIDECAR_PORT}${path}`, { headers });
        const text = `${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n${await res.text()}`;
        // The token itself is sent by this test; it must never come back.
        for (const v of values) if (text.includes(v)) found.push(`${path}${headers === auth ? ' (with the token)' : headers === session ? ' (with a page session)' : ''}`);
      }
    }
    expect(found).toEqual([]);
    record({ scenario: 'security: containers and secrets', load: 'prod stack, every secret file of the form <name>-p@ss:w/rd%25#?&"dq\'sq-<random>', injected: 'docker inspect, /proc/1/status, every log line, every sidecar route and the status page login', figures: `stack healthy with those secrets; all non-root, read-only root, CapEff 0, NoNewPrivs 1; 0 of ${values.length} secret forms (as written, JSON-escaped, URL-encoded, SQL-quoted) in env, logs or HTTP responses (headers and bodies, with the token, without it, and with a status page session)` });
  });

  it('only SCRAM: md5 and trust are refused by Postgres and PgBouncer; Redis refuses unauthenticated commands', async () => {
    const app = secrets.app_password!;
    // libpq's require_auth makes the client insist on a method: the server must never offer it.
    const attempt = async (target: string, requireAuth: string, password?: string) => {
      const conn = `host=${target} port=${target === 'postgres' ? 5432 : 6432} dbname=app user=app require_auth=${requireAuth} connect_timeout=5`;
      const r = await run('docker', ['exec', ...(password ? ['-e', `PGPASSWORD=${password}`] : []), await id('pgbouncer'), 'psql', conn, '-Atc', 'SELECT 1']);
      return (r.stdout + r.stderr).trim();
    };
    const results: string[] = [];
    for (const target of ['postgres', 'pgbouncer']) {
      const md5 = await attempt(target, 'md5', app);
      expect(md5, `${target} md5`).toMatch(/server requested SASL authentication/);
      const trust = await attempt(target, 'none');
      expect(trust, `${target} trust`).toMatch(/server requested SASL authentication/);
      const scram = await attempt(target, 'scram-sha-256', app);
      expect(scram, `${target} scram`).toBe('1');
      results.push(`${target}: md5 and trust refused ("server requested SASL authentication"), SCRAM works`);
    }
    const hba = await run('docker', ['exec', await id('postgres'), 'psql', '-h', '/var/run/postgresql', '-U', 'postgres', '-d', 'postgres', '-Atc', "SELECT string_agg(type || ':' || array_to_string(user_name, ' ') || ':' || auth_method, ',' ORDER BY rule_number) FROM pg_hba_file_rules"]);
    // Unix socket: SCRAM for poolguard_pooled members (PgBouncer's logins), peer for the rest.
    // TCP: SCRAM; replication connections (the replica) only for poolguard_replication members.
    expect(hba.stdout.trim().split(',')).toEqual([
      'local:+poolguard_pooled:scram-sha-256', 'local:all:peer',
      'host:+poolguard_replication:scram-sha-256', 'host:+poolguard_replication:scram-sha-256',
      'host:all:scram-sha-256', 'host:all:scram-sha-256',
    ]);
    const md5Roles = await run('docker', ['exec', await id('postgres'), 'psql', '-h', '/var/run/postgresql', '-U', 'postgres', '-d', 'postgres', '-Atc', "SELECT count(*) FROM pg_authid WHERE rolpassword IS NOT NULL AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'"]);
    expect(md5Roles.stdout.trim()).toBe('0');
    const redis = await run('docker', ['exec', await id('redis'), 'redis-cli', '-h', '127.0.0.1', 'ping']);
    expect(redis.stdout + redis.stderr).toMatch(/NOAUTH/);
    record({ scenario: 'security: authentication', load: 'prod stack', injected: 'psql with require_auth=md5 / none / scram-sha-256; redis-cli without a password', figures: `${results.join('; ')}; pg_hba: host scram-sha-256 (replication only for poolguard_replication members), local scram-sha-256 for poolguard_pooled members (PgBouncer over the shared socket) and peer for the rest; 0 non-SCRAM password hashes; Redis: NOAUTH` });
  });

  it('a slowloris of 1000 sockets and a flood of 10,000 concurrent /health requests from the backend network: a client on a kept-alive connection answered within 1 s throughout, one opening a connection per request within 1 s at p99; memory under the limit, no restart', async () => {
    const sid = await id('sidecar');
    const before = await stack.inspect(sid);
    const limit = before.HostConfig.Memory;
    expect(limit).toBeGreaterThan(0);
    cgroupMemoryPeak(before.Id, true);
    // Two other clients, from the host through the published port (another address than the
    // attackers'): one keeps its connection open (as Prometheus and most HTTP clients do), one
    // opens a new connection for each request (as a healthcheck or curl does) and so has to get
    // through the kernel's accept queue, which the flood fills.
    const watcher = (agent: http.Agent | false) => {
      const latencies: number[] = [];
      const failures: string[] = [];
      let watching = true;
      const done = (async () => {
        while (watching) {
          const t0 = Date.now();
          await new Promise<void>((resolve) => {
            const req = http.get({ host: '127.0.0.1', port: SIDECAR_PORT, path: '/health', agent, timeout: 5000 }, (res) => {
              res.resume();
              res.on('end', () => {
                if (res.statusCode !== 200) failures.push(`status ${res.statusCode}`);
                resolve();
              });
            });
            req.on('timeout', () => req.destroy(new Error('no answer in 5 s')));
            req.on('error', (e) => { failures.push(e.message); resolve(); });
          });
          latencies.push(Date.now() - t0);
          await sleep(100);
        }
      })();
      return {
        stop: async () => {
          watching = false;
          await done;
          const sorted = [...latencies].sort((a, b) => a - b);
          const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
          return { n: sorted.length, p50: p(0.5), p99: p(0.99), max: sorted.at(-1)!, failures };
        },
      };
    };
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const kept = watcher(keepAlive);
    const fresh = watcher(false);
    await sleep(1000);
    const abuse = (name: string, env: Record<string, string | number>) => startScript(stack, { script: 'http-abuse.mjs', name, image: 'sidecar', env: { TARGET_HOST: 'sidecar', TARGET_PORT: 8787, DURATION_MS: 30_000, ...env }, timeoutMs: 120_000 });
    const slow = await abuse('slowloris', { MODE: 'slowloris', SOCKETS: 1000, DRIP_MS: 1000 });
    await sleep(2000);
    const flood = await abuse('flood', { MODE: 'flood', REQUESTS: 10_000 });
    const floodResult = await flood.result<{ requests: number; statuses: Record<string, number>; errors: Record<string, number>; slowestMs: number }>();
    const slowResult = await slow.result<{ sockets: number; connected: number; closedByServer: number; stillOpenAtEnd: number; longestLivedMs: number }>();
    await sleep(1000);
    const keptResult = await kept.stop();
    const freshResult = await fresh.stop();
    keepAlive.destroy();
    const peak = cgroupMemoryPeak(before.Id);
    const after = await stack.inspect(sid);
    const logs = await stack.mustCompose(['logs', '--no-color', 'sidecar']);
    record({
      scenario: '13. slowloris + 10,000-request flood (prod file)',
      load: `from a container on the backend network: ${slowResult.sockets} slowloris sockets (a header line a second, never finished) and ${floodResult.requests} concurrent GET /health, each on its own connection`,
      injected: 'limits: 512 sockets in all, 64 per remote address and 50 new a second, headersTimeout 5 s (checked every 1 s), requestTimeout 10 s, idle 10 s, keep-alive 5 s, no per-socket request limit',
      figures: `other client on a kept-alive connection: ${keptResult.n} requests, p50 ${keptResult.p50} ms, p99 ${keptResult.p99} ms, max ${keptResult.max} ms, ${keptResult.failures.length} failures; ` +
        `other client with a new connection each time: ${freshResult.n} requests, p50 ${freshResult.p50} ms, p99 ${freshResult.p99} ms, max ${freshResult.max} ms, ${freshResult.failures.length} failures; ` +
        `flood: ${JSON.stringify(floodResult.statuses)} answered, refused ${JSON.stringify(floodResult.errors)}, slowest ${floodResult.slowestMs} ms; ` +
        `slowloris: ${slowResult.connected} connected, ${slowResult.closedByServer} closed by the sidecar (longest lived ${(slowResult.longestLivedMs / 1000).toFixed(1)} s), ${slowResult.stillOpenAtEnd} open at the end; ` +
        `memory peak ${(peak / 2 ** 20).toFixed(1)} MiB of ${(limit / 2 ** 20).toFixed(0)} MiB; restarts ${(after.RestartCount ?? 0) - (before.RestartCount ?? 0)}`,
    });
    for (const r of [keptResult, freshResult]) {
      expect(r.failures, r.failures.slice(0, 5).join('; ')).toEqual([]);
      expect(r.n).toBeGreaterThan(50);
    }
    expect(keptResult.max, `slowest answer on the kept-alive connection (ms); p99 ${keptResult.p99}`).toBeLessThan(1000);
    // A new connection goes through the accept queue the flood fills: when it is full the kernel
    // drops the SYN and the client sends it again 1 s later (README, "Timeouts and network faults").
    expect(freshResult.p99, `p99 with a new connection each time (ms); max ${freshResult.max}`).toBeLessThan(1000);
    expect(freshResult.max, 'at most one SYN retransmission (1 s) plus the answer').toBeLessThan(2000);
    expect(peak).toBeLessThan(limit);
    expect(after.RestartCount).toBe(before.RestartCount);
    expect(after.State.OOMKilled).toBe(false);
    // Capped: the flood got answers and refusals; no slowloris socket outlived headersTimeout + the check interval by much.
    expect(floodResult.statuses['200'] ?? 0).toBeGreaterThan(0);
    expect(Object.values(floodResult.errors).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(slowResult.closedByServer).toBe(slowResult.connected);
    // headersTimeout 5 s, checked every 1 s, on an event loop the flood keeps busy: well under the 30 s the sockets would last.
    expect(slowResult.longestLivedMs).toBeLessThan(2 * 5000);
    expect(logs).toMatch(/too many connections from one address/);
  });

  it('the sidecar OOM-killed at its memory limit: OOMKilled, restarted once by the restart policy, healthy again, no crash loop', async () => {
    const sid = await id('sidecar');
    const before = await stack.inspect(sid);
    const limit = before.HostConfig.Memory;
    // The kernel's OOM killer picks the process with the highest oom_score in the cgroup: make it
    // the sidecar (from the host, as root), then push the container past its limit with a second
    // process that only allocates. The kill lands on the sidecar, as it would on a leak of its own.
    writeFileSync(`/proc/${before.State.Pid}/oom_score_adj`, '1000');
    const since = Math.floor(Date.now() / 1000) - 1;
    const t0 = Date.now();
    const hog = run('docker', ['exec', sid, 'node', '-e', 'const a=[];for(;;){a.push(Buffer.alloc(8<<20,1));}'], { timeoutMs: 60_000 });
    await waitUntil('the sidecar restarted', async () => ((await stack.inspect(sid)).RestartCount ?? 0) > (before.RestartCount ?? 0), 60_000, 100);
    const hogResult = await hog;
    const readyMs = await waitUntil('sidecar ready again', ready, 60_000, 100);
    const killed = await stack.inspect(sid);
    // Docker clears State.OOMKilled when the restarted container runs: the engine's events keep it.
    const events = async () => (await run('docker', ['events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', `container=${sid}`, '--format', '{{.Action}} {{index .Actor.Attributes "exitCode"}}'])).stdout.trim().split('\n').filter(Boolean);
    const seen = await events();
    // Over the following two minutes: still up, no further restart.
    await sleep(120_000);
    const later = await stack.inspect(sid);
    const h = await authHealth();
    record({
      scenario: '14. sidecar OOM-killed (prod file)',
      load: 'idle prod stack',
      injected: `oom_score_adj 1000 on the sidecar, then a process in its container allocating 8 MiB at a time past the ${(limit / 2 ** 20).toFixed(0)} MiB limit`,
      figures: `engine events: ${seen.filter((e) => /^(oom|die|start)/.test(e)).map((e) => e.trim()).join(', ')}; restart count ${before.RestartCount ?? 0} -> ${killed.RestartCount} (the allocating process: exit ${hogResult.code}); /readyz 200 ${(readyMs / 1000).toFixed(1)} s after the restart; ${((Date.now() - t0) / 1000).toFixed(0)} s later restart count ${later.RestartCount}, /health ${h?.status}`,
    });
    expect(seen.filter((e) => e.startsWith('oom')).length, seen.join(', ')).toBeGreaterThanOrEqual(1);
    expect(seen.filter((e) => e.startsWith('die')), seen.join(', ')).toEqual(['die 137']);
    expect(killed.RestartCount).toBe((before.RestartCount ?? 0) + 1);
    expect(later.RestartCount, 'no crash loop').toBe(killed.RestartCount);
    expect(later.State.Status).toBe('running');
    expect(h?.status).toBe(200);
  });

  // Apps reach Redis over TCP (PgBouncer reaches Postgres over the shared socket): cut a Redis
  // client off from Redis for 10 s, dropping packets both ways, so it sees a black hole.
  it('partition Redis clients from Redis for 10 s (prod file): every command fails within the client timeout, 0 acknowledged lost, writes resume after the heal, the sidecar unaffected', async () => {
    const writer = 'prod-partition-redis';
    const durationMs = 30_000;
    const ledger = await startRedisLedger(stack, { clients: 10, durationMs, writer, secretsDir: stack.extraEnv.POOLGUARD_SECRETS_DIR! });
    await sleep(8000);
    const cutS = (Date.now() - ledger.startedAt) / 1000;
    const heal = await partition(ledger.name, await id('redis'));
    let sidecarOk = 0;
    let sidecarChecks = 0;
    try {
      const until = Date.now() + 10_000;
      while (Date.now() < until) {
        sidecarChecks += 1;
        if ((await authHealth())?.status === 200) sidecarOk += 1;
        await sleep(500);
      }
    } finally {
      await heal();
    }
    const healS = (Date.now() - ledger.startedAt) / 1000;
    const r = await ledger.result();
    const during = r.summary.perSecond.slice(Math.ceil(cutS) + 1, Math.floor(healS)).reduce((a, b) => a + b, 0);
    const after = r.summary.perSecond.slice(Math.ceil(healS) + 1).reduce((a, b) => a + b, 0);
    record({
      scenario: '16. partition Redis clients | Redis (prod file, 10 s)',
      load: `10 Redis ledger clients (ioredis, commandTimeout 2 s, no offline queue, no resend), ${(durationMs / 1000).toFixed(0)} s`,
      injected: `packets between the ledger container and Redis dropped both ways from ${cutS.toFixed(1)} s to ${healS.toFixed(1)} s`,
      figures: `${redisText(r)}; acknowledged SETs while cut ${during}, after the heal ${after}; longest command ${(r.summary.longestCommandMs / 1000).toFixed(1)} s (started at ${(r.summary.longestCommandAtMs / 1000).toFixed(1)} s), longest SET+INCR attempt ${(r.summary.longestAttemptMs / 1000).toFixed(1)} s (at ${(r.summary.longestAttemptAtMs / 1000).toFixed(1)} s), the client's timers ran up to ${r.summary.maxLoopDelayMs} ms late; client errors: ${errorsText(r.summary.errors)}; sidecar /health 200 in ${sidecarOk} of ${sidecarChecks} checks during the cut`,
    });
    expect(r.check.lost, redisText(r)).toBe(0);
    expect(r.check.counter).toBeGreaterThanOrEqual(r.check.incrAcked);
    expect(r.check.counter).toBeLessThanOrEqual(r.check.incrAttempts);
    expect(during, 'nothing acknowledged while cut off').toBe(0);
    expect(after, 'writes resume after the heal').toBeGreaterThan(100);
    expect(Object.keys(r.summary.errors)).toContain('Command timed out');
    // Each command ends by the commandTimeout (2 s), give or take 500 ms of scheduling, plus
    // however late the ledger's own timers ran (a CI run once saw an attempt take 8.1 s on a
    // loaded machine: the figures now tell a late timer from a hung command).
    expect(r.summary.maxLoopDelayMs, 'the ledger measured its timers').toBeGreaterThan(0);
    expect(r.summary.longestCommandMs, 'no command hangs past the client timeout').toBeLessThan(2000 + 500 + r.summary.maxLoopDelayMs);
    expect(sidecarOk, 'the sidecar is not cut off from Redis').toBe(sidecarChecks);
  });

  // Backups on the prod file: the repository lives on the backup service, so stopping it makes
  // the repository unreachable for Postgres's archive-push (over TLS).
  const auth = () => ({ authorization: `Bearer ${secrets.sidecar_token}` });
  const firing = async () => ((await (await fetch(`http://127.0.0.1:${SIDECAR_PORT}/alerts`, { headers: auth() })).json()) as { items: { name: string; summary: string; since: string }[] }).items;
  const scrape = async () => (await fetch(`http://127.0.0.1:${SIDECAR_PORT}/metrics`, { headers: auth() })).text();
  /** The primary's sample of a Postgres family (target="postgres"). */
  const value = (text: string, name: string) => Number(new RegExp(`^${name}\\{target="postgres"\\} ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
  const backupStatus = async () => JSON.parse((await stack.exec('backup', ['poolguard-backup', 'status'])).stdout) as { lastRun: { reason: string; ok: boolean; type: string } | null; walGap: unknown; lastWalGap: { after: string; missing: number } | null };
  /** n WAL segments written and switched (a few kB each, 16 MB each in the archive queue). */
  async function switchSegments(n: number): Promise<void> {
    await superSql(stack, 'CREATE TABLE IF NOT EXISTS wal_filler (x text)');
    for (let i = 0; i < n; i++) await superSql(stack, "INSERT INTO wal_filler SELECT repeat('x', 100) FROM generate_series(1, 100); SELECT pg_switch_wal()");
  }

  it('the backup service stopped under writes (prod file): Postgres keeps serving, archive_failing fires, archiving catches up when it returns and the alert resolves', async () => {
    await waitUntil('the first full backup in /metrics', async () => /^pgbackrest_backup_info\{[^}]*backup_type="full"/m.test(await scrape()), 120_000, 1000);
    const secretsDir = stack.extraEnv.POOLGUARD_SECRETS_DIR!;
    const writer = 'prod-backup-stopped';
    const load = await startLoad(stack, { clients: 4, durationMs: 90_000, writer, idBase: 7e12, secretsDir });
    await sleep(3000);
    await stack.mustCompose(['stop', 'backup']);
    const stoppedAt = Date.now();
    await switchSegments(3); // 48 MB queued: under BACKUP_ARCHIVE_QUEUE_MAX (64MB), nothing dropped
    const firedMs = await waitUntil('archive_failing firing', async () => (await firing()).some((a) => a.name === 'archive_failing'), 120_000, 500);
    const firedAfterS = (Date.now() - stoppedAt) / 1000;
    const during = await scrape();
    const waiting = value(during, 'poolguard_pg_archive_ready_segments');
    const summaryText = (await firing()).find((a) => a.name === 'archive_failing')?.summary ?? '';
    await sleep(10_000); // down for a while, writes going on
    await stack.mustCompose(['start', 'backup']);
    const startedAt = Date.now();
    await waitUntil('archiving caught up and archive_failing resolved', async () => {
      const text = await scrape();
      return value(text, 'poolguard_pg_archive_ready_segments') === 0 && !(await firing()).some((a) => a.name === 'archive_failing');
    }, 240_000, 1000, async () => JSON.stringify(await firing()));
    const caughtUpS = (Date.now() - startedAt) / 1000;
    const { summary, ackedIds } = await load.result();
    const lost = await lostInserts(stack, writer, ackedIds);
    const archived = value(await scrape(), 'pg_stat_archiver_archived_count');
    record({
      scenario: '18a. backup service stopped under writes (prod file)',
      load: `${summary.clients} clients inserting through PgBouncer (TLS), 90 s`,
      injected: 'docker compose stop backup (the repository host) for ~25 s, 3 WAL segments switched meanwhile',
      figures: `archive_failing fired ${firedAfterS.toFixed(1)} s after the stop ("${summaryText.slice(0, 110)}"), ${waiting} segments waiting; after the start, archiving caught up and the alert resolved in ${caughtUpS.toFixed(1)} s (archived ${archived}); writes: ${summary.acked} acknowledged, ${lost} lost, errors ${errorsText(summary.errors)}`,
    });
    expect(firedMs).toBeGreaterThan(0);
    expect(waiting).toBeGreaterThanOrEqual(1);
    expect(summary.errors, 'Postgres kept serving while the repository was away').toEqual({});
    expect(lost).toBe(0);
    expect(summary.acked).toBeGreaterThan(500);
  });

  it('WAL past archive-push-queue-max while the repository is away (prod file): dropped, wal_dropped fires, the backup service takes a full backup by itself', async () => {
    // From the repository itself (the sidecar's copy can be a poll behind).
    const newestFull = async () => (JSON.parse((await stack.exec('backup', ['pgbackrest', '--output=json', 'info'])).stdout) as { backup: { label: string; type: string }[] }[])[0]!.backup.filter((b) => b.type === 'full').map((b) => b.label).sort().at(-1);
    const fullBefore = await newestFull();
    const archivedBefore = value(await scrape(), 'pg_stat_archiver_archived_count');
    await stack.mustCompose(['stop', 'backup']);
    const stoppedAt = Date.now();
    await switchSegments(7); // 112 MB queued: past BACKUP_ARCHIVE_QUEUE_MAX (64MB)
    await waitUntil('archive-push reporting dropped WAL as archived', async () => value(await scrape(), 'pg_stat_archiver_archived_count') > archivedBefore, 180_000, 1000);
    const droppedAfterS = (Date.now() - stoppedAt) / 1000;
    const pgLog = await stack.mustCompose(['logs', '--no-color', '--since', new Date(stoppedAt - 1000).toISOString(), 'postgres']);
    const dropLine = /[^\n]*dropped WAL file[^\n]*/.exec(pgLog)?.[0] ?? '';
    await stack.mustCompose(['start', 'backup']);
    const startedAt = Date.now();
    let alertText = '';
    const alertMs = await waitUntil('wal_dropped firing', async () => {
      const a = (await firing()).find((x) => x.name === 'wal_dropped');
      alertText = a?.summary ?? '';
      return a !== undefined;
    }, 120_000, 500);
    let status = await backupStatus();
    await waitUntil('a full backup taken because WAL is missing, and no gap left after it', async () => {
      status = await backupStatus();
      return status.lastRun?.ok === true && /WAL is missing from the repository/.test(status.lastRun.reason) && status.walGap === null;
    }, 180_000, 1000, async () => JSON.stringify(status));
    const fullS = (Date.now() - startedAt) / 1000;
    const fullAfter = await newestFull();
    const check = await stack.exec('backup', ['pgbackrest', 'check']);
    record({
      scenario: '18b. WAL past archive-push-queue-max (prod file)',
      load: 'idle prod stack',
      injected: 'backup service stopped, 7 WAL segments (112 MB) switched with BACKUP_ARCHIVE_QUEUE_MAX=64MB',
      figures: `pgBackRest reported the WAL archived after ${droppedAfterS.toFixed(1)} s ("${dropLine.replace(/^.*?(WARN|P\d+)/, '$1').slice(0, 120)}"); wal_dropped fired ${(alertMs / 1000).toFixed(1)} s after the backup service started ("${alertText.slice(0, 120)}"); the automatic full backup done ${fullS.toFixed(1)} s after the start (${status.lastWalGap?.missing} segments were missing after ${status.lastWalGap?.after}); pgbackrest check exit ${check.code}`,
    });
    expect(dropLine, 'the postgres log says WAL was dropped').not.toBe('');
    expect(fullAfter, 'a newer full backup (retention keeps 2)').not.toBe(fullBefore);
    expect(status.lastWalGap?.missing).toBeGreaterThan(0);
    expect(check.code, check.stderr).toBe(0);
  });

  it('make restore-check STACK=prod: the latest backup restored over TLS from the encrypted repository, amcheck and row counts pass', async () => {
    const t0 = Date.now();
    const r = await run(join(ROOT, 'scripts/backup.sh'), ['prod', 'restore-check', '--', '-p', stack.project, '--env-file', stack.envFile], { env: stack.extraEnv, timeoutMs: 600_000 });
    const took = (Date.now() - t0) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/restore-check:\s+app\s+ledger\s+\d+ rows/);
    expect(r.stderr).toMatch(/restore-check: PASSED/);
    const info = await stack.exec('backup', ['pgbackrest', 'info']);
    expect(info.stdout, 'the repository is encrypted').toMatch(/cipher: aes-256-cbc/);
    record({
      scenario: '18c. make restore-check on the prod file',
      load: 'idle prod stack after the tests above',
      injected: 'none: restore of the latest backup into a scratch volume (pgBackRest TLS server mode, aes-256-cbc repository)',
      figures: `passed in ${took.toFixed(1)} s: ${/pgbackrest restore: done in \d+ s \([^)]*\)/.exec(r.stderr)?.[0]}; ${/started and recovered in \d+ s/.exec(r.stderr)?.[0]}; ${/amcheck on .*: done in \d+ s/.exec(r.stderr)?.[0]}`,
    });
  });

  // kill -9 of each backend's main process by its host PID (docker kill would count as a manual
  // stop for unless-stopped), under load on every ledger, with no manual start afterwards.
  const killed = { postgres: 9.0e12, pgbouncer: 9.1e12, redis: 9.2e12 } as const;
  for (const [service, idBase] of Object.entries(killed) as [Backend, number][]) {
    it(`kill -9 ${service} (host PID) under load: the restart policy brings it back; 0 acknowledged lost on every ledger, the bank invariant holds`, async () => {
      const writer = `prod-kill-${service}`;
      const secretsDir = stack.extraEnv.POOLGUARD_SECRETS_DIR!;
      await seedBank(stack, writer);
      const durationMs = 30_000;
      const load = await startLoad(stack, { clients: 20, bank: 10, durationMs, writer, idBase, secretsDir, queryTimeoutMs: 10_000 });
      const redis = await startRedisLedger(stack, { clients: 10, durationMs, writer, secretsDir });
      await sleep(8000);
      const cid = await id(service);
      const before = await stack.inspect(cid);
      const { pid, comm } = await mainPid(cid);
      expect(pid).toMatch(/^[1-9]\d*$/);
      const restartsBefore = Number((await authHealth())?.body[service].restarts);
      expect(restartsBefore, '/health counts restarts').toBeGreaterThanOrEqual(0);
      const killedAt = Date.now();
      expect((await run('kill', ['-9', pid])).code).toBe(0);
      // Watch /health every 50 ms: when was it first seen down, when did it count the restart
      // (a restart faster than the sidecar's next look never shows as down; the moved start time,
      // run id or counters show it), and healthy again.
      let seenDownMs: number | undefined;
      let seenRestartMs: number | undefined;
      let cause = '';
      const healthyMs = await waitUntil(`${service} restarted, the restart seen by the sidecar, and the sidecar healthy`, async () => {
        const h = await authHealth();
        if (h && reportsDown(h.body, service) && seenDownMs === undefined) {
          seenDownMs = Date.now() - killedAt;
          cause = String(h.body[service].lastError ?? h.body.database.lastError ?? '');
        }
        if (h && h.body[service].restarts > restartsBefore && seenRestartMs === undefined) seenRestartMs = Date.now() - killedAt;
        return h?.status === 200 && seenRestartMs !== undefined && ((await stack.inspect(cid)).RestartCount ?? 0) > (before.RestartCount ?? 0);
      }, 60_000, 50, async () => `seen down: ${seenDownMs ?? 'no'}; restart seen: ${seenRestartMs ?? 'no'}; ${JSON.stringify((await authHealth())?.body ?? null).slice(0, 600)}`);
      const after = await stack.inspect(cid);
      const alerts = await fetch(`http://127.0.0.1:${SIDECAR_PORT}/alerts`, { headers: { authorization: `Bearer ${secrets.sidecar_token}` } }).then((r) => r.json() as Promise<{ items: { name: string; labels: Record<string, string>; summary: string }[] }>);
      const restartAlert = alerts.items.find((a) => a.name === 'backend_restarted' && a.labels.backend === service);

      const { summary, ackedIds, transferIds } = await load.result();
      const r = await redis.result();
      const lost = await lostInserts(stack, writer, ackedIds);
      const bank = await checkBank(stack, writer, transferIds);
      record({
        scenario: `9. kill -9 ${service} (prod file, no manual start)`,
        load: `${summary.clients} inserting + ${summary.bankClients} bank clients through PgBouncer (TLS), 10 Redis clients, ${(durationMs / 1000).toFixed(0)} s`,
        injected: `kill -9 of ${comm} (host PID ${pid}) at ${((killedAt - load.startedAt) / 1000).toFixed(1)} s; restart: unless-stopped`,
        figures: `restarted by Docker (restart count ${before.RestartCount ?? 0} -> ${after.RestartCount}); ` +
          `sidecar ${seenDownMs === undefined ? 'never saw it down (back before its next look)' : `saw it down after ${(seenDownMs / 1000).toFixed(1)} s ("${cause.slice(0, 80)}")`}, counted the restart after ${((seenRestartMs ?? NaN) / 1000).toFixed(1)} s (alert backend_restarted: "${restartAlert?.summary.slice(0, 90) ?? 'none'}"), healthy ${(healthyMs / 1000).toFixed(1)} s after the kill; ` +
          `inserts: acknowledged ${summary.acked}, lost ${lost}; ${bankText(bank)}; ${redisText(r)}; client errors: ${errorsText(summary.errors)}`,
      });
      expect(after.RestartCount, 'restarted by the restart policy, once').toBe((before.RestartCount ?? 0) + 1);
      expect(after.State.Status).toBe('running');
      expect(restartAlert, `backend_restarted firing for ${service}; firing: ${JSON.stringify(alerts.items.map((a) => a.name))}`).toBeDefined();
      expect(lost).toBe(0);
      expect(summary.acked).toBeGreaterThan(500);
      expect(bank.acked).toBeGreaterThan(50);
      expect(bank, bankText(bank)).toMatchObject({ lost: 0, mismatched: 0, held: true });
      expect(r.check.lost, redisText(r)).toBe(0);
      expect(r.check.counter).toBeGreaterThanOrEqual(r.check.incrAcked);
      expect(r.check.counter).toBeLessThanOrEqual(r.check.incrAttempts);
      expect(healthyMs).toBeLessThan(60_000);
    });
  }

  // Last: it changes every secret.
  it('make rotate SECRET=all under load: no acknowledged write lost, the failed transactions counted, the stack healthy on the new values', async () => {
    const secretsDir = stack.extraEnv.POOLGUARD_SECRETS_DIR!;
    const writer = 'rotate-all';
    // An app that re-reads its password file at every connection and reconnects every 25 transactions.
    const load = await startLoad(stack, { clients: 30, durationMs: 60_000, writer, idBase: 8e12, secretsDir, reconnectEvery: 25 });
    await sleep(8_000);
    const from = (Date.now() - load.startedAt) / 1000;
    const rot = await run(join(ROOT, 'scripts/rotate.sh'), ['-p', stack.project, '--env-file', stack.envFile, 'all'], { env: stack.extraEnv });
    const to = (Date.now() - load.startedAt) / 1000;
    console.log(`rotate.sh all: ${from.toFixed(1)} s -> ${to.toFixed(1)} s of the load\n${rot.stderr}`);
    const { summary, ackedIds } = await load.result();
    expect(rot.code, rot.stdout + rot.stderr).toBe(0);
    expect(rot.stderr).toMatch(/health: all backends healthy/);
    const steps = [...rot.stderr.matchAll(/rotated (\w+) in (\d+) ms/g)].map((m) => `${m[1]} ${m[2]} ms`);
    // Every secret but the repository key: the 8 before the replica, replication_password and app_read_password.
    expect(steps.length).toBe(10);

    const rotated: Record<string, string> = {};
    for (const f of Object.keys(secrets)) rotated[f] = readFileSync(join(secretsDir, f), 'utf8');
    // Every secret but the repository key: pgBackRest cannot re-key a repository in place (docs/backups.md).
    for (const f of Object.keys(secrets)) {
      if (f === 'pgbackrest_cipher_pass') expect(rotated[f], f).toBe(secrets[f]);
      else expect(rotated[f], f).not.toBe(secrets[f]);
    }

    // Ledger: every acknowledged id is in the table.
    const present = await stack.exec('postgres', ['psql', '-X', '-h', '/var/run/postgresql', '-U', 'postgres', '-d', 'app', '-Atc', `SELECT id FROM ledger WHERE writer = '${writer}'`]);
    const inTable = new Set(present.stdout.trim().split('\n').filter(Boolean).map(Number));
    const lost = ackedIds.filter((i) => !inTable.has(i)).length;
    expect(summary.acked).toBeGreaterThan(1000);
    expect(lost).toBe(0);
    const during = summary.timeline.filter((t) => t.s >= Math.floor(from) && t.s <= Math.ceil(to) + 1);
    const after = summary.timeline.filter((t) => t.s > Math.ceil(to) + 2);
    const failed = during.reduce((n, t) => n + t.errors, 0);
    const failedAfter = after.reduce((n, t) => n + t.errors, 0);
    expect(after.reduce((n, t) => n + t.acked, 0), 'commits after the rotation').toBeGreaterThan(100);
    expect(failedAfter, `errors after the rotation: ${errorsText(summary.errors)}`).toBe(0);

    // Old values are refused, new ones work.
    const pgbouncerId = (await stack.containers()).find((c) => c.service === 'pgbouncer')!.id;
    const login = (pw: string) => run('docker', ['exec', '-e', `PGPASSWORD=${pw}`, pgbouncerId, 'psql', 'host=127.0.0.1 port=6432 dbname=app user=app connect_timeout=5', '-Atc', 'SELECT 1']);
    expect((await login(secrets.app_password!)).stderr).toMatch(/authentication failed/);
    expect((await login(rotated.app_password!)).stdout.trim()).toBe('1');
    const metrics = (token: string) => fetch(`http://127.0.0.1:${SIDECAR_PORT}/metrics`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
    expect(await metrics(secrets.sidecar_token!)).toBe(401);
    expect(await metrics(rotated.sidecar_token!)).toBe(200);
    record({
      scenario: '8. rotate every secret under load (prod file)',
      load: '30 clients through PgBouncer (TLS verify-full), each re-reading app_password at every connection and reconnecting every 25 transactions, 60 s',
      injected: `scripts/rotate.sh all (make rotate SECRET=all) at ${from.toFixed(1)} s, done at ${to.toFixed(1)} s`,
      figures: `steps: ${steps.join(', ')}; acknowledged ${summary.acked}, lost ${lost}; failed transactions while rotating ${failed} (${errorsText(summary.errors)}), after it 0; old app password and token refused, new ones work; /health 200`,
    });
    Object.assign(secrets, rotated);
  });
});
