// Query insight: the pg_stat_statements parser (columns by name), the text cache (fetched once
// per new queryid), and /queries' top-N with windows, resets and evictions.
import { describe, expect, it } from 'vitest';
import { DEFAULT_RULES } from '../../src/alerts/rules.js';
import type { Row } from '../../src/pg-connection.js';
import type { PostgresSample } from '../../src/sources/postgres.js';
import { StatementTexts, collectStatements, parseStatement, statementsProblem, type StatementsSample } from '../../src/sources/statements.js';
import { StatementHistory, topQueries, type QueriesRequest } from '../../src/views/queries.js';
import { postgresSample } from '../fixtures/postgres.js';
import { POOLS, snapshot, state } from '../fixtures/snapshot.js';

const row = (queryid: string, calls: number, totalMs: number, extra: Row = {}): Row => ({
  queryid, userid: '10', dbid: '5', toplevel: true, usename: 'app', datname: 'app', calls: String(calls), rows: String(calls * 2),
  total_exec_time: totalMs, mean_exec_time: calls ? totalMs / calls : 0, max_exec_time: 9, stddev_exec_time: 1, shared_blks_hit: '100', shared_blks_read: '3', ...extra,
});

const sample = (rows: Row[], statsReset = 1_700_000_000, texts: Record<string, string> = {}): StatementsSample => ({
  problem: null, statements: rows.map(parseStatement), dealloc: 0, statsReset, texts,
});

const req = (over: Partial<QueriesRequest> = {}): QueriesRequest => ({ n: 20, order: 'total', sinceMs: undefined, textChars: 1000, ...over });

describe('pg_stat_statements parser', () => {
  it('matches columns by name, PG 13+ names first, older ones accepted', () => {
    const s = parseStatement(row('-42', 3, 30));
    expect(s).toMatchObject({ key: '-42/10/5/true', queryid: '-42', user: 'app', datname: 'app', calls: 3, rows: 6, totalExecMs: 30, meanExecMs: 10, sharedBlksHit: 100, sharedBlksRead: 3 });
    expect(parseStatement({ queryid: '1', calls: 2, total_time: 8, mean_time: 4 })).toMatchObject({ totalExecMs: 8, meanExecMs: 4 });
  });

  it('names what to change when the statistics cannot be read', () => {
    expect(statementsProblem('relation "pg_stat_statements" does not exist')).toMatch(/not created/);
    expect(statementsProblem('pg_stat_statements must be loaded via "shared_preload_libraries"')).toMatch(/shared_preload_libraries/);
    expect(statementsProblem('permission denied for function pg_stat_statements')).toMatch(/pg_read_all_stats/);
    expect(statementsProblem('connection terminated')).toBeNull();
  });
});

describe('query texts', () => {
  it('fetches each queryid once, integers only, cut to the limit', async () => {
    const texts = new StatementTexts(10);
    const seen: string[] = [];
    const db = {
      query: async (sql: string): Promise<Row[]> => {
        seen.push(sql);
        if (sql.includes('pg_stat_statements_info')) return [{ dealloc: '2', stats_reset: '1700000000' }];
        if (sql.includes('pg_stat_statements(false)')) return [row('1', 1, 1), row('2', 1, 1), row('2', 1, 1, { userid: '11' })];
        return [{ queryid: '1', query: 'SELECT $1 FROM a_very_long_table_name' }, { queryid: '2', query: 'SELECT 2' }];
      },
    };
    const first = await collectStatements(db, texts);
    expect(first.texts).toEqual({ 1: 'SELECT $1 ', 2: 'SELECT 2' });
    expect([first.dealloc, first.statsReset]).toEqual([2, 1_700_000_000]);
    const fetches = () => seen.filter((s) => s.includes('pg_stat_statements(true)'));
    expect(fetches()).toHaveLength(1);
    expect(fetches()[0]).toContain("'{1,2}'::bigint[]");
    await collectStatements(db, texts);
    expect(fetches()).toHaveLength(1); // nothing new: the text file is not read again
    expect(texts.missing(['3', "1); DROP TABLE x; --"])).toEqual(['3']);
  });

  it('reports a missing extension as a problem, not a failed poll', async () => {
    const db = { query: async (): Promise<Row[]> => { throw new Error('relation "pg_stat_statements_info" does not exist'); } };
    expect((await collectStatements(db, new StatementTexts())).problem).toMatch(/not created/);
    const down = { query: async (): Promise<Row[]> => { throw new Error('connection refused'); } };
    await expect(collectStatements(down, new StatementTexts())).rejects.toThrow('connection refused');
  });
});

