// pg_stat_statements on the primary, as the monitoring role (pg_monitor includes
// pg_read_all_stats, so every user's statements and texts are visible). Each poll reads the
// counters without the texts (pg_stat_statements(false): reading the query-text file is the
// expensive part); texts are fetched only for statements not seen before and kept by the caller
// (a StatementTexts cache). Parsers are pure and match columns by name.
import type { Queryable, Row } from '../pg-connection.js';
import { nullableNum, num, str } from './columns.js';

/** One statement's counters (one row of pg_stat_statements). */
export interface StatementCounters {
  /** queryid, userid, dbid and toplevel: what identifies a row of pg_stat_statements. */
  key: string;
  queryid: string;
  user: string;
  datname: string;
  calls: number;
  rows: number;
  totalExecMs: number;
  meanExecMs: number;
  maxExecMs: number;
  stddevExecMs: number;
  sharedBlksHit: number;
  sharedBlksRead: number;
  /** Time reading and writing shared blocks (track_io_timing), ms. */
  blkReadMs: number;
  blkWriteMs: number;
}

export interface StatementsSample {
  /** Why there are no statistics (the extension missing, no privilege), or null. */
  problem: string | null;
  statements: StatementCounters[];
  /** pg_stat_statements_info.dealloc: statements evicted because pg_stat_statements.max was reached. */
  dealloc: number;
  /** pg_stat_statements_info.stats_reset, seconds since the epoch (null when unknown). */
  statsReset: number | null;
  /** The normalised text of every statement in `statements` whose text is known, by queryid (cut at the cache's limit). */
  texts: Record<string, string>;
}

export const STATEMENTS_SQL = `SELECT s.queryid::text AS queryid, s.userid::text AS userid, s.dbid::text AS dbid, s.toplevel,
       r.rolname AS usename, d.datname, s.calls, s.rows, s.total_exec_time, s.mean_exec_time, s.max_exec_time,
       s.stddev_exec_time, s.shared_blks_hit, s.shared_blks_read, s.shared_blk_read_time, s.shared_blk_write_time
  FROM pg_stat_statements(false) AS s
  LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = s.userid
  LEFT JOIN pg_catalog.pg_database AS d ON d.oid = s.dbid
 WHERE s.queryid IS NOT NULL`;

export const STATEMENTS_INFO_SQL = 'SELECT dealloc, extract(epoch FROM stats_reset) AS stats_reset FROM pg_stat_statements_info';

export function parseStatement(r: Row): StatementCounters {
  const queryid = str(r, 'queryid');
  return {
    key: [queryid, str(r, 'userid'), str(r, 'dbid'), str(r, 'toplevel')].join('/'),
    queryid,
    user: str(r, 'usename', 'rolname'),
    datname: str(r, 'datname'),
    calls: num(r, 'calls'),
    rows: num(r, 'rows'),
    totalExecMs: num(r, 'total_exec_time', 'total_time'),
    meanExecMs: num(r, 'mean_exec_time', 'mean_time'),
    maxExecMs: num(r, 'max_exec_time', 'max_time'),
    stddevExecMs: num(r, 'stddev_exec_time', 'stddev_time'),
    sharedBlksHit: num(r, 'shared_blks_hit'),
    sharedBlksRead: num(r, 'shared_blks_read'),
    blkReadMs: num(r, 'shared_blk_read_time', 'blk_read_time'),
    blkWriteMs: num(r, 'shared_blk_write_time', 'blk_write_time'),
  };
}

/** What Postgres says when the statistics cannot be read, as one sentence that says what to change. */
export function statementsProblem(message: string): string | null {
  if (/relation "pg_stat_statements(_info)?" does not exist|function pg_stat_statements\(boolean\) does not exist/.test(message)) {
    return 'the pg_stat_statements extension is not created in this database (poolguard-ensure creates it on the primary\'s next start)';
  }
  if (/must be loaded via "?shared_preload_libraries"?/.test(message)) {
    return 'pg_stat_statements is not in shared_preload_libraries (postgres/postgresql.conf; takes a restart)';
  }
  if (/permission denied/.test(message)) {
    return `the monitoring role may not read pg_stat_statements (grant it pg_read_all_stats or pg_monitor): ${message}`;
  }
  return null;
}

/**
 * Query texts by queryid, fetched only for ids not seen before and kept (at most maxEntries,
 * the oldest dropped first; each cut to maxChars characters by Postgres before it is sent).
 */
export class StatementTexts {
  private readonly texts = new Map<string, string>();

  constructor(private readonly maxChars = 2000, private readonly maxEntries = 6000) {}

  /** The ids among these that have no text yet. */
  missing(queryids: Iterable<string>): string[] {
    const out = new Set<string>();
    for (const id of queryids) if (!this.texts.has(id) && /^-?\d+$/.test(id)) out.add(id);
    return [...out];
  }

  /** The SQL that fetches the texts of these ids (integers only: checked by missing()). */
  fetchSql(ids: string[]): string {
    return `SELECT queryid::text AS queryid, left(query, ${this.maxChars}) AS query FROM pg_stat_statements(true) WHERE queryid = ANY ('{${ids.join(',')}}'::bigint[])`;
  }

  add(rows: Row[]): void {
    for (const r of rows) {
      const id = str(r, 'queryid');
      if (id === '' || this.texts.has(id)) continue;
      this.texts.set(id, str(r, 'query').slice(0, this.maxChars));
      if (this.texts.size > this.maxEntries) this.texts.delete(this.texts.keys().next().value!);
    }
  }

  /** The known texts of these ids. */
  pick(queryids: Iterable<string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const id of queryids) {
      const t = this.texts.get(id);
      if (t !== undefined) out[id] = t;
    }
    return out;
  }
}

/**
 * One poll: counters of every statement, the info row, and the texts of statements first seen
 * now (fetched at most `fetchAtMost` at a time, so a burst of new statements spreads over polls).
 */
export async function collectStatements(db: Queryable, texts: StatementTexts, fetchAtMost = 500): Promise<StatementsSample> {
  let rows: Row[];
  let info: Row[];
  try {
    [rows, info] = await Promise.all([db.query(STATEMENTS_SQL), db.query(STATEMENTS_INFO_SQL)]);
  } catch (err) {
    const problem = statementsProblem(err instanceof Error ? err.message : String(err));
    if (problem === null) throw err;
    return { problem, statements: [], dealloc: 0, statsReset: null, texts: {} };
  }
  const statements = rows.map(parseStatement);
  const missing = texts.missing(statements.map((s) => s.queryid)).slice(0, fetchAtMost);
  if (missing.length > 0) texts.add(await db.query(texts.fetchSql(missing)));
  const first = info[0] ?? {};
  return {
    problem: null,
    statements,
    dealloc: num(first, 'dealloc'),
    statsReset: nullableNum(first, 'stats_reset'),
    texts: texts.pick(statements.map((s) => s.queryid)),
  };
}
