// The dev compose file, end to end: bring-up, config, pooling limits, prepared statements,
// volumes, migrations. Everything runs against the real images and compose file.
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGE_TAG, ROOT, Stack, health, pgClient, pgConnectError, publish, readEnvFile, run, sleep, until } from './stack.js';

const SLOW_MIGRATION = '-- Up Migration\nSELECT pg_sleep(3);\nCREATE TABLE slow_marker (id int PRIMARY KEY);\nINSERT INTO slow_marker VALUES (1);\n-- Down Migration\nDROP TABLE slow_marker;\n';

/** A migrations folder: the shipped ones plus extra files. */
function migrationsDir(extra: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'poolguard-mig-'));
  for (const f of readdirSync(join(ROOT, 'migrations/sql'))) copyFileSync(join(ROOT, 'migrations/sql', f), join(dir, f));
  for (const [name, sql] of Object.entries(extra)) writeFileSync(join(dir, name), sql);
  chmodSync(dir, 0o755); // the job runs as uid 10001
  return dir;
}

const PORTS = { postgres: 25432, pgbouncer: 26432, redis: 26379, sidecar: 28787 };
const stack = Stack.dev('poolguard-test-dev', {
  ...publish(PORTS),
  SIDECAR_POLL_INTERVAL_MS: '1000',
  SIDECAR_SOURCE_TIMEOUT_MS: '800',
  // Settings the compose file once dropped (it passed a fixed dozen): every one must arrive.
  PGBOUNCER_IGNORE_STARTUP_PARAMETERS: 'extra_float_digits,statement_timeout,lock_timeout,idle_in_transaction_session_timeout,search_path',
  PGBOUNCER_STATS_PERIOD: '30',
});
/** `make TARGET` against this test stack (its env file names the project, ports and image tag). */
const make = (target: string, ...vars: string[]) => run('make', ['-s', target, `ENV_FILE=${stack.envFile}`, ...vars], { timeoutMs: 300_000 });
/** What scripts/up.sh printed after compose's own progress lines. */
const summary = (out: string) => out.split('\n').filter((l) => /^(up|preflight|health|  )/.test(l) && !/^ Container| Network| Volume/.test(l));
const env = stack.env;
const app = { user: env.APP_USER!, password: env.APP_PASSWORD!, database: env.APP_DB! };
const pooled = (extra: pg.ClientConfig = {}) => pgClient({ port: PORTS.pgbouncer, ...app, ...extra });
const direct = (extra: pg.ClientConfig = {}) => pgClient({ port: PORTS.postgres, ...app, ...extra });
const admin = () =>
  pgClient({ port: PORTS.pgbouncer, user: env.PGBOUNCER_ADMIN_USER!, password: env.PGBOUNCER_ADMIN_PASSWORD!, database: 'pgbouncer' });

let upSeconds = 0;

beforeAll(async () => {
  await stack.compose(['down', '-v', '--remove-orphans']);
  const t0 = Date.now();
  await stack.up();
  upSeconds = (Date.now() - t0) / 1000;
  console.log(`dev stack up --wait (images built): ${upSeconds.toFixed(1)} s`);
});

afterAll(async () => {
  await stack.down(true);
});

