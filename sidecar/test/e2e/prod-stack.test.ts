// The prod compose file, end to end: an upgrade from the previous file keeps the data, a second
// bring-up restarts nothing, settings only from prod.env, generated secrets, hardening in effect
// on the running containers, nothing published but the sidecar, no secret in any container's
// environment.
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGE_TAG, ROOT, Stack, image, run, until, type DockerInspect } from './stack.js';

const SIDECAR_PORT = 28788;
let stack: Stack;
let secrets: Record<string, string> = {};
const inspected: Record<string, DockerInspect> = {};
const upgrade = { marker: '', firstUp: '', secondUp: '', recreated: [] as string[] };

/** docker-compose.prod.yml as shipped before its volumes were named explicitly (git history), on the test's images. */
async function previousProdFile(): Promise<string> {
  // The first commit that named a volume that way (later ones, such as _pgdata_replica, contain the string too).
  const pinned = await run('git', ['log', '--format=%H', '--reverse', '-S', 'name: ${COMPOSE_PROJECT_NAME}_pgdata', '--', 'docker-compose.prod.yml']);
  const first = pinned.stdout.trim().split('\n')[0] ?? '';
  expect(first, `git log: ${pinned.stderr}`).toMatch(/^[0-9a-f]{40}$/);
  const old = await run('git', ['show', `${first}^:docker-compose.prod.yml`]);
  expect(old.code, old.stderr).toBe(0);
  expect(old.stdout).toMatch(/^name: poolguard-prod$/m);
  expect(old.stdout).not.toMatch(/COMPOSE_PROJECT_NAME/);
  const file = join(mkdtempSync(join(tmpdir(), 'poolguard-old-prod-')), 'docker-compose.prod.yml');
  writeFileSync(file, old.stdout.replace(/(image: poolguard\/\w+):0\.1\.0$/gm, `$1:${IMAGE_TAG}`));
  return file;
}

const upProd = () => run(join(ROOT, 'scripts/up.sh'), ['prod', '-p', stack.project, '--env-file', stack.envFile], { env: stack.extraEnv });
const startedAt = async () => Object.fromEntries(await Promise.all((await stack.containers()).map(async (c) => [c.service, `${c.id} ${(await stack.inspect(c.id)).State.Status}`] as const)));

