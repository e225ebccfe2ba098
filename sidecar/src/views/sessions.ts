// GET /sessions: who holds the Postgres connections. Sessions grouped by user, application and
// state; the oldest transaction and the longest idle-in-transaction session; and, for each
// backend PgBouncer holds, the PgBouncer client behind it. Pooled backends connect over the
// Unix socket (their client address says nothing), so the join goes through PgBouncer's console:
// SHOW SERVERS' remote_pid is the backend's pid, its link the client's ptr in SHOW CLIENTS.
import type { PgBouncerConnection, PgBouncerSample } from '../sources/pgbouncer.js';
import type { PostgresSample, Session } from '../sources/postgres.js';

export interface PgBouncerClientRef {
  user: string;
  database: string;
  addr: string;
  port: number;
  applicationName: string;
  state: string;
}

/** A session as parsed (its query redacted, at most 200 characters) and who holds it. */
export interface SessionDetail extends Session {
  /** The PgBouncer server connection that holds this backend, when it is one of PgBouncer's. */
  viaPgBouncer: boolean;
  /** The PgBouncer client linked to it right now (null: the server connection is idle in its pool). */
  pgbouncerClient: PgBouncerClientRef | null;
}

export interface SessionGroup {
  usename: string;
  applicationName: string;
  state: string;
  count: number;
  viaPgBouncer: number;
  /** The oldest open transaction in the group, seconds (null: none open). */
  oldestXactSeconds: number | null;
}

export interface SessionsBody {
  target: string;
  total: number;
  viaPgBouncer: number;
  groups: SessionGroup[];
  oldestTransaction: SessionDetail | null;
  longestIdleInTransaction: SessionDetail | null;
  /** The sessions with an open transaction, oldest first (at most `limit`). */
  inTransaction: SessionDetail[];
}

const ref = (c: PgBouncerConnection): PgBouncerClientRef => ({ user: c.user, database: c.database, addr: c.addr, port: c.port, applicationName: c.applicationName, state: c.state });

/** pg: the instance's sample; pgb: PgBouncer's (undefined when it did not answer: nothing is joined). */
export function sessionsBody(target: string, pg: PostgresSample, pgb: Pick<PgBouncerSample, 'clients' | 'servers'> | undefined, limit = 20): SessionsBody {
  const serverByPid = new Map<number, PgBouncerConnection>();
  for (const s of pgb?.servers ?? []) if (s.remotePid > 0) serverByPid.set(s.remotePid, s);
  const clientByPtr = new Map<string, PgBouncerConnection>();
  for (const c of pgb?.clients ?? []) if (c.ptr) clientByPtr.set(c.ptr, c);

  const detail = (s: Session): SessionDetail => {
    const server = serverByPid.get(s.pid);
    const client = server && server.link ? clientByPtr.get(server.link) : undefined;
    return { ...s, viaPgBouncer: server !== undefined, pgbouncerClient: client ? ref(client) : null };
  };
  const all = pg.sessions.map(detail);

  const groups = new Map<string, SessionGroup>();
  for (const s of all) {
    const key = JSON.stringify([s.usename, s.applicationName, s.state]);
    const g = groups.get(key) ?? { usename: s.usename, applicationName: s.applicationName, state: s.state, count: 0, viaPgBouncer: 0, oldestXactSeconds: null };
    g.count += 1;
    if (s.viaPgBouncer) g.viaPgBouncer += 1;
    if (s.xactSeconds !== null && (g.oldestXactSeconds === null || s.xactSeconds > g.oldestXactSeconds)) g.oldestXactSeconds = s.xactSeconds;
    groups.set(key, g);
  }
  const inTransaction = all.filter((s) => s.xactSeconds !== null).sort((a, b) => b.xactSeconds! - a.xactSeconds! || a.pid - b.pid);
  const idle = all.filter((s) => s.state.startsWith('idle in transaction')).sort((a, b) => b.stateSeconds - a.stateSeconds || a.pid - b.pid);
  return {
    target,
    total: all.length,
    viaPgBouncer: all.filter((s) => s.viaPgBouncer).length,
    groups: [...groups.values()].sort((a, b) => b.count - a.count || a.usename.localeCompare(b.usename) || a.applicationName.localeCompare(b.applicationName) || a.state.localeCompare(b.state)),
    oldestTransaction: inTransaction[0] ?? null,
    longestIdleInTransaction: idle[0] ?? null,
    inTransaction: inTransaction.slice(0, limit),
  };
}