describe('dev stack bring-up', () => {
  it('every long-running service is healthy and the migration job exited 0', async () => {
    const states: Record<string, string> = {};
    for (const { service, id } of await stack.containers()) {
      const info = await stack.inspect(id);
      states[service] = service === 'migrate' ? `exited:${info.State.ExitCode}` : (info.State.Health?.Status ?? 'no-healthcheck');
    }
    expect(states).toEqual({ postgres: 'healthy', pgbouncer: 'healthy', redis: 'healthy', backup: 'healthy', sidecar: 'healthy', migrate: 'exited:0' });
  });

  it('publishes every service on 127.0.0.1 only', async () => {
    for (const { service, id } of await stack.containers()) {
      // The migration job and the backup service publish nothing.
      if (service === 'migrate' || service === 'backup') {
        expect(Object.values((await stack.inspect(id)).NetworkSettings.Ports ?? {}).flat().filter(Boolean), service).toEqual([]);
        continue;
      }
      const ports = (await stack.inspect(id)).NetworkSettings.Ports;
      const bindings = Object.values(ports).flatMap((b) => b ?? []);
      expect(bindings.length, service).toBeGreaterThan(0);
      for (const b of bindings) expect(b.HostIp, service).toBe('127.0.0.1');
    }
  });

  it('applied the migration, visible on the direct URL', async () => {
    const c = await direct();
    try {
      const applied = await c.query('SELECT name FROM pgmigrations ORDER BY id');
      expect(applied.rows.map((r) => r.name)).toEqual(['1763856000000_create-ledger']);
      const t = await c.query("SELECT to_regclass('public.ledger') AS t");
      expect(t.rows[0].t).toBe('ledger');
    } finally {
      await c.end();
    }
  });

  it("SHOW CONFIG on the admin console shows the card's values", async () => {
    const c = await admin();
    try {
      const rows = (await c.query('SHOW CONFIG')).rows as { key: string; value: string }[];
      const cfg = Object.fromEntries(rows.map((r) => [r.key, r.value]));
      expect(cfg).toMatchObject({
        pool_mode: 'transaction',
        default_pool_size: '25',
        min_pool_size: '5',
        reserve_pool_size: '5',
        reserve_pool_timeout: '3',
        max_client_conn: '100',
        max_db_connections: '50',
        server_lifetime: '3600',
        server_idle_timeout: '600',
        query_wait_timeout: '120',
        auth_type: 'scram-sha-256',
        auth_user: 'pgbouncer_auth',
        admin_users: 'pgbouncer_admin',
        stats_users: 'pgbouncer_stats',
      });
      expect(Number(cfg.max_prepared_statements)).toBeGreaterThan(0);
      expect(cfg.ignore_startup_parameters).toContain('extra_float_digits');
      // Set in the env file as PGBOUNCER_<NAME>, passed by the compose file's bare names.
      expect(cfg.ignore_startup_parameters).toContain('search_path');
      expect(cfg.stats_period).toBe('30');
      expect(cfg.auth_query).toContain('pgbouncer.get_auth');
    } finally {
      await c.end();
    }
  });

  it('/health answers 200 from real checks of all three backends', async () => {
    const { status, body } = (await health(PORTS.sidecar))!;
    expect(status).toBe(200);
    expect(body.healthy).toBe(true);
    expect(body.database).toMatchObject({ healthy: true, lastError: null, connectionPool: { isPgBouncer: true } });
    expect(body.database.responseTime).toBeGreaterThan(0);
    expect(body.pgbouncer).toMatchObject({ healthy: true, version: expect.stringMatching(/^1\.24\./) });
    expect(body.redis).toMatchObject({ available: true, connected: true, status: 'ready', lastError: null });
  });

  it('the status page and its data are open without a token (dev), like /health; /history keeps an hour at the poll interval', async () => {
    const base = `http://127.0.0.1:${PORTS.sidecar}`;
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/^default-src 'self'/);
    expect(await page.text()).toContain('<script type="module" src="/page/status.js"></script>');
    const status = (await (await fetch(`${base}/status`)).json()) as { healthy: boolean; cards: { id: string; state: string }[] };
    expect(status.healthy).toBe(true);
    expect(status.cards.map((c) => c.id)).toEqual(expect.arrayContaining(['pgbouncer', 'probe', 'postgres', 'redis']));
    const history = (await (await fetch(`${base}/history`)).json()) as { intervalMs: number; capacity: number; windowSeconds: number; points: number; memoryBytes: number; series: Record<string, unknown[]> };
    // SIDECAR_HISTORY_SECONDS 3600 (the default) at this stack's poll interval.
    expect(history).toMatchObject({ capacity: 3_600_000 / history.intervalMs, windowSeconds: 3600 });
    expect(history.points).toBeGreaterThan(0);
    const series = Object.keys(history.series).length;
    expect(series).toBeGreaterThanOrEqual(10);
    // Every array is allocated whole: this is its memory at one hour too.
    expect(history.memoryBytes).toBe(history.capacity * 8 * (series + 1));
    console.log(`status page: /history holds ${series} series, ${history.memoryBytes} bytes for an hour at ${history.intervalMs} ms (${720 * 8 * (series + 1)} at the default 5 s)`);
  });

  it('the stats user cannot run admin commands, the app role cannot log into the console', async () => {
    const stats = await pgClient({ port: PORTS.pgbouncer, user: env.PGBOUNCER_STATS_USER!, password: env.PGBOUNCER_STATS_PASSWORD!, database: 'pgbouncer' });
    try {
      await expect(stats.query('PAUSE')).rejects.toThrow(/admin access needed/);
      expect((await stats.query('SHOW VERSION')).rows[0].version).toMatch(/PgBouncer 1\.24/);
    } finally {
      await stats.end();
    }
    const err = await pgConnectError({ port: PORTS.pgbouncer, ...app, database: 'pgbouncer' });
    expect(err?.message).toMatch(/not allowed/);
  });

  it('PgBouncer reaches Postgres over the shared Unix socket; only poolguard_pooled members log in that way', async () => {
    const c = await pooled();
    try {
      // The server side of a pooled session is a Unix-socket backend: no client address.
      const { rows } = await c.query("SELECT client_addr, client_port FROM pg_stat_activity WHERE pid = pg_backend_pid()");
      expect(rows[0]).toEqual({ client_addr: null, client_port: -1 });
    } finally {
      await c.end();
    }
    const psql = (sql: string) => stack.exec('postgres', ['psql', '-v', 'ON_ERROR_STOP=1', '-h', '/var/run/postgresql', '-U', 'postgres', '-d', app.database, '-Atc', sql]);
    expect((await psql("CREATE ROLE reporting LOGIN PASSWORD 'reporting-pw'")).code).toBe(0);
    const reporting = { port: PORTS.pgbouncer, user: 'reporting', password: 'reporting-pw', database: app.database };
    // Not a member: PgBouncer authenticates the client (auth_query), Postgres refuses the
    // server login over the socket (pg_hba: local +poolguard_pooled), and says why.
    expect((await pgConnectError(reporting))?.message).toMatch(/authentication failed for user "reporting"/);
    expect((await psql('GRANT poolguard_pooled TO reporting')).code).toBe(0);
    const r = await pgClient(reporting);
    try {
      expect((await r.query('SELECT current_user AS u')).rows[0].u).toBe('reporting');
    } finally {
      await r.end();
    }
  });

  it('a wrong password is refused through PgBouncer and directly', async () => {
    expect((await pgConnectError({ port: PORTS.pgbouncer, ...app, password: 'wrong' }))?.message).toMatch(/password authentication failed|SASL authentication failed/);
    expect((await pgConnectError({ port: PORTS.postgres, ...app, password: 'wrong' }))?.message).toMatch(/password authentication failed/);
  });
});

