// Postgres, on the direct URL as the monitoring role (pg_monitor). Each query is parsed by a
// pure function that matches columns by name.
import type { Queryable, Row } from '../pg-connection.js';
import { nullableNum, num, str } from './columns.js';
import { querySummary } from '../sql-redact.js';
import { collectColumns, type ColumnRow } from './pg-columns.js';
import { collectStatements, type StatementTexts, type StatementsSample } from './statements.js';

/** Every state postgres_exporter emits (0 included). */
export const ACTIVITY_STATES = ['active', 'idle', 'idle in transaction', 'idle in transaction (aborted)', 'fastpath function call', 'disabled'] as const;

export interface ActivityGroup {
  datname: string;
  state: string;
  usename: string;
  applicationName: string;
  count: number;
  /** Oldest open transaction in this group, seconds (0 when none). */
  maxTxSeconds: number;
}

export interface IdleInTransaction {
  pid: number;
  datname: string;
  usename: string;
  applicationName: string;
  clientAddr: string;
  state: string;
  /** Seconds since the session went idle inside its transaction. */
  idleSeconds: number;
  xactSeconds: number;
}

/** A client backend (GET /sessions); its query is redacted and cut when parsed, never kept raw. */
export interface Session {
  pid: number;
  usename: string;
  applicationName: string;
  datname: string;
  state: string;
  /** 'local' over the Unix socket (PgBouncer's connections in this bundle). */
  clientAddr: string;
  /** Seconds since its transaction began (null: none open). */
  xactSeconds: number | null;
  /** Seconds in its current state. */
  stateSeconds: number;
  /** The current (or last) statement: literals replaced with "?", at most 200 characters. */
  query: string;
}

export interface DatabaseBackends {
  datid: string;
  datname: string;
  numbackends: number;
}

export interface PostgresSample {
  version: string;
  maxConnections: number;
  superuserReservedConnections: number;
  /** PG 16+: reserved_connections (for pg_use_reserved_connections); 0 before. */
  reservedConnections: number;
  /** Numeric and boolean settings by postgres_exporter's name (exporterSetting), e.g. shared_buffers_bytes. */
  settings: Record<string, number>;
  activity: ActivityGroup[];
  databases: string[];
  idleInTransaction: IdleInTransaction[];
  /** Client backends, oldest transaction first (at most SESSIONS_LIMIT). */
  sessions: Session[];
  oldestXactSeconds: number;
  lockWaiting: number;
  backends: DatabaseBackends[];
  /** pg_is_in_recovery(): a standby (or a server replaying WAL). */
  isReplica: boolean;
  /** pg_current_wal_lsn() in bytes (pg_wal_lsn_diff(lsn, '0/0')); null in recovery. */
  currentLsnBytes: number | null;
  /** The standby side; null when not in recovery. */
  standby: Standby | null;
  /** pg_stat_replication: the standbys (and base backups) this server sends WAL to. */
  replication: ReplicationClient[];
  /** pg_replication_slots. */
  slots: ReplicationSlot[];
  /** The column queries of pg-columns.ts by id (pg_stat_database, sizes, locks, bgwriter, checkpointer, largest tables). */
  columns: Record<string, ColumnRow[]>;
  /** pg_stat_statements (when the source keeps a text cache for this instance). */
  statements?: StatementsSample;
  /** pg_postmaster_start_time(), seconds since the epoch: it moves when Postgres restarts. */
  startTime: number;
  /** version(): "PostgreSQL 17.6 (Debian 17.6-1) on x86_64-pc-linux-gnu, compiled by ...". */
  versionString: string;
  archiver: Archiver;
}

/** What a server in recovery reports about its own replay and its WAL receiver. */
export interface Standby {
  /** pg_last_wal_receive_lsn() / pg_last_wal_replay_lsn() in bytes; null when unknown. */
  receiveLsnBytes: number | null;
  replayLsnBytes: number | null;
  /** pg_last_xact_replay_timestamp(), seconds since the epoch; null before the first replayed transaction. */
  lastReplayAt: number | null;
  /** clock_timestamp() - pg_last_xact_replay_timestamp() on the standby's own clock, seconds; null with lastReplayAt. */
  replayAgeSeconds: number | null;
  /** pg_is_wal_replay_paused(). */
  replayPaused: boolean;
  /** pg_stat_wal_receiver's row; null when it has none (no WAL receiver: the stream is not running). */
  receiver: WalReceiver | null;
}

