// The alert rules: a table of named rules, each a pure function from the snapshot (and the
// previous one, for rates) to observations. Thresholds and `for` durations are data, so every
// default can be overridden from config (SIDECAR_ALERT_RULES). What a rule needs from the config
// (which pools are the application's) comes in a RuleContext, passed by the engine.
import { isSidecarPool, poolFigures } from '../pools.js';
import type { StackSnapshot } from '../snapshot.js';
import { usedPercent } from '../sources/disk.js';
import { clientConnections, usableConnections } from '../sources/postgres.js';
import type { PoolScope } from '../types.js';
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
  pools: PoolScope;
}

export interface Rule {
  name: RuleName;
  /** Fires at WARNING when value >= warning, at CRITICAL when value >= critical. */
  warning?: number | undefined;
  critical?: number | undefined;
  /** How long the condition must hold before the alert fires. */
  forMs?: number | undefined;
  observe: (snap: StackSnapshot, prev: StackSnapshot | undefined, ctx: RuleContext) => Observation[];
}

/** How long backend_restarted stays firing after a restart was seen. */
export const RESTART_ALERT_WINDOW_MS = 15 * 60_000;

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
    observe: (snap) =>
      (Object.keys(snap.sources) as (keyof StackSnapshot['sources'])[]).flatMap((name) => {
        const src = snap.sources[name];
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
    name: 'replica_lag',
    warning: 5,
    observe: (snap) => {
      const s = snap.sources.postgres.sample;
      return s?.isReplica ? [{ labels: {}, value: s.replicationLagSeconds, describe: (v) => `Replica replay lag is ${fmt(v)} s` }] : [];
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
