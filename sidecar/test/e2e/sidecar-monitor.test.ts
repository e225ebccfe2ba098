// The sidecar image against the project's own postgres, pgbouncer and redis images, started
// with testcontainers on a private network: metrics, detection of a stopped PgBouncer, the
// pool-utilisation and leak alerts, and a wrong password.
import pg from 'pg';
import { Wait, type StartedNetwork, type StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAMILIES } from '../../src/metrics.js';
import { run, sleep, until } from './stack.js';
import { PW, sidecarContainer as watchedSidecar, startBackends, type Backends } from './watched.js';

const POLL_MS = 1000;
const TIMEOUT_MS = 800;

let backends: Backends;
let network: StartedNetwork;
let postgres: StartedTestContainer;
let pgbouncer: StartedTestContainer;
let sidecar: StartedTestContainer;

function sidecarContainer(env: Record<string, string> = {}) {
  return watchedSidecar(network, {
    SIDECAR_POLL_INTERVAL_MS: String(POLL_MS),
    SIDECAR_SOURCE_TIMEOUT_MS: String(TIMEOUT_MS),
    // Any directory: its filesystem stands in for the pgdata volume the compose files mount.
    SIDECAR_PGDATA_PATH: '/app',
    SIDECAR_ALERT_FOR_MS: '1000',
    SIDECAR_ALERT_RESOLVE_FOR_MS: '1000',
    SIDECAR_ALERT_RULES: JSON.stringify({ postgres_idle_in_transaction: { warning: 2 } }),
    ...env,
  });
}

const url = (c: StartedTestContainer, path: string) => `http://${c.getHost()}:${c.getMappedPort(8787)}${path}`;
async function getJson(c: StartedTestContainer, path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url(c, path));
  return { status: res.status, body: await res.json() };
}
async function metrics(c: StartedTestContainer = sidecar): Promise<string> {
  return (await fetch(url(c, '/metrics'))).text();
}
const pooled = (extra: pg.ClientConfig = {}) => {
  const c = new pg.Client({ host: pgbouncer.getHost(), port: pgbouncer.getMappedPort(6432), user: 'app', password: PW.app, database: 'app', ...extra });
  c.on('error', () => undefined);
  return c.connect().then(() => c);
};

beforeAll(async () => {
  backends = await startBackends();
  ({ network, postgres, pgbouncer } = backends);
  sidecar = await sidecarContainer().start();
});

afterAll(async () => {
  await sidecar?.stop().catch(() => undefined);
  await backends?.stop();
});