export interface WalReceiver {
  /** streaming, starting, waiting, restarting, stopping. */
  status: string;
  senderHost: string;
  slotName: string;
  /** last_msg_receipt_time, seconds since the epoch; null when none. */
  lastMsgReceiptAt: number | null;
}

/** One row of pg_stat_replication (a WAL sender), on the sending server. */
export interface ReplicationClient {
  applicationName: string;
  /** host(client_addr); '' over a Unix socket (as postgres_exporter's label). */
  clientAddr: string;
  /** startup, catchup, streaming, backup, stopping. */
  state: string;
  syncState: string;
  /** pg_current_wal_lsn() at this query, bytes (as postgres_exporter's pg_current_wal_lsn_bytes). */
  currentLsnBytes: number | null;
  sentLsnBytes: number | null;
  writeLsnBytes: number | null;
  flushLsnBytes: number | null;
  replayLsnBytes: number | null;
  /** current - replay LSN, bytes (postgres_exporter's pg_wal_lsn_diff); null when replay_lsn is. */
  lsnDiffBytes: number | null;
  /** write_lag / flush_lag / replay_lag in seconds; null when Postgres has none (idle, or not measured yet). */
  writeLagSeconds: number | null;
  flushLagSeconds: number | null;
  replayLagSeconds: number | null;
  /** reply_time, seconds since the epoch; null before the first reply. */
  replyTime: number | null;
}

/** One row of pg_replication_slots. */
export interface ReplicationSlot {
  slotName: string;
  /** physical or logical. */
  slotType: string;
  active: boolean;
  /** reserved, extended, unreserved, lost ('' when Postgres reports none). */
  walStatus: string;
  restartLsnBytes: number | null;
  /** WAL the slot keeps: current (or, in recovery, received) LSN - restart_lsn, bytes; null without restart_lsn. */
  retainedBytes: number | null;
  /** safe_wal_size: bytes that can still be written before the slot is lost; null without max_slot_wal_keep_size. */
  safeWalSizeBytes: number | null;
}

/** pg_stat_archiver, and the WAL segments still waiting for archive_command. */
export interface Archiver {
  /** archive_mode (off, on, always). */
  mode: string;
  archivedCount: number;
  failedCount: number;
  lastArchivedWal: string;
  lastFailedWal: string;
  /** Seconds since the epoch; 0 when it never happened (since the last stats reset). */
  lastArchivedTime: number;
  lastFailedTime: number;
  /** Seconds since the last successful archive; null when none. */
  lastArchiveAgeSeconds: number | null;
  /** Segments marked .ready in pg_wal/archive_status: written, not yet archived. */
  readySegments: number;
}

