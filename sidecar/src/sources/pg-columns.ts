// Postgres statistics read as plain column sets: each query names its label columns; every other
// column with a numeric value is kept by its name. The metrics table (metrics.ts PG_COLUMNS)
// maps a (query, column) to a family, so a new column of one of these views is one edit there,
// not an interface, a parser and a metrics row. Pure parsing, columns matched by name.
import type { Queryable, Row } from '../pg-connection.js';

export interface ColumnQuery {
  id: string;
  /** Label columns (text); the rest of the row are values. */
  labels: readonly string[];
  sql: string;
}

export interface ColumnRow {
  labels: Record<string, string>;
  values: Record<string, number>;
}

/** pg_locks modes as postgres_exporter labels them (lower case): each one present for every database, 0 included. */
export const LOCK_MODES = ['accesssharelock', 'rowsharelock', 'rowexclusivelock', 'shareupdateexclusivelock', 'sharelock', 'sharerowexclusivelock', 'exclusivelock', 'accessexclusivelock', 'sireadlock'] as const;

/** The user tables with the most data (pg_stat_user_tables_*): bounded, whatever the schema. */
export const LARGEST_TABLES = 20;

export const COLUMN_QUERIES: readonly ColumnQuery[] = [
  {
    id: 'stat_database',
    labels: ['datid', 'datname'],
    sql: `SELECT datid::text AS datid, datname, xact_commit, xact_rollback, blks_read, blks_hit, tup_returned, tup_fetched,
                 tup_inserted, tup_updated, tup_deleted, conflicts, temp_files, temp_bytes, deadlocks, blk_read_time,
                 blk_write_time, extract(epoch FROM stats_reset)::float8 AS stats_reset
            FROM pg_catalog.pg_stat_database WHERE datname IS NOT NULL`,
  },
  {
    id: 'database',
    labels: ['datname'],
    sql: `SELECT datname, pg_catalog.pg_database_size(oid) AS size_bytes, datconnlimit AS connection_limit
            FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate`,
  },
  {
    id: 'locks',
    labels: ['datname', 'mode'],
    sql: `SELECT d.datname, m.mode, count(l.mode) AS count
            FROM pg_catalog.pg_database AS d
           CROSS JOIN unnest(ARRAY['${LOCK_MODES.join("','")}']) AS m(mode)
            LEFT JOIN pg_catalog.pg_locks AS l ON l.database = d.oid AND lower(l.mode) = m.mode
           WHERE d.datallowconn AND NOT d.datistemplate
           GROUP BY d.datname, m.mode`,
  },
  {
    id: 'bgwriter',
    labels: [],
    sql: `SELECT buffers_clean, maxwritten_clean, buffers_alloc, extract(epoch FROM stats_reset)::float8 AS stats_reset
            FROM pg_catalog.pg_stat_bgwriter`,
  },
  {
    id: 'checkpointer',
    labels: [],
    sql: `SELECT num_timed, num_requested, restartpoints_timed, restartpoints_req, restartpoints_done, write_time,
                 sync_time, buffers_written, extract(epoch FROM stats_reset)::float8 AS stats_reset
            FROM pg_catalog.pg_stat_checkpointer`,
  },
  {
    id: 'user_tables',
    labels: ['datname', 'schemaname', 'relname'],
    sql: `SELECT current_database() AS datname, schemaname, relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0) AS idx_scan,
                 coalesce(idx_tup_fetch, 0) AS idx_tup_fetch, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, n_live_tup,
                 n_dead_tup, n_mod_since_analyze, coalesce(extract(epoch FROM last_vacuum), 0)::float8 AS last_vacuum,
                 coalesce(extract(epoch FROM last_autovacuum), 0)::float8 AS last_autovacuum,
                 coalesce(extract(epoch FROM last_analyze), 0)::float8 AS last_analyze,
                 coalesce(extract(epoch FROM last_autoanalyze), 0)::float8 AS last_autoanalyze,
                 vacuum_count, autovacuum_count, analyze_count, autoanalyze_count,
                 pg_catalog.pg_total_relation_size(relid) AS size_bytes
            FROM pg_catalog.pg_stat_user_tables
           ORDER BY pg_catalog.pg_total_relation_size(relid) DESC, relid
           LIMIT ${LARGEST_TABLES}`,
  },
];

export function parseColumnRows(rows: Row[], labels: readonly string[]): ColumnRow[] {
  return rows.map((r) => {
    const out: ColumnRow = { labels: {}, values: {} };
    for (const [k, v] of Object.entries(r)) {
      if (labels.includes(k)) out.labels[k] = v === null || v === undefined ? '' : String(v);
      else if (v !== null && v !== undefined && v !== '' && typeof v !== 'boolean' && Number.isFinite(Number(v))) out.values[k] = Number(v);
    }
    for (const l of labels) out.labels[l] ??= '';
    return out;
  });
}

/** Every column query; one that fails (a view a version lacks) is left out, not the poll. */
export async function collectColumns(db: Queryable, queries: readonly ColumnQuery[] = COLUMN_QUERIES): Promise<Record<string, ColumnRow[]>> {
  const out: Record<string, ColumnRow[]> = {};
  for (const q of queries) {
    let rows: Row[];
    try {
      rows = await db.query(q.sql);
    } catch (err) {
      // A view this server does not have (pg_stat_checkpointer before 17) or a permission: skip it.
      if (/does not exist|permission denied/.test(err instanceof Error ? err.message : String(err))) continue;
      throw err;
    }
    out[q.id] = parseColumnRows(rows, q.labels);
  }
  return out;
}
