// Literal values never leave the sidecar in a session's query text.
import { describe, expect, it } from 'vitest';
import { querySummary, redactLiterals } from '../../src/sql-redact.js';

describe('redactLiterals', () => {
  it.each([
    ["ALTER ROLE app PASSWORD 'hunter2'", 'ALTER ROLE app PASSWORD ?'],
    ["SELECT * FROM users WHERE email = 'a@b.c' AND id = 42", 'SELECT * FROM users WHERE email = ? AND id = ?'],
    ["SELECT 'it''s', E'a\\'b\\\\', 1.5e3, .5, 0x1F", 'SELECT ?, ?, ?, ?, ?'],
    ['SELECT $$secret$$, $tag$x $$ y$tag$, $1, $23', 'SELECT ?, ?, $1, $23'],
    ['SELECT "col1", t2.c3 FROM "my ""table""" t2', 'SELECT "col1", t2.c3 FROM "my ""table""" t2'],
    ["SELECT 1 -- it's 2\nFROM x /* 'y' */", "SELECT ? -- it's 2\nFROM x /* 'y' */"],
    ["INSERT INTO t VALUES (B'1010', X'ff', U&'d\\0061t', N'n')", 'INSERT INTO t VALUES (?, ?, ?, ?)'],
    ["SELECT 'cut off by track_activity_query_size", 'SELECT ?'],
    ['SELECT abc123, _x9 FROM t1', 'SELECT abc123, _x9 FROM t1'],
  ])('%s', (sql, want) => {
    expect(redactLiterals(sql)).toBe(want);
  });

  it('summaries are redacted, on one line, and cut to the limit', () => {
    expect(querySummary("UPDATE  accounts\n SET  balance = 100\tWHERE owner = 'x'")).toBe('UPDATE accounts SET balance = ? WHERE owner = ?');
    const long = querySummary(`SELECT ${'a, '.repeat(200)}1`, 50);
    expect(long).toHaveLength(50);
    expect(long.endsWith('…')).toBe(true);
  });
});