beforeAll(async () => {
  const secretsDir = join(mkdtempSync(join(tmpdir(), 'poolguard-test-prod-')), 'secrets');
  // The replica profile on: the upgrade from the previous file (no replication roles on its
  // volume) brings the roles, the clone and the read routing up in one go. The monitoring
  // profile too: its services get every hardening check below.
  stack = Stack.prod('poolguard-test-prod', { PUBLISH_SIDECAR_PORT: String(SIDECAR_PORT), COMPOSE_PROFILES: 'replica,monitoring', PROMETHEUS_SCRAPE_INTERVAL: '5s' }, secretsDir);
  const gen = await run(join(ROOT, 'scripts/gen-secrets.sh'), [secretsDir]);
  expect(gen.code, gen.stderr).toBe(0);
  for (const f of readdirSync(secretsDir).filter((n) => !/\.(crt|key)$/.test(n))) secrets[f] = readFileSync(join(secretsDir, f), 'utf8');
  await stack.compose(['down', '-v', '--remove-orphans']);

  // 1. The previous file brings the stack up and data is written.
  const oldEnv = join(stack.dir, 'old.env');
  writeFileSync(oldEnv, `SIDECAR_PUBLISH_PORT=${SIDECAR_PORT}\n`);
  const old = ['--project-directory', ROOT, '-p', stack.project, '-f', await previousProdFile(), '--env-file', oldEnv];
  const compose = (args: string[]) => run(join(ROOT, 'scripts/compose.sh'), [...old, ...args], { env: stack.extraEnv });
  const t0 = Date.now();
  const oldUp = await compose(['up', '-d', '--wait']);
  expect(oldUp.code, oldUp.stderr).toBe(0);
  const psql = (sql: string) => stack.exec('postgres', ['psql', '-X', '-v', 'ON_ERROR_STOP=1', '-h', '/var/run/postgresql', '-U', 'postgres', '-d', 'app', '-Atc', sql]);
  expect((await psql("CREATE TABLE upgrade_marker (note text); INSERT INTO upgrade_marker VALUES ('written under the previous compose file')")).code).toBe(0);
  expect((await compose(['down'])).code).toBe(0);

  // 2. The current file, through the real bring-up script, twice.
  const first = await upProd();
  upgrade.firstUp = first.stdout + first.stderr;
  expect(first.code, upgrade.firstUp).toBe(0);
  upgrade.marker = (await psql('SELECT note FROM upgrade_marker')).stdout.trim();
  const before = await startedAt();
  const second = await upProd();
  upgrade.secondUp = second.stdout + second.stderr;
  expect(second.code, upgrade.secondUp).toBe(0);
  const after = await startedAt();
  upgrade.recreated = Object.keys(before).filter((s) => before[s] !== after[s]);
  console.log(`prod: previous file up, then scripts/up.sh prod twice: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  for (const { service, id } of await stack.containers()) inspected[service] = await stack.inspect(id);
});

afterAll(async () => {
  await stack?.down(true);
});

describe('prod stack: upgrades and bring-ups', () => {
  it('data written under the previous compose file is there after the upgrade (volume names unchanged)', () => {
    expect(upgrade.marker).toBe('written under the previous compose file');
  });

  it('a second bring-up with no change rebuilds from cache and restarts nothing', () => {
    expect(upgrade.secondUp).toMatch(/health: all backends healthy/);
    expect(upgrade.secondUp).not.toMatch(/Recreate/);
    expect(upgrade.recreated).toEqual([]);
  });

  it('reads prod.env only: a dev .env beside the file is refused, and never read with --env-file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'poolguard-dotenv-'));
    writeFileSync(join(dir, '.env'), 'SIDECAR_LOG_LEVEL=debug\nPOSTGRES_MAX_CONNECTIONS=7\nPGBOUNCER_DEFAULT_POOL_SIZE=3\n');
    const file = join(ROOT, 'docker-compose.prod.yml');
    const env = { POOLGUARD_SECRETS_DIR: stack.extraEnv.POOLGUARD_SECRETS_DIR! };
    const refused = await run(join(ROOT, 'scripts/compose.sh'), ['--project-directory', dir, '-f', file, 'config'], { env });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/reads its settings from prod.env only: run it with --env-file prod.env/);
    const cfg = await run(join(ROOT, 'scripts/compose.sh'), ['--project-directory', dir, '-f', file, '--env-file', join(ROOT, 'prod.env'), 'config'], { env });
    expect(cfg.code, cfg.stderr).toBe(0);
    expect(cfg.stdout).toMatch(/SIDECAR_LOG_LEVEL: info/);
    expect(cfg.stdout).toMatch(/max_connections=100/);
    expect(cfg.stdout).not.toMatch(/PGBOUNCER_DEFAULT_POOL_SIZE: "?3/);
  });

  it('make clean refuses a project that runs the prod file', async () => {
    const r = await run(join(ROOT, 'scripts/clean.sh'), ['--yes', '-p', stack.project, '--env-file', join(ROOT, '.env.example')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/refusing: project 'poolguard-test-prod' runs docker-compose.prod.yml/);
    expect((await stack.containers()).length).toBe(10); // the replica and monitoring profiles are on
  });
});

describe('prod stack: TLS to PgBouncer', () => {
  /** psql in a container on the backend network, trusting the bundle's CA (as an app would). */
  const psql = (conninfo: string, password: string, sql: string) => {
    const ca = join(stack.extraEnv.POOLGUARD_SECRETS_DIR!, 'tls_ca.crt');
    return run('docker', ['run', '--rm', '--network', `${stack.project}_backend`, '-v', `${ca}:/ca.crt:ro`, '-e', 'PGPASSWORD', '-e', 'PGCONNECT_TIMEOUT=5',
      '--entrypoint', 'psql', image('postgres'), '-X', '-Atc', sql, conninfo], { env: { PGPASSWORD: password } });
  };

  it('an app verifies PgBouncer with sslmode=verify-full and the CA; every client, the sidecar too, is on TLS', async () => {
    const app = await psql('host=pgbouncer port=6432 dbname=app user=app sslmode=verify-full sslrootcert=/ca.crt', secrets.app_password!, 'SELECT 40 + 2');
    expect(app.code, app.stderr).toBe(0);
    expect(app.stdout.trim()).toBe('42');
    const clients = await psql('host=pgbouncer port=6432 dbname=pgbouncer user=pgbouncer_admin sslmode=verify-full sslrootcert=/ca.crt', secrets.pgbouncer_admin_password!, 'SHOW CLIENTS');
    expect(clients.code, clients.stderr).toBe(0);
    const rows = clients.stdout.trim().split('\n');
    // Every client over the network is on TLS. On PgBouncer's Unix socket (inside its own
    // container, no network: TLS does not apply there) only the read router's console session.
    const overTcp = rows.filter((r) => r.split('|')[5] !== 'unix');
    const onSocket = rows.filter((r) => r.split('|')[5] === 'unix');
    expect(overTcp.length).toBeGreaterThanOrEqual(3); // this console session + the sidecar's console and probe
    for (const row of overTcp) expect(row, row).toMatch(/\|TLSv1\.[23]\//);
    for (const row of onSocket) expect(row, row).toMatch(/^C\|pgbouncer_admin\|pgbouncer\|.*\|poolguard-read-router\|/);
  });

  it('a client without TLS is refused; a host name the certificate does not name fails verification', async () => {
    const plain = await psql('host=pgbouncer port=6432 dbname=app user=app sslmode=disable', secrets.app_password!, 'SELECT 1');
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/SSL required/);
    const ip = (await stack.inspect(inspected.pgbouncer!.Id)) as unknown as { NetworkSettings: { Networks: Record<string, { IPAddress: string }> } };
    const addr = Object.values(ip.NetworkSettings.Networks)[0]!.IPAddress;
    expect(addr).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const wrongName = await psql(`host=${addr} port=6432 dbname=app user=app sslmode=verify-full sslrootcert=/ca.crt`, secrets.app_password!, 'SELECT 1');
    expect(wrongName.code).not.toBe(0);
    expect(wrongName.stderr).toMatch(/does not match host name/);
  });
});

describe('prod stack: an app service joining it (examples/app.prod.yml)', () => {
  it('reaches pgbouncer:6432 over verified TLS with the password from its secret file, and Redis, from the internal network', async () => {
    // A test app in the migrate image (node + pg): what examples/app.prod.yml gives it, it uses.
    const dir = mkdtempSync(join(tmpdir(), 'poolguard-app-'));
    writeFileSync(join(dir, 'app.mjs'), `
      import { readFileSync } from 'node:fs';
      import net from 'node:net';
      import pg from 'pg';
      const e = process.env;
      if (e.PGSSLMODE !== 'verify-full') throw new Error('PGSSLMODE is ' + e.PGSSLMODE);
      const c = new pg.Client({ host: e.PGHOST, port: Number(e.PGPORT), user: e.PGUSER, database: e.PGDATABASE,
        password: readFileSync(e.APP_DB_PASSWORD_FILE, 'utf8'), ssl: { ca: readFileSync(e.PGSSLROOTCERT, 'utf8'), servername: e.PGHOST } });
      await c.connect();
      const r = await c.query('SELECT current_user AS u, (SELECT count(*) FROM ledger) >= 0 AS ledger');
      await c.end();
      const pong = await new Promise((ok, fail) => {
        const s = net.connect(Number(e.REDIS_PORT), e.REDIS_HOST, () => s.write('AUTH ' + readFileSync(e.REDIS_PASSWORD_FILE, 'utf8') + '\\r\\nPING\\r\\n'));
        let buf = ''; s.on('data', (d) => { buf += d; if (buf.includes('PONG')) { s.end(); ok(buf.replace(/\\r\\n/g, ' ').trim()); } });
        s.on('error', fail); setTimeout(() => fail(new Error('redis: ' + buf)), 5000);
      });
      console.log(JSON.stringify({ user: r.rows[0].u, ledger: r.rows[0].ledger, redis: pong }));
    `);
    const override = join(dir, 'test-app.yml');
    writeFileSync(override, `services:\n  app:\n    restart: "no"\n    entrypoint: ["node", "/app/test-app.mjs"]\n    volumes: ["${join(dir, 'app.mjs')}:/app/test-app.mjs:ro"]\n    networks: [backend]\n`);
    const files = ['-f', join(ROOT, 'examples/app.prod.yml'), '-f', override];
    const pre = await run(join(ROOT, 'scripts/preflight.sh'), ['prod', '-p', stack.project, '--env-file', stack.envFile, ...files], { env: { ...stack.extraEnv, APP_IMAGE: image('migrate') } });
    expect(pre.code, pre.stderr).toBe(0);
    const r = await run(join(ROOT, 'scripts/compose.sh'), ['-p', stack.project, '-f', stack.file, ...files, '--env-file', stack.envFile, 'run', '--rm', '--no-deps', 'app'],
      { env: { ...stack.extraEnv, APP_IMAGE: image('migrate') } });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(out).toEqual({ user: 'app', ledger: true, redis: '+OK +PONG' });
  });
});

describe('prod stack', () => {
  it('gen-secrets made every secret strong and refuses to overwrite without --force', async () => {
    expect(Object.keys(secrets).sort()).toEqual([
      'app_password', 'app_read_password', 'monitor_password', 'pgbackrest_cipher_pass', 'pgbouncer_admin_password', 'pgbouncer_auth_password',
      'pgbouncer_stats_password', 'postgres_password', 'redis_password', 'replication_password', 'sidecar_token',
    ]);
    for (const v of Object.values(secrets)) expect(v).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(new Set(Object.values(secrets)).size).toBe(11);
    const dir = stack.extraEnv.POOLGUARD_SECRETS_DIR!;
    const again = await run(join(ROOT, 'scripts/gen-secrets.sh'), [dir]);
    expect(again.stderr).toMatch(/0 created, 11 kept .*; PgBouncer TLS certificate kept; backup TLS certificates kept/);
    expect(readFileSync(join(dir, 'app_password'), 'utf8')).toBe(secrets.app_password);
  });

  it('every long-running service is healthy; the sidecar answers 200', async () => {
    for (const s of ['postgres', 'postgres-replica', 'pgbouncer', 'redis', 'sidecar', 'backup', 'pgbackrest', 'prometheus', 'alertmanager']) expect(inspected[s]?.State.Health?.Status, s).toBe('healthy');
    expect(inspected.migrate?.State.ExitCode).toBe(0);
    const res = await fetch(`http://127.0.0.1:${SIDECAR_PORT}/health`);
    const body = (await res.json()) as { healthy: boolean; pgbouncer: { version: string | null } };
    expect(res.status).toBe(200);
    expect(body.healthy).toBe(true);
    // The token is set in prod: without it no versions (nor error text); with it, the detail.
    expect(body.pgbouncer.version).toBeNull();
    const full = (await (await fetch(`http://127.0.0.1:${SIDECAR_PORT}/health`, { headers: { authorization: `bearer ${secrets.sidecar_token}` } })).json()) as typeof body;
    expect(full.pgbouncer.version).toMatch(/^1\.24\./);
  });

  it('the replica profile: the standby streams, the read URL (TLS through PgBouncer) reads from it and cannot write, the sidecar lists it', async () => {
    const psql = (service: string, sql: string) => stack.exec(service, ['psql', '-X', '-h', '/var/run/postgresql', '-U', 'postgres', '-d', 'app', '-Atc', sql]);
    expect((await psql('postgres', 'SELECT application_name, state FROM pg_stat_replication')).stdout.trim()).toBe('postgres-replica|streaming');
    expect((await psql('postgres-replica', 'SELECT pg_is_in_recovery()')).stdout.trim()).toBe('t');
    // As an app on the backend network would: app_reader on app_ro, TLS required by PgBouncer.
    const read = (sql: string) => stack.exec('pgbouncer', ['sh', '-c', `PGPASSWORD='${secrets.app_read_password}' psql -X -At -v ON_ERROR_STOP=1 "host=127.0.0.1 port=6432 dbname=app_ro user=app_reader sslmode=require" -c "${sql}"`]);
    let onReplica = '';
    for (let i = 0; i < 60 && onReplica !== 't'; i++) {
      onReplica = (await read('SELECT pg_is_in_recovery()')).stdout.trim();
      if (onReplica !== 't') await new Promise((r) => setTimeout(r, 500));
    }
    expect(onReplica).toBe('t');
    const write = await read("INSERT INTO upgrade_marker VALUES ('through the read URL')");
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/read-only transaction/);
    expect((await read('SELECT note FROM upgrade_marker')).stdout.trim()).toBe('written under the previous compose file');
    const full = (await (await fetch(`http://127.0.0.1:${SIDECAR_PORT}/health`, { headers: { authorization: `Bearer ${secrets.sidecar_token}` } })).json()) as { degraded: boolean; replicas: { instance: string; healthy: boolean; status: string }[] };
    expect(full.degraded).toBe(false);
    expect(full.replicas.map((r) => `${r.instance} ${r.healthy} ${r.status}`)).toEqual(['postgres-replica true streaming']);
  });

  it('the monitoring profile: Prometheus scrapes the sidecar with the token secret and loads the rules (no port published: the next test)', async () => {
    const targets = await until('the sidecar target up', async () => {
      const r = await stack.exec('prometheus', ['curl', '-fsS', 'http://127.0.0.1:9090/api/v1/targets']);
      const t = r.code === 0 ? (JSON.parse(r.stdout).data.activeTargets as { labels: { job: string }; health: string; lastError: string }[]) : [];
      return t.find((x) => x.labels.job === 'poolguard-sidecar')?.health === 'up' ? t : undefined;
    }, 60_000, 1000);
    expect(targets.value.map((t) => `${t.labels.job} ${t.health}`).sort()).toEqual(['alertmanager up', 'poolguard-sidecar up', 'prometheus up']);
    const rules = JSON.parse((await stack.exec('prometheus', ['curl', '-fsS', 'http://127.0.0.1:9090/api/v1/rules'])).stdout).data.groups as { rules: { health: string }[] }[];
    expect(rules.length).toBeGreaterThan(20);
    expect(rules.flatMap((g) => g.rules).every((r) => r.health === 'ok')).toBe(true);
  });

  it('the status page: served with its CSP; its data needs the token or a session; with it, a card for every service the stack watches', async () => {
    const base = `http://127.0.0.1:${SIDECAR_PORT}`;
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/^default-src 'self'/);
    expect((await fetch(`${base}/status`)).status).toBe(401);
    expect((await fetch(`${base}/history`)).status).toBe(401);
    const login = await fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: secrets.sidecar_token }) });
    expect(login.status).toBe(200);
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    expect(cookie).toMatch(/^poolguard_session=/);
    const status = (await (await fetch(`${base}/status`, { headers: { cookie } })).json()) as { cards: { id: string; state: string }[]; replicas: { instance: string; status: string }[]; backups: unknown };
    expect(status.cards.map((c) => `${c.id} ${c.state}`)).toEqual(['pgbouncer OK', 'probe OK', 'postgres OK', 'postgres-replica OK', 'redis OK', 'backups OK'].map((x) => expect.stringMatching(new RegExp(`^${x.split(' ')[0]} (OK|WARN)$`))));
    expect(status.replicas.map((r) => `${r.instance} ${r.status}`)).toEqual(['postgres-replica streaming']);
    expect(status.backups).not.toBeNull();
    expect((await fetch(`${base}/history`, { headers: { authorization: `Bearer ${secrets.sidecar_token}` } })).status).toBe(200);
  });

  it('publishes no port but the sidecar, on 127.0.0.1', async () => {
    for (const [service, info] of Object.entries(inspected)) {
      const bindings = Object.entries(info.NetworkSettings.Ports ?? {}).filter(([, b]) => b && b.length > 0);
      if (service === 'sidecar') {
        expect(bindings.map(([p, b]) => `${p} ${b![0]!.HostIp}:${b![0]!.HostPort}`)).toEqual([`8787/tcp 127.0.0.1:${SIDECAR_PORT}`]);
      } else {
        expect(bindings, service).toEqual([]);
      }
    }
    for (const s of ['postgres', 'pgbouncer', 'redis']) {
      const r = await stack.compose(['port', s, s === 'postgres' ? '5432' : s === 'pgbouncer' ? '6432' : '6379']);
      expect(r.stdout.trim(), s).toMatch(/^(:0)?$/);
    }
  });

  it('every container runs as a non-root user', async () => {
    for (const service of ['postgres', 'postgres-replica', 'pgbouncer', 'redis', 'sidecar', 'backup', 'pgbackrest', 'prometheus', 'alertmanager']) {
      const r = await stack.exec(service, ['id', '-u']);
      expect(r.code, service).toBe(0);
      expect(Number(r.stdout.trim()), service).toBeGreaterThan(0);
      expect(inspected[service]!.Config.User, service).not.toMatch(/^(root|0)?$/);
    }
    expect(inspected.migrate!.Config.User).toBe('poolguard');
  });

  it('read-only root, no capabilities, no-new-privileges, restart policy, limits', async () => {
    for (const [service, info] of Object.entries(inspected)) {
      expect(info.HostConfig.ReadonlyRootfs, service).toBe(true);
      expect(info.HostConfig.CapDrop, service).toEqual(['ALL']);
      expect(info.HostConfig.CapAdd ?? [], service).toEqual([]);
      expect(info.HostConfig.SecurityOpt, service).toContain('no-new-privileges:true');
      expect(info.HostConfig.Memory, service).toBeGreaterThan(0);
      expect(info.HostConfig.NanoCpus, service).toBeGreaterThan(0);
      expect(info.HostConfig.RestartPolicy.Name, service).toBe(service === 'migrate' ? 'no' : 'unless-stopped');
    }
  });

  it('no secret value appears in any container environment or log', async () => {
    const values = Object.values(secrets);
    for (const [service, info] of Object.entries(inspected)) {
      const env = info.Config.Env.join('\n');
      for (const v of values) expect(env.includes(v), `${service} env`).toBe(false);
      expect(env, service).not.toMatch(/PASSWORD=|TOKEN=/);
    }
    const logs = await stack.mustCompose(['logs', '--no-color']);
    for (const v of values) expect(logs.includes(v)).toBe(false);
  });
});