/** The sidecar's /metrics on this stack. */
const metricsText = async () => (await fetch(`http://127.0.0.1:${PORTS.sidecar}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
/** Label names of every sample of each series name in an exposition text. */
function seriesLabels(text: string): Map<string, Set<string>[]> {
  const out = new Map<string, Set<string>[]>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (!m) continue;
    const names = new Set([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)].map((l) => l[1]!));
    out.set(m[1]!, [...(out.get(m[1]!) ?? []), names]);
  }
  return out;
}

describe('one scrape for the dashboards people use', () => {
  interface Dashboards {
    reasons: Record<string, string>;
    dashboards: { id: string; source: { repo: string; path: string; commit: string }; series: { name: string; labels: string[] }[]; absent: Record<string, string> }[];
  }
  const facts = JSON.parse(readFileSync(join(ROOT, 'monitoring/dashboard-series.json'), 'utf8')) as Dashboards;

  it("every series Grafana dashboards 9628 (both revisions) and 763 query is served with the labels they use, except those listed absent with a reason", async () => {
    // A key with an expiry, so that redis_db_keys{db} and redis_db_keys_expiring have a database to report.
    const set = await stack.exec('redis', ['redis-cli', '--no-auth-warning', '-a', env.REDIS_PASSWORD!, 'SET', 'poolguard:dashboard-test', '1', 'EX', '600']);
    expect(set.stdout.trim(), set.stderr).toBe('OK');
    let text = '';
    await until('a poll that saw the key', async () => /^redis_db_keys_expiring\{db="db0"\} [1-9]/m.test((text = await metricsText())), 30_000);
    const served = seriesLabels(text);
    const report: string[] = [];
    for (const d of facts.dashboards) {
      expect(d.series.length, d.id).toBeGreaterThan(0);
      for (const [name, reason] of Object.entries(d.absent)) {
        expect(facts.reasons[reason], `${d.id}: ${name}'s reason "${reason}" is one of the reasons`).toBeDefined();
        expect(d.series.map((s) => s.name), `${d.id}: ${name} is listed absent but the dashboard does not query it`).toContain(name);
        expect(served.has(name), `${d.id}: ${name} is listed absent (${reason}) but /metrics serves it: take it off the list`).toBe(false);
      }
      const missing: string[] = [];
      for (const s of d.series.filter((x) => !(x.name in d.absent))) {
        const samples = served.get(s.name);
        if (!samples) {
          missing.push(s.name);
          continue;
        }
        for (const label of s.labels) expect(samples.some((l) => l.has(label)), `${d.id}: ${s.name} has label ${label}`).toBe(true);
      }
      expect(missing, `${d.id} (${d.source.repo} ${d.source.path}): series neither served nor listed absent`).toEqual([]);
      report.push(`${d.id}: ${d.series.length - Object.keys(d.absent).length} of ${d.series.length} served, ${Object.keys(d.absent).length} absent with a reason`);
    }
    console.log(`dashboard series: ${report.join('; ')}; /metrics: ${served.size} families with samples, ${[...served.values()].reduce((n, v) => n + v.length, 0)} series`);
  });

  it('promtool check metrics: /metrics parses; the only lint findings are the names monitoring/promtool-allowed.txt lists for compatibility', async () => {
    // The monitoring profile's Prometheus image (scripts/test.sh builds every profile's images).
    const img = `poolguard/prometheus:${IMAGE_TAG}`;
    const text = await metricsText();
    const r = await run('docker', ['run', '--rm', '-i', '--network', 'none', '--entrypoint', 'promtool', img, 'check', 'metrics'], { input: text, timeoutMs: 60_000 });
    // promtool: 0 clean, 3 lint findings only; anything else (1: it did not parse) fails here.
    expect([0, 3], `promtool exited ${r.code}: ${r.stdout}${r.stderr}`).toContain(r.code);
    const findings = `${r.stdout}\n${r.stderr}`.split('\n').map((l) => l.trim()).filter((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]* /.test(l));
    if (r.code === 3) expect(findings.length, `promtool exited 3 and printed no finding: ${r.stdout}${r.stderr}`).toBeGreaterThan(0);
    const allowed = promtoolAllowed();
    const unexpected = findings.filter((f) => !allowed.has(f));
    expect(unexpected, 'lint findings not in monitoring/promtool-allowed.txt (fix the name, or list it there with why)').toEqual([]);
    console.log(`promtool check metrics: exit ${r.code}, ${findings.length} findings, all allowed (${allowed.size} listed)`);
  });
});

