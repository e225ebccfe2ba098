// scripts/reliability-report.mjs: docs/reliability.md only from a run whose every test passed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../../../scripts/reliability-report.mjs', import.meta.url));

interface T { title: string; status: string }
function run(files: Record<string, T[] | { failedToLoad: string }>, rows: object[], settings: object[]) {
  const dir = mkdtempSync(join(tmpdir(), 'rel-'));
  const testResults = Object.entries(files).map(([name, v]) =>
    Array.isArray(v)
      ? { name: `/x/test/fault/${name}`, status: v.every((t) => t.status === 'passed') ? 'passed' : 'failed', assertionResults: v.map((t) => ({ ...t, fullName: `suite ${t.title}`, ancestorTitles: ['suite'] })) }
      : { name: `/x/test/fault/${name}`, status: 'failed', message: v.failedToLoad, assertionResults: [] },
  );
  writeFileSync(join(dir, 'results.json'), JSON.stringify({ startTime: Date.parse('2026-12-02T10:00:00Z'), testResults }));
  writeFileSync(join(dir, 'rows.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeFileSync(join(dir, 'settings.jsonl'), settings.map((r) => JSON.stringify(r)).join('\n') + (settings.length ? '\n' : ''));
  const out = join(dir, 'reliability.md');
  const r = spawnSync('node', [SCRIPT, '--dir', dir, '--out', out], { encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr, out: existsSync(out) ? readFileSync(out, 'utf8') : undefined };
}

const row = (file: string, test: string, scenario: string, state = 'pass') => ({ file, test, state, scenario, load: 'L', injected: 'I', figures: `figures of ${scenario}` });
const SETTINGS = [{ stack: 'poolguard-test-fault (docker-compose.dev.yml)', cores: 2, default_pool_size: '25', pgbouncer: 'PgBouncer 1.24.1' }];

describe('reliability report', () => {
  it('writes every row with a PASS result and the settings read from the stacks when every test passed', () => {
    const r = run({ 'a.test.ts': [{ title: 'one', status: 'passed' }, { title: 'two', status: 'passed' }] }, [row('a.test.ts', 'two', '2. second'), row('a.test.ts', 'one', '1. first')], SETTINGS);
    expect(r.code, r.stderr).toBe(0);
    expect(r.out).toMatch(/\| 1\. first \| PASS \| L \| I \| figures of 1\. first \|\n\| 2\. second \| PASS /);
    expect(r.out).toMatch(/\| default_pool_size \| 25 \|/);
    expect(r.out).toMatch(/2 tests, all passed/);
  });

  it('refuses, naming it, when a test failed or was skipped, and writes nothing', () => {
    const r = run({ 'a.test.ts': [{ title: 'one', status: 'passed' }, { title: 'two', status: 'failed' }, { title: 'three', status: 'skipped' }] }, [row('a.test.ts', 'one', '1'), row('a.test.ts', 'two', '2', 'fail')], SETTINGS);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/a\.test\.ts > suite two: failed/);
    expect(r.stderr).toMatch(/a\.test\.ts > suite three: skipped/);
    expect(r.stderr).toMatch(/row "2" comes from a\.test\.ts > two, which did not pass \(fail\)/);
    expect(r.out).toBeUndefined();
  });

  it('refuses when a passed test recorded no row, a file did not run, or no settings were read', () => {
    const noRow = run({ 'a.test.ts': [{ title: 'one', status: 'passed' }] }, [], SETTINGS);
    expect(noRow.code).toBe(1);
    expect(noRow.stderr).toMatch(/suite one: passed but recorded no row/);
    const notRun = run({ 'a.test.ts': [{ title: 'one', status: 'passed' }], 'b.test.ts': { failedToLoad: 'Error: beforeAll hook timed out' } }, [row('a.test.ts', 'one', '1')], SETTINGS);
    expect(notRun.code).toBe(1);
    expect(notRun.stderr).toMatch(/b\.test\.ts did not run: Error: beforeAll hook timed out/);
    const noSettings = run({ 'a.test.ts': [{ title: 'one', status: 'passed' }] }, [row('a.test.ts', 'one', '1')], []);
    expect(noSettings.code).toBe(1);
    expect(noSettings.stderr).toMatch(/no stack settings were read/);
    const empty = run({}, [], SETTINGS);
    expect(empty.stderr).toMatch(/the run has no tests/);
  });
});