describe('sidecar monitor (integration)', () => {
  it('/health is 200 and every metric family is exported with its labels', async () => {
    expect((await getJson(sidecar, '/health')).status).toBe(200);
    // slow_statement's rule value needs a statement with 3 calls in its window: the sidecar's own
    // queries have them after 3 polls (1 s each here).
    await until('poolguard_pg_slow_statement_mean_seconds', async () => /^poolguard_pg_slow_statement_mean_seconds\{target="postgres",/m.test(await metrics()), 20_000, 500);
    const text = await metrics();
    const present = FAMILIES.filter((f) => new RegExp(`^${f.name}(\\{| )`, 'm').test(text)).map((f) => f.name);
    // Absent by design here: the replica-side Redis link (a primary), per-db key counts (no keys
    // yet), the age of the last archive and whether archiving fails (a bare Postgres container
    // does not archive: archive_failing observes nothing with archive_mode off), the backup
    // families (no SIDECAR_BACKUP_STATUS_PATH: backups are not watched) and the replication
    // families but the two every instance has (a primary with no standby and no slot).
    const backups = FAMILIES.map((f) => f.name).filter((n) => /^(pgbackrest_|poolguard_backup_)/.test(n));
    const replication = FAMILIES.map((f) => f.name).filter((n) => /replica|repl|slot|wal_receiver|replay|reads_on_primary/.test(n) && !n.startsWith('pg_settings_') && !['pg_replication_is_replica', 'pg_replication_lag_seconds'].includes(n));
    // No user table in this bare container's app database (no migrations ran): no pg_stat_user_tables_*.
    const userTables = FAMILIES.map((f) => f.name).filter((n) => n.startsWith('pg_stat_user_tables_'));
    expect(userTables.length).toBeGreaterThanOrEqual(19);
    expect(backups.length).toBeGreaterThan(15);
    expect(replication.length).toBeGreaterThanOrEqual(14);
    expect(FAMILIES.map((f) => f.name).filter((n) => !present.includes(n)).sort()).toEqual(['pg_stat_archiver_last_archive_age', 'poolguard_pg_archive_failing', ...backups, ...replication, 'redis_master_link_up', 'redis_db_keys', 'redis_db_keys_expiring', ...userTables].sort());
    expect(text).toMatch(/^poolguard_pg_archive_mode_on\{target="postgres"\} 0$/m);
    expect(text).toMatch(/^pgbouncer_pools_server_idle_connections\{database="app",user="pgbouncer_auth"\} \d+$/m);
    expect(text).toMatch(/^pgbouncer_databases_pool_size\{name="app",host="postgres",port="5432",database="app",force_user="",pool_mode=""\} 25$/m);
    expect(text).toMatch(/^pgbouncer_stats_sql_transactions_pooled_total\{database="app"\} \d+/m);
    expect(text).toMatch(/^pg_stat_activity_count\{datname="app",state="idle in transaction \(aborted\)",target="postgres"\} 0$/m);
    expect(text).toMatch(/^pg_stat_database_numbackends\{datid="\d+",datname="app",target="postgres"\} \d+$/m);
    expect(text).toMatch(/^redis_instance_info\{role="master",redis_version="[\d.]+",redis_mode="standalone",maxmemory_policy="noeviction"\} 1$/m);
    expect(text).toMatch(/^pgbouncer_version_info\{version="1\.24\.\d+"\} 1$/m);
    for (const up of ['pgbouncer_up 1', 'pg_up{target="postgres"} 1', 'redis_up 1']) expect(text.split('\n')).toContain(up);
  });

  it('28 clients holding transactions fire the pool-utilisation alert; releasing them resolves it', async () => {
    const clients = await Promise.all(Array.from({ length: 28 }, (_, i) => pooled({ application_name: `holder-${i}` })));
    try {
      // Beyond default_pool_size (25) clients wait reserve_pool_timeout (3 s) for the reserve.
      await Promise.all(clients.map(async (c) => { await c.query('BEGIN'); await c.query('SELECT 1'); }));
      const fired = await until('pool alert', async () => {
        const { body } = await getJson(sidecar, '/alerts');
        return (body.items as any[]).find((a) => a.name === 'pgbouncer_pool_utilization' && a.labels.user === 'app' && a.severity === 'CRITICAL');
      }, 15_000);
      expect(fired.value).toMatchObject({ severity: 'CRITICAL', threshold: 90, labels: { database: 'app', user: 'app' } });
      expect(fired.value.value).toBeGreaterThanOrEqual(90);
      expect((await getJson(sidecar, '/alerts')).body.alerts).toEqual(expect.arrayContaining([expect.stringMatching(/^CRITICAL: PgBouncer pool app\/app holds 2[89] of 30 server connections/)]));
      expect(await metrics()).toMatch(/^poolguard_alerts_firing\{rule="pgbouncer_pool_utilization",severity="CRITICAL"\} 1$/m);
    } finally {
      await Promise.all(clients.map(async (c) => { await c.query('COMMIT').catch(() => undefined); await c.end(); }));
    }
    await until('pool alert resolved', async () => !((await getJson(sidecar, '/alerts')).body.items as any[]).some((a) => a.name === 'pgbouncer_pool_utilization'), 20_000);
  });

  it('an idle-in-transaction session on the direct URL fires the leak alert naming its pid', async () => {
    const leak = new pg.Client({ host: postgres.getHost(), port: postgres.getMappedPort(5432), user: 'app', password: PW.app, database: 'app', application_name: 'leaky-worker' });
    await leak.connect();
    const pid = (await leak.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    await leak.query('BEGIN');
    await leak.query('SELECT 1');
    try {
      const fired = await until('leak alert', async () => ((await getJson(sidecar, '/alerts')).body.items as any[]).find((a) => a.name === 'postgres_idle_in_transaction' && a.labels.pid === String(pid)), 15_000);
      expect(fired.value.labels).toMatchObject({ pid: String(pid), application_name: 'leaky-worker', usename: 'app', datname: 'app' });
      expect(fired.value.summary).toContain(`pid ${pid}`);
    } finally {
      await leak.query('COMMIT');
      await leak.end();
    }
    await until('leak alert resolved', async () => !((await getJson(sidecar, '/alerts')).body.items as any[]).some((a) => a.name === 'postgres_idle_in_transaction' && a.labels.pid === String(pid)), 10_000);
  });

  it('query insight: a slow statement tops /queries with its call count and without its literals; ALTER ROLE ... PASSWORD is recorded nowhere', async () => {
    const app = await pooled({ application_name: 'slow-report' });
    const superuser = new pg.Client({ host: postgres.getHost(), port: postgres.getMappedPort(5432), user: 'postgres', password: PW.postgres, database: 'app' });
    await superuser.connect();
    try {
      for (let i = 0; i < 3; i += 1) await app.query(`SELECT pg_sleep(0.4), 'literal-secret-${i}' AS tag, ${1000 + i} AS n`);
      // A utility statement that carries a password: with track_utility off it is never recorded.
      await superuser.query(`ALTER ROLE app PASSWORD '${PW.app}'`);
      const top = await until('the slow statement on top of /queries', async () => {
        const { status, body } = await getJson(sidecar, '/queries?order=mean&n=5');
        return status === 200 && body.items[0]?.calls === 3 && body.items[0].text !== null ? body : undefined;
      }, 15_000, 250);
      const first = top.value.items[0];
      expect(first).toMatchObject({ calls: 3, rows: 3, user: 'app', datname: 'app', textTruncated: false });
      expect(first.meanExecMs).toBeGreaterThanOrEqual(400);
      expect(first.text).toMatch(/^SELECT pg_sleep\(\$1\), \$2 AS tag, \$3 AS n$/);
      expect(top.value.target).toBe('postgres');
      // Nowhere: not in the view (as the superuser, every statement), not in /queries, not in /metrics.
      const everything = (await superuser.query('SELECT query FROM pg_stat_statements')).rows.map((r) => r.query as string).join('\n');
      const all = JSON.stringify((await getJson(sidecar, '/queries?n=100&textChars=2000')).body);
      for (const text of [everything, all]) expect(text).not.toMatch(/literal-secret|PASSWORD/i);
      for (const text of [everything, all, await metrics()]) expect(text).not.toContain(PW.app);
      expect(await metrics()).toMatch(new RegExp(`^pg_stat_statements_calls_total\\{user="app",datname="app",queryid="${first.queryid}",target="postgres"\\} 3$`, 'm'));
      // Bad input: a clear 400, and a window longer than the history says how long it may be.
      expect((await getJson(sidecar, '/queries?order=slowest')).status).toBe(400);
      expect((await getJson(sidecar, '/queries?n=1000')).status).toBe(400);
      const long = await getJson(sidecar, '/queries?since=9h');
      expect([long.status, long.body.message]).toEqual([400, expect.stringMatching(/since is at most 60m/)]);
      expect((await getJson(sidecar, '/queries?target=nowhere')).status).toBe(404);
    } finally {
      await app.end();
      await superuser.end();
    }
  });

  it('/sessions names a leaked pooled transaction\'s backend pid, its application and the PgBouncer client behind it, without literals', async () => {
    const leak = await pooled({ application_name: 'leaky-pooled' });
    try {
      await leak.query('BEGIN');
      const pid = (await leak.query(`SELECT pg_backend_pid() AS pid, 'card-4111' AS secret`)).rows[0].pid as number;
      const seen = await until('the leak in /sessions', async () => {
        const { status, body } = await getJson(sidecar, '/sessions');
        return status === 200 && body.longestIdleInTransaction?.pid === pid && body.longestIdleInTransaction.stateSeconds >= 1 ? body : undefined;
      }, 15_000, 250);
      const s = seen.value.longestIdleInTransaction;
      expect(s).toMatchObject({ pid, usename: 'app', applicationName: 'leaky-pooled', datname: 'app', state: 'idle in transaction', viaPgBouncer: true });
      expect(s.query).toBe('SELECT pg_backend_pid() AS pid, ? AS secret');
      // The PgBouncer client behind it (SHOW CLIENTS, linked to the server holding this pid).
      expect(s.pgbouncerClient).toMatchObject({ user: 'app', database: 'app', applicationName: 'leaky-pooled', state: 'active' });
      expect(s.pgbouncerClient.port).toBeGreaterThan(0);
      expect(seen.value.groups).toContainEqual(expect.objectContaining({ usename: 'app', applicationName: 'leaky-pooled', state: 'idle in transaction', count: 1, viaPgBouncer: 1 }));
      expect(JSON.stringify(seen.value)).not.toContain('card-4111');
    } finally {
      await leak.query('ROLLBACK').catch(() => undefined);
      await leak.end();
    }
  });

  it('10,000 distinct statements: the pg_stat_statements series stay at the top 50, /queries answers within its n', async () => {
    const direct = new pg.Client({ host: postgres.getHost(), port: postgres.getMappedPort(5432), user: 'app', password: PW.app, database: 'app' });
    await direct.connect();
    try {
      // 10,000 statements of distinct shapes: 7 nested calls, each one of 4 functions (4^7 = 16,384).
      const fns = ['abs', 'sign', 'ceil', 'floor'];
      for (let i = 0; i < 10_000; i += 1) {
        let expr = '1';
        for (let d = 0, k = i; d < 7; d += 1, k = Math.floor(k / 4)) expr = `${fns[k % 4]}(${expr})`;
        await direct.query(`SELECT ${expr}`);
      }
      const seen = await until('the statements in the sidecar', async () => {
        const { status, body } = await getJson(sidecar, '/queries?order=calls&n=100');
        // A poll after the last statement: pg_stat_statements.max (5000) has evicted some by then.
        return status === 200 && body.statements >= 4000 && body.dealloc > 0 ? body : undefined;
      }, 30_000, 500);
      expect(seen.value.items.length).toBe(100);
      const text = await metrics();
      for (const family of ['pg_stat_statements_calls_total', 'pg_stat_statements_seconds_total', 'pg_stat_statements_rows_total']) {
        const series = text.split('\n').filter((l) => l.startsWith(`${family}{`)).length;
        expect(series, family).toBe(50);
      }
      const all = text.split('\n').filter((l) => l && !l.startsWith('#')).length;
      console.log(`/metrics after 10,000 distinct statements: ${all} series (${seen.value.statements} statements in the view, ${seen.value.dealloc} evicted)`);
      expect(all).toBeLessThan(1500);
    } finally {
      await direct.end();
    }
  });

  it('stopping PgBouncer: pgbouncer_up 0 and /health 503 within one poll + timeout; restarting it: back to 200', async () => {
    const stop = await run('docker', ['stop', '-t', '10', pgbouncer.getId()]);
    expect(stop.code, stop.stderr).toBe(0);
    const stoppedAt = Date.now();
    const down = await until('pgbouncer down', async () => {
      const h = await getJson(sidecar, '/health');
      return h.status === 503 && h.body.pgbouncer.healthy === false ? h : undefined;
    }, 10_000, 50);
    const detectMs = Date.now() - stoppedAt;
    expect(down.value.body.pgbouncer.lastError).toBeTruthy();
    expect(down.value.body.redis.available).toBe(true); // the others are still reported
    expect(down.value.body.postgres.healthy).toBe(true);
    expect(await metrics()).toMatch(/^pgbouncer_up 0$/m);
    console.log(`PgBouncer stop detected in ${detectMs} ms (poll ${POLL_MS} + timeout ${TIMEOUT_MS})`);
    expect(detectMs).toBeLessThanOrEqual(POLL_MS + TIMEOUT_MS + 500);

    const start = await run('docker', ['start', pgbouncer.getId()]);
    expect(start.code, start.stderr).toBe(0);
    const back = await until('pgbouncer back', async () => (await getJson(sidecar, '/health')).status === 200, 30_000, 100);
    console.log(`PgBouncer recovery seen ${back.ms} ms after docker start returned`);
    expect(await metrics()).toMatch(/^pgbouncer_up 1$/m);
  });

  it('a wrong stats password: clear lastError in /health and the log, the rest reported, no crash', async () => {
    const wrong = await sidecarContainer({ SIDECAR_PGBOUNCER_PASSWORD: 'definitely-wrong' })
      .withWaitStrategy(Wait.forHttp('/readyz', 8787).forStatusCode(200))
      .start();
    try {
      const h = await getJson(wrong, '/health');
      expect(h.status).toBe(503);
      expect(h.body.pgbouncer.healthy).toBe(false);
      expect(h.body.pgbouncer.lastError).toMatch(/password authentication failed|SASL authentication failed/);
      expect(h.body.postgres.healthy).toBe(true);
      expect(h.body.redis.available).toBe(true);
      await sleep(2 * POLL_MS);
      expect((await getJson(wrong, '/livez')).status).toBe(200);
      const logs = await run('docker', ['logs', wrong.getId()]);
      const lines = (logs.stdout + logs.stderr).split('\n').filter((l) => l.startsWith('{'));
      const down = lines.map((l) => JSON.parse(l) as Record<string, any>).find((l) => l.msg === 'pgbouncer down');
      expect(down?.err?.message ?? '').toMatch(/password authentication failed|SASL authentication failed/);
      expect(logs.stdout + logs.stderr).not.toContain('definitely-wrong');
    } finally {
      await wrong.stop();
    }
  });
});