/** monitoring/promtool-allowed.txt as the lines promtool prints: "NAME MESSAGE" for each name under a [MESSAGE] heading. */
function promtoolAllowed(): Set<string> {
  const out = new Set<string>();
  let message = '';
  for (const raw of readFileSync(join(ROOT, 'monitoring/promtool-allowed.txt'), 'utf8').split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const heading = /^\[(.+)\]$/.exec(line);
    if (heading) message = heading[1]!;
    else out.add(`${line} ${message}`);
  }
  return out;
}

describe('pooling limits', () => {
  it('fills max_client_conn with working clients, holds server connections to pool + reserve, refuses one more', async () => {
    const console_ = await admin();
    const clients: pg.Client[] = [];
    try {
      const cfg = Object.fromEntries(((await console_.query('SHOW CONFIG')).rows as { key: string; value: string }[]).map((r) => [r.key, r.value]));
      const maxClientConn = Number(cfg.max_client_conn);
      const serverCap = Number(cfg.default_pool_size) + Number(cfg.reserve_pool_size);
      // Every client PgBouncer holds counts, console sessions included (ours and the sidecar's).
      const taken = (await console_.query('SHOW CLIENTS')).rows.length;
      const free = maxClientConn - taken;
      expect(taken).toBeGreaterThanOrEqual(2); // this console session + the sidecar's
      expect(free).toBeGreaterThan(90);

      for (let i = 0; i < free; i += 1) clients.push(await pooled({ application_name: `fill-${i}` }));
      const over = await pgConnectError({ port: PORTS.pgbouncer, ...app });
      expect(over?.message).toBe('no more connections allowed (max_client_conn)');

      let maxServers = 0;
      let maxBackends = 0;
      let sampling = true;
      const watcher = (async () => {
        const d = await direct();
        try {
          while (sampling) {
            const pools = (await console_.query('SHOW POOLS')).rows as Record<string, string>[];
            const appPool = pools.find((p) => p.database === app.database && p.user === app.user);
            if (appPool) {
              const servers = ['sv_active', 'sv_idle', 'sv_used', 'sv_tested', 'sv_login'].reduce((n, k) => n + Number(appPool[k] ?? 0), 0);
              maxServers = Math.max(maxServers, servers);
            }
            const b = await d.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend'", [app.user]);
            maxBackends = Math.max(maxBackends, b.rows[0].n - 1); // minus this watcher
            await sleep(100);
          }
        } finally {
          await d.end();
        }
      })();

      // Every client runs write transactions concurrently (~4 s of load, longer than
      // reserve_pool_timeout, so the reserve pool is used too).
      const rounds = 8;
      const results = await Promise.allSettled(
        clients.map(async (c, i) => {
          for (let r = 0; r < rounds; r += 1) {
            await c.query('BEGIN');
            await c.query('INSERT INTO ledger (id, writer, amount) VALUES ($1, $2, $3)', [i * 1000 + r, `fill-${i}`, r]);
            await c.query('SELECT pg_sleep(0.05)');
            await c.query('COMMIT');
          }
        }),
      );
      sampling = false;
      await watcher;
      const failed = results.filter((r) => r.status === 'rejected');
      expect(failed.map((f) => String((f as PromiseRejectedResult).reason))).toEqual([]);

      const c = await direct();
      const n = (await c.query("SELECT count(*)::int AS n FROM ledger WHERE writer LIKE 'fill-%'")).rows[0].n;
      await c.end();
      expect(n).toBe(free * rounds);
      console.log(`clients: ${free} app + ${taken} console/sidecar = ${maxClientConn}; max server connections seen: pool ${maxServers}, pg_stat_activity ${maxBackends} (cap ${serverCap})`);
      expect(maxServers).toBeGreaterThan(0);
      expect(maxServers).toBeLessThanOrEqual(serverCap);
      expect(maxBackends).toBeLessThanOrEqual(serverCap);
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await console_.end();
    }
  });

  it('named prepared statements and parameterised queries work through PgBouncer', async () => {
    const clients = await Promise.all([0, 1, 2, 3].map(() => pooled()));
    try {
      for (let round = 0; round < 5; round += 1) {
        await Promise.all(
          clients.map(async (c, i) => {
            const named = await c.query({ name: 'poolguard-add', text: 'SELECT $1::int + $2::int AS sum', values: [i, round] });
            expect(named.rows[0].sum).toBe(i + round);
            const param = await c.query('SELECT $1::text AS echo, $2::int AS n', [`c${i}`, round]);
            expect(param.rows[0]).toEqual({ echo: `c${i}`, n: round });
          }),
        );
      }
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });
});

describe('migrations', () => {
  it('two concurrent runs serialise on the advisory lock instead of racing', async () => {
    const dir = migrationsDir({ '1763856000001_slow.sql': SLOW_MIGRATION });
    const args = ['run', '--rm', '--no-deps', '-v', `${dir}:/extra:ro`, '-e', 'MIGRATIONS_DIR=/extra', 'migrate'];
    const t0 = Date.now();
    const [a, b] = await Promise.all([stack.compose(args), stack.compose(args)]);
    const seconds = (Date.now() - t0) / 1000;
    expect([a.code, b.code], `${a.stdout}${a.stderr}\n---\n${b.stdout}${b.stderr}`).toEqual([0, 0]);
    const outputs = `${a.stdout}${a.stderr}${b.stdout}${b.stderr}`;
    // Exactly one run applied it; the other waited for the lock, then found nothing to do.
    expect(outputs.match(/MIGRATION 1763856000001_slow \(UP\)/g)?.length).toBe(1);
    expect(outputs).toMatch(/No migrations to run!/);
    const c = await direct();
    try {
      const rows = await c.query("SELECT count(*)::int AS n FROM pgmigrations WHERE name = '1763856000001_slow'");
      expect(rows.rows[0].n).toBe(1);
    } finally {
      await c.end();
    }
    expect(seconds).toBeGreaterThan(3);
  });

  it('refuses to run migrations through PgBouncer', async () => {
    const r = await stack.compose(['run', '--rm', '--no-deps', '-e', `DATABASE_URL_DIRECT=postgres://${app.user}@pgbouncer:6432/${app.database}`, 'migrate']);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(/points at PgBouncer/);
  });

  it('a failing migration fails the bring-up and shows its error', async () => {
    // Runs after the test above: its applied migration must still be in the folder.
    const dir = migrationsDir({
      '1763856000001_slow.sql': SLOW_MIGRATION,
      '1763856000002_broken.sql': '-- Up Migration\nALTER TABLE no_such_table ADD COLUMN x int;\n-- Down Migration\n',
    });
    const override = join(mkdtempSync(join(tmpdir(), 'poolguard-override-')), 'override.yml');
    writeFileSync(override, `services:\n  migrate:\n    environment:\n      MIGRATIONS_DIR: /extra\n    volumes:\n      - ${dir}:/extra:ro\n`);
    const r = await run(join(ROOT, 'scripts/up.sh'), ['dev', '-p', stack.project, '--env-file', stack.envFile, '-f', override]);
    expect(r.code).toBe(1);
    const out = r.stdout + r.stderr;
    expect(out).toMatch(/relation "no_such_table" does not exist/);
    expect(out).toMatch(/FAILED to bring docker-compose.dev.yml up healthy/);
  });
});

describe('volumes', () => {
  it('data survives down + up; down -v removes it', async () => {
    const marker = 424242;
    let c = await pooled();
    await c.query("INSERT INTO ledger (id, writer) VALUES ($1, 'volume-test')", [marker]);
    await c.end();

    await stack.down(false);
    await stack.up();
    c = await pooled();
    expect((await c.query('SELECT writer FROM ledger WHERE id = $1', [marker])).rows).toEqual([{ writer: 'volume-test' }]);
    await c.end();

    await stack.down(true);
    await stack.up();
    c = await direct();
    expect((await c.query('SELECT count(*)::int AS n FROM ledger')).rows[0].n).toBe(0);
    await c.end();
  });
});

describe('day one (make targets on this stack)', () => {
  it('make psql honours ARGS', async () => {
    const r = await make('psql', `ARGS=-Atc "select 40 + 2"`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('42');
    const d = await make('psql-direct', `ARGS=-Atc "select current_user"`);
    expect(d.stdout.trim()).toBe(app.user);
  });

  it('make plan: the running stack passes (live); before a deploy a default pool of 60 fails, naming the inequality; half an app is refused', async () => {
    const live = await make('plan', 'APP_INSTANCES=4', 'APP_POOL=20');
    expect(live.code, live.stdout + live.stderr).toBe(0);
    expect(live.stderr).toMatch(/^plan: live: the running stack's settings/m);
    // The entries in PgBouncer's order (SHOW DATABASES), the read alias and the probe among them.
    expect(live.stdout).toMatch(/^PASS  server connections: PgBouncer against Postgres\n {6}1 × \([^)]*\) = \d+ ≤ max_connections 100 − superuser_reserved 3 − reserved 0 − direct 7 /m);
    expect(live.stdout).toMatch(/1 × \((?=[^)]*\bapp \d+)(?=[^)]*\bapp_ro \d+)(?=[^)]*\bpoolguard_probe 1\b)[^)]*\)/);
    expect(live.stdout).toContain('app instances 4 × app pool 20 = 80 ≤ max_client_conn 100 − console slots 2 = 98');
    const big = await make('plan', 'PGBOUNCER_DEFAULT_POOL_SIZE=60');
    expect(big.code, big.stdout + big.stderr).not.toBe(0);
    expect(big.stderr).toMatch(/^plan: rendered: /m);
    expect(big.stdout).toMatch(/^FAIL  server connections: PgBouncer against Postgres\n {6}1 × \(app 50 \+ poolguard_probe 1 \+ app_ro 50\) = 101 ≤ max_connections 100 .* = 90\n {6}PgBouncer may open 11 more server connections than Postgres accepts/m);
    expect(big.stdout.trim().split('\n').at(-1)).toBe('FAIL');
    const half = await make('plan', 'APP_INSTANCES=4');
    expect([half.code === 0, half.stderr]).toEqual([false, expect.stringMatching(/give APP_INSTANCES and APP_POOL together/)]);
  });

  it('make migrate runs a new file of the mounted migrations folder (no rebuild needed)', async () => {
    const dir = migrationsDir({ '1763856000001_slow.sql': SLOW_MIGRATION, '1763856000003_day_one.sql': '-- Up Migration\nCREATE TABLE day_one (id int);\n-- Down Migration\nDROP TABLE day_one;\n' });
    stack.writeEnv({ ...env, POOLGUARD_MIGRATIONS_DIR: dir });
    try {
      const r = await make('migrate');
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout + r.stderr).toMatch(/MIGRATION 1763856000003_day_one \(UP\)/);
      const c = await direct();
      expect((await c.query("SELECT to_regclass('public.day_one') AS t")).rows[0].t).toBe('day_one');
      await c.end();
    } finally {
      stack.writeEnv(env);
    }
  });

  it('make up exits 1 naming the backend and its error when /health is 503 (wrong MONITOR_PASSWORD), 0 once fixed', async () => {
    stack.writeEnv({ ...env, MONITOR_PASSWORD: 'not-the-monitor-password' });
    let r;
    try {
      r = await make('up');
    } finally {
      stack.writeEnv(env);
    }
    const out = summary(r.stdout + r.stderr).join('\n');
    expect(r.code, out).not.toBe(0);
    expect(out).toMatch(/health: NOT healthy \(HTTP 503\)/);
    expect(out).toMatch(/postgres: down — password authentication failed for user "poolguard_monitor"/);
    expect(out).toMatch(/Roles and their passwords are created ONCE/);
    const ok = await make('up');
    expect(ok.code, summary(ok.stdout + ok.stderr).join('\n')).toBe(0);
    expect(ok.stderr).toMatch(/health: all backends healthy/);
  });

  it('a wrong APP_PASSWORD after the first start: a few lines say what failed, why and the fix; make passwords applies it', async () => {
    const changed = { ...env, APP_PASSWORD: 'changed-after-the-first-start' };
    stack.writeEnv(changed);
    try {
      const r = await make('up');
      const lines = summary(r.stdout + r.stderr);
      const out = lines.join('\n');
      expect(r.code).not.toBe(0);
      expect(out).toMatch(/- migrate: the migration job exited 1/);
      expect(out).toMatch(/password authentication failed for user "app"/);
      expect(out).toMatch(/- sidecar: not started/);
      expect(out).toMatch(/created ONCE[\s\S]*make passwords[\s\S]*make clean/);
      expect(out).not.toMatch(/^\s+at /m); // no stack traces
      expect(lines.length, out).toBeLessThan(25);
      expect((await make('passwords')).code).toBe(0);
      const ok = await make('up');
      expect(ok.code, summary(ok.stdout + ok.stderr).join('\n')).toBe(0);
    } finally {
      stack.writeEnv(env);
    }
    // Back to the original password the same way.
    expect((await make('passwords')).code).toBe(0);
    expect((await make('up')).code).toBe(0);
    await (await pooled()).end();
  });

  it('preflight: an unknown or managed PGBOUNCER_ name, a renamed variable, an unknown profile and taken ports stop the bring-up before anything starts', async () => {
    const squatter = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => squatter.once('listening', r));
    const heldPort = (squatter.address() as AddressInfo).port;
    try {
      const other = Stack.dev('poolguard-test-preflight', {
        PUBLISH_POSTGRES_PORT: '25532', PUBLISH_PGBOUNCER_PORT: '26532',
        PUBLISH_REDIS_PORT: String(heldPort), // a host process holds it
        PUBLISH_SIDECAR_PORT: String(PORTS.sidecar), // the running test stack's sidecar holds it
        PGBOUNCER_POOL_MOOD: 'transaction', PGBOUNCER_AUTH_FILE: '/tmp/users.txt', SIDECAR_PUBLISH_PORT: '1',
        // A profile name Compose would ignore in silence.
        COMPOSE_PROFILES: 'replicas',
        // A URL left in an old .env, its password no longer APP_PASSWORD's.
        DATABASE_URL: 'postgresql://app:stale%40pw@127.0.0.1:6432/app',
      });
      const r = await run(join(ROOT, 'scripts/up.sh'), ['dev', '-p', other.project, '--env-file', other.envFile]);
      const out = r.stdout + r.stderr;
      expect(r.code).toBe(1);
      expect(out).toMatch(/nothing was started/);
      expect(out).toMatch(/PGBOUNCER_POOL_MOOD: 'pool_mood' is not a setting of pgbouncer\/pgbouncer.ini/);
      expect(out).toMatch(/PGBOUNCER_AUTH_FILE: 'auth_file' is fixed by the image/);
      expect(out).toMatch(/SIDECAR_PUBLISH_PORT was renamed PUBLISH_SIDECAR_PORT/);
      expect(out).toMatch(/COMPOSE_PROFILES lists 'replicas', a profile docker-compose.dev.yml does not have \(it has: monitoring replica \)/);
      expect(out).toMatch(/the password in DATABASE_URL is not APP_PASSWORD: the URL is stale/);
      expect(out).toMatch(new RegExp(`host port 127.0.0.1:${heldPort} \\(redis\\) is taken by a process on this host.*set PUBLISH_REDIS_PORT`));
      expect(out).toMatch(new RegExp(`host port 127.0.0.1:${PORTS.sidecar} \\(sidecar\\) is taken by container poolguard-test-dev-sidecar-1 of compose project poolguard-test-dev.*set PUBLISH_SIDECAR_PORT`));
      const ps = await run('docker', ['ps', '-aq', '--filter', `label=com.docker.compose.project=${other.project}`]);
      expect(ps.stdout.trim()).toBe('');
      // The stack's own ports are no obstacle to bringing it up again.
      const again = await run(join(ROOT, 'scripts/preflight.sh'), ['dev', '-p', stack.project, '--env-file', stack.envFile]);
      expect(again.code, again.stderr).toBe(0);
    } finally {
      squatter.close();
    }
  });
});

