// PgBouncer admin console (stats user, simple query protocol). Parsing is pure and matches
// columns by name, so 1.18-style and 1.24-style column sets both work.
import type { Queryable, Row } from '../pg-connection.js';
import { num, optNum, str } from './columns.js';

export interface PgBouncerPool {
  database: string;
  user: string;
  clActive: number;
  clWaiting: number;
  clActiveCancelReq: number;
  clWaitingCancelReq: number;
  svActive: number;
  svActiveCancel: number;
  svBeingCanceled: number;
  svIdle: number;
  svUsed: number;
  svTested: number;
  svLogin: number;
  /** maxwait + maxwait_us: the oldest waiting client's wait, with sub-second precision. */
  maxwaitSeconds: number;
  poolMode: string;
}

export interface PgBouncerDatabase {
  name: string;
  host: string;
  port: string;
  database: string;
  forceUser: string;
  poolSize: number;
  minPoolSize: number;
  reservePool: number;
  poolMode: string;
  maxConnections: number;
  currentConnections: number;
  paused: number;
  disabled: number;
}

export interface PgBouncerStats {
  database: string;
  xactCount: number;
  queryCount: number;
  serverAssignmentCount: number | undefined;
  receivedBytes: number;
  sentBytes: number;
  xactTimeUs: number;
  queryTimeUs: number;
  waitTimeUs: number;
  clientParseCount: number | undefined;
  serverParseCount: number | undefined;
  bindCount: number | undefined;
}

/** A row of SHOW CLIENTS or SHOW SERVERS: the pair is linked by ptr/link. */
export interface PgBouncerConnection {
  user: string;
  database: string;
  state: string;
  addr: string;
  port: number;
  /** This connection's id on the console (ptr); link is the other side's (a server's client, a client's server). */
  ptr: string;
  link: string;
  /** SHOW SERVERS: the backend's pid on Postgres (0 for clients and connections still logging in). */
  remotePid: number;
  applicationName: string;
  tls: string;
}

export interface PgBouncerSample {
  version: string;
  pools: PgBouncerPool[];
  databases: PgBouncerDatabase[];
  stats: PgBouncerStats[];
  /** SHOW LISTS: list name -> items (negative counters, seen under load, clamped to 0). */
  lists: Record<string, number>;
  /** SHOW CONFIG: key -> value. */
  config: Record<string, string>;
  /** SHOW CLIENTS and SHOW SERVERS (who holds the connections: GET /sessions). */
  clients: PgBouncerConnection[];
  servers: PgBouncerConnection[];
}

export function parseVersion(rows: Row[]): string {
  const text = str(rows[0] ?? {}, 'version');
  const m = /(\d+\.\d+(?:\.\d+)?)/.exec(text);
  return m?.[1] ?? text;
}

export function parsePools(rows: Row[]): PgBouncerPool[] {
  return rows.map((r) => ({
    database: str(r, 'database'),
    user: str(r, 'user'),
    clActive: num(r, 'cl_active'),
    clWaiting: num(r, 'cl_waiting'),
    // 1.17 had one cl_cancel_req column; 1.18+ split it.
    clActiveCancelReq: num(r, 'cl_active_cancel_req', 'cl_cancel_req'),
    clWaitingCancelReq: num(r, 'cl_waiting_cancel_req'),
    svActive: num(r, 'sv_active'),
    svActiveCancel: num(r, 'sv_active_cancel'),
    svBeingCanceled: num(r, 'sv_being_canceled'),
    svIdle: num(r, 'sv_idle'),
    svUsed: num(r, 'sv_used'),
    svTested: num(r, 'sv_tested'),
    svLogin: num(r, 'sv_login'),
    maxwaitSeconds: num(r, 'maxwait') + num(r, 'maxwait_us') / 1e6,
    poolMode: str(r, 'pool_mode'),
  }));
}