export const SQL = {
  // Every numeric and boolean setting (postgres_exporter's pg_settings_*), and the version.
  settings: `SELECT name, setting, coalesce(unit, '') AS unit, vartype FROM pg_catalog.pg_settings
             WHERE vartype IN ('bool', 'integer', 'real') OR name = 'server_version'`,
  activity: `SELECT coalesce(datname, '') AS datname, coalesce(state, '') AS state, coalesce(usename, '') AS usename,
                    coalesce(application_name, '') AS application_name, count(*) AS count,
                    coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)::float8 AS max_tx_seconds
               FROM pg_catalog.pg_stat_activity
              WHERE backend_type = 'client backend'
              GROUP BY 1, 2, 3, 4`,
  databases: `SELECT datname FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1`,
  idleInTransaction: `SELECT pid, coalesce(datname, '') AS datname, coalesce(usename, '') AS usename,
                             coalesce(application_name, '') AS application_name,
                             coalesce(host(client_addr), 'local') AS client_addr, state,
                             extract(epoch FROM clock_timestamp() - state_change)::float8 AS idle_seconds,
                             extract(epoch FROM clock_timestamp() - xact_start)::float8 AS xact_seconds
                        FROM pg_catalog.pg_stat_activity
                       WHERE state LIKE 'idle in transaction%'
                       ORDER BY state_change LIMIT 50`,
  sessions: `SELECT pid, coalesce(usename, '') AS usename, coalesce(application_name, '') AS application_name,
                     coalesce(datname, '') AS datname, coalesce(state, '') AS state,
                     coalesce(host(client_addr), 'local') AS client_addr,
                     extract(epoch FROM clock_timestamp() - xact_start)::float8 AS xact_seconds,
                     coalesce(extract(epoch FROM clock_timestamp() - state_change), 0)::float8 AS state_seconds,
                     query
                FROM pg_catalog.pg_stat_activity
               WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()
               ORDER BY xact_start NULLS LAST, pid LIMIT 500`,
  oldestXact: `SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)::float8 AS seconds
                 FROM pg_catalog.pg_stat_activity
                WHERE xact_start IS NOT NULL AND backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()`,
  lockWaiting: `SELECT count(*) AS waiting FROM pg_catalog.pg_stat_activity WHERE wait_event_type = 'Lock'`,
  backends: `SELECT datid::text AS datid, datname, numbackends FROM pg_catalog.pg_stat_database WHERE datname IS NOT NULL`,
  // One row: recovery state, the WAL positions (LSNs as numeric bytes: node-postgres returns
  // strings), the standby's replay and WAL receiver (pg_stat_wal_receiver has one row or none;
  // its columns are visible to pg_monitor through pg_read_all_stats), the postmaster's start
  // time, the archiver (pg_stat_archiver and the .ready files, pg_ls_archive_statusdir is
  // granted to pg_monitor). pg_current_wal_lsn() and pg_is_wal_replay_paused() raise errors on
  // the wrong side of recovery, hence the CASEs.
  server: `SELECT pg_catalog.pg_is_in_recovery() AS is_replica,
                  CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
                       ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), '0/0') END AS current_lsn_bytes,
                  pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(), '0/0') AS receive_lsn_bytes,
                  pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_replay_lsn(), '0/0') AS replay_lsn_bytes,
                  extract(epoch FROM pg_catalog.pg_last_xact_replay_timestamp())::float8 AS last_replay_time,
                  extract(epoch FROM clock_timestamp() - pg_catalog.pg_last_xact_replay_timestamp())::float8 AS replay_age_seconds,
                  CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END AS replay_paused,
                  w.status AS receiver_status, w.sender_host AS receiver_sender_host, w.slot_name AS receiver_slot_name,
                  extract(epoch FROM w.last_msg_receipt_time)::float8 AS receiver_last_msg_time,
                  extract(epoch FROM pg_catalog.pg_postmaster_start_time())::float8 AS start_time,
                  pg_catalog.version() AS version_string,
                  pg_catalog.current_setting('archive_mode') AS archive_mode,
                  a.archived_count, a.failed_count,
                  coalesce(a.last_archived_wal, '') AS last_archived_wal, coalesce(a.last_failed_wal, '') AS last_failed_wal,
                  coalesce(extract(epoch FROM a.last_archived_time), 0)::float8 AS last_archived_time,
                  coalesce(extract(epoch FROM a.last_failed_time), 0)::float8 AS last_failed_time,
                  extract(epoch FROM clock_timestamp() - a.last_archived_time)::float8 AS last_archive_age,
                  (SELECT count(*) FROM pg_catalog.pg_ls_archive_statusdir() WHERE name LIKE '%.ready') AS ready_segments
             FROM pg_catalog.pg_stat_archiver a LEFT JOIN pg_catalog.pg_stat_wal_receiver w ON true`,
  // The standbys this server sends WAL to, as postgres_exporter's pg_stat_replication query
  // computes them (current LSN and its distance to replay_lsn, in the same statement).
  replication: `SELECT coalesce(application_name, '') AS application_name, coalesce(host(client_addr), '') AS client_addr,
                       coalesce(state, '') AS state, coalesce(sync_state, '') AS sync_state,
                       CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
                            ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), '0/0') END AS current_lsn_bytes,
                       pg_catalog.pg_wal_lsn_diff(sent_lsn, '0/0') AS sent_lsn_bytes,
                       pg_catalog.pg_wal_lsn_diff(write_lsn, '0/0') AS write_lsn_bytes,
                       pg_catalog.pg_wal_lsn_diff(flush_lsn, '0/0') AS flush_lsn_bytes,
                       pg_catalog.pg_wal_lsn_diff(replay_lsn, '0/0') AS replay_lsn_bytes,
                       CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
                            ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), replay_lsn) END AS lsn_diff_bytes,
                       extract(epoch FROM write_lag)::float8 AS write_lag_seconds,
                       extract(epoch FROM flush_lag)::float8 AS flush_lag_seconds,
                       extract(epoch FROM replay_lag)::float8 AS replay_lag_seconds,
                       extract(epoch FROM reply_time)::float8 AS reply_time
                  FROM pg_catalog.pg_stat_replication
                 ORDER BY 1, 2`,
  // Slots and the WAL each keeps (from the received LSN on a standby, as postgres_exporter's
  // pg_replication_slot collector does).
  slots: `SELECT slot_name, slot_type, active, coalesce(wal_status, '') AS wal_status,
                 pg_catalog.pg_wal_lsn_diff(restart_lsn, '0/0') AS restart_lsn_bytes,
                 pg_catalog.pg_wal_lsn_diff(CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_receive_lsn()
                                                 ELSE pg_catalog.pg_current_wal_lsn() END, restart_lsn) AS retained_bytes,
                 safe_wal_size
            FROM pg_catalog.pg_replication_slots
           ORDER BY slot_name`,
} as const;