describe('the env file as compose reads it', () => {
  it('CRLF lines, quoted values and comments: the scripts read what compose reads; a name set twice or a missing required value stops the bring-up, naming it', async () => {
    const base = readEnvFile(join(ROOT, '.env.example'));
    const dir = mkdtempSync(join(tmpdir(), 'poolguard-test-envfile-'));
    const write = (name: string, lines: string[], eol = '\n') => {
      const p = join(dir, name);
      writeFileSync(p, lines.join(eol) + eol);
      return p;
    };
    const plain = Object.entries({ ...base, POOLGUARD_PROJECT: 'poolguard-test-envfile', PUBLISH_POSTGRES_PORT: '25632', PUBLISH_PGBOUNCER_PORT: '26632', PUBLISH_REDIS_PORT: '26679', PUBLISH_SIDECAR_PORT: '28687' })
      .filter(([k]) => !['APP_PASSWORD', 'REDIS_PASSWORD'].includes(k)).map(([k, v]) => `${k}=${v}`);
    const forms = [...plain, `APP_PASSWORD="quoted pass # with \\"quote\\" and hash"  # a comment`, "REDIS_PASSWORD='single#quoted'"];
    const crlf = write('crlf', forms, '\r\n');
    const pre = await run(join(ROOT, 'scripts/preflight.sh'), ['dev', '--env-file', crlf]);
    expect(pre.code, pre.stderr).toBe(0);
    expect(pre.stderr).toMatch(/has Windows \(CRLF\) line endings; compose and poolguard read it correctly/);
    // What compose renders for the services, against what the scripts compute (make urls).
    const rendered = await run(join(ROOT, 'scripts/compose.sh'), ['-f', join(ROOT, 'docker-compose.dev.yml'), '--env-file', crlf, 'config', '--format', 'json']);
    expect(rendered.code, rendered.stderr).toBe(0);
    const services = JSON.parse(rendered.stdout).services;
    expect(services.postgres.environment.APP_PASSWORD).toBe('quoted pass # with "quote" and hash');
    expect(services.redis.environment.REDIS_PASSWORD).toBe('single#quoted');
    const urls = await run(join(ROOT, 'scripts/urls.sh'), [crlf]);
    expect(urls.stdout).toContain(`postgresql://app:${encodeURIComponent('quoted pass # with "quote" and hash').replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}@127.0.0.1:26632/app`);
    expect(urls.stdout).toContain(`redis://:${encodeURIComponent('single#quoted')}@127.0.0.1:26679/0`);

    const dup = write('dup', [...forms, 'PGBOUNCER_DEFAULT_POOL_SIZE=40']);
    const dupLines = readFileSync(dup, 'utf8').split('\n').map((l, i) => (l.startsWith('PGBOUNCER_DEFAULT_POOL_SIZE=') ? i + 1 : 0)).filter(Boolean);
    const d = await run(join(ROOT, 'scripts/up.sh'), ['dev', '--env-file', dup]);
    expect(d.code).toBe(1);
    expect(d.stdout + d.stderr).toContain(`PGBOUNCER_DEFAULT_POOL_SIZE is set on lines ${dupLines.join(', ')} and compose uses only the last; keep one`);
    const missing = write('missing', [...plain, 'APP_PASSWORD=', 'REDIS_PASSWORD=x']);
    const m = await run(join(ROOT, 'scripts/up.sh'), ['dev', '--env-file', missing]);
    expect(m.code).toBe(1);
    expect(m.stdout + m.stderr).toMatch(/APP_PASSWORD/);
    expect(m.stdout + m.stderr).toMatch(/set APP_PASSWORD in \.env|required variable APP_PASSWORD/);
    const ps = await run('docker', ['ps', '-aq', '--filter', 'label=com.docker.compose.project=poolguard-test-envfile']);
    expect(ps.stdout.trim(), 'nothing started').toBe('');
  });
});

describe('make clean', () => {
  it("names this checkout's volumes, deletes nothing without confirmation, and only its own project's with it", async () => {
    const keep = `poolguard-keep-${process.pid}_pgdata`;
    await run('docker', ['volume', 'create', '--label', `com.docker.compose.project=poolguard-keep-${process.pid}`, keep]);
    try {
      const refused = await make('clean');
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/poolguard-test-dev_pgdata/);
      expect(refused.stderr).toMatch(/nothing deleted.*make clean CONFIRM=yes/);
      const vols = async () => (await run('docker', ['volume', 'ls', '-q'])).stdout.split('\n');
      expect(await vols()).toContain('poolguard-test-dev_pgdata');
      const done = await make('clean', 'CONFIRM=yes');
      expect(done.code, done.stderr).toBe(0);
      const after = await vols();
      expect(after.filter((v) => v.startsWith('poolguard-test-dev_'))).toEqual([]);
      expect(after).toContain(keep);
    } finally {
      await run('docker', ['volume', 'rm', keep]);
    }
  });
});
