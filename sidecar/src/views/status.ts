// GET /status (what the status page shows) and the figures the history keeps after each poll:
// pure functions of the snapshot, the firing alerts and the config's pool scope.
import type { AlertItem } from '../alerts/engine.js';
import type { Figures } from '../history.js';
import { poolBody } from '../health.js';
import { poolFigures, serverPoolFigures } from '../pools.js';
import { postgresInstances, type StackSnapshot } from '../snapshot.js';
import { clientConnections, usableConnections } from '../sources/postgres.js';
import type { PoolScope } from '../types.js';
import { liveSettingsOf, plan, planInputFromLive, type PlanLine } from './plan.js';
import { topQueries, type StatementHistory } from './queries.js';
import { REPLICA_LAGGING_SECONDS, replicasHealth } from './replication.js';

/** A card's state in words: colour is never the only carrier of it. */
export type CardState = 'OK' | 'WARN' | 'DOWN';

export interface Card {
  /** pgbouncer, probe, postgres, redis, backups, or a replica's instance name (the alerts' backend label). */
  id: string;
  title: string;
  state: CardState;
  /** Since when it is in this state (ISO); null when unknown (not polled yet). */
  since: string | null;
  version: string | null;
  /** One line of what matters now ("12 of 100 clients", "streaming, 0.2 s behind"). */
  detail: string;
  lastPollAt: string | null;
  lastSuccessAt: string | null;
  /** Why it is down (or the last error while it was); null when fine. */
  lastError: string | null;
  /** Firing alerts about it. */
  alerts: number;
}

export interface StatusBody {
  timestamp: string;
  lastPollAt: string | null;
  pollIntervalMs: number;
  /** A figure older than this is shown as stale: twice the poll interval. */
  staleAfterMs: number;
  healthy: boolean;
  degraded: boolean;
  isShuttingDown: boolean;
  cards: Card[];
  pgbouncer: {
    clients: ReturnType<typeof poolBody>['pgbouncer']['clients'];
    /** /pool's rows, each with its client share of max_client_conn and its server share of pool_size + reserve_pool. */
    pools: (ReturnType<typeof poolBody>['pgbouncer']['pools'][number] & { clientUtilizationPercent: number; serverUtilizationPercent: number })[];
    /** The application's server connections (as /health's connectionPool). */
    serverUtilizationPercent: number;
    serverConnections: number;
    serverMax: number;
  };
  postgres: {
    instance: string;
    connections: number;
    usable: number;
    utilizationPercent: number;
    /** Client backends by pg_stat_activity state (idle, active, idle in transaction, ...). */
    byState: { state: string; count: number }[];
  } | null;
  replicas: { instance: string; status: string; healthy: boolean; lagSeconds: number | null; lagBytes: number | null; reason: string | null; lastError: string | null }[];
  redis: ReturnType<typeof poolBody>['redis'] & { version: string | null };
  backups: {
    lastBackup: { label: string; type: string; stoppedAt: string; sizeBytes: number } | null;
    lastRun: { type: string; ok: boolean; finishedAt: string; error: string | null } | null;
    running: { type: string; startedAt: string } | null;
    problem: string | null;
  } | null;
  /** The slowest statements by mean time (slow_statement's window), the sidecar's own left out; null without pg_stat_statements. */
  slowQueries: { window: string; items: { queryid: string; user: string; datname: string; calls: number; meanExecMs: number; text: string | null }[] } | null;
  /** The connection budget on the live settings; null until PgBouncer and the primary answered. */
  budget: { status: string; lines: PlanLine[] } | null;
  alerts: AlertItem[];
}

export interface StatusOptions {
  now: Date;
  pools: PoolScope;
  pollIntervalMs: number;
  isShuttingDown: boolean;
  replicaLaggingSeconds?: number | undefined;
  statementHistory?: ((instance: string) => StatementHistory | undefined) | undefined;
}

/** The window and size of the page's slow-query list (slow_statement's window, and the page's room). */
const SLOW_WINDOW_MS = 5 * 60_000;
const SLOW_ITEMS = 5;

const pct = (part: number, whole: number) => (whole > 0 ? Math.round((part / whole) * 1000) / 10 : 0);

