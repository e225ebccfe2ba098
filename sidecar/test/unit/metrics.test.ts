import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AlertEngine } from '../../src/alerts/engine.js';
import { DEFAULT_RULES } from '../../src/alerts/rules.js';
import { FAMILIES, cachedRender, registerMetrics } from '../../src/metrics.js';
import type { PgBouncerSample } from '../../src/sources/pgbouncer.js';
import type { PostgresSample } from '../../src/sources/postgres.js';
import type { RedisSample } from '../../src/sources/redis.js';
import { POOLS, snapshot, state, withReplica } from '../fixtures/snapshot.js';

async function scrape(snap = snapshot()): Promise<string> {
  const registry = new Registry();
  const engine = new AlertEngine(DEFAULT_RULES, { defaultForMs: 0, resolveForMs: 0, hysteresis: 0.05, context: { pools: POOLS } });
  engine.evaluate(snap, 0);
  registerMetrics(registry, () => ({ snapshot: snap, alerts: engine }), POOLS);
  return registry.metrics();
}

describe('metrics', () => {
  it('exporter-compatible names, labels and values', async () => {
    const text = await scrape();
    for (const line of [
      'pgbouncer_up 1',
      'pgbouncer_version_info{version="1.24.1"} 1',
      'pgbouncer_pools_client_active_connections{database="app",user="app"} 12',
      'pgbouncer_pools_client_waiting_connections{database="app",user="app"} 3',
      'pgbouncer_pools_client_maxwait_seconds{database="app",user="app"} 1.25',
      'pgbouncer_databases_pool_size{name="app",host="postgres",port="5432",database="app",force_user="",pool_mode=""} 25',
      'pgbouncer_databases_reserve_pool{name="app",host="postgres",port="5432",database="app",force_user="",pool_mode=""} 5',
      'pgbouncer_stats_queries_pooled_total{database="app"} 300',
      'pgbouncer_stats_client_wait_seconds_total{database="app"} 0.5',
      'pgbouncer_stats_server_assignments_total{database="app"} 120',
      'pgbouncer_config_max_client_connections 100',
      'pgbouncer_used_clients 10',
      'pgbouncer_dns_queries 0',
      'pg_up{target="postgres"} 1',
      'pg_stat_activity_count{datname="app",state="idle",target="postgres"} 21',
      'pg_stat_activity_count{datname="app",state="idle in transaction",target="postgres"} 1',
      'pg_stat_activity_count{datname="postgres",state="active",target="postgres"} 0',
      'pg_stat_activity_count{datname="postgres",state="disabled",target="postgres"} 0',
      'pg_stat_activity_max_tx_duration{datname="app",state="idle in transaction",target="postgres"} 95.2',
      'pg_settings_max_connections{target="postgres"} 100',
      'pg_settings_superuser_reserved_connections{target="postgres"} 3',
      // postgres_exporter's conversion: 16384 × 8kB in bytes, seconds, on = 1, dots as underscores.
      'pg_settings_shared_buffers_bytes{target="postgres"} 134217728',
      'pg_settings_checkpoint_timeout_seconds{target="postgres"} 300',
      'pg_settings_random_page_cost{target="postgres"} 1.1',
      'pg_settings_pg_stat_statements_max{target="postgres"} 5000',
      'pg_static{short_version="17.6.0",version="PostgreSQL 17.6 (Debian 17.6-1) on x86_64-pc-linux-gnu, compiled by gcc (Debian 14.2.0-19) 14.2.0, 64-bit",target="postgres"} 1',
      'pg_stat_database_numbackends{datid="16384",datname="app",target="postgres"} 26',
      'pg_replication_is_replica{target="postgres"} 0',
      'pg_replication_lag_seconds{target="postgres"} 0',
      'redis_up 1',
      'redis_connected_clients 7',
      'redis_config_maxclients 1000',
      'redis_rejected_connections_total 2',
      'redis_memory_max_bytes 268435456',
      'redis_instance_info{role="master",redis_version="8.0.2",redis_mode="standalone",maxmemory_policy="noeviction"} 1',
      'poolguard_source_up{source="redis"} 1',
      'poolguard_alerts_firing{rule="postgres_idle_in_transaction",severity="WARNING"} 1',
      'poolguard_alerts_firing{rule="backend_down",severity="CRITICAL"} 0',
    ]) {
      expect(text.split('\n'), line).toContain(line);
    }
    expect(text).toContain('# TYPE pgbouncer_stats_queries_pooled_total counter');
    expect(text).toContain('# TYPE redis_rejected_connections_total counter');
    expect(text).not.toMatch(/^redis_master_link_up/m);
  });

  it('every family is present when the stack is up; `up` gauges never go missing when it is down', async () => {
    // A primary with its streaming replica (and its slot), PgBouncer's read alias on the primary.
    const text = await scrape(withReplica());
    for (const f of FAMILIES) {
      if (f.name === 'redis_master_link_up') continue; // Redis replicas only
      // NULL in the fixture, as Postgres reports them on an idle stream / without max_slot_wal_keep_size
      if (['poolguard_pg_stat_replication_write_lag_seconds', 'poolguard_pg_stat_replication_flush_lag_seconds', 'pg_replication_slot_safe_wal_size_bytes'].includes(f.name)) continue;

      expect(text, f.name).toMatch(new RegExp(`^${f.name}(\\{| )`, 'm'));
    }
    const down = await scrape(
      snapshot({ pgbouncer: state<PgBouncerSample>(undefined, 'x'), postgres: state<PostgresSample>(undefined, 'x'), redis: state<RedisSample>(undefined, 'x'), probe: state<{ responseTimeMs: number }>(undefined, 'x') }),
    );
    expect(down.split('\n')).toEqual(expect.arrayContaining(['pgbouncer_up 0', 'pg_up{target="postgres"} 0', 'redis_up 0', 'poolguard_source_up{source="probe"} 0', 'poolguard_alerts_firing{rule="backend_down",severity="CRITICAL"} 4']));
    expect(down).not.toMatch(/^pgbouncer_pools_/m);
    // Values only a live backend knows are absent, not 0.
    expect(down).not.toMatch(/^(pgbouncer_config_max_client_connections|pg_settings_max_connections|redis_connected_clients)[ {]/m);
  });
});

describe('cachedRender', () => {
  it('renders once per snapshot and again when the poll loop writes a new one', async () => {
    const registry = new Registry();
    let snap = snapshot();
    const engine = new AlertEngine(DEFAULT_RULES, { defaultForMs: 0, resolveForMs: 0, hysteresis: 0.05, context: { pools: POOLS } });
    let reads = 0;
    registerMetrics(registry, () => {
      reads += 1;
      return { snapshot: snap, alerts: engine };
    }, POOLS);
    const render = cachedRender(registry, () => snap);
    const a = await render();
    const perRender = reads;
    expect(await render()).toBe(a);
    expect(reads).toBe(perRender);
    snap = snapshot({ redis: state<RedisSample>(undefined, 'down') });
    const b = await render();
    expect(reads).toBe(2 * perRender);
    expect(b).toMatch(/^redis_up 0$/m);
    expect(a).toMatch(/^redis_up 1$/m);
  });
});

describe('pg_stat_statements series', () => {
  it('postgres_exporter names and labels, in seconds, for the top statements only', async () => {
    const text = await scrape(snapshot());
    expect(text).toMatch(/^pg_stat_statements_calls_total\{user="app",datname="app",queryid="-6418772313442513125",target="postgres"\} 120$/m);
    expect(text).toMatch(/^pg_stat_statements_seconds_total\{user="app",datname="app",queryid="-6418772313442513125",target="postgres"\} 0\.0365$/m);
    expect(text).toMatch(/^pg_stat_statements_block_read_seconds_total\{.*\} 0\.0009$/m);
  });
});

describe('column families (PG_COLUMNS)', () => {
  it('postgres_exporter names and labels from the column queries; every lock mode of every database, 0 included', async () => {
    const text = await scrape(snapshot());
    expect(text).toMatch(/^pg_stat_database_xact_commit\{datid="16385",datname="app",target="postgres"\} 1500$/m);
    expect(text).toMatch(/^pg_stat_database_blk_read_time\{datid="16385",datname="app",target="postgres"\} 12\.5$/m);
    expect(text).toMatch(/^pg_database_size_bytes\{datname="app",target="postgres"\} 8000000$/m);
    expect(text).toMatch(/^pg_locks_count\{datname="app",mode="accesssharelock",target="postgres"\} 4$/m);
    expect(text.split('\n').filter((l) => l.startsWith('pg_locks_count{')).length).toBe(9);
    expect(text).toMatch(/^# TYPE pg_stat_database_xact_commit counter$/m);
  });
});

describe('Redis families (REDIS_FIELDS, keyspace, commandstats)', () => {
  it('redis_exporter names: per-command calls and seconds, expiring keys per db, INFO fields', async () => {
    const text = await scrape(snapshot());
    expect(text).toMatch(/^redis_commands_total\{cmd="get"\} 40$/m);
    expect(text).toMatch(/^redis_commands_duration_seconds_total\{cmd="set"\} 0\.000096$/m);
    expect(text).toMatch(/^redis_commands_total\{cmd="config\|get"\} 2$/m);
    expect(text).toMatch(/^redis_db_keys_expiring\{db="db0"\} 1$/m);
    expect(text).toMatch(/^redis_rdb_changes_since_last_save 17$/m);
    expect(text).toMatch(/^redis_mem_fragmentation_ratio 1\.25$/m);
  });
});

describe('rule value families: what a sidecar rule sees, for monitoring/alerts.yml', () => {
  it('the budget lines, the archiver state and the WAL gap, below their thresholds too; slow statements in seconds', async () => {
    const text = await scrape();
    // Every line of the plan on the fixture's live settings, PASS included (0).
    const budget = text.split('\n').filter((l) => l.startsWith('poolguard_connection_budget_status{'));
    expect(budget.length).toBeGreaterThanOrEqual(2);
    for (const l of budget) expect(l).toMatch(/^poolguard_connection_budget_status\{line="[^"]+"\} [012]$/);
    expect(text).toMatch(/^poolguard_pg_archive_failing [01]$/m);
    expect(text).toMatch(/^poolguard_backup_wal_dropped\{stanza="poolguard"\} [01]$/m);
    expect(text).toMatch(/^poolguard_backup_overdue_seconds\{stanza="poolguard"\} [\d.e+]+$/m);
    // Without a history the rule's window is "since the reset": the fixture's statements, in seconds.
    const slow = text.split('\n').filter((l) => l.startsWith('poolguard_pg_slow_statement_mean_seconds{'));
    expect(slow.length).toBeGreaterThan(0);
    for (const l of slow) expect(l).toMatch(/^poolguard_pg_slow_statement_mean_seconds\{target="postgres",queryid="-?\d+",user="[^"]+",datname="[^"]+"\} [\d.e-]+$/);
  });

  it('each family follows its rule: an archiver whose last attempt failed reads 1', async () => {
    const base = snapshot();
    const pg = base.sources.postgres.sample!;
    const failing = snapshot({ postgres: state<PostgresSample>({ ...pg, archiver: { ...pg.archiver, mode: 'on', failedCount: 3, lastFailedTime: 2000, lastArchivedTime: 1000 } }) });
    expect(await scrape(failing)).toMatch(/^poolguard_pg_archive_failing 1$/m);
    const off = snapshot({ postgres: state<PostgresSample>({ ...pg, archiver: { ...pg.archiver, mode: 'off' } }) });
    expect(await scrape(off)).not.toMatch(/^poolguard_pg_archive_failing /m);
  });
});
