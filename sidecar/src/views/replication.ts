// Replication, read from the snapshot: each replica's lag and status, the primary's WAL
// position, where PgBouncer sends reads. Pure functions: /health, the metrics and the alert
// rules all read these, so they agree on one lag figure per replica.
//
// Why not postgres_exporter's figure: its lag is 0 whenever pg_last_wal_receive_lsn() =
// pg_last_wal_replay_lsn(), which also holds on a dead stream (nothing received, nothing left to
// replay), and now() - pg_last_xact_replay_timestamp() alone grows on an idle primary without any
// lag. So the stream's state comes from pg_stat_wal_receiver and "caught up" from comparing the
// replica's replay LSN with the primary's current LSN of the same poll.
import type { SourceState } from '../poller.js';
import { postgresInstances, type PostgresInstance, type StackSnapshot } from '../snapshot.js';
import type { PostgresSample, Standby } from '../sources/postgres.js';

export type ReplicaStatus = 'streaming' | 'catching_up' | 'lagging' | 'broken' | 'down';

export interface StandbyLag {
  /** Replay lag, seconds; null when it cannot be told (no transaction replayed yet). */
  seconds: number | null;
  /** The primary's current LSN - the replica's replay LSN, bytes; null when either is unknown. */
  bytes: number | null;
  /** No WAL receiver, or one that is not streaming: the replica gets nothing new. */
  broken: boolean;
  /** Why, in words (for /health and alert texts). */
  reason: string;
}

/**
 * The lag of a server in recovery. primaryLsnBytes: the primary's pg_current_wal_lsn() from the
 * same poll (null when the primary is down or unknown).
 * - no WAL receiver, or its status is not streaming: broken, lag = age of the last replayed
 *   transaction (it grows while the stream stays broken);
 * - replay LSN >= the primary's current LSN (or, primary unknown, everything received is
 *   replayed while streaming): lag 0, however old the last transaction (an idle primary);
 * - otherwise the age of the last replayed transaction (it grows while replay is paused).
 */
export function standbyLag(standby: Standby, primaryLsnBytes: number | null): StandbyLag {
  const replay = standby.replayLsnBytes;
  const bytes = primaryLsnBytes !== null && replay !== null ? Math.max(0, primaryLsnBytes - replay) : null;
  const age = standby.replayAgeSeconds === null ? null : Math.max(0, standby.replayAgeSeconds);
  const rx = standby.receiver;
  if (rx === null || rx.status !== 'streaming') {
    return {
      seconds: age,
      bytes,
      broken: true,
      reason: rx === null ? 'no WAL receiver: the stream from the primary is not running' : `the WAL receiver is ${rx.status}, not streaming`,
    };
  }
  if (primaryLsnBytes !== null) {
    if (replay !== null && replay >= primaryLsnBytes) return { seconds: 0, bytes: 0, broken: false, reason: "replayed up to the primary's current WAL position" };
  } else if (replay !== null && standby.receiveLsnBytes !== null && standby.receiveLsnBytes === replay) {
    return { seconds: 0, bytes, broken: false, reason: 'replayed everything received (the primary is not known this poll)' };
  }
  return { seconds: age, bytes, broken: false, reason: standby.replayPaused ? 'replay is paused (pg_wal_replay_pause)' : 'behind the primary' };
}

/** The primary's current WAL position this poll: the first Postgres instance up and not in recovery. */
export function primaryWalLsn(snap: StackSnapshot): number | null {
  for (const { state } of postgresInstances(snap)) {
    const s = state.sample;
    if (state.up && s && !s.isReplica && s.currentLsnBytes !== null) return s.currentLsnBytes;
  }
  return null;
}

/** The lag of one Postgres instance: 0 on a primary, standbyLag in recovery, undefined while it is down. */
export function instanceLag(snap: StackSnapshot, sample: PostgresSample | undefined): StandbyLag | undefined {
  if (!sample) return undefined;
  if (!sample.standby) return { seconds: 0, bytes: 0, broken: false, reason: 'a primary' };
  return standbyLag(sample.standby, primaryWalLsn(snap));
}

