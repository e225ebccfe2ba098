// The alert rules: a table of named rules, each a pure function from the snapshot (and the
// previous one, for rates) to observations. Thresholds and `for` durations are data, so every
// default can be overridden from config (SIDECAR_ALERT_RULES). What a rule needs from the config
// (which pools are the application's) comes in a RuleContext, passed by the engine.
import { isSidecarPool, poolFigures } from '../pools.js';
import { pollSeconds, polledSources, postgresInstances, type StackSnapshot } from '../snapshot.js';
import { usedPercent } from '../sources/disk.js';
import type { BackupsSample } from '../sources/backups.js';
import { clientConnections, usableConnections } from '../sources/postgres.js';
import type { PoolScope } from '../types.js';
import { liveSettingsOf, plan, planInputFromLive } from '../views/plan.js';
import { topQueries, type StatementHistory } from '../views/queries.js';
import { instanceLag, readRouting, replicaInstances } from '../views/replication.js';
import type { RuleName, RuleOverride } from './names.js';

export type Severity = 'WARNING' | 'CRITICAL';

export interface Observation {
  /** Labels identifying this instance of the alert (pool, pid, backend...). */
  labels: Record<string, string>;
  value: number;
  /** Human text for the current value. */
  describe: (value: number) => string;
}

/** What rules may know besides the snapshot: the deployment's names, from the config. */
export interface RuleContext {
  /** Which PgBouncer pools are whose, and the read alias (SIDECAR_READ_DATABASE). */
  pools: PoolScope;
  /** Each Postgres instance's recent pg_stat_statements counters (slow_statement's window). */
  statementHistory?: ((instance: string) => StatementHistory | undefined) | undefined;
}

/** slow_statement: the window its mean is taken over, the calls it needs in it, how many statements it names at most. */
export const SLOW_STATEMENT_WINDOW_MS = 5 * 60_000;
export const SLOW_STATEMENT_MIN_CALLS = 3;
export const SLOW_STATEMENT_MAX = 5;

export interface Rule {
  name: RuleName;
  /** Fires at WARNING when value >= warning, at CRITICAL when value >= critical. */
  warning?: number | undefined;
  critical?: number | undefined;
  /** How long the condition must hold before the alert fires. */
  forMs?: number | undefined;
  observe: (snap: StackSnapshot, prev: StackSnapshot | undefined, ctx: RuleContext) => Observation[];
}

/** How long wal_dropped stays firing after the backup service found WAL missing. */
export const WAL_DROPPED_ALERT_WINDOW_MS = 15 * 60_000;

/** How long backend_restarted stays firing after a restart was seen. */
export const RESTART_ALERT_WINDOW_MS = 15 * 60_000;

/** The backups source when its status file is watched (SIDECAR_BACKUP_STATUS_PATH). */
const watchedBackups = (snap: StackSnapshot): BackupsSample | undefined => {
  const b = snap.sources.backups.sample;
  return b && b.path !== null ? b : undefined;
};
/** Status file ages above this are "no status" (value of backup_service_down when none can be read). */
export const NO_BACKUP_STATUS = 1e9;

const pct = (part: number, whole: number) => (whole > 0 ? (part / whole) * 100 : 0);
const fmt = (n: number, digits = 1) => (Math.round(n * 10 ** digits) / 10 ** digits).toString();