/** server_version as postgres_exporter's pg_static short_version: major.minor.patch ("17.6 (Debian 17.6-1)" is 17.6.0); '' when unreadable. */
export function shortVersion(serverVersion: string): string {
  const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(serverVersion.trim());
  return m ? `${m[1]}.${m[2] ?? '0'}.${m[3] ?? '0'}` : '';
}

/** pg_settings units as postgres_exporter converts them: [suffix, factor]. -1 is kept as is. */
const SETTING_UNITS: Record<string, readonly ['seconds' | 'bytes', number]> = {
  us: ['seconds', 1e-6], ms: ['seconds', 1e-3], s: ['seconds', 1], min: ['seconds', 60], h: ['seconds', 3600], d: ['seconds', 86400],
  B: ['bytes', 1], kB: ['bytes', 2 ** 10], MB: ['bytes', 2 ** 20], GB: ['bytes', 2 ** 30], TB: ['bytes', 2 ** 40],
  '8kB': ['bytes', 2 ** 13], '16kB': ['bytes', 2 ** 14], '32kB': ['bytes', 2 ** 15], '16MB': ['bytes', 2 ** 24], '32MB': ['bytes', 2 ** 25], '64MB': ['bytes', 2 ** 26],
};

/**
 * One pg_settings row as postgres_exporter exports it: the key is the name with dots as
 * underscores plus `_seconds` / `_bytes` when it has a unit (value converted), bool on = 1.
 * undefined for other types, a unit it does not know or a value that is not a number.
 */
export function exporterSetting(name: string, setting: string, unit: string, vartype: string): [string, number] | undefined {
  const key = name.replaceAll('.', '_');
  if (vartype === 'bool') return [key, setting === 'on' ? 1 : 0];
  if (vartype !== 'integer' && vartype !== 'real') return undefined;
  const v = Number(setting);
  if (setting === '' || !Number.isFinite(v)) return undefined;
  if (unit === '') return [key, v];
  const u = SETTING_UNITS[unit];
  if (!u) return undefined;
  return [`${key}_${u[0]}`, v === -1 ? v : v * u[1]];
}