describe('top queries', () => {
  const s = sample([row('1', 10, 100), row('2', 1, 500), row('3', 100, 50), row('4', 0, 0)], 1_700_000_000, { 1: 'SELECT a FROM t WHERE id = $1', 2: 'x'.repeat(50) });

  it('orders by total, mean, calls or rows; n bounds the list; statements never called are left out', () => {
    expect(topQueries(s, undefined, req(), 0).items.map((i) => i.queryid)).toEqual(['2', '1', '3']);
    expect(topQueries(s, undefined, req({ order: 'mean' }), 0).items.map((i) => i.queryid)).toEqual(['2', '1', '3']);
    expect(topQueries(s, undefined, req({ order: 'calls' }), 0).items.map((i) => i.queryid)).toEqual(['3', '1', '2']);
    expect(topQueries(s, undefined, req({ order: 'calls', n: 1 }), 0).items.map((i) => i.queryid)).toEqual(['3']);
  });

  it('cuts texts to what was asked and says so; a text not fetched yet is null', () => {
    const items = topQueries(s, undefined, req({ textChars: 20 }), 0).items;
    expect(items.find((i) => i.queryid === '2')).toMatchObject({ text: 'x'.repeat(20), textTruncated: true });
    expect(items.find((i) => i.queryid === '1')).toMatchObject({ text: 'SELECT a FROM t WHER', textTruncated: true });
    expect(items.find((i) => i.queryid === '3')).toMatchObject({ text: null, textTruncated: false });
  });

  it('?since: deltas against the history; a counter that went down or a reset counts from zero', () => {
    const h = new StatementHistory(3_600_000, 60_000);
    h.record(0, sample([row('1', 10, 100), row('2', 5, 50)]));
    h.record(30_000, sample([row('1', 99, 999)])); // within the step: not kept
    const now = 120_000;
    const later = sample([row('1', 14, 180), row('2', 2, 40), row('5', 3, 3)]);
    const body = topQueries(later, h, req({ sinceMs: 120_000 }), now);
    expect(body.window).toMatchObject({ from: new Date(0).toISOString(), seconds: 120, asked: 120 });
    const by = Object.fromEntries(body.items.map((i) => [i.queryid, i]));
    expect(by['1']).toMatchObject({ calls: 4, totalExecMs: 80, meanExecMs: 20 });
    expect(by['2']).toMatchObject({ calls: 2, totalExecMs: 40 }); // evicted and seen again: from zero
    expect(by['5']).toMatchObject({ calls: 3 }); // new in the window
    // A reset of the whole view in between: everything from zero, the window starts at the reset.
    const reset = sample([row('1', 1, 7)], 1_700_000_100);
    const afterReset = topQueries(reset, h, req({ sinceMs: 120_000 }), now);
    expect(afterReset.items[0]).toMatchObject({ calls: 1, totalExecMs: 7 });
    expect(afterReset.window.from).toBe(new Date(1_700_000_100_000).toISOString());
  });

  it('the history keeps one entry per step for the window, no more', () => {
    const h = new StatementHistory(10 * 60_000, 60_000);
    for (let t = 0; t <= 60 * 60_000; t += 5_000) h.record(t, sample([row('1', t, t)]));
    // Asked for an hour, the history holds ~11 minutes: the oldest entry it kept answers.
    const base = h.baseline(0)!;
    expect(base.at).toBeGreaterThanOrEqual(60 * 60_000 - 11 * 60_000);
    expect(h.baseline(60 * 60_000 - 5 * 60_000)!.at).toBe(55 * 60_000);
  });
});

describe('slow_statement', () => {
  const rule = DEFAULT_RULES.find((r) => r.name === 'slow_statement')!;
  const at = (ms: number, rows: Row[]) => {
    const snap = snapshot({ postgres: state<PostgresSample>(postgresSample({ statements: sample(rows, 1_700_000_000, { 7: 'SELECT slow FROM t WHERE id = $1' }) })) });
    return { ...snap, lastPollAt: new Date(ms).toISOString() };
  };

  it('the mean over the last 5 minutes, from the history; too few calls in the window say nothing', () => {
    const h = new StatementHistory();
    const t0 = 1_800_000_000_000;
    // Slow long ago (1,000 calls of 900 ms), fast in the window: no alert.
    h.record(t0, sample([row('7', 1000, 900_000), row('8', 10, 10)]));
    const fast = at(t0 + 5 * 60_000, [row('7', 1100, 900_000 + 100 * 2), row('8', 11, 11)]);
    expect(rule.observe(fast, undefined, { pools: POOLS, statementHistory: () => h }).filter((o) => o.value >= rule.warning!)).toEqual([]);
    // Slow in the window: 10 calls of 800 ms since the baseline.
    const slow = at(t0 + 5 * 60_000, [row('7', 1010, 900_000 + 8000)]);
    const obs = rule.observe(slow, undefined, { pools: POOLS, statementHistory: () => h });
    expect(obs.map((o) => [o.labels, Math.round(o.value)])).toEqual([[{ target: 'postgres', queryid: '7', user: 'app', datname: 'app' }, 800]]);
    expect(obs[0]!.describe(obs[0]!.value)).toBe('statement 7 on postgres (app@app: SELECT slow FROM t WHERE id = $1) took 800 ms on average over 10 calls in the last 5 min');
    // Two calls in the window: not enough to call it slow.
    const few = at(t0 + 5 * 60_000, [row('7', 1002, 900_000 + 8000)]);
    expect(rule.observe(few, undefined, { pools: POOLS, statementHistory: () => h })).toEqual([]);
  });
});
