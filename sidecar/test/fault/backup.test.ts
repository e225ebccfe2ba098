// Backups on the dev file (pgBackRest, repository on its own volume): the first full backup soon
// after the first start, seen by the sidecar with pgbackrest_exporter's names; restore-check on a
// fresh stack; point-in-time recovery with `make restore TARGET_TIME=` under writes; kill -9 of
// Postgres during a backup and during archive-push, after which the next backup succeeds and
// `pgbackrest check` and `verify` find nothing missing. Driven through scripts/backup.sh, the
// script behind make backup / backups / restore / restore-check.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, Stack, publish, run, sleep } from '../e2e/stack.js';
import { errorsText, mainPid, record, recordSettings, startLoad, superSql, waitUntil } from './harness.js';

const PORTS = { postgres: 35442, pgbouncer: 36442, redis: 36389, sidecar: 38797 };
const PROJECT = 'poolguard-test-fault-backup';
let stack: Stack;
let upAt = 0;

/** scripts/backup.sh against the test stack: dev COMMAND [options] -- -p PROJECT --env-file FILE. */
const backupSh = (args: string[], timeoutMs = 600_000) =>
  run(`${ROOT}/scripts/backup.sh`, ['dev', ...args, '--', '-p', stack.project, '--env-file', stack.envFile], { timeoutMs });
