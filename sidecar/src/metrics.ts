// Prometheus metrics, drop-in compatible with pgbouncer_exporter (>= 0.11), postgres_exporter
// and redis_exporter names. Every family is a row of one table; collect() fills it from the
// snapshot, so a scrape never queries a backend. The `up` gauges are always present.
import type { Metric, Registry } from 'prom-client';
import type { AlertEngine } from './alerts/engine.js';
import { pollSeconds, polledSources, postgresInstances, type StackSnapshot } from './snapshot.js';
import { lastBackups, type BackupEntry, type BackupsSample } from './sources/backups.js';
import type { DiskSample } from './sources/disk.js';
import { ACTIVITY_STATES, shortVersion, type ActivityGroup, type PostgresSample, type ReplicationClient, type ReplicationSlot } from './sources/postgres.js';
import type { PoolScope } from './types.js';
import { COLUMN_QUERIES } from './sources/pg-columns.js';
import type { CommandStats } from './sources/redis.js';
import type { StatementCounters } from './sources/statements.js';
import { instanceLag, readRouting } from './views/replication.js';

type Labels = Record<string, string>;
type Sample = [Labels, number];

interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  labels?: string[];
  samples: (snap: StackSnapshot, alerts: AlertEngine, scope: PoolScope) => Sample[];
}

const seconds = (us: number) => us / 1e6;
const n = (v: string | undefined) => (v === undefined || v === '' ? NaN : Number(v));
const defined = (s: Sample[]) => s.filter(([, v]) => Number.isFinite(v));

/** One sample per PgBouncer pool. */
const perPool = (get: (p: NonNullable<StackSnapshot['sources']['pgbouncer']['sample']>['pools'][number]) => number) => (snap: StackSnapshot): Sample[] =>
  (snap.sources.pgbouncer.sample?.pools ?? []).map((p) => [{ database: p.database, user: p.user }, get(p)]);

const perDatabase = (get: (d: NonNullable<StackSnapshot['sources']['pgbouncer']['sample']>['databases'][number]) => number) => (snap: StackSnapshot): Sample[] =>
  (snap.sources.pgbouncer.sample?.databases ?? []).map((d) => [
    { name: d.name, host: d.host, port: d.port, database: d.database, force_user: d.forceUser, pool_mode: d.poolMode },
    get(d),
  ]);

const perStats = (get: (s: NonNullable<StackSnapshot['sources']['pgbouncer']['sample']>['stats'][number]) => number | undefined) => (snap: StackSnapshot): Sample[] =>
  (snap.sources.pgbouncer.sample?.stats ?? []).flatMap((s): Sample[] => {
    const v = get(s);
    return v === undefined ? [] : [[{ database: s.database }, v]];
  });

const list = (name: string) => (snap: StackSnapshot): Sample[] => {
  const v = snap.sources.pgbouncer.sample?.lists[name];
  return v === undefined ? [] : [[{}, v]];
};

const redisField = (field: string) => (snap: StackSnapshot): Sample[] => defined([[{}, n(snap.sources.redis.sample?.info[field])]]);
/** INFO fields with redis_exporter's names: [field, name, type, help], one row each. */
export const REDIS_FIELDS: readonly [string, string, 'gauge' | 'counter', string][] = [
  ['connected_clients', 'redis_connected_clients', 'gauge', 'Connected clients.'],
  ['blocked_clients', 'redis_blocked_clients', 'gauge', 'Clients blocked on a blocking call.'],
  ['maxclients', 'redis_config_maxclients', 'gauge', 'Config maxclients.'],
  ['rejected_connections', 'redis_rejected_connections_total', 'counter', 'Connections rejected because of maxclients.'],
  ['used_memory', 'redis_memory_used_bytes', 'gauge', 'Memory used.'],
  ['maxmemory', 'redis_memory_max_bytes', 'gauge', 'Config maxmemory.'],
  ['total_commands_processed', 'redis_commands_processed_total', 'counter', 'Commands processed.'],
  ['keyspace_hits', 'redis_keyspace_hits_total', 'counter', 'Keyspace hits.'],
  ['keyspace_misses', 'redis_keyspace_misses_total', 'counter', 'Keyspace misses.'],
  ['evicted_keys', 'redis_evicted_keys_total', 'counter', 'Keys evicted because of maxmemory.'],
  ['uptime_in_seconds', 'redis_uptime_in_seconds', 'gauge', 'Seconds since the server started.'],
  ['connected_slaves', 'redis_connected_slaves', 'gauge', 'Connected replicas.'],
  ['aof_enabled', 'redis_aof_enabled', 'gauge', '1 if AOF persistence is on.'],
  ['expired_keys', 'redis_expired_keys_total', 'counter', 'Keys expired.'],
  ['rdb_last_save_time', 'redis_rdb_last_save_timestamp_seconds', 'gauge', 'When the last RDB save succeeded, seconds since the epoch.'],
  ['rdb_changes_since_last_save', 'redis_rdb_changes_since_last_save', 'gauge', 'Changes since the last RDB save.'],
  ['mem_fragmentation_ratio', 'redis_mem_fragmentation_ratio', 'gauge', 'used_memory_rss / used_memory.'],
  ['total_net_input_bytes', 'redis_net_input_bytes_total', 'counter', 'Bytes received from the network.'],
  ['total_net_output_bytes', 'redis_net_output_bytes_total', 'counter', 'Bytes sent to the network.'],
  ['total_connections_received', 'redis_connections_received_total', 'counter', 'Connections accepted.'],
];

/** One sample per command of INFO commandstats. */
const perCommand = (get: (c: CommandStats) => number) => (snap: StackSnapshot): Sample[] =>
  Object.entries(snap.sources.redis.sample?.commands ?? {}).map(([cmd, st]) => [{ cmd }, get(st)]);

/** 1 when an INFO status field equals `good`, 0 otherwise; absent when Redis does not report it. */
const redisFlag = (field: string, good: string) => (snap: StackSnapshot): Sample[] => {
  const v = snap.sources.redis.sample?.info[field];
  return v === undefined ? [] : [[{}, v === good ? 1 : 0]];
};

/**
 * Samples of every Postgres instance that answered, each with its instance name as label
 * `target` (added last). A second instance (a replica) needs no code: it is one more entry.
 */
const perInstance = (get: (pg: PostgresSample, snap: StackSnapshot) => Sample[]) => (snap: StackSnapshot): Sample[] =>
  postgresInstances(snap).flatMap(({ instance, state }) => (state.sample ? get(state.sample, snap).map(([labels, v]): Sample => [{ ...labels, target: instance }, v]) : []));