export function parseDatabases(rows: Row[]): PgBouncerDatabase[] {
  return rows.map((r) => ({
    name: str(r, 'name'),
    host: str(r, 'host'),
    port: str(r, 'port'),
    database: str(r, 'database'),
    forceUser: str(r, 'force_user'),
    poolSize: num(r, 'pool_size'),
    minPoolSize: num(r, 'min_pool_size'),
    // Renamed in 1.24.
    reservePool: num(r, 'reserve_pool_size', 'reserve_pool'),
    poolMode: str(r, 'pool_mode'),
    maxConnections: num(r, 'max_connections'),
    currentConnections: num(r, 'current_connections'),
    paused: num(r, 'paused'),
    disabled: num(r, 'disabled'),
  }));
}

export function parseStats(rows: Row[]): PgBouncerStats[] {
  return rows.map((r) => ({
    database: str(r, 'database'),
    xactCount: num(r, 'total_xact_count'),
    queryCount: num(r, 'total_query_count', 'total_requests'),
    serverAssignmentCount: optNum(r, 'total_server_assignment_count'),
    receivedBytes: num(r, 'total_received'),
    sentBytes: num(r, 'total_sent'),
    xactTimeUs: num(r, 'total_xact_time'),
    queryTimeUs: num(r, 'total_query_time'),
    waitTimeUs: num(r, 'total_wait_time'),
    clientParseCount: optNum(r, 'total_client_parse_count'),
    serverParseCount: optNum(r, 'total_server_parse_count'),
    bindCount: optNum(r, 'total_bind_count'),
  }));
}

export function parseLists(rows: Row[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) out[str(r, 'list')] = Math.max(0, num(r, 'items'));
  return out;
}

export function parseConfig(rows: Row[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of rows) out[str(r, 'key')] = str(r, 'value');
  return out;
}

export function parseConnections(rows: Row[]): PgBouncerConnection[] {
  return rows.map((r) => ({
    user: str(r, 'user'),
    database: str(r, 'database'),
    state: str(r, 'state'),
    addr: str(r, 'addr'),
    port: num(r, 'port'),
    ptr: str(r, 'ptr'),
    link: str(r, 'link'),
    remotePid: num(r, 'remote_pid'),
    applicationName: str(r, 'application_name'),
    tls: str(r, 'tls'),
  }));
}

/** One poll of the admin console. Each SHOW is its own simple-protocol query. */
export async function collectPgBouncer(db: Queryable): Promise<PgBouncerSample> {
  const version = parseVersion(await db.query('SHOW VERSION'));
  const pools = parsePools(await db.query('SHOW POOLS'));
  const databases = parseDatabases(await db.query('SHOW DATABASES'));
  const stats = parseStats(await db.query('SHOW STATS'));
  const lists = parseLists(await db.query('SHOW LISTS'));
  const config = parseConfig(await db.query('SHOW CONFIG'));
  const clients = parseConnections(await db.query('SHOW CLIENTS'));
  const servers = parseConnections(await db.query('SHOW SERVERS'));
  return { version, pools, databases, stats, lists, config, clients, servers };
}

/**
 * PgBouncer restarted between two samples when a database's SHOW STATS totals went back:
 * PgBouncer has no start time to read and no command that resets them (RELOAD keeps them; a
 * database entry removed and added again restarts its own). The sidecar's probe adds a
 * transaction every poll, so the probe database's totals always grow between two polls.
 */
export function pgbouncerRestarted(before: Pick<PgBouncerSample, 'stats'>, after: Pick<PgBouncerSample, 'stats'>): string | undefined {
  for (const now of after.stats) {
    const was = before.stats.find((s) => s.database === now.database);
    if (was && (now.xactCount < was.xactCount || now.queryCount < was.queryCount)) {
      return `PgBouncer's counters went back (database ${now.database}: total_xact_count ${was.xactCount} → ${now.xactCount}): it restarted; see its log`;
    }
  }
  return undefined;
}