export function parseSettings(rows: Row[]): Pick<PostgresSample, 'version' | 'maxConnections' | 'superuserReservedConnections' | 'reservedConnections' | 'settings'> {
  const s: Record<string, string> = {};
  const settings: Record<string, number> = {};
  for (const r of rows) {
    const name = str(r, 'name');
    const setting = str(r, 'setting');
    s[name] = setting;
    const e = exporterSetting(name, setting, str(r, 'unit'), str(r, 'vartype'));
    if (e) settings[e[0]] = e[1];
  }
  return {
    version: s.server_version ?? '',
    maxConnections: Number(s.max_connections ?? 0),
    superuserReservedConnections: Number(s.superuser_reserved_connections ?? 0),
    reservedConnections: Number(s.reserved_connections ?? 0),
    settings,
  };
}

export function parseActivity(rows: Row[]): ActivityGroup[] {
  return rows.map((r) => ({
    datname: str(r, 'datname'),
    state: str(r, 'state'),
    usename: str(r, 'usename'),
    applicationName: str(r, 'application_name'),
    count: num(r, 'count'),
    maxTxSeconds: num(r, 'max_tx_seconds'),
  }));
}

export function parseIdleInTransaction(rows: Row[]): IdleInTransaction[] {
  return rows.map((r) => ({
    pid: num(r, 'pid'),
    datname: str(r, 'datname'),
    usename: str(r, 'usename'),
    applicationName: str(r, 'application_name'),
    clientAddr: str(r, 'client_addr'),
    state: str(r, 'state'),
    idleSeconds: num(r, 'idle_seconds'),
    xactSeconds: num(r, 'xact_seconds'),
  }));
}

export function parseBackends(rows: Row[]): DatabaseBackends[] {
  return rows.map((r) => ({ datid: str(r, 'datid'), datname: str(r, 'datname'), numbackends: num(r, 'numbackends') }));
}

const bool = (v: unknown) => v === true || v === 't';

export function parseServer(rows: Row[]): Pick<PostgresSample, 'isReplica' | 'currentLsnBytes' | 'standby' | 'startTime' | 'versionString' | 'archiver'> {
  const r = rows[0] ?? {};
  const isReplica = bool(r.is_replica);
  const receiverStatus = r.receiver_status;
  return {
    isReplica,
    currentLsnBytes: nullableNum(r, 'current_lsn_bytes'),
    standby: isReplica
      ? {
          receiveLsnBytes: nullableNum(r, 'receive_lsn_bytes'),
          replayLsnBytes: nullableNum(r, 'replay_lsn_bytes'),
          lastReplayAt: nullableNum(r, 'last_replay_time'),
          replayAgeSeconds: nullableNum(r, 'replay_age_seconds'),
          replayPaused: bool(r.replay_paused),
          // A LEFT JOIN: no receiver row leaves every receiver column NULL (status never is in a row).
          receiver: receiverStatus === null || receiverStatus === undefined
            ? null
            : { status: str(r, 'receiver_status'), senderHost: str(r, 'receiver_sender_host'), slotName: str(r, 'receiver_slot_name'), lastMsgReceiptAt: nullableNum(r, 'receiver_last_msg_time') },
        }
      : null,
    startTime: num(r, 'start_time'),
    versionString: str(r, 'version_string'),
    archiver: {
      mode: str(r, 'archive_mode'),
      archivedCount: num(r, 'archived_count'),
      failedCount: num(r, 'failed_count'),
      lastArchivedWal: str(r, 'last_archived_wal'),
      lastFailedWal: str(r, 'last_failed_wal'),
      lastArchivedTime: num(r, 'last_archived_time'),
      lastFailedTime: num(r, 'last_failed_time'),
      lastArchiveAgeSeconds: nullableNum(r, 'last_archive_age'),
      readySegments: num(r, 'ready_segments'),
    },
  };
}