/** The instances of SIDECAR_POSTGRES_REPLICA_URLS (every Postgres instance but the configured primary). */
export function replicaInstances(snap: StackSnapshot): PostgresInstance[] {
  return postgresInstances(snap).filter((i) => !i.primary);
}

/** Default lag at which /health calls a streaming replica "lagging": replica_lag's WARNING level. */
export const REPLICA_LAGGING_SECONDS = 5;

export interface ReplicaHealth {
  instance: string;
  /** streaming or catching_up: it serves reads that are at most a little behind. */
  healthy: boolean;
  status: ReplicaStatus;
  lagSeconds: number | null;
  lagBytes: number | null;
  replayPaused: boolean | null;
  /** pg_stat_wal_receiver's status (null: no receiver, or the replica is down). */
  receiverStatus: string | null;
  /** Why it has this status, in words; null when down (see lastError). */
  reason: string | null;
  lastPollAt: string | null;
  lastError: string | null;
  restarts: number;
  lastRestartAt: string | null;
}

const round3 = (n: number | null) => (n === null ? null : Math.round(n * 1000) / 1000);

/** One replica's status. laggingSeconds: the lag from which a streaming replica is 'lagging'. */
export function replicaHealth(snap: StackSnapshot, instance: string, state: SourceState<PostgresSample>, laggingSeconds: number): ReplicaHealth {
  const base = { instance, lastPollAt: state.lastPollAt, lastError: state.lastError, restarts: state.restarts, lastRestartAt: state.lastRestartAt };
  const s = state.sample;
  if (!state.up || !s) return { ...base, healthy: false, status: 'down', lagSeconds: null, lagBytes: null, replayPaused: null, receiverStatus: null, reason: null };
  if (!s.standby) {
    return { ...base, healthy: false, status: 'broken', lagSeconds: null, lagBytes: null, replayPaused: null, receiverStatus: null, reason: 'not in recovery: promoted, or not a standby of the primary' };
  }
  const lag = standbyLag(s.standby, primaryWalLsn(snap));
  const status: ReplicaStatus = lag.broken
    ? 'broken'
    : lag.seconds !== null && lag.seconds >= laggingSeconds
      ? 'lagging'
      : (lag.seconds ?? 0) > 0 || (lag.bytes ?? 0) > 0 || lag.seconds === null
        ? 'catching_up'
        : 'streaming';
  return {
    ...base,
    healthy: status === 'streaming' || status === 'catching_up',
    status,
    lagSeconds: round3(lag.seconds),
    lagBytes: lag.bytes,
    replayPaused: s.standby.replayPaused,
    receiverStatus: s.standby.receiver?.status ?? null,
    reason: lag.reason,
  };
}

/** Every replica's status, in configuration order. */
export function replicasHealth(snap: StackSnapshot, laggingSeconds = REPLICA_LAGGING_SECONDS): ReplicaHealth[] {
  return replicaInstances(snap).map((i) => replicaHealth(snap, i.instance, i.state, laggingSeconds));
}

export interface ReadRouting {
  /** PgBouncer's [databases] entry for reads (SIDECAR_READ_DATABASE). */
  database: string;
  /** Its host as SHOW DATABASES lists it (a host list is comma-separated). */
  host: string;
  /** None of its hosts is a configured replica: reads go to the primary. */
  onPrimary: boolean;
}

/**
 * Where reads go now: undefined unless replicas are configured and PgBouncer (this poll) lists
 * the read alias. A host list naming a replica counts as on the replica (the others are fallbacks).
 */
export function readRouting(snap: StackSnapshot, readDatabase: string): ReadRouting | undefined {
  const replicas = replicaInstances(snap).map((i) => i.instance);
  if (replicas.length === 0) return undefined;
  const entry = snap.sources.pgbouncer.sample?.databases.find((d) => d.name === readDatabase);
  if (!entry) return undefined;
  const hosts = entry.host.split(',').map((h) => h.trim()).filter((h) => h !== '');
  return { database: readDatabase, host: entry.host, onPrimary: !hosts.some((h) => replicas.includes(h)) };
}
