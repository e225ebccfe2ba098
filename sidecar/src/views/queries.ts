// GET /queries: the top statements of pg_stat_statements, since the statistics' reset or over a
// recent window (deltas against the sidecar's own history). Pure functions of samples; the
// history is fed by the poll loop (StatementHistory.record) and only read here.
import type { StatementCounters, StatementsSample } from '../sources/statements.js';

/** The counters a window subtracts (the rest are as of now). */
const DELTA = ['calls', 'rows', 'totalExecMs', 'sharedBlksHit', 'sharedBlksRead'] as const;
type DeltaField = (typeof DELTA)[number];
type Counters = Record<DeltaField, number>;

interface HistoryEntry {
  at: number;
  statsReset: number | null;
  byKey: Map<string, Counters>;
}

const pickCounters = (s: StatementCounters): Counters => ({ calls: s.calls, rows: s.rows, totalExecMs: s.totalExecMs, sharedBlksHit: s.sharedBlksHit, sharedBlksRead: s.sharedBlksRead });

/**
 * The statements' counters at most once per stepMs, for windowMs: enough to answer ?since= up to
 * the window with a bounded memory (window / step entries of the counters that matter).
 */
export class StatementHistory {
  private entries: HistoryEntry[] = [];

  constructor(readonly windowMs = 60 * 60_000, readonly stepMs = 60_000) {}

  record(at: number, sample: StatementsSample | undefined): void {
    if (!sample || sample.problem !== null) return;
    const last = this.entries.at(-1);
    if (last && at - last.at < this.stepMs) return;
    this.entries.push({ at, statsReset: sample.statsReset, byKey: new Map(sample.statements.map((s) => [s.key, pickCounters(s)])) });
    while (this.entries.length > 1 && this.entries[0]!.at < at - this.windowMs - this.stepMs) this.entries.shift();
  }

  /** The newest entry taken at or before `at`, else the oldest one (the window is then shorter than asked). */
  baseline(at: number): HistoryEntry | undefined {
    let found: HistoryEntry | undefined;
    for (const e of this.entries) if (e.at <= at) found = e;
    return found ?? this.entries[0];
  }
}

export const QUERY_ORDERS = ['total', 'mean', 'calls', 'rows'] as const;
export type QueryOrder = (typeof QUERY_ORDERS)[number];

export interface QueriesRequest {
  n: number;
  order: QueryOrder;
  /** Window length in ms; undefined: since the statistics' reset. */
  sinceMs: number | undefined;
  /** Longest text returned per statement (characters). */
  textChars: number;
  /** Leave out statements with fewer calls (in the window) than this (default 1). */
  minCalls?: number;
}

/**
 * A statement's figures over the window asked (the counters' deltas); maxExecMs and
 * stddevExecMs are since the statistics' reset, whatever the window (pg_stat_statements keeps no
 * history of them).
 */
export interface QueryItem extends Pick<StatementCounters, 'queryid' | 'user' | 'datname' | 'calls' | 'rows' | 'totalExecMs' | 'meanExecMs' | 'maxExecMs' | 'stddevExecMs' | 'sharedBlksHit' | 'sharedBlksRead'> {
  /** Normalised (constants are $1, $2 ...); null when not fetched yet. */
  text: string | null;
  textTruncated: boolean;
}

export interface QueriesBody {
  order: QueryOrder;
  n: number;
  /** What the figures cover: since the reset, or the window actually covered (it can be shorter than asked right after a start). */
  window: { from: string | null; to: string; seconds: number | null; asked: number | null };
  statsReset: string | null;
  /** Statements evicted since the reset (pg_stat_statements.max reached): the figures miss them. */
  dealloc: number;
  statements: number;
  items: QueryItem[];
}

const iso = (epochSeconds: number | null) => (epochSeconds === null ? null : new Date(epochSeconds * 1000).toISOString());

/**
 * Top n statements. With a window: each counter minus its value at the window's start; a counter
 * that went down (a reset, or a statement evicted and seen again) counts from zero, and a reset
 * of the whole view in between makes every statement count from zero.
 */
export function topQueries(sample: StatementsSample, history: StatementHistory | undefined, req: QueriesRequest, now: number): QueriesBody {
  const base = req.sinceMs === undefined ? undefined : history?.baseline(now - req.sinceMs);
  const wholeReset = base !== undefined && base.statsReset !== sample.statsReset;
  const rows = sample.statements.map((s) => {
    const old = base && !wholeReset ? base.byKey.get(s.key) : undefined;
    const d = (f: DeltaField) => (old === undefined || s.calls < old.calls || s[f] < old[f] ? s[f] : s[f] - old[f]);
    const calls = req.sinceMs === undefined ? s.calls : d('calls');
    const totalExecMs = req.sinceMs === undefined ? s.totalExecMs : d('totalExecMs');
    return {
      s,
      calls,
      rows: req.sinceMs === undefined ? s.rows : d('rows'),
      totalExecMs,
      meanExecMs: calls > 0 ? totalExecMs / calls : 0,
      sharedBlksHit: req.sinceMs === undefined ? s.sharedBlksHit : d('sharedBlksHit'),
      sharedBlksRead: req.sinceMs === undefined ? s.sharedBlksRead : d('sharedBlksRead'),
    };
  }).filter((r) => r.calls >= Math.max(1, req.minCalls ?? 1));
  const key = { total: 'totalExecMs', mean: 'meanExecMs', calls: 'calls', rows: 'rows' } as const;
  rows.sort((a, b) => b[key[req.order]] - a[key[req.order]] || (a.s.queryid < b.s.queryid ? -1 : 1));
  const items = rows.slice(0, req.n).map((r): QueryItem => {
    const full = sample.texts[r.s.queryid];
    return {
      queryid: r.s.queryid,
      user: r.s.user,
      datname: r.s.datname,
      calls: r.calls,
      rows: r.rows,
      totalExecMs: round(r.totalExecMs),
      meanExecMs: round(r.meanExecMs),
      maxExecMs: round(r.s.maxExecMs),
      stddevExecMs: round(r.s.stddevExecMs),
      sharedBlksHit: r.sharedBlksHit,
      sharedBlksRead: r.sharedBlksRead,
      text: full === undefined ? null : full.slice(0, req.textChars),
      textTruncated: full !== undefined && full.length > req.textChars,
    };
  });
  const fromMs = req.sinceMs === undefined ? null : base && !wholeReset ? base.at : sample.statsReset === null ? null : sample.statsReset * 1000;
  return {
    order: req.order,
    n: req.n,
    window: {
      from: req.sinceMs === undefined ? iso(sample.statsReset) : fromMs === null ? null : new Date(fromMs).toISOString(),
      to: new Date(now).toISOString(),
      seconds: fromMs === null ? null : Math.round((now - fromMs) / 1000),
      asked: req.sinceMs === undefined ? null : req.sinceMs / 1000,
    },
    statsReset: iso(sample.statsReset),
    dealloc: sample.dealloc,
    statements: sample.statements.length,
    items,
  };
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;