/** Which card an alert is about: its backend or target label, else its rule's family. */
export function cardOfAlert(a: Pick<AlertItem, 'name' | 'labels'>, primary: string): string {
  if (a.labels.backend) return a.labels.backend;
  if (a.labels.target) return a.labels.target === primary ? 'postgres' : a.labels.target;
  if (a.name.startsWith('pgbouncer_') || a.name === 'reads_on_primary' || a.name === 'connection_budget') return 'pgbouncer';
  if (a.name.startsWith('redis_')) return 'redis';
  if (a.name.startsWith('backup_') || a.name.startsWith('archive_') || a.name === 'wal_dropped') return 'backups';
  return 'postgres';
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

export function statusBody(snap: StackSnapshot, alerts: AlertItem[], opts: StatusOptions): StatusBody {
  const { pgbouncer, probe, postgres, redis, backups } = snap.sources;
  const pools = poolBody(snap, opts.now, opts.pools);
  const app = serverPoolFigures(pgbouncer.sample, opts.pools);
  const instances = postgresInstances(snap);
  const primary = instances[0]?.instance ?? 'postgres';
  const replicas = replicasHealth(snap, opts.replicaLaggingSeconds ?? REPLICA_LAGGING_SECONDS);
  const alertsOf = (id: string) => alerts.filter((a) => cardOfAlert(a, primary) === id);

  const card = (id: string, title: string, st: StackSnapshot['sources'][keyof StackSnapshot['sources']], version: string | null, detail: string, warn?: string): Card => {
    const mine = alertsOf(id);
    const firstAlert = mine.map((a) => a.since).sort()[0];
    const state: CardState = !st.up ? 'DOWN' : mine.length > 0 || warn !== undefined ? 'WARN' : 'OK';
    return {
      id,
      title,
      state,
      since: state === 'WARN' && firstAlert !== undefined && st.since !== null && firstAlert > st.since ? firstAlert : st.since,
      version: st.up ? version : null,
      detail: st.up ? (warn ?? detail) : `down: ${st.lastError ?? 'no answer yet'}`,
      lastPollAt: st.lastPollAt,
      lastSuccessAt: st.lastSuccessAt,
      lastError: st.lastError,
      alerts: mine.length,
    };
  };

  const pg = postgres.sample;
  const info = redis.sample?.info;
  const cards: Card[] = [
    card('pgbouncer', 'PgBouncer', pgbouncer, pgbouncer.sample?.version ?? null, `${pools.pgbouncer.clients.used} of ${pools.pgbouncer.clients.max} clients, ${app.total} of ${app.max} app server connections`),
    card('probe', 'Queries through PgBouncer', probe, null, probe.sample ? `SELECT 1 in ${probe.sample.responseTimeMs.toFixed(1)} ms` : ''),
    card('postgres', `Postgres primary (${primary})`, postgres, pg?.version ?? null, pg ? `${clientConnections(pg)} of ${usableConnections(pg)} usable connections` : ''),
    ...instances.slice(1).map(({ instance, state }) => {
      const r = replicas.find((x) => x.instance === instance);
      const lag = r?.lagSeconds == null ? '' : `, ${r.lagSeconds.toFixed(1)} s behind`;
      return card(instance, `Postgres replica (${instance})`, state, state.sample?.version ?? null, `${r?.status ?? 'unknown'}${lag}`, r && !r.healthy ? `${r.status}${lag}: ${r.reason ?? ''}` : undefined);
    }),
    card('redis', 'Redis', redis, info?.redis_version ?? null, info ? `${mib(Number(info.used_memory ?? 0))} used, ${info.connected_clients ?? '?'} clients` : ''),
  ];
  const watchedBackups = backups.sample && backups.sample.path !== null ? backups.sample : undefined;
  if (watchedBackups || (!backups.up && backups.lastSuccessAt !== null)) {
    const last = watchedBackups?.backups.at(-1);
    cards.push(card('backups', 'Backups', backups, null, watchedBackups?.problem ?? (last ? `last ${last.type} backup ${new Date(last.stopTime * 1000).toISOString()}` : 'no backup yet')));
  }

  const byStateMap = new Map<string, number>();
  for (const g of pg?.activity ?? []) byStateMap.set(g.state || 'unknown', (byStateMap.get(g.state || 'unknown') ?? 0) + g.count);

  const st = pg?.statements;
  // The sidecar's own statements (its monitoring role's) are left out: the list is about the apps.
  const top = st && st.problem === null ? topQueries(st, opts.statementHistory?.(primary), { n: 100, order: 'mean', sinceMs: SLOW_WINDOW_MS, textChars: 120, minCalls: 1 }, opts.now.getTime()) : undefined;
  const slow = top && { ...top, items: top.items.filter((q) => q.user !== opts.pools.probe.user).slice(0, SLOW_ITEMS) };

  const live = liveSettingsOf(snap, opts.pools.readDatabase);
  const input = planInputFromLive(live);
  const budget = input ? plan(input) : undefined;

  const b = watchedBackups;
  const lastBackup = b?.backups.at(-1);
  return {
    timestamp: opts.now.toISOString(),
    lastPollAt: snap.lastPollAt,
    pollIntervalMs: opts.pollIntervalMs,
    staleAfterMs: 2 * opts.pollIntervalMs,
    healthy: snap.pollCount > 0 && !opts.isShuttingDown && probe.up && pgbouncer.up && postgres.up && redis.up,
    degraded: replicas.some((r) => !r.healthy),
    isShuttingDown: opts.isShuttingDown,
    cards,
    pgbouncer: {
      clients: pools.pgbouncer.clients,
      pools: pools.pgbouncer.pools.map((row, i) => {
        const p = pgbouncer.sample!.pools[i]!;
        return {
          ...row,
          clientUtilizationPercent: pct(row.clientActive + row.clientWaiting, pools.pgbouncer.clients.max),
          serverUtilizationPercent: Math.round(poolFigures(p, pgbouncer.sample!.databases.find((d) => d.name === p.database)).utilizationPercent * 10) / 10,
        };
      }),
      serverUtilizationPercent: app.utilizationPercent,
      serverConnections: app.total,
      serverMax: app.max,
    },
    postgres: pg
      ? {
          instance: primary,
          connections: clientConnections(pg),
          usable: usableConnections(pg),
          utilizationPercent: pct(clientConnections(pg), usableConnections(pg)),
          byState: [...byStateMap].map(([state, count]) => ({ state, count })).sort((x, y) => y.count - x.count || x.state.localeCompare(y.state)),
        }
      : null,
    replicas: replicas.map((r) => ({ instance: r.instance, status: r.status, healthy: r.healthy, lagSeconds: r.lagSeconds, lagBytes: r.lagBytes, reason: r.reason, lastError: r.lastError })),
    redis: { ...pools.redis, version: info?.redis_version ?? null },
    backups: b
      ? {
          lastBackup: lastBackup ? { label: lastBackup.label, type: lastBackup.type, stoppedAt: new Date(lastBackup.stopTime * 1000).toISOString(), sizeBytes: lastBackup.sizeBytes } : null,
          lastRun: b.lastRun ? { type: b.lastRun.type, ok: b.lastRun.ok, finishedAt: b.lastRun.finishedAt, error: b.lastRun.error } : null,
          running: b.running,
          problem: b.problem ?? b.infoError,
        }
      : null,
    slowQueries: slow
      ? {
          window: slow.window.seconds === null ? 'since the statistics reset' : `last ${Math.max(1, Math.round(slow.window.seconds / 60))} min`,
          items: slow.items.map((q) => ({ queryid: q.queryid, user: q.user, datname: q.datname, calls: q.calls, meanExecMs: Math.round(q.meanExecMs * 1000) / 1000, text: q.text })),
        }
      : null,
    budget: budget ? { status: budget.status, lines: budget.lines } : null,
    alerts,
  };
}

/**
 * The figures the history keeps after each poll (the sparklines): null where the source is down.
 * prev: the snapshot before, for PgBouncer's transaction rate (its SHOW STATS totals are counters).
 */
export function historyFigures(snap: StackSnapshot, prev: StackSnapshot | undefined, pools: PoolScope, firingAlerts: number): Figures {
  const { pgbouncer, probe, postgres, redis } = snap.sources;
  const pb = pgbouncer.sample;
  const app = serverPoolFigures(pb, pools);
  const appPools = pb?.pools.filter((p) => p.database === pools.appDatabase) ?? [];
  const pg = postgres.sample;
  const info = redis.sample?.info;
  const figures: Figures = {
    'pgbouncer.clients_active': pb ? appPools.reduce((n, p) => n + p.clActive, 0) : null,
    'pgbouncer.clients_waiting': pb ? pb.pools.reduce((n, p) => n + p.clWaiting, 0) : null,
    'pgbouncer.maxwait_seconds': pb ? Math.max(0, ...pb.pools.map((p) => p.maxwaitSeconds)) : null,
    'pgbouncer.server_utilization_percent': pb ? app.utilizationPercent : null,
    'pgbouncer.xact_per_second': xactRate(snap, prev),
    'probe.response_ms': probe.sample?.responseTimeMs ?? null,
    'postgres.connections': pg ? clientConnections(pg) : null,
    'postgres.active': pg ? pg.activity.filter((g) => g.state === 'active').reduce((n, g) => n + g.count, 0) : null,
    'redis.used_memory_bytes': info ? Number(info.used_memory ?? Number.NaN) : null,
    'redis.connected_clients': info ? Number(info.connected_clients ?? Number.NaN) : null,
    'alerts.firing': firingAlerts,
  };
  for (const r of replicasHealth(snap)) figures[`replica.${r.instance}.lag_seconds`] = r.lagSeconds;
  return figures;
}

/** Transactions a second through PgBouncer between two polls (all databases); null without both samples or after a restart. */
function xactRate(snap: StackSnapshot, prev: StackSnapshot | undefined): number | null {
  const now = snap.sources.pgbouncer.sample;
  const before = prev?.sources.pgbouncer.sample;
  if (!now || !before || snap.lastPollAt === null || prev?.lastPollAt == null) return null;
  const seconds = (Date.parse(snap.lastPollAt) - Date.parse(prev.lastPollAt)) / 1000;
  const total = (s: typeof now) => s.stats.reduce((n, x) => n + x.xactCount, 0);
  const delta = total(now) - total(before);
  return seconds > 0 && delta >= 0 ? delta / seconds : null;
}