const STANDBY = ['application_name', 'client_addr', 'state'];
/** One sample per pg_stat_replication row (a standby this instance sends WAL to); absent where the value is null. */
const perStandby = (get: (r: ReplicationClient) => number | null) =>
  perInstance((pg) => pg.replication.flatMap((r): Sample[] => {
    const v = get(r);
    return v === null ? [] : [[{ application_name: r.applicationName, client_addr: r.clientAddr, state: r.state }, v]];
  }));

const SLOT = ['slot_name', 'slot_type'];
const perSlot = (get: (s: ReplicationSlot) => number | null) =>
  perInstance((pg) => pg.slots.flatMap((sl): Sample[] => {
    const v = get(sl);
    return v === null ? [] : [[{ slot_name: sl.slotName, slot_type: sl.slotType }, v]];
  }));

/** One sample per (database, state) of each instance, every state of every database present (0 included). */
const perDbState = (fold: (acc: number, g: ActivityGroup) => number) => perInstance((pg): Sample[] => {
  const key = (datname: string, state: string) => JSON.stringify([datname, state]);
  const acc = new Map<string, number>();
  for (const db of pg.databases) for (const st of ACTIVITY_STATES) acc.set(key(db, st), 0);
  for (const g of pg.activity) acc.set(key(g.datname, g.state), fold(acc.get(key(g.datname, g.state)) ?? 0, g));
  return [...acc].map(([k, v]) => {
    const [datname, state] = JSON.parse(k) as [string, string];
    return [{ datname, state }, v];
  });
});

/** The data directory's filesystem, when watched (SIDECAR_PGDATA_PATH). */
const pgdata = (get: (d: DiskSample) => number) => (snap: StackSnapshot): Sample[] => {
  const d = snap.sources.disk.sample;
  return d && d.path !== null ? [[{ path: d.path }, get(d)]] : [];
};