const metrics = async () => (await fetch(`http://127.0.0.1:${PORTS.sidecar}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
const metric = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
async function pgbackrest(args: string[]): Promise<string> {
  const r = await stack.exec('backup', ['pgbackrest', ...args]);
  if (r.code !== 0) throw new Error(`pgbackrest ${args.join(' ')} exited ${r.code}: ${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}
/** The repository's backups (pgbackrest info --output=json, first stanza). */
async function backups(): Promise<{ label: string; type: string; timestamp: { start: number; stop: number }; info: { size: number; repository: { size: number } } }[]> {
  const info = JSON.parse((await stack.exec('backup', ['pgbackrest', '--output=json', 'info'])).stdout) as any[];
  return info[0]?.backup ?? [];
}
/** `pgbackrest check` and `verify`: both exit 0, and verify reports no missing WAL or invalid file. */
async function checkAndVerify(): Promise<string> {
  await pgbackrest(['check']);
  const v = await pgbackrest(['verify', '--verbose', '--log-level-console=detail']);
  expect(v, 'verify reports no problem').not.toMatch(/ERROR|WARN/);
  expect(v).toMatch(/status: ok/);
  const problems = [...v.matchAll(/missing: (\d+), checksum invalid: (\d+), size invalid: (\d+), other: (\d+)/g)];
  expect(problems.length, `verify's summary in:\n${v}`).toBeGreaterThan(0);
  for (const m of problems) expect(m.slice(1).map(Number), m[0]).toEqual([0, 0, 0, 0]);
  const wal = [...v.matchAll(/total WAL checked: (\d+), total valid WAL: (\d+)/g)].map((m) => [Number(m[1]), Number(m[2])] as const);
  expect(wal.length).toBeGreaterThan(0);
  for (const [checked, valid] of wal) expect(valid).toBe(checked);
  const backupsChecked = [...v.matchAll(/backup: \S+, status: valid/g)].length;
  return `check ok; verify: ${wal.reduce((n, [c]) => n + c, 0)} WAL segments and ${backupsChecked} backups valid, 0 missing`;
}
/** The number of archive-push processes in the Postgres container (read from /proc). */
async function archivePushes(): Promise<number> {
  const r = await stack.exec('postgres', ['sh', '-c', 'for p in /proc/[0-9]*; do tr "\\0" " " <"$p/cmdline" 2>/dev/null; echo; done | grep -c "[a]rchive-push" || true']);
  return Number(r.stdout.trim() || 0);
}
/**
 * Start Postgres again after a kill -9 of its postmaster. The container exits only once tini has
 * seen its child die and the kernel has ended the rest, which can come after the failed backup
 * returned; `compose up --wait` on a container still going down reports "exited (137)". So wait
 * for the container to have stopped (docker wait) first.
 */
async function restartPostgres(container: string): Promise<void> {
  const stopped = await run('docker', ['wait', container], { timeoutMs: 60_000 });
  expect(stopped.code, `the killed Postgres container ${container} did not stop: ${stopped.stderr}`).toBe(0);
  await stack.mustCompose(['up', '-d', '--no-deps', '--wait', 'postgres'], 180_000);
}
const pgTime = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '+00');

beforeAll(async () => {
  stack = Stack.dev(PROJECT, { ...publish(PORTS), BACKUP_FIRST_FULL_DELAY: '2s', BACKUP_CHECK_INTERVAL: '2s' });
  await stack.compose(['down', '-v', '--remove-orphans']);
  await stack.up();
  upAt = Date.now();
  await recordSettings(stack);
});

afterAll(async () => {
  await stack?.down(true).catch(() => undefined);
  const aside = await run('docker', ['volume', 'ls', '-q', '--filter', `name=${PROJECT}_pgdata_before_restore_`]);
  for (const v of aside.stdout.split('\n').filter(Boolean)) await run('docker', ['volume', 'rm', '-f', v]);
});

describe('backups and point-in-time recovery (dev file)', () => {
  it('the first full backup soon after the first start; the sidecar shows it and the archiver with the exporters\' names', async () => {
    let text = '';
    const ms = await waitUntil('the first full backup in the sidecar\'s /metrics', async () => /^pgbackrest_backup_info\{[^}]*backup_type="full"/m.test((text = await metrics().catch(() => ''))), 120_000, 1000);
    expect(text).toMatch(/^pgbackrest_stanza_status\{stanza="poolguard"\} 0$/m);
    expect(text).toMatch(/^pgbackrest_exporter_status\{stanza="poolguard"\} 1$/m);
    expect(metric(text, /^pg_stat_archiver_archived_count\{target="postgres"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(metric(text, /^pg_stat_archiver_failed_count\{target="postgres"\} (\d+)/m)).toBe(0);
    expect(text).toMatch(/^pgbackrest_backup_since_last_completion_seconds\{backup_type="full",block_incr="n",stanza="poolguard"\} [\d.]+$/m);
    const alerts = await (await fetch(`http://127.0.0.1:${PORTS.sidecar}/alerts`)).json() as { items: { name: string }[] };
    expect(alerts.items.filter((a) => /backup|archive|wal/.test(a.name))).toEqual([]);
    // About 50 MB of data (pgbench scale 3), then `make backup` takes a full backup of it.
    const seed = await stack.exec('postgres', ['pgbench', '-i', '-s', '3', '-q', '-h', '/var/run/postgresql', '-U', 'postgres', stack.env.APP_DB ?? 'app']);
    expect(seed.code, seed.stderr).toBe(0);
    const t0 = Date.now();
    const b = await backupSh(['backup', 'full']);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toMatch(/full backup of stanza poolguard .*: done in \d+ s/);
    const took = (Date.now() - t0) / 1000;
    const newest = (await backups()).at(-1)!;
    const shown = await backupSh(['backups']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(newest.label);
    expect(shown.stdout).toMatch(/last run: full ok/);
    record({
      scenario: '17a. first backup and make backup (dev file)',
      load: 'idle dev stack, then pgbench scale 3',
      injected: 'none: the schedule (BACKUP_FIRST_FULL_DELAY 2 s) and `make backup`',
      figures: `first full backup in /metrics ${(ms / 1000).toFixed(1)} s after compose up returned; make backup of ${(newest.info.size / 2 ** 20).toFixed(0)} MiB: ${took.toFixed(1)} s (backup ${newest.timestamp.stop - newest.timestamp.start} s, ${(newest.info.repository.size / 2 ** 20).toFixed(1)} MiB in the repository, zstd)`,
    });
    expect(Date.now() - upAt).toBeLessThan(10 * 60_000);
  });

  it('make restore-check restores the latest backup into a scratch volume, amcheck and row counts pass, the stack is untouched', async () => {
    const before = (await stack.containers()).map((c) => c.id).sort();
    const t0 = Date.now();
    const r = await backupSh(['restore-check']);
    const took = (Date.now() - t0) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/restore-check:\s+app\s+pgbench_accounts\s+300000 rows/);
    expect(r.stderr).toMatch(/amcheck on (\d+) B-tree indexes/);
    expect(r.stderr).toMatch(/restore-check: PASSED/);
    expect((await stack.containers()).map((c) => c.id).sort()).toEqual(before);
    const left = await run('docker', ['volume', 'ls', '-q', '--filter', `name=${PROJECT}_restore_check_`]);
    expect(left.stdout.trim(), 'the scratch volume is removed').toBe('');
    record({
      scenario: '17b. make restore-check (dev file)',
      load: 'idle dev stack after its first backups',
      injected: 'none',
      figures: `passed in ${took.toFixed(1)} s: ${/pgbackrest restore: done in \d+ s \([^)]*\)/.exec(r.stderr)?.[0]}; ${/amcheck on .*: done in \d+ s/.exec(r.stderr)?.[0]}`,
    });
  });

  it('point-in-time recovery under writes: make restore TARGET_TIME brings back every row committed before the time and none after', async () => {
    const load = await startLoad(stack, { clients: 4, durationMs: 12_000, writer: 'pitr', idBase: 1_000_000, thinkMs: 10 });
    await sleep(6000);
    const target = Date.now();
    const summary = await load.result();
    expect(summary.summary.errors, errorsText(summary.summary.errors as any)).toEqual({});
    const acks = summary.acks;
    const before = acks.filter((a) => a.endMs < target).map((a) => a.id);
    const after = acks.filter((a) => a.startMs > target).map((a) => a.id);
    expect(before.length).toBeGreaterThan(100);
    expect(after.length).toBeGreaterThan(100);
    await superSql(stack, 'SELECT pg_switch_wal()');
    await superSql(stack, 'DROP TABLE ledger CASCADE');
    await pgbackrest(['check']); // switches WAL and waits until it is archived
    // Refuses while Postgres runs, and without --yes; names what it replaces.
    const running = await backupSh(['restore', '--time', pgTime(target), '--yes']);
    expect(running.code).not.toBe(0);
    expect(running.stderr).toMatch(/Postgres is running: a restore replaces its data directory, so stop it first/);
    await stack.mustCompose(['stop', 'postgres']);
    const unconfirmed = await backupSh(['restore', '--time', pgTime(target)]);
    expect(unconfirmed.code).not.toBe(0);
    expect(unconfirmed.stderr).toMatch(/replaces: +the data volume poolguard-test-fault-backup_pgdata/);
    expect(unconfirmed.stderr).toMatch(/nothing changed\. To do it: add --yes/);
    const t0 = Date.now();
    const r = await backupSh(['restore', '--time', pgTime(target), '--yes']);
    const took = (Date.now() - t0) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/restore done\. The data from before is kept in the volume poolguard-test-fault-backup_pgdata_before_restore_/);
    const present = new Set((await superSql(stack, "SELECT id FROM ledger WHERE writer = 'pitr'")).map((x) => Number(x[0])));
    const lost = before.filter((id) => !present.has(id));
    const extra = after.filter((id) => present.has(id));
    const [[lastCommit]] = (await superSql(stack, 'SELECT extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000')) as [[string]];
    const recoveryPointS = (target - Number(lastCommit)) / 1000;
    // The restored server serves the app through PgBouncer again.
    const probe = await startLoad(stack, { clients: 1, durationMs: 1000, writer: 'after-restore', idBase: 9_000_000 });
    const p = await probe.result();
    record({
      scenario: '17c. point-in-time recovery under writes (dev file)',
      load: `4 clients inserting through PgBouncer, ${acks.length} acknowledged rows in 12 s`,
      injected: 'target time noted mid-load, pg_switch_wal(), DROP TABLE ledger, postgres stopped, make restore TARGET_TIME=<noted> CONFIRM=yes',
      figures: `${lost.length} of ${before.length} rows committed before the target missing, ${extra.length} of ${after.length} rows begun after it present; last restored commit ${recoveryPointS.toFixed(3)} s before the target; restore ${took.toFixed(1)} s end to end; ${p.ackedIds.length} inserts through PgBouncer right after`,
    });
    expect(lost).toEqual([]);
    expect(extra).toEqual([]);
    expect(recoveryPointS).toBeGreaterThanOrEqual(0);
    expect(recoveryPointS).toBeLessThan(1);
    expect(p.ackedIds.length).toBeGreaterThan(0);
  });

  it('kill -9 of Postgres during a backup: that backup fails, the next succeeds, check and verify find nothing missing', async () => {
    const load = await startLoad(stack, { clients: 2, durationMs: 40_000, writer: 'kill-backup', idBase: 2_000_000 });
    // zstd level 19 makes the backup of ~50 MB take long enough to be killed in the middle.
    const backup = stack.compose(['exec', '-T', '-e', 'PGBACKREST_COMPRESS_LEVEL=19', 'backup', 'poolguard-backup', 'backup', 'full'], 300_000);
    await waitUntil('the backup holding the stanza lock (pgbackrest info)', async () => {
      const info = JSON.parse((await stack.exec('backup', ['pgbackrest', '--output=json', 'info'])).stdout || '[]') as any[];
      return info[0]?.status?.lock?.backup?.held === true;
    }, 60_000, 200);
    await sleep(1500);
    const pgContainer = (await stack.containers()).find((c) => c.service === 'postgres')!.id;
    const { pid } = await mainPid(pgContainer);
    expect((await run('kill', ['-9', pid])).code).toBe(0);
    const killed = await backup;
    expect(killed.code, `the backup in progress failed: ${killed.stderr.slice(-400)}`).not.toBe(0);
    await restartPostgres(pgContainer);
    await load.result().catch(() => undefined); // errors while Postgres was down are expected here
    const next = await backupSh(['backup', 'full']);
    expect(next.code, next.stderr).toBe(0);
    const verified = await checkAndVerify();
    record({
      scenario: '17d. kill -9 Postgres during a backup (dev file)',
      load: '2 clients inserting through PgBouncer',
      injected: 'kill -9 of the postmaster 1.5 s into a full backup (zstd level 19, to be mid-copy)',
      figures: `that backup exited ${killed.code} (${(/ERROR: \[\d+\][^\n]*/.exec(killed.stderr + killed.stdout)?.[0] ?? '?').slice(0, 120)}); Postgres started again; the next full backup succeeded; ${verified}`,
    });
  });

  it('kill -9 of Postgres while archive-push runs: nothing is lost from the archive, the next backup succeeds, check and verify pass', async () => {
    const load = await startLoad(stack, { clients: 2, durationMs: 30_000, writer: 'kill-archive', idBase: 3_000_000 });
    let seen = 0;
    const switcher = (async () => {
      for (let i = 0; i < 200 && seen === 0; i++) await superSql(stack, 'SELECT pg_switch_wal()').catch(() => undefined);
    })();
    await waitUntil('an archive-push process in the Postgres container', async () => (seen = await archivePushes()) > 0, 60_000, 10);
    const pgContainer = (await stack.containers()).find((c) => c.service === 'postgres')!.id;
    const { pid } = await mainPid(pgContainer);
    expect((await run('kill', ['-9', pid])).code).toBe(0);
    await switcher;
    await restartPostgres(pgContainer);
    await load.result().catch(() => undefined);
    const next = await backupSh(['backup', 'incr']);
    expect(next.code, next.stderr).toBe(0);
    const verified = await checkAndVerify();
    const text = await metrics();
    record({
      scenario: '17e. kill -9 Postgres while archive-push runs (dev file)',
      load: '2 clients inserting through PgBouncer, pg_switch_wal() in a loop',
      injected: `kill -9 of the postmaster while ${seen} archive-push process(es) ran`,
      figures: `Postgres started again and archived on (pg_stat_archiver_archived_count ${metric(text, /^pg_stat_archiver_archived_count\{target="postgres"\} (\d+)/m)}); the next incremental backup succeeded; ${verified}`,
    });
  });
});