export const DEFAULT_RULES: Rule[] = [
  {
    name: 'pgbouncer_pool_utilization',
    warning: 80,
    critical: 90,
    // Per pool, every pool but the sidecar's own (the admin console, and the probe's: its one
    // connection is 100 % of its pool_size 1).
    observe: (snap, _prev, ctx) => {
      const s = snap.sources.pgbouncer.sample;
      if (!s) return [];
      return s.pools
        .filter((p) => !isSidecarPool(p, ctx.pools))
        .map((p) => {
          const f = poolFigures(p, s.databases.find((d) => d.name === p.database));
          return {
            labels: { database: p.database, user: p.user },
            value: f.utilizationPercent,
            describe: (v) => `PgBouncer pool ${p.database}/${p.user} holds ${f.total} of ${f.max} server connections (${fmt(v)}%)`,
          };
        });
    },
  },
  {
    name: 'pgbouncer_client_utilization',
    warning: 80,
    critical: 90,
    observe: (snap) => {
      const s = snap.sources.pgbouncer.sample;
      const max = Number(s?.config.max_client_conn ?? 0);
      if (!s || max <= 0) return [];
      const used = s.lists.used_clients ?? 0;
      return [{ labels: {}, value: pct(used, max), describe: (v) => `PgBouncer has ${used} of max_client_conn ${max} client connections (${fmt(v)}%)` }];
    },
  },
  {
    name: 'pgbouncer_clients_waiting',
    warning: 1,
    critical: 5,
    observe: (snap) =>
      (snap.sources.pgbouncer.sample?.pools ?? [])
        .filter((p) => p.clWaiting > 0)
        .map((p) => ({
          labels: { database: p.database, user: p.user },
          value: p.maxwaitSeconds,
          describe: (v) => `${p.clWaiting} clients waiting for a server connection in pool ${p.database}/${p.user}, the oldest for ${fmt(v, 2)} s`,
        })),
  },
  {
    name: 'postgres_connections',
    warning: 80,
    critical: 90,
    observe: (snap) => {
      const s = snap.sources.postgres.sample;
      if (!s) return [];
      const used = clientConnections(s);
      const usable = usableConnections(s);
      return [{ labels: {}, value: pct(used, usable), describe: (v) => `Postgres has ${used} of ${usable} usable connections (max_connections ${s.maxConnections} - reserved ${s.maxConnections - usable}; ${fmt(v)}%)` }];
    },
  },
  {
    name: 'postgres_idle_in_transaction',
    warning: 60,
    forMs: 0,
    observe: (snap) =>
      (snap.sources.postgres.sample?.idleInTransaction ?? []).map((t) => ({
        labels: { pid: String(t.pid), application_name: t.applicationName, client_addr: t.clientAddr, usename: t.usename, datname: t.datname },
        value: t.idleSeconds,
        describe: (v) =>
          `Session pid ${t.pid} (application_name "${t.applicationName}", client ${t.clientAddr}, user ${t.usename}, database ${t.datname}) ${t.state} for ${fmt(v, 0)} s: a leaked transaction holds a connection and its locks`,
      })),
  },
  {
    name: 'postgres_long_transaction',
    warning: 300,
    forMs: 0,
    observe: (snap) => {
      const s = snap.sources.postgres.sample;
      return s ? [{ labels: {}, value: s.oldestXactSeconds, describe: (v) => `The oldest open transaction has run for ${fmt(v, 0)} s` }] : [];
    },
  },
  {
    name: 'backend_down',
    critical: 1,
    forMs: 0,
    observe: (snap) =>
      (Object.keys(snap.sources) as (keyof StackSnapshot['sources'])[]).map((name) => {
        const src = snap.sources[name];
        return {
          labels: { backend: name },
          value: snap.pollCount > 0 && !src.up ? 1 : 0,
          describe: () => `${name} is down: ${src.lastError ?? 'no answer'}`,
        };
      }),
  },
  {
    // A backend whose start time, run id or counters moved between two polls: a crash or an OOM
    // kill that the restart policy mended faster than a poll is otherwise invisible. Value: 1
    // while the last restart is less than RESTART_ALERT_WINDOW_MS old.
    name: 'backend_restarted',
    warning: 1,
    forMs: 0,
    // Every instance, replicas included (label: the source id, a replica's instance name).
    observe: (snap) =>
      polledSources(snap).flatMap(({ id: name, state: src }) => {
        if (src.lastRestartAt === null || snap.lastPollAt === null) return [];
        const ageMs = Date.parse(snap.lastPollAt) - Date.parse(src.lastRestartAt);
        return [{
          labels: { backend: name },
          value: ageMs < RESTART_ALERT_WINDOW_MS ? 1 : 0,
          describe: () => `${name} restarted at ${src.lastRestartAt} (${src.restarts} restarts seen since the sidecar started): ${src.lastRestart ?? ''}`,
        }];
      }),
  },
  {
    // The data directory's filesystem: Postgres refuses writes when it is full (and PANICs when
    // pg_wal cannot grow), while reads still work and every other signal looks fine.
    name: 'postgres_disk_usage',
    warning: 80,
    critical: 90,
    observe: (snap) => {
      const d = snap.sources.disk.sample;
      if (!d || d.path === null) return [];
      return [{
        labels: { path: d.path },
        value: usedPercent(d),
        describe: (v) => `Postgres's data filesystem (${d.path}) is ${fmt(v)}% full: ${fmt(d.availableBytes / 2 ** 20)} MiB left of ${fmt(d.sizeBytes / 2 ** 20)} MiB`,
      }];
    },
  },
  {
    name: 'redis_memory',
    warning: 90,
    observe: (snap) => {
      const info = snap.sources.redis.sample?.info;
      const used = Number(info?.used_memory ?? 0);
      const max = Number(info?.maxmemory ?? 0);
      if (!info || max <= 0) return [];
      return [{ labels: {}, value: pct(used, max), describe: (v) => `Redis uses ${fmt(used / 2 ** 20)} MiB of maxmemory ${fmt(max / 2 ** 20)} MiB (${fmt(v)}%, policy ${info.maxmemory_policy ?? '?'})` }];
    },
  },
  {
    name: 'redis_rejected_connections',
    critical: 1,
    observe: (snap, prev) => {
      const now = snap.sources.redis.sample?.info.rejected_connections;
      const before = prev?.sources.redis.sample?.info.rejected_connections;
      if (now === undefined || before === undefined) return [];
      const delta = Math.max(0, Number(now) - Number(before));
      return [{ labels: {}, value: delta, describe: (v) => `Redis rejected ${v} connections since the last poll (${now} in total; maxclients reached)` }];
    },
  },
  {
    // Per Postgres instance in recovery: the lag of views/replication.ts (0 when it replayed up to
    // the primary's current LSN, however idle the primary; the age of the last replayed
    // transaction otherwise, so a paused replay or a broken stream shows as a growing lag).
    // A replica that is down has no lag: replica_down covers it.
    name: 'replica_lag',
    warning: 5,
    critical: 30,
    observe: (snap) =>
      postgresInstances(snap).flatMap(({ instance, state }) => {
        const lag = instanceLag(snap, state.sample);
        if (!state.sample?.isReplica || !lag || lag.seconds === null) return [];
        const seconds = lag.seconds;
        return [{
          labels: { target: instance },
          value: seconds,
          describe: (v) => `Replica ${instance} is ${fmt(v)} s behind the primary${lag.bytes !== null ? ` (${fmt(lag.bytes / 2 ** 20)} MiB of WAL)` : ''}: ${lag.reason}`,
        }];
      }),
  },
  {
    // A configured replica (SIDECAR_POSTGRES_REPLICA_URLS) that does not answer. Its own rule,
    // not backend_down: a replica down does not make /health unhealthy (reads can move to the
    // primary), and its `for` (the default, 15 s) and level can be tuned apart from the stack's.
    name: 'replica_down',
    critical: 1,
    observe: (snap) =>
      replicaInstances(snap).map(({ instance, state }) => ({
        labels: { target: instance },
        value: snap.pollCount > 0 && !state.up ? 1 : 0,
        describe: () => `Replica ${instance} is down: ${state.lastError ?? 'no answer'}`,
      })),
  },
  {
    // Per slot: a physical slot nobody streams from (it keeps WAL on the primary until the disk
    // fills), or any slot whose WAL is past max_slot_wal_keep_size: unreserved (1, about to be
    // lost) or lost (2: the replica behind it can no longer catch up and must be rebuilt).
    name: 'replication_slot_inactive',
    warning: 1,
    critical: 2,
    observe: (snap) =>
      postgresInstances(snap).flatMap(({ instance, state }) =>
        (state.sample?.slots ?? []).map((slot) => {
          const value = slot.walStatus === 'lost' ? 2 : slot.walStatus === 'unreserved' || (slot.slotType === 'physical' && !slot.active) ? 1 : 0;
          const retained = slot.retainedBytes === null ? '' : `, keeping ${fmt(slot.retainedBytes / 2 ** 20)} MiB of WAL`;
          return {
            labels: { target: instance, slot_name: slot.slotName },
            value,
            describe: () =>
              slot.walStatus === 'lost'
                ? `Replication slot ${slot.slotName} on ${instance} lost its WAL (wal_status lost): the standby using it cannot catch up and must be rebuilt from a new base backup`
                : slot.walStatus === 'unreserved'
                  ? `Replication slot ${slot.slotName} on ${instance} is past max_slot_wal_keep_size (wal_status unreserved${retained}): its WAL is removed at the next checkpoint unless the standby catches up`
                  : `Physical replication slot ${slot.slotName} on ${instance} is inactive${retained}: no standby streams from it, and the WAL it keeps grows until the disk fills`,
          };
        }),
      ),
  },
  {
    // Replicas are configured (and their profile is on), but the primary sends WAL to no standby in
    // state streaming (pg_stat_replication): every replica is down, broken or still catching up.
    name: 'replica_not_streaming',
    warning: 1,
    forMs: 30_000,
    observe: (snap) => {
      const replicas = replicaInstances(snap);
      const primary = postgresInstances(snap)[0];
      const s = primary?.state.sample;
      if (replicas.length === 0 || !primary || !s || s.isReplica) return [];
      const streaming = s.replication.filter((r) => r.state === 'streaming').length;
      const others = s.replication.map((r) => `${r.applicationName || '?'}@${r.clientAddr || 'local'} ${r.state}`).join(', ');
      return [{
        labels: { target: primary.instance },
        value: streaming === 0 ? 1 : 0,
        describe: () => `${replicas.length} replica(s) configured (${replicas.map((r) => r.instance).join(', ')}), but the primary ${primary.instance} streams WAL to none: pg_stat_replication shows ${others || 'no standby at all'}`,
      }];
    },
  },
  {
    // Replicas are configured, PgBouncer has the read alias, and its host is none of them: reads
    // land on the primary (after a failover of the alias, or before read routing is set up).
    name: 'reads_on_primary',
    warning: 1,
    observe: (snap, _prev, ctx) => {
      const r = readRouting(snap, ctx.pools.readDatabase);
      if (!r) return [];
      return [{
        labels: { database: r.database },
        value: r.onPrimary ? 1 : 0,
        describe: () => `PgBouncer's read database ${r.database} points at ${r.host}, not at a replica (${replicaInstances(snap).map((i) => i.instance).join(', ')}): reads run on the primary`,
      }];
    },
  },
  {
    // The connection budget of GET /plan on the live settings: 1 for a line that warns, 2 for a
    // line that fails (PgBouncer may open more server connections than Postgres accepts, a pool
    // that can never fill). One alert per line that is not PASS.
    name: 'connection_budget',
    warning: 1,
    critical: 2,
    observe: (snap, _prev, ctx) => {
      const input = planInputFromLive(liveSettingsOf(snap, ctx.pools.readDatabase));
      if (!input) return [];
      return plan(input).lines.map((l): Observation => ({
        labels: { line: l.name },
        value: l.status === 'FAIL' ? 2 : l.status === 'WARN' ? 1 : 0,
        describe: () => `connection budget, ${l.name}: ${l.figures}. ${l.advice}`,
      }));
    },
  },
  {
    // A statement whose mean execution time over the last SLOW_STATEMENT_WINDOW_MS (deltas of
    // pg_stat_statements against the sidecar's history; since the reset until the history is
    // that old) is at or above the threshold, in ms, with at least SLOW_STATEMENT_MIN_CALLS
    // calls in the window; the slowest SLOW_STATEMENT_MAX per instance. GET /queries?since=5m
    // shows the same figures.
    name: 'slow_statement',
    warning: 500,
    critical: 5000,
    observe: (snap, _prev, ctx) => {
      const now = pollSeconds(snap) * 1000;
      return postgresInstances(snap).flatMap(({ instance, state }) => {
        const st = state.sample?.statements;
        if (!st || st.problem !== null) return [];
        const top = topQueries(st, ctx.statementHistory?.(instance), { n: SLOW_STATEMENT_MAX, order: 'mean', sinceMs: SLOW_STATEMENT_WINDOW_MS, textChars: 80, minCalls: SLOW_STATEMENT_MIN_CALLS }, now);
        return top.items.map((q): Observation => ({
          labels: { target: instance, queryid: q.queryid, user: q.user, datname: q.datname },
          value: q.meanExecMs,
          describe: (v) => `statement ${q.queryid} on ${instance} (${q.user}@${q.datname}: ${q.text ?? 'text not fetched yet'}) took ${fmt(v)} ms on average over ${q.calls} calls in the last ${fmt((top.window.seconds ?? 0) / 60)} min`,
        }));
      });
    },
  },
  {
    // The archiver's latest attempt failed (pg_stat_archiver: last_failed_time after
    // last_archived_time): point-in-time recovery stops at the last archived segment and WAL
    // piles up in pg_wal. Resolves at the next successful archive.
    name: 'archive_failing',
    critical: 1,
    observe: (snap) => {
      const a = snap.sources.postgres.sample?.archiver;
      if (!a || a.mode === 'off') return [];
      const failing = a.failedCount > 0 && a.lastFailedTime > a.lastArchivedTime;
      return [{
        labels: {},
        value: failing ? 1 : 0,
        describe: () => `WAL archiving fails: ${a.lastFailedWal} failed at ${new Date(a.lastFailedTime * 1000).toISOString()} (${a.failedCount} failures since the stats reset; last success ${a.lastArchivedWal || 'never'}); ${a.readySegments} segments wait in pg_wal. See the postgres log (archive-push) and the backup service`,
      }];
    },
  },
  {
    // WAL is being written but not archived: seconds since the last successful archive while
    // segments wait (.ready). An idle database (nothing waiting) never fires.
    name: 'archive_lag',
    warning: 300,
    critical: 900,
    observe: (snap) => {
      const pg = snap.sources.postgres.sample;
      const a = pg?.archiver;
      if (!pg || !a || a.mode === 'off') return [];
      const since = a.lastArchivedTime > 0 ? a.lastArchivedTime : pg.startTime;
      const value = a.readySegments > 0 ? Math.max(0, pollSeconds(snap) - since) : 0;
      return [{ labels: {}, value, describe: (v) => `${a.readySegments} WAL segments wait for archiving and the last one was archived ${fmt(v, 0)} s ago (${a.lastArchivedWal || 'none yet'}): the recovery point falls behind` }];
    },
  },
  {
    // WAL missing from the repository after the newest backup started (archive-push-queue-max
    // dropped it while the repository was unreachable, or files were lost): point-in-time
    // recovery cannot cross the gap. The backup service takes a full backup at once, which closes
    // it for what follows; the alert stays for WAL_DROPPED_ALERT_WINDOW_MS after the gap was found
    // (a full backup of a small database can close it before a poll sees it), so it is seen.
    name: 'wal_dropped',
    critical: 1,
    forMs: 0,
    observe: (snap) => {
      const b = watchedBackups(snap);
      if (!b || b.problem !== null) return [];
      const open = b.walGap;
      const last = b.lastWalGap;
      const recent = last !== null && pollSeconds(snap) - last.detectedAt < WAL_DROPPED_ALERT_WINDOW_MS / 1000;
      const g = open ?? (recent ? last : null);
      return [{
        labels: { stanza: b.stanza },
        value: g ? 1 : 0,
        describe: () =>
          !g ? '' : open
            ? `WAL is missing from the repository: ${g.missing} segments after ${g.after} (next present: ${g.before}); point-in-time recovery past ${g.after} is impossible until the full backup the backup service starts now completes`
            : `WAL was missing from the repository (${g.missing} segments after ${g.after}, found ${new Date(last!.detectedAt * 1000).toISOString()}); the full backup since then restores point-in-time recovery from its end onwards, but no point inside the gap can be restored`,
      }];
    },
  },
  {
    name: 'backup_failed',
    warning: 1,
    forMs: 0,
    observe: (snap) => {
      const r = watchedBackups(snap)?.lastRun;
      if (!r) return [];
      return [{ labels: {}, value: r.ok ? 0 : 1, describe: () => `The last ${r.type} backup (${r.reason}) failed at ${r.finishedAt} after ${r.durationSeconds} s: ${r.error ?? 'see the backup service log'}` }];
    },
  },
  {
    // Seconds past the schedule: the newest successful backup is older than the shorter of
    // BACKUP_DIFF_EVERY and BACKUP_FULL_EVERY by more than the threshold (the margin, 1 h by
    // default). No backup at all counts from the service's start plus its first-full delay.
    name: 'backup_overdue',
    warning: 3600,
    forMs: 0,
    observe: (snap) => {
      const b = watchedBackups(snap);
      if (!b || b.problem !== null || !b.schedule) return [];
      const now = pollSeconds(snap);
      const schedule = b.schedule;
      const every = Math.min(schedule.diffEverySeconds, schedule.fullEverySeconds);
      const newest = b.backups.reduce((t, e) => Math.max(t, e.stopTime), 0);
      const value = newest > 0 ? now - newest - every : now - b.serviceStartedAt - schedule.firstFullDelaySeconds;
      return [{
        labels: { stanza: b.stanza },
        value: Math.max(0, value),
        describe: (v) => (newest > 0
          ? `The newest backup finished at ${new Date(newest * 1000).toISOString()}, ${fmt(v / 3600, 1)} h later than the schedule (every ${fmt(every / 3600, 1)} h) allows`
          : `No backup exists ${fmt((now - b.serviceStartedAt) / 60, 0)} min after the backup service started (the first full backup was due after ${schedule.firstFullDelaySeconds} s)`),
      }];
    },
  },
  {
    // pgbackrest info failed (repository unreachable, wrong key) or reports a stanza or repository
    // problem other than "no valid backups" before the first one.
    name: 'backup_repository_error',
    critical: 1,
    observe: (snap) => {
      const b = watchedBackups(snap);
      if (!b || b.problem !== null) return [];
      const repo = b.repos.find((r) => r.code !== 0 && r.code !== 2);
      const stanza = b.stanzaStatus && b.stanzaStatus.code !== 0 && b.stanzaStatus.code !== 2 ? b.stanzaStatus : undefined;
      const why = b.infoError ?? (repo ? `repo${repo.key}: ${repo.message} (code ${repo.code})` : stanza ? `stanza ${b.stanza}: ${stanza.message} (code ${stanza.code})` : null);
      return [{ labels: { stanza: b.stanza }, value: why === null ? 0 : 1, describe: () => `The backup repository reports a problem: ${why ?? ''}` }];
    },
  },
  {
    // The backup service has not rewritten its status for this long (seconds): it is down, stuck
    // or cannot write. A file that cannot be read at all counts as NO_BACKUP_STATUS.
    name: 'backup_service_down',
    warning: 180,
    forMs: 60_000,
    observe: (snap) => {
      const b = watchedBackups(snap);
      if (!b) return [];
      const age = b.problem === null ? Math.max(0, pollSeconds(snap) - b.writtenAt) : NO_BACKUP_STATUS;
      return [{ labels: {}, value: age, describe: (v) => (b.problem ?? `The backup service last wrote its status ${fmt(v, 0)} s ago (${b.path}): is it running? (docker compose ps backup)`) }];
    },
  },
];

/** Applies config overrides (null removes a level); unknown names are config errors upstream. */
export function applyOverrides(rules: Rule[], overrides: Partial<Record<RuleName, RuleOverride>>): Rule[] {
  return rules
    .filter((r) => overrides[r.name]?.enabled !== false)
    .map((r) => {
      const o = overrides[r.name];
      if (!o) return r;
      return {
        ...r,
        warning: o.warning === null ? undefined : (o.warning ?? r.warning),
        critical: o.critical === null ? undefined : (o.critical ?? r.critical),
        forMs: o.forMs ?? r.forMs,
      };
    });
}