/** The backups source, when its status file was read. */
const backupsRead = (snap: StackSnapshot): BackupsSample | undefined => {
  const b = snap.sources.backups.sample;
  return b && b.path !== null && b.problem === null ? b : undefined;
};
const yn = (v: boolean) => (v ? 'y' : 'n');
/** pgbackrest_exporter's per-backup labels. */
const backupLabels = (b: BackupsSample, e: BackupEntry): Labels => ({
  backup_name: e.label, backup_type: e.type, block_incr: yn(e.blockIncr), database_id: String(e.databaseId), repo_key: String(e.repoKey), stanza: b.stanza,
});
const perBackup = (get: (e: BackupEntry) => number, extra: (b: BackupsSample, e: BackupEntry) => Labels = () => ({})) => (snap: StackSnapshot): Sample[] => {
  const b = backupsRead(snap);
  // Labels in name order, as pgbackrest_exporter prints them.
  const sorted = (l: Labels): Labels => Object.fromEntries(Object.entries(l).sort(([x], [y]) => (x < y ? -1 : 1)));
  return b ? b.backups.map((e) => [sorted({ ...backupLabels(b, e), ...extra(b, e) }), get(e)]) : [];
};
/** The newest backup per exporter type (diff = full or diff, incr = any), labelled like pgbackrest_exporter's _last_ series. */
const perLastBackup = (get: (e: BackupEntry, snap: StackSnapshot) => number) => (snap: StackSnapshot): Sample[] => {
  const b = backupsRead(snap);
  if (!b) return [];
  return Object.entries(lastBackups(b)).map(([type, e]) => [{ backup_type: type, block_incr: yn(e.blockIncr), stanza: b.stanza }, get(e, snap)]);
};
/** '2006-01-02 15:04:05' in UTC, as pgbackrest_exporter formats start_time / stop_time. */
const goTime = (epochSeconds: number) => new Date(epochSeconds * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
const archiver = (get: (a: PostgresSample['archiver']) => number | null) => perInstance((pg): Sample[] => {
  const v = get(pg.archiver);
  return v === null ? [] : [[{}, v]];
});
const BACKUP = ['backup_name', 'backup_type', 'block_incr', 'database_id', 'repo_key', 'stanza'];
const LAST = ['backup_type', 'block_incr', 'stanza'];

/**
 * pg_stat_statements series (postgres_exporter's names and labels) for each instance's top
 * statements by total execution time only: their number never grows with the workload. Which
 * statements they are changes, so these series come and go.
 */
export const TOP_STATEMENT_SERIES = 50;
const STATEMENT = ['user', 'datname', 'queryid', 'target'];
const perTopStatement = (get: (s: StatementCounters) => number) => perInstance((pg): Sample[] =>
  [...(pg.statements?.statements ?? [])]
    .sort((a, b) => b.totalExecMs - a.totalExecMs || (a.key < b.key ? -1 : 1))
    .slice(0, TOP_STATEMENT_SERIES)
    .map((s): Sample => [{ user: s.user, datname: s.datname, queryid: s.queryid }, get(s)]));

const POOL = ['database', 'user'];
const DB = ['name', 'host', 'port', 'database', 'force_user', 'pool_mode'];

const columnFamily = (f: ColumnFamily): Family => ({
  name: f.name,
  help: f.help,
  type: f.type,
  labels: [...(COLUMN_QUERIES.find((q) => q.id === f.query)?.labels ?? []), 'target'],
  samples: perInstance((pg) =>
    (pg.columns[f.query] ?? []).flatMap((r): Sample[] => (f.column in r.values ? [[{ ...r.labels }, r.values[f.column]! * (f.scale ?? 1)]] : []))),
});

/**
 * Families read straight from a column of a pg-columns.ts query: one row each (query id, column,
 * name, type, help, scale). Labels are the query's label columns plus `target` (the instance).
 * A column absent from a server's view (another version) gives no series.
 */
interface ColumnFamily {
  query: string;
  column: string;
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  /** Multiplies the column (e.g. 0.001 for ms to seconds); 1 when unset. */
  scale?: number;
}

const c = (query: string, column: string, name: string, type: ColumnFamily['type'], help: string, scale?: number): ColumnFamily => ({ query, column, name, type, help, ...(scale === undefined ? {} : { scale }) });

/** postgres_exporter's names for the column queries (pg_stat_database, pg_database, pg_locks, bgwriter, checkpointer, user tables). */
export const PG_COLUMNS: readonly ColumnFamily[] = [
  ...(['xact_commit', 'xact_rollback', 'blks_read', 'blks_hit', 'tup_returned', 'tup_fetched', 'tup_inserted', 'tup_updated', 'tup_deleted', 'conflicts', 'temp_files', 'temp_bytes', 'deadlocks'] as const).map((col) =>
    c('stat_database', col, `pg_stat_database_${col}`, 'counter', `pg_stat_database.${col}.`)),
  c('stat_database', 'blk_read_time', 'pg_stat_database_blk_read_time', 'counter', 'Time spent reading data file blocks by backends in this database, in milliseconds (track_io_timing).'),
  c('stat_database', 'blk_write_time', 'pg_stat_database_blk_write_time', 'counter', 'Time spent writing data file blocks by backends in this database, in milliseconds (track_io_timing).'),
  c('database', 'size_bytes', 'pg_database_size_bytes', 'gauge', 'Disk space used by the database.'),
  c('database', 'connection_limit', 'pg_database_connection_limit', 'gauge', 'Connection limit set for the database (-1: none).'),
  c('locks', 'count', 'pg_locks_count', 'gauge', 'Number of locks, by database and mode (every mode, 0 included).'),
  // Postgres 17: the bgwriter keeps these; checkpoints moved to pg_stat_checkpointer.
  ...(['buffers_clean', 'maxwritten_clean', 'buffers_alloc', 'stats_reset'] as const).map((col) => c('bgwriter', col, `pg_stat_bgwriter_${col}_total`, 'counter', `pg_stat_bgwriter.${col}${col === 'stats_reset' ? ' (seconds since the epoch)' : ''}.`)),
  ...(['num_timed', 'num_requested', 'restartpoints_timed', 'restartpoints_req', 'restartpoints_done', 'write_time', 'sync_time', 'buffers_written', 'stats_reset'] as const).map((col) =>
    c('checkpointer', col, `pg_stat_checkpointer_${col}_total`, 'counter', `pg_stat_checkpointer.${col}${col.endsWith('_time') ? ' (milliseconds)' : col === 'stats_reset' ? ' (seconds since the epoch)' : ''}.`)),
  // The LARGEST_TABLES user tables with the most data only: bounded whatever the schema.
  ...(['seq_scan', 'seq_tup_read', 'idx_scan', 'idx_tup_fetch', 'n_tup_ins', 'n_tup_upd', 'n_tup_del', 'n_tup_hot_upd', 'vacuum_count', 'autovacuum_count', 'analyze_count', 'autoanalyze_count'] as const).map((col) =>
    c('user_tables', col, `pg_stat_user_tables_${col}`, 'counter', `pg_stat_user_tables.${col} (the largest tables only).`)),
  ...(['n_live_tup', 'n_dead_tup', 'n_mod_since_analyze', 'last_vacuum', 'last_autovacuum', 'last_analyze', 'last_autoanalyze'] as const).map((col) =>
    c('user_tables', col, `pg_stat_user_tables_${col}`, 'gauge', `pg_stat_user_tables.${col}${col.startsWith('last_') ? ' (seconds since the epoch, 0: never)' : ''} (the largest tables only).`)),
  c('user_tables', 'size_bytes', 'pg_stat_user_tables_size_bytes', 'gauge', 'Total disk space of the table, its indexes and TOAST (the largest tables only).'),
];

/**
 * The settings exported as pg_settings_<key>, keyed as postgres_exporter names them (dots as
 * underscores, `_seconds` / `_bytes` with the value converted; see exporterSetting): the ones
 * the dashboards and the connection budget read, one row each. A key a server lacks (another
 * version) gives no series.
 */
export const PG_SETTINGS: readonly string[] = [
  // The connection budget (GET /plan).
  'max_connections', 'superuser_reserved_connections', 'reserved_connections', 'max_wal_senders', 'max_replication_slots',
  // Memory, planner and parallelism (Grafana dashboard 9628's settings panels).
  'shared_buffers_bytes', 'effective_cache_size_bytes', 'maintenance_work_mem_bytes', 'work_mem_bytes', 'wal_buffers_bytes',
  'max_wal_size_bytes', 'min_wal_size_bytes', 'random_page_cost', 'seq_page_cost', 'effective_io_concurrency', 'default_statistics_target',
  'max_worker_processes', 'max_parallel_workers', 'max_parallel_workers_per_gather', 'max_parallel_maintenance_workers',
  // Timeouts and switches a reviewer checks first.
  'checkpoint_timeout_seconds', 'statement_timeout_seconds', 'idle_in_transaction_session_timeout_seconds', 'autovacuum', 'track_io_timing',
  'hot_standby_feedback', 'pg_stat_statements_max',
];

const settingFamily = (key: string): Family => ({
  name: `pg_settings_${key}`,
  help: `Server setting ${key} (postgres_exporter's pg_settings conversion: time in seconds, memory in bytes, on = 1).`,
  type: 'gauge',
  labels: ['target'],
  samples: perInstance((pg) => (key in pg.settings ? [[{}, pg.settings[key]!]] : [])),
});

/**
 * Rule value families: the alert engine's last observation of a rule, one sample per label set,
 * below the thresholds too (scaled: slow_statement's milliseconds as seconds). Rows: family name,
 * rule, labels, scale, help.
 */
const RULE_VALUES: [name: string, rule: string, labels: string[], scale: number, help: string][] = [
  ['poolguard_connection_budget_status', 'connection_budget', ['line'], 1, 'Each line of the connection budget on the live settings (GET /plan): 0 PASS, 1 WARN, 2 FAIL.'],
  ['poolguard_pg_slow_statement_mean_seconds', 'slow_statement', ['target', 'queryid', 'user', 'datname'], 1 / 1000, "Mean execution time over the last 5 min of each instance's 5 slowest statements by mean (at least 3 calls in the window; the sidecar's history of pg_stat_statements), seconds."],
  ['poolguard_pg_archive_failing', 'archive_failing', [], 1, "1 while the archiver's latest attempt failed (pg_stat_archiver last_failed_time after last_archived_time); absent with archive_mode off."],
  ['poolguard_backup_wal_dropped', 'wal_dropped', ['stanza'], 1, 'WAL missing from the backup repository: 1 while a gap is open or for 15 min after the backup service found one.'],
  ['poolguard_backup_overdue_seconds', 'backup_overdue', ['stanza'], 1, "How late the newest backup is against the backup service's schedule (the shorter of BACKUP_DIFF_EVERY and BACKUP_FULL_EVERY; before the first one, its first-full delay), seconds; 0 when on time."],
];

const ruleValueFamily = ([name, rule, labels, scale, help]: (typeof RULE_VALUES)[number]): Family => ({
  name,
  help,
  type: 'gauge',
  labels,
  samples: (_s, alerts) => alerts.observed(rule).map((o): Sample => [o.labels, o.value * scale]),
});

export const FAMILIES: Family[] = [
  // ---- PgBouncer (pgbouncer_exporter names) ----
  { name: 'pgbouncer_up', help: 'The PgBouncer admin console answered the last poll (1) or not (0).', type: 'gauge', samples: (s) => [[{}, s.sources.pgbouncer.up ? 1 : 0]] },
  { name: 'pgbouncer_version_info', help: 'The PgBouncer version.', type: 'gauge', labels: ['version'], samples: (s) => (s.sources.pgbouncer.sample ? [[{ version: s.sources.pgbouncer.sample.version }, 1]] : []) },
  { name: 'pgbouncer_pools_client_active_connections', help: 'Client connections linked to a server connection and able to process queries.', type: 'gauge', labels: POOL, samples: perPool((p) => p.clActive) },
  { name: 'pgbouncer_pools_client_waiting_connections', help: 'Client connections waiting on a server connection.', type: 'gauge', labels: POOL, samples: perPool((p) => p.clWaiting) },
  { name: 'pgbouncer_pools_client_active_cancel_connections', help: 'Client connections that have forwarded query cancellations to the server.', type: 'gauge', labels: POOL, samples: perPool((p) => p.clActiveCancelReq) },
  { name: 'pgbouncer_pools_client_waiting_cancel_connections', help: 'Client connections with cancellations not yet forwarded.', type: 'gauge', labels: POOL, samples: perPool((p) => p.clWaitingCancelReq) },
  { name: 'pgbouncer_pools_server_active_connections', help: 'Server connections linked to a client.', type: 'gauge', labels: POOL, samples: perPool((p) => p.svActive) },
  { name: 'pgbouncer_pools_server_active_cancel_connections', help: 'Server connections forwarding a cancel request.', type: 'gauge', labels: POOL, samples: perPool((p) => p.svActiveCancel) },
  { name: 'pgbouncer_pools_server_being_canceled_connections', help: 'Server connections being canceled.', type: 'gauge', labels: POOL, samples: perPool((p) => p.svBeingCanceled) },
  { name: 'pgbouncer_pools_server_idle_connections', help: 'Server connections unused and immediately usable.', type: 'gauge', labels: POOL, samples: perPool((p) => p.svIdle) },
  { name: 'pgbouncer_pools_server_used_connections', help: 'Server connections idle longer than server_check_delay.', type: 'gauge', labels: POOL, samples: perPool((p) => p.svUsed) },
  { name: 'pgbouncer_pools_server_testing_connections', help: 'Server connections running server_reset_query or server_check_query.', type: 'gauge', labels: POOL, samples: perPool((p) => p.svTested) },
  { name: 'pgbouncer_pools_server_login_connections', help: 'Server connections logging in.', type: 'gauge', labels: POOL, samples: perPool((p) => p.svLogin) },
  { name: 'pgbouncer_pools_client_maxwait_seconds', help: 'Wait of the oldest waiting client, seconds (maxwait + maxwait_us: sub-second precision).', type: 'gauge', labels: POOL, samples: perPool((p) => p.maxwaitSeconds) },
  { name: 'pgbouncer_databases_pool_size', help: 'Maximum server connections per pool.', type: 'gauge', labels: DB, samples: perDatabase((d) => d.poolSize) },
  { name: 'pgbouncer_databases_reserve_pool', help: 'Extra server connections of the reserve pool.', type: 'gauge', labels: DB, samples: perDatabase((d) => d.reservePool) },
  { name: 'pgbouncer_databases_max_connections', help: 'Maximum server connections for the database (0 = unlimited).', type: 'gauge', labels: DB, samples: perDatabase((d) => d.maxConnections) },
  { name: 'pgbouncer_databases_current_connections', help: 'Current server connections for the database.', type: 'gauge', labels: DB, samples: perDatabase((d) => d.currentConnections) },
  { name: 'pgbouncer_databases_paused', help: '1 if the database is paused.', type: 'gauge', labels: DB, samples: perDatabase((d) => d.paused) },
  { name: 'pgbouncer_databases_disabled', help: '1 if the database is disabled.', type: 'gauge', labels: DB, samples: perDatabase((d) => d.disabled) },
  { name: 'pgbouncer_stats_queries_pooled_total', help: 'SQL queries pooled.', type: 'counter', labels: ['database'], samples: perStats((s) => s.queryCount) },
  { name: 'pgbouncer_stats_queries_duration_seconds_total', help: 'Seconds spent in queries.', type: 'counter', labels: ['database'], samples: perStats((s) => seconds(s.queryTimeUs)) },
  { name: 'pgbouncer_stats_client_wait_seconds_total', help: 'Seconds clients spent waiting for a server.', type: 'counter', labels: ['database'], samples: perStats((s) => seconds(s.waitTimeUs)) },
  { name: 'pgbouncer_stats_sql_transactions_pooled_total', help: 'SQL transactions pooled.', type: 'counter', labels: ['database'], samples: perStats((s) => s.xactCount) },
  { name: 'pgbouncer_stats_server_in_transaction_seconds_total', help: 'Seconds a server connection spent in a transaction.', type: 'counter', labels: ['database'], samples: perStats((s) => seconds(s.xactTimeUs)) },
  { name: 'pgbouncer_stats_received_bytes_total', help: 'Bytes received from clients.', type: 'counter', labels: ['database'], samples: perStats((s) => s.receivedBytes) },
  { name: 'pgbouncer_stats_sent_bytes_total', help: 'Bytes sent to clients.', type: 'counter', labels: ['database'], samples: perStats((s) => s.sentBytes) },
  { name: 'pgbouncer_stats_server_assignments_total', help: 'Times a server was assigned to a client (1.23+).', type: 'counter', labels: ['database'], samples: perStats((s) => s.serverAssignmentCount) },
  { name: 'pgbouncer_stats_client_parses_total', help: 'Prepared statements created by clients (1.24+).', type: 'counter', labels: ['database'], samples: perStats((s) => s.clientParseCount) },
  { name: 'pgbouncer_stats_server_parses_total', help: 'Prepared statements created on servers (1.24+).', type: 'counter', labels: ['database'], samples: perStats((s) => s.serverParseCount) },
  { name: 'pgbouncer_stats_binds_total', help: 'Prepared statements readied for execution (1.24+).', type: 'counter', labels: ['database'], samples: perStats((s) => s.bindCount) },
  { name: 'pgbouncer_config_max_client_connections', help: 'Config max_client_conn.', type: 'gauge', samples: (s) => defined([[{}, n(s.sources.pgbouncer.sample?.config.max_client_conn)]]) },
  { name: 'pgbouncer_config_max_user_connections', help: 'Config max_user_connections.', type: 'gauge', samples: (s) => defined([[{}, n(s.sources.pgbouncer.sample?.config.max_user_connections)]]) },
  ...(['databases', 'users', 'pools', 'free_clients', 'used_clients', 'login_clients', 'free_servers', 'used_servers', 'dns_names', 'dns_zones', 'dns_queries', 'dns_pending'] as const).map(
    (l): Family => ({ name: `pgbouncer_${l}`, help: `SHOW LISTS ${l}.`, type: 'gauge', samples: list(l) }),
  ),

  // ---- Postgres (postgres_exporter names), one series per instance: label target = the
  // instance's name (its URL's host: postgres for the primary, postgres-replica, ...) ----
  { name: 'pg_up', help: 'The Postgres instance answered the last poll (1) or not (0).', type: 'gauge', labels: ['target'], samples: (s) => postgresInstances(s).map((i) => [{ target: i.instance }, i.state.up ? 1 : 0]) },
  {
    name: 'pg_stat_activity_count',
    help: 'Client backends by database and state (every state, 0 included).',
    type: 'gauge',
    labels: ['datname', 'state', 'target'],
    samples: perDbState((total, g) => total + g.count),
  },
  {
    name: 'pg_stat_activity_max_tx_duration',
    help: 'Oldest open transaction by database and state, seconds.',
    type: 'gauge',
    labels: ['datname', 'state', 'target'],
    samples: perDbState((max, g) => Math.max(max, g.maxTxSeconds)),
  },
  {
    name: 'poolguard_pg_connections',
    help: 'Client backends by database, state, user and application_name.',
    type: 'gauge',
    labels: ['datname', 'state', 'usename', 'application_name', 'target'],
    samples: perInstance((pg) => pg.activity.map((g) => [{ datname: g.datname, state: g.state, usename: g.usename, application_name: g.applicationName }, g.count])),
  },
  { name: 'pg_stat_database_numbackends', help: 'Backends connected to each database.', type: 'gauge', labels: ['datid', 'datname', 'target'], samples: perInstance((pg) => pg.backends.map((b) => [{ datid: b.datid, datname: b.datname }, b.numbackends])) },
  // Replication: postgres_exporter's collector/pg_replication.go (is_replica, lag_seconds,
  // last_replay_seconds), its pg_stat_replication query (pg_current_wal_lsn_bytes,
  // pg_wal_lsn_diff, reply_time; it discards the *_lag intervals, so those are poolguard_) and
  // its queries.yaml names for slots (pg_replication_slots_active, _pg_wal_lsn_diff), plus
  // collector/pg_replication_slot.go's safe_wal_size_bytes. The lag is views/replication.ts's:
  // 0 when the replica replayed up to the primary's current LSN, not postgres_exporter's
  // receive = replay test, which reads 0 on a dead stream.
  { name: 'pg_replication_is_replica', help: '1 if the server is a replica (in recovery).', type: 'gauge', labels: ['target'], samples: perInstance((pg) => [[{}, pg.isReplica ? 1 : 0]]) },
  {
    name: 'pg_replication_lag_seconds',
    help: "Replay lag behind the primary, seconds: 0 when replayed up to the primary's current WAL position (0 on a primary), else the age of the last replayed transaction (it grows on a broken stream or a paused replay).",
    type: 'gauge',
    labels: ['target'],
    samples: perInstance((pg, snap) => {
      const lag = instanceLag(snap, pg);
      return lag && lag.seconds !== null ? [[{}, lag.seconds]] : [];
    }),
  },
  { name: 'pg_replication_last_replay_seconds', help: 'Age of the last transaction replayed, seconds (replicas only; absent before the first).', type: 'gauge', labels: ['target'], samples: perInstance((pg) => (pg.standby?.replayAgeSeconds != null ? [[{}, Math.max(0, pg.standby.replayAgeSeconds)]] : [])) },
  {
    name: 'poolguard_pg_replication_lag_bytes',
    help: "WAL between the primary's current position and the replica's replay position, bytes (replicas only, while the primary answers).",
    type: 'gauge',
    labels: ['target'],
    samples: perInstance((pg, snap) => {
      const lag = pg.standby ? instanceLag(snap, pg) : undefined;
      return lag && lag.bytes !== null ? [[{}, lag.bytes]] : [];
    }),
  },
  { name: 'poolguard_pg_replay_paused', help: '1 while WAL replay is paused (pg_is_wal_replay_paused; replicas only).', type: 'gauge', labels: ['target'], samples: perInstance((pg) => (pg.standby ? [[{}, pg.standby.replayPaused ? 1 : 0]] : [])) },
  { name: 'poolguard_pg_wal_receiver_streaming', help: "1 when the replica's WAL receiver is streaming, 0 when it has none or it is in another state (replicas only).", type: 'gauge', labels: ['target'], samples: perInstance((pg) => (pg.standby ? [[{}, pg.standby.receiver?.status === 'streaming' ? 1 : 0]] : [])) },
  { name: 'pg_stat_replication_pg_current_wal_lsn_bytes', help: 'WAL position in bytes.', type: 'gauge', labels: [...STANDBY, 'target'], samples: perStandby((r) => r.currentLsnBytes) },
  { name: 'pg_stat_replication_pg_wal_lsn_diff', help: 'Lag in bytes between master and slave.', type: 'gauge', labels: [...STANDBY, 'target'], samples: perStandby((r) => r.lsnDiffBytes) },
  { name: 'pg_stat_replication_reply_time', help: "Time of the standby's last reply, seconds since the epoch.", type: 'gauge', labels: [...STANDBY, 'target'], samples: perStandby((r) => r.replyTime) },
  { name: 'poolguard_pg_stat_replication_write_lag_seconds', help: 'write_lag of pg_stat_replication, seconds (absent while Postgres reports none).', type: 'gauge', labels: [...STANDBY, 'target'], samples: perStandby((r) => r.writeLagSeconds) },
  { name: 'poolguard_pg_stat_replication_flush_lag_seconds', help: 'flush_lag of pg_stat_replication, seconds (absent while Postgres reports none).', type: 'gauge', labels: [...STANDBY, 'target'], samples: perStandby((r) => r.flushLagSeconds) },
  { name: 'poolguard_pg_stat_replication_replay_lag_seconds', help: 'replay_lag of pg_stat_replication, seconds (absent while Postgres reports none).', type: 'gauge', labels: [...STANDBY, 'target'], samples: perStandby((r) => r.replayLagSeconds) },
  { name: 'pg_replication_slots_active', help: '1 if the replication slot is in use.', type: 'gauge', labels: [...SLOT, 'target'], samples: perSlot((sl) => (sl.active ? 1 : 0)) },
  { name: 'pg_replication_slots_pg_wal_lsn_diff', help: 'WAL the slot keeps: current (on a replica, received) LSN - restart_lsn, bytes.', type: 'gauge', labels: [...SLOT, 'target'], samples: perSlot((sl) => sl.retainedBytes) },
  { name: 'pg_replication_slot_safe_wal_size_bytes', help: 'Bytes that can be written to WAL before this slot is in danger of getting lost (absent without max_slot_wal_keep_size).', type: 'gauge', labels: [...SLOT, 'target'], samples: perSlot((sl) => sl.safeWalSizeBytes) },
  {
    name: 'poolguard_pg_replication_slot_wal_status',
    help: "1 for each slot's wal_status (reserved, extended, unreserved, lost).",
    type: 'gauge',
    labels: ['slot_name', 'wal_status', 'target'],
    samples: perInstance((pg) => pg.slots.filter((sl) => sl.walStatus !== '').map((sl) => [{ slot_name: sl.slotName, wal_status: sl.walStatus }, 1])),
  },
  { name: 'poolguard_pg_idle_in_transaction_max_seconds', help: 'Longest idle-in-transaction session, seconds.', type: 'gauge', labels: ['target'], samples: perInstance((pg) => [[{}, Math.max(0, ...pg.idleInTransaction.map((t) => t.idleSeconds))]]) },
  { name: 'poolguard_pgdata_filesystem_size_bytes', help: "Size of the filesystem holding Postgres's data directory (SIDECAR_PGDATA_PATH), bytes.", type: 'gauge', labels: ['path'], samples: pgdata((d) => d.sizeBytes) },
  { name: 'poolguard_pgdata_filesystem_avail_bytes', help: "Bytes Postgres can still write on its data directory's filesystem.", type: 'gauge', labels: ['path'], samples: pgdata((d) => d.availableBytes) },
  { name: 'pg_static', help: 'Version string as reported by postgres.', type: 'gauge', labels: ['short_version', 'version', 'target'], samples: perInstance((pg) => [[{ short_version: shortVersion(pg.version), version: pg.versionString }, 1]]) },
  {
    name: 'pg_exporter_last_scrape_duration_seconds',
    help: "Duration of the last poll of each Postgres instance, seconds (postgres_exporter's name; the dashboards' instance pickers query it).",
    type: 'gauge',
    labels: ['target'],
    samples: (s) => postgresInstances(s).filter(({ state }) => state.sample).map(({ instance, state }) => [{ target: instance }, state.durationMs / 1000]),
  },
  { name: 'pg_postmaster_start_time_seconds', help: 'Time at which the postmaster started, seconds since the epoch.', type: 'gauge', labels: ['target'], samples: perInstance((pg) => [[{}, pg.startTime]]) },
  // pg_stat_archiver, postgres_exporter's names (its counters carry no _total).
  { name: 'pg_stat_archiver_archived_count', help: 'WAL files archived successfully.', type: 'counter', labels: ['target'], samples: archiver((a) => a.archivedCount) },
  { name: 'pg_stat_archiver_failed_count', help: 'Failed attempts to archive WAL files.', type: 'counter', labels: ['target'], samples: archiver((a) => a.failedCount) },
  { name: 'pg_stat_archiver_last_archive_age', help: 'Seconds since the last WAL file was archived (absent before the first).', type: 'gauge', labels: ['target'], samples: archiver((a) => a.lastArchiveAgeSeconds) },
  { name: 'poolguard_pg_archive_ready_segments', help: 'WAL segments written and waiting for archive_command (pg_wal/archive_status/*.ready).', type: 'gauge', labels: ['target'], samples: archiver((a) => a.readySegments) },
  { name: 'poolguard_pg_archive_mode_on', help: '1 when archive_mode is on (or always).', type: 'gauge', labels: ['target'], samples: archiver((a) => (a.mode === 'off' ? 0 : 1)) },
  { name: 'poolguard_pg_lock_waiting_sessions', help: 'Sessions waiting on a lock.', type: 'gauge', labels: ['target'], samples: perInstance((pg) => [[{}, pg.lockWaiting]]) },
  {
    name: 'poolguard_reads_on_primary',
    help: "1 when PgBouncer's read database (SIDECAR_READ_DATABASE) points at no configured replica, 0 when at one (present with replicas configured and the alias listed).",
    type: 'gauge',
    labels: ['database'],
    samples: (s, _a, scope) => {
      const r = readRouting(s, scope.readDatabase);
      return r ? [[{ database: r.database }, r.onPrimary ? 1 : 0]] : [];
    },
  },

  // pg_stat_statements: the top statements by total time (TOP_STATEMENT_SERIES per instance).
  { name: 'pg_stat_statements_calls_total', help: 'Number of times executed (top statements by total time only).', type: 'counter', labels: STATEMENT, samples: perTopStatement((st) => st.calls) },
  { name: 'pg_stat_statements_seconds_total', help: 'Total time spent in the statement, in seconds (top statements by total time only).', type: 'counter', labels: STATEMENT, samples: perTopStatement((st) => st.totalExecMs / 1000) },
  { name: 'pg_stat_statements_rows_total', help: 'Total number of rows retrieved or affected by the statement (top statements by total time only).', type: 'counter', labels: STATEMENT, samples: perTopStatement((st) => st.rows) },
  { name: 'pg_stat_statements_block_read_seconds_total', help: 'Total time the statement spent reading shared blocks, in seconds (track_io_timing; top statements only).', type: 'counter', labels: STATEMENT, samples: perTopStatement((st) => st.blkReadMs / 1000) },
  { name: 'pg_stat_statements_block_write_seconds_total', help: 'Total time the statement spent writing shared blocks, in seconds (track_io_timing; top statements only).', type: 'counter', labels: STATEMENT, samples: perTopStatement((st) => st.blkWriteMs / 1000) },

  // ---- Backups (Debian's prometheus-pgbackrest-exporter 0.19 names; every family a gauge, as there) ----
  { name: 'pgbackrest_exporter_status', help: 'pgBackRest exporter get data status.', type: 'gauge', labels: ['stanza'], samples: (s) => {
    const b = s.sources.backups.sample;
    if (!b || b.path === null) return [];
    return [[{ stanza: b.stanza || 'all-stanzas' }, b.problem === null && b.infoError === null && b.stanzaStatus !== null ? 1 : 0]];
  } },
  { name: 'pgbackrest_stanza_status', help: 'Current stanza status.', type: 'gauge', labels: ['stanza'], samples: (s) => {
    const b = backupsRead(s);
    return b?.stanzaStatus ? [[{ stanza: b.stanza }, b.stanzaStatus.code]] : [];
  } },
  { name: 'pgbackrest_stanza_lock_status', help: 'Current stanza lock status.', type: 'gauge', labels: ['stanza'], samples: (s) => {
    const b = backupsRead(s);
    return b?.stanzaStatus ? [[{ stanza: b.stanza }, b.stanzaStatus.lockHeld ? 1 : 0]] : [];
  } },
  { name: 'pgbackrest_repo_status', help: 'Current repository status.', type: 'gauge', labels: ['cipher', 'repo_key', 'stanza'], samples: (s) => {
    const b = backupsRead(s);
    return b ? b.repos.map((r) => [{ cipher: r.cipher, repo_key: String(r.key), stanza: b.stanza }, r.code]) : [];
  } },
  {
    name: 'pgbackrest_backup_info',
    help: 'Backup info.',
    type: 'gauge',
    labels: ['backrest_ver', 'backup_name', 'backup_type', 'block_incr', 'database_id', 'lsn_start', 'lsn_stop', 'pg_version', 'prior', 'repo_key', 'stanza', 'wal_start', 'wal_stop'],
    samples: perBackup(() => 1, (b, e) => ({
      backrest_ver: e.backrestVersion, lsn_start: e.lsnStart, lsn_stop: e.lsnStop, prior: e.prior, wal_start: e.walStart, wal_stop: e.walStop,
      pg_version: b.archives.find((a) => a.databaseId === e.databaseId && a.repoKey === e.repoKey)?.pgVersion ?? '',
    })),
  },
  { name: 'pgbackrest_backup_duration_seconds', help: 'Backup duration.', type: 'gauge', labels: [...BACKUP, 'start_time', 'stop_time'], samples: perBackup((e) => e.stopTime - e.startTime, (_b, e) => ({ start_time: goTime(e.startTime), stop_time: goTime(e.stopTime) })) },
  { name: 'pgbackrest_backup_size_bytes', help: 'Full uncompressed size of the database.', type: 'gauge', labels: BACKUP, samples: perBackup((e) => e.sizeBytes) },
  { name: 'pgbackrest_backup_delta_bytes', help: 'Amount of data in the database to actually backup.', type: 'gauge', labels: BACKUP, samples: perBackup((e) => e.deltaBytes) },
  { name: 'pgbackrest_backup_repo_size_bytes', help: 'Full compressed files size to restore the database from backup.', type: 'gauge', labels: BACKUP, samples: perBackup((e) => e.repoSizeBytes) },
  { name: 'pgbackrest_backup_repo_delta_bytes', help: 'Compressed files size in backup.', type: 'gauge', labels: BACKUP, samples: perBackup((e) => e.repoDeltaBytes) },
  { name: 'pgbackrest_backup_error_status', help: 'Backup error status.', type: 'gauge', labels: BACKUP, samples: perBackup((e) => (e.error ? 1 : 0)) },
  { name: 'pgbackrest_backup_since_last_completion_seconds', help: 'Seconds since the last completed full, differential or incremental backup.', type: 'gauge', labels: LAST, samples: perLastBackup((e, snap) => Math.max(0, pollSeconds(snap) - e.stopTime)) },
  { name: 'pgbackrest_backup_last_duration_seconds', help: 'Backup duration for the last full, differential or incremental backup.', type: 'gauge', labels: LAST, samples: perLastBackup((e) => e.stopTime - e.startTime) },
  { name: 'pgbackrest_backup_last_size_bytes', help: 'Full uncompressed size of the database in the last full, differential or incremental backup.', type: 'gauge', labels: LAST, samples: perLastBackup((e) => e.sizeBytes) },
  { name: 'pgbackrest_backup_last_delta_bytes', help: 'Amount of data in the database to actually backup in the last full, differential or incremental backup.', type: 'gauge', labels: LAST, samples: perLastBackup((e) => e.deltaBytes) },
  { name: 'pgbackrest_backup_last_repo_size_bytes', help: 'Full compressed files size to restore the database from the last full, differential or incremental backup.', type: 'gauge', labels: LAST, samples: perLastBackup((e) => e.repoSizeBytes) },
  { name: 'pgbackrest_backup_last_repo_delta_bytes', help: 'Compressed files size in the last full, differential or incremental backup.', type: 'gauge', labels: LAST, samples: perLastBackup((e) => e.repoDeltaBytes) },
  { name: 'pgbackrest_backup_last_error_status', help: 'Error status in the last full, differential or incremental backup.', type: 'gauge', labels: LAST, samples: perLastBackup((e) => (e.error ? 1 : 0)) },
  { name: 'pgbackrest_wal_archive_status', help: 'Current WAL archive status.', type: 'gauge', labels: ['database_id', 'pg_version', 'repo_key', 'stanza', 'wal_max', 'wal_min'], samples: (s) => {
    const b = backupsRead(s);
    // wal_min / wal_max stay empty, as the exporter leaves them without --backrest.verbose-wal
    // (a label per WAL name would be a new series at every segment).
    return b ? b.archives.map((a) => [{ database_id: String(a.databaseId), pg_version: a.pgVersion, repo_key: String(a.repoKey), stanza: b.stanza, wal_max: '', wal_min: '' }, a.min !== '' && a.max !== '' ? 1 : 0]) : [];
  } },
  { name: 'poolguard_backup_status_age_seconds', help: "Age of the backup service's status file, seconds (it rewrites it every BACKUP_CHECK_INTERVAL).", type: 'gauge', samples: (s) => {
    const b = backupsRead(s);
    return b ? [[{}, Math.max(0, pollSeconds(s) - b.writtenAt)]] : [];
  } },
  { name: 'poolguard_backup_last_run_success', help: "1 when the backup service's last backup run succeeded, 0 when it failed.", type: 'gauge', labels: ['backup_type'], samples: (s) => {
    const r = backupsRead(s)?.lastRun;
    return r ? [[{ backup_type: r.type }, r.ok ? 1 : 0]] : [];
  } },

  // ---- Redis (redis_exporter names) ----
  { name: 'redis_up', help: 'Redis answered PING and INFO in the last poll (1) or not (0).', type: 'gauge', samples: (s) => [[{}, s.sources.redis.up ? 1 : 0]] },
  {
    name: 'redis_instance_info',
    help: 'Information about the Redis instance.',
    type: 'gauge',
    labels: ['role', 'redis_version', 'redis_mode', 'maxmemory_policy'],
    samples: (s) => {
      const i = s.sources.redis.sample?.info;
      return i ? [[{ role: i.role ?? '', redis_version: i.redis_version ?? '', redis_mode: i.redis_mode ?? '', maxmemory_policy: i.maxmemory_policy ?? '' }, 1]] : [];
    },
  },
  { name: 'redis_master_link_up', help: '1 if the link to the primary is up (replicas only).', type: 'gauge', samples: redisFlag('master_link_status', 'up') },
  { name: 'redis_rdb_last_bgsave_ok', help: '1 if the last RDB save succeeded.', type: 'gauge', samples: redisFlag('rdb_last_bgsave_status', 'ok') },
  { name: 'redis_db_keys', help: 'Keys per database.', type: 'gauge', labels: ['db'], samples: (s) => Object.entries(s.sources.redis.sample?.keyspace ?? {}).map(([db, keys]) => [{ db: `db${db}` }, keys]) },
  // INFO fields as rows of REDIS_FIELDS; keyspace and commandstats below.
  ...REDIS_FIELDS.map(([field, name, type, help]): Family => ({ name, help, type, samples: redisField(field) })),
  { name: 'redis_db_keys_expiring', help: 'Keys with an expiry, per database.', type: 'gauge', labels: ['db'], samples: (s) => Object.entries(s.sources.redis.sample?.expiring ?? {}).map(([db, n]) => [{ db: `db${db}` }, n]) },
  { name: 'redis_commands_total', help: 'Calls per command (INFO commandstats).', type: 'counter', labels: ['cmd'], samples: perCommand((c) => c.calls) },
  { name: 'redis_commands_duration_seconds_total', help: 'Time spent per command, seconds (INFO commandstats usec).', type: 'counter', labels: ['cmd'], samples: perCommand((c) => c.usec / 1e6) },
  { name: 'redis_commands_rejected_calls_total', help: 'Calls rejected before they ran, per command.', type: 'counter', labels: ['cmd'], samples: perCommand((c) => c.rejectedCalls) },
  { name: 'redis_commands_failed_calls_total', help: 'Calls that failed while running, per command.', type: 'counter', labels: ['cmd'], samples: perCommand((c) => c.failedCalls) },
  { name: 'redis_ping_seconds', help: 'PING round trip of the last poll, seconds.', type: 'gauge', samples: (s) => (s.sources.redis.sample ? [[{}, s.sources.redis.sample.pingMs / 1000]] : []) },

  // ---- The sidecar's own ----
  { name: 'poolguard_source_up', help: 'Each source answered its last poll (1) or not (0); a replica is the source named by its instance.', type: 'gauge', labels: ['source'], samples: (s) => polledSources(s).map(({ id, state: st }) => [{ source: id }, st.up ? 1 : 0]) },
  { name: 'poolguard_poll_duration_seconds', help: 'Duration of each source in the last poll, seconds.', type: 'gauge', labels: ['source'], samples: (s) => polledSources(s).map(({ id, state: st }) => [{ source: id }, st.durationMs / 1000]) },
  { name: 'poolguard_poll_errors_total', help: 'Failed polls per source.', type: 'counter', labels: ['source'], samples: (s) => polledSources(s).map(({ id, state: st }) => [{ source: id }, st.errorsTotal]) },
  { name: 'poolguard_backend_restarts_total', help: 'Restarts of each backend seen by the sidecar (start time, run id or counters moved between two polls).', type: 'counter', labels: ['source'], samples: (s) => polledSources(s).map(({ id, state: st }) => [{ source: id }, st.restarts]) },
  { name: 'poolguard_polls_total', help: 'Polls completed.', type: 'counter', samples: (s) => [[{}, s.pollCount]] },
  { name: 'poolguard_probe_seconds', help: 'Round trip of SELECT 1 through PgBouncer in the last poll, seconds.', type: 'gauge', samples: (s) => (s.sources.probe.sample ? [[{}, s.sources.probe.sample.responseTimeMs / 1000]] : []) },
  { name: 'poolguard_alerts_firing', help: 'Firing alert instances per rule and severity.', type: 'gauge', labels: ['rule', 'severity'], samples: (_s, a) => a.countsByRule().map((c) => [{ rule: c.rule, severity: c.severity }, c.count]) },
  // ---- The values of the sidecar's rules whose inputs no other family carries (RULE_VALUES),
  // so monitoring/alerts.yml can alert on what the sidecar's rule sees ----
  ...RULE_VALUES.map(ruleValueFamily),

  // ---- Column families (PG_COLUMNS) ----
  ...PG_COLUMNS.map(columnFamily),
  ...PG_SETTINGS.map(settingFamily),
];

/**
 * A metric family read from the snapshot at scrape time. prom-client's Gauge and Counter
 * cannot be absent (a label-less one reports 0) and counters cannot be set, so each family is
 * a minimal collector that prom-client's Registry formats like its own metrics.
 */
class SnapshotFamily {
  readonly aggregator = 'sum';
  constructor(
    private readonly family: Family,
    private readonly read: () => { snapshot: StackSnapshot; alerts: AlertEngine },
    private readonly scope: PoolScope,
  ) {}

  get name(): string {
    return this.family.name;
  }

  get help(): string {
    return this.family.help;
  }

  get type(): string {
    return this.family.type;
  }

  async get() {
    const { snapshot, alerts } = this.read();
    const values = this.family.samples(snapshot, alerts, this.scope).map(([labels, value]) => ({ labels, value }));
    return { name: this.family.name, help: this.family.help, type: this.family.type, aggregator: this.aggregator, values };
  }

  reset(): void {}
}

/** Registers every family on the registry; each reads the snapshot at collect time. scope: the config's names (the read alias). */
export function registerMetrics(registry: Registry, read: () => { snapshot: StackSnapshot; alerts: AlertEngine }, scope: PoolScope): void {
  for (const f of FAMILIES) registry.registerMetric(new SnapshotFamily(f, read, scope) as unknown as Metric);
}

/**
 * The exposition text only changes when the poll loop writes a new snapshot (the alert engine
 * is evaluated in the same tick), so it is rendered once per snapshot and served as is.
 */
export function cachedRender(registry: Registry, version: () => object): () => Promise<string> {
  let key: object | undefined;
  let text: Promise<string> | undefined;
  return () => {
    const current = version();
    if (current !== key || !text) {
      key = current;
      text = registry.metrics();
    }
    return text;
  };
}