export function parseReplication(rows: Row[]): ReplicationClient[] {
  return rows.map((r) => ({
    applicationName: str(r, 'application_name'),
    clientAddr: str(r, 'client_addr'),
    state: str(r, 'state'),
    syncState: str(r, 'sync_state'),
    currentLsnBytes: nullableNum(r, 'current_lsn_bytes'),
    sentLsnBytes: nullableNum(r, 'sent_lsn_bytes'),
    writeLsnBytes: nullableNum(r, 'write_lsn_bytes'),
    flushLsnBytes: nullableNum(r, 'flush_lsn_bytes'),
    replayLsnBytes: nullableNum(r, 'replay_lsn_bytes'),
    lsnDiffBytes: nullableNum(r, 'lsn_diff_bytes'),
    writeLagSeconds: nullableNum(r, 'write_lag_seconds'),
    flushLagSeconds: nullableNum(r, 'flush_lag_seconds'),
    replayLagSeconds: nullableNum(r, 'replay_lag_seconds'),
    replyTime: nullableNum(r, 'reply_time'),
  }));
}

export function parseSlots(rows: Row[]): ReplicationSlot[] {
  return rows.map((r) => ({
    slotName: str(r, 'slot_name'),
    slotType: str(r, 'slot_type'),
    active: bool(r.active),
    walStatus: str(r, 'wal_status'),
    restartLsnBytes: nullableNum(r, 'restart_lsn_bytes'),
    retainedBytes: nullableNum(r, 'retained_bytes'),
    safeWalSizeBytes: nullableNum(r, 'safe_wal_size'),
  }));
}

export function parseSessions(rows: Row[]): Session[] {
  return rows.map((r) => ({
    pid: num(r, 'pid'),
    usename: str(r, 'usename'),
    applicationName: str(r, 'application_name'),
    datname: str(r, 'datname'),
    state: str(r, 'state'),
    clientAddr: str(r, 'client_addr'),
    xactSeconds: nullableNum(r, 'xact_seconds'),
    stateSeconds: num(r, 'state_seconds'),
    query: querySummary(str(r, 'query')),
  }));
}

/** texts: this instance's query-text cache; with it the sample includes pg_stat_statements. */
export async function collectPostgres(db: Queryable, texts?: StatementTexts): Promise<PostgresSample> {
  const settings = parseSettings(await db.query(SQL.settings));
  const activity = parseActivity(await db.query(SQL.activity));
  const databases = (await db.query(SQL.databases)).map((r) => str(r, 'datname'));
  const idleInTransaction = parseIdleInTransaction(await db.query(SQL.idleInTransaction));
  const sessions = parseSessions(await db.query(SQL.sessions));
  const oldestXactSeconds = num((await db.query(SQL.oldestXact))[0] ?? {}, 'seconds');
  const lockWaiting = num((await db.query(SQL.lockWaiting))[0] ?? {}, 'waiting');
  const backends = parseBackends(await db.query(SQL.backends));
  const server = parseServer(await db.query(SQL.server));
  const replication = parseReplication(await db.query(SQL.replication));
  const slots = parseSlots(await db.query(SQL.slots));
  const columns = await collectColumns(db);
  const statements = texts ? await collectStatements(db, texts) : undefined;
  return { ...settings, activity, databases, idleInTransaction, sessions, oldestXactSeconds, lockWaiting, backends, ...server, replication, slots, columns, ...(statements ? { statements } : {}) };
}

const iso = (epochSeconds: number) => new Date(epochSeconds * 1000).toISOString();

/** Postgres restarted between two samples when its postmaster start time moved (crash recovery included). */
export function postgresRestarted(before: Pick<PostgresSample, 'startTime'>, after: Pick<PostgresSample, 'startTime'>): string | undefined {
  if (!(before.startTime > 0 && after.startTime > 0) || Math.abs(after.startTime - before.startTime) < 0.001) return undefined;
  return `Postgres started again at ${iso(after.startTime)} (pg_postmaster_start_time was ${iso(before.startTime)}): a crash, an OOM kill or a container restart; see its log`;
}

/** Client backends counted against the non-superuser connection limit (the sidecar's own included). */
export function clientConnections(s: PostgresSample): number {
  return s.activity.reduce((n, g) => n + g.count, 0);
}

export function usableConnections(s: PostgresSample): number {
  return Math.max(0, s.maxConnections - s.superuserReservedConnections - s.reservedConnections);
}
