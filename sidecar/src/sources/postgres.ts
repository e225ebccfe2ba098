// Postgres, on the direct URL as the monitoring role (pg_monitor). Each query is parsed by a
// pure function that matches columns by name.
import type { Queryable, Row } from '../pg-connection.js';
import { num, str } from './columns.js';

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
  activity: ActivityGroup[];
  databases: string[];
  idleInTransaction: IdleInTransaction[];
  oldestXactSeconds: number;
  lockWaiting: number;
  backends: DatabaseBackends[];
  isReplica: boolean;
  replicationLagSeconds: number;
  /** pg_postmaster_start_time(), seconds since the epoch: it moves when Postgres restarts. */
  startTime: number;
  archiver: Archiver;
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
  settings: `SELECT name, setting FROM pg_catalog.pg_settings
             WHERE name IN ('max_connections', 'superuser_reserved_connections', 'reserved_connections', 'server_version')`,
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
  oldestXact: `SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)::float8 AS seconds
                 FROM pg_catalog.pg_stat_activity
                WHERE xact_start IS NOT NULL AND backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()`,
  lockWaiting: `SELECT count(*) AS waiting FROM pg_catalog.pg_stat_activity WHERE wait_event_type = 'Lock'`,
  backends: `SELECT datid::text AS datid, datname, numbackends FROM pg_catalog.pg_stat_database WHERE datname IS NOT NULL`,
  // One row: recovery state and lag, the postmaster's start time, the archiver (pg_stat_archiver
  // and the .ready files, pg_ls_archive_statusdir is granted to pg_monitor).
  server: `SELECT pg_catalog.pg_is_in_recovery() AS is_replica,
                  CASE WHEN pg_catalog.pg_is_in_recovery()
                       THEN coalesce(extract(epoch FROM clock_timestamp() - pg_catalog.pg_last_xact_replay_timestamp()), 0)
                       ELSE 0 END::float8 AS lag_seconds,
                  extract(epoch FROM pg_catalog.pg_postmaster_start_time())::float8 AS start_time,
                  pg_catalog.current_setting('archive_mode') AS archive_mode,
                  a.archived_count, a.failed_count,
                  coalesce(a.last_archived_wal, '') AS last_archived_wal, coalesce(a.last_failed_wal, '') AS last_failed_wal,
                  coalesce(extract(epoch FROM a.last_archived_time), 0)::float8 AS last_archived_time,
                  coalesce(extract(epoch FROM a.last_failed_time), 0)::float8 AS last_failed_time,
                  extract(epoch FROM clock_timestamp() - a.last_archived_time)::float8 AS last_archive_age,
                  (SELECT count(*) FROM pg_catalog.pg_ls_archive_statusdir() WHERE name LIKE '%.ready') AS ready_segments
             FROM pg_catalog.pg_stat_archiver a`,
} as const;

export function parseSettings(rows: Row[]): Pick<PostgresSample, 'version' | 'maxConnections' | 'superuserReservedConnections' | 'reservedConnections'> {
  const s: Record<string, string> = {};
  for (const r of rows) s[str(r, 'name')] = str(r, 'setting');
  return {
    version: s.server_version ?? '',
    maxConnections: Number(s.max_connections ?? 0),
    superuserReservedConnections: Number(s.superuser_reserved_connections ?? 0),
    reservedConnections: Number(s.reserved_connections ?? 0),
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

export function parseServer(rows: Row[]): Pick<PostgresSample, 'isReplica' | 'replicationLagSeconds' | 'startTime' | 'archiver'> {
  const r = rows[0] ?? {};
  return {
    isReplica: r.is_replica === true || r.is_replica === 't',
    replicationLagSeconds: num(r, 'lag_seconds'),
    startTime: num(r, 'start_time'),
    archiver: {
      mode: str(r, 'archive_mode'),
      archivedCount: num(r, 'archived_count'),
      failedCount: num(r, 'failed_count'),
      lastArchivedWal: str(r, 'last_archived_wal'),
      lastFailedWal: str(r, 'last_failed_wal'),
      lastArchivedTime: num(r, 'last_archived_time'),
      lastFailedTime: num(r, 'last_failed_time'),
      lastArchiveAgeSeconds: r.last_archive_age === null || r.last_archive_age === undefined ? null : num(r, 'last_archive_age'),
      readySegments: num(r, 'ready_segments'),
    },
  };
}

export async function collectPostgres(db: Queryable): Promise<PostgresSample> {
  const settings = parseSettings(await db.query(SQL.settings));
  const activity = parseActivity(await db.query(SQL.activity));
  const databases = (await db.query(SQL.databases)).map((r) => str(r, 'datname'));
  const idleInTransaction = parseIdleInTransaction(await db.query(SQL.idleInTransaction));
  const oldestXactSeconds = num((await db.query(SQL.oldestXact))[0] ?? {}, 'seconds');
  const lockWaiting = num((await db.query(SQL.lockWaiting))[0] ?? {}, 'waiting');
  const backends = parseBackends(await db.query(SQL.backends));
  const server = parseServer(await db.query(SQL.server));
  return { ...settings, activity, databases, idleInTransaction, oldestXactSeconds, lockWaiting, backends, ...server };
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
