import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AlertEngine } from '../../src/alerts/engine.js';
import { DEFAULT_RULES, NO_BACKUP_STATUS } from '../../src/alerts/rules.js';
import { registerMetrics } from '../../src/metrics.js';
import { collectBackups, lastBackups, parseBackupStatus } from '../../src/sources/backups.js';
import type { PostgresSample } from '../../src/sources/postgres.js';
import { STATUS_JSON, STATUS_PATH, backupsSample } from '../fixtures/backups.js';
import { postgresSample } from '../fixtures/postgres.js';
import { POOLS, snapshot, state } from '../fixtures/snapshot.js';

// The fixture's one full backup: 20261202-190435F, stopped at 1796238287 (2026-12-02T19:04:47Z).
const STOP = 1796238287;
const at = (epochSeconds: number) => new Date(epochSeconds * 1000).toISOString();

function observe(rule: string, snap: ReturnType<typeof snapshot>) {
  const r = DEFAULT_RULES.find((x) => x.name === rule)!;
  return r.observe(snap, undefined, { pools: POOLS }).map((o) => ({ labels: o.labels, value: o.value, text: o.describe(o.value) }));
}

const withBackups = (edit: Parameters<typeof backupsSample>[0], pollAt = STOP + 60) => ({ ...snapshot({ backups: state(backupsSample(edit)) }), lastPollAt: at(pollAt) });
const withArchiver = (a: Partial<PostgresSample['archiver']>, pollAt: number) => {
  const pg = postgresSample();
  return { ...snapshot({ postgres: state(postgresSample({ archiver: { ...pg.archiver, ...a } })) }), lastPollAt: at(pollAt) };
};

describe('backups source (the backup service status file)', () => {
  it('parses pgbackrest info and the service fields by name', () => {
    const s = parseBackupStatus(STATUS_PATH, STATUS_JSON);
    expect(s.problem).toBeNull();
    expect(s.stanza).toBe('poolguard');
    expect(s.stanzaStatus).toEqual({ code: 0, message: 'ok', lockHeld: false });
    expect(s.repos).toEqual([{ key: 1, cipher: 'none', code: 0, message: 'ok' }]);
    expect(s.backups).toHaveLength(1);
    expect(s.backups[0]).toMatchObject({ label: '20261202-190435F', type: 'full', startTime: STOP - 12, stopTime: STOP, sizeBytes: 1645446422, repoSizeBytes: 96677802, walStart: '0000000100000001000000CB', lsnStart: '1/CB000060', blockIncr: false, error: false });
    expect(s.archives).toEqual([{ databaseId: 1, repoKey: 1, pgVersion: '17', min: '0000000100000001000000C9', max: '0000000100000001000000CB' }]);
    expect(s.schedule).toMatchObject({ enabled: true, fullEverySeconds: 604800, diffEverySeconds: 86400 });
    expect(s.lastRun).toMatchObject({ type: 'full', ok: true, durationSeconds: 12 });
    expect(s.walGap).toBeNull();
  });

  it('the last backup per exporter type: diff is full or diff, incr is any; nothing without a full', () => {
    const two = backupsSample((d) => {
      const full = d.info[0].backup[0];
      d.info[0].backup.push({ ...full, label: '20261203-010000F_20261203-010000D', type: 'diff', timestamp: { start: STOP + 100, stop: STOP + 110 } });
    });
    const last = lastBackups(two);
    expect(last.full?.type).toBe('full');
    expect(last.diff?.type).toBe('diff');
    expect(last.incr?.type).toBe('diff');
    expect(lastBackups(backupsSample((d) => (d.info[0].backup = [])))).toEqual({});
  });

  it('a missing, unreadable or foreign file is a sample with a problem, never a failed poll', async () => {
    const missing = await collectBackups('/nope/status.json');
    expect(missing.problem).toMatch(/does not exist yet: the backup service has not written its status/);
    const denied = await collectBackups('/x', async () => { throw Object.assign(new Error('EACCES'), { code: 'EACCES' }); });
    expect(denied.problem).toBe('cannot read /x (EACCES)');
    expect((await collectBackups('/x', async () => 'not json')).problem).toMatch(/is not JSON/);
    expect((await collectBackups('/x', async () => '{"version":2}')).problem).toMatch(/status version 2; this sidecar reads version 1/);
    expect(await collectBackups(undefined)).toMatchObject({ path: null, problem: null, backups: [] });
  });
});

describe('backup metrics (pgbackrest_exporter 0.19 and postgres_exporter names)', () => {
  async function scrape(snap: ReturnType<typeof snapshot>): Promise<string> {
    const registry = new Registry();
    const engine = new AlertEngine(DEFAULT_RULES, { defaultForMs: 0, resolveForMs: 0, hysteresis: 0.05, context: { pools: POOLS } });
    registerMetrics(registry, () => ({ snapshot: snap, alerts: engine }), POOLS);
    return registry.metrics();
  }

  it('one series per backup, the last per type, stanza and repository status, the archiver', async () => {
    const text = await scrape(withBackups(() => {}, STOP + 600));
    const labels = 'backup_name="20261202-190435F",backup_type="full",block_incr="n",database_id="1",repo_key="1",stanza="poolguard"';
    for (const line of [
      'pgbackrest_exporter_status{stanza="poolguard"} 1',
      'pgbackrest_stanza_status{stanza="poolguard"} 0',
      'pgbackrest_stanza_lock_status{stanza="poolguard"} 0',
      'pgbackrest_repo_status{cipher="none",repo_key="1",stanza="poolguard"} 0',
      `pgbackrest_backup_size_bytes{${labels}} 1645446422`,
      `pgbackrest_backup_repo_size_bytes{${labels}} 96677802`,
      `pgbackrest_backup_duration_seconds{${labels},start_time="2026-12-02 19:04:35",stop_time="2026-12-02 19:04:47"} 12`,
      `pgbackrest_backup_error_status{${labels}} 0`,
      'pgbackrest_backup_since_last_completion_seconds{backup_type="full",block_incr="n",stanza="poolguard"} 600',
      'pgbackrest_backup_since_last_completion_seconds{backup_type="incr",block_incr="n",stanza="poolguard"} 600',
      'pgbackrest_backup_last_size_bytes{backup_type="diff",block_incr="n",stanza="poolguard"} 1645446422',
      'pgbackrest_wal_archive_status{database_id="1",pg_version="17",repo_key="1",stanza="poolguard",wal_max="",wal_min=""} 1',
      'poolguard_backup_last_run_success{backup_type="full"} 1',
      'pg_stat_archiver_archived_count{target="postgres"} 42',
      'pg_stat_archiver_failed_count{target="postgres"} 1',
      'pg_stat_archiver_last_archive_age{target="postgres"} 100.5',
      'poolguard_pg_archive_ready_segments{target="postgres"} 0',
    ]) expect(text).toContain(line);
    expect(text).toMatch(/pgbackrest_backup_info\{backrest_ver="2\.55\.1",backup_name="20261202-190435F",backup_type="full",block_incr="n",database_id="1",lsn_start="1\/CB000060",lsn_stop="1\/CB000158",pg_version="17",prior="",repo_key="1",stanza="poolguard",wal_start="0000000100000001000000CB",wal_stop="0000000100000001000000CB"\} 1/);
  });

  it('an unreadable status file leaves only pgbackrest_exporter_status 0; unwatched, no backup series at all', async () => {
    const missing = snapshot({ backups: state(await collectBackups('/nope/status.json')) });
    const text = await scrape(missing);
    expect(text).toContain('pgbackrest_exporter_status{stanza="all-stanzas"} 0');
    expect(text).not.toMatch(/^pgbackrest_(stanza|backup|repo|wal)_\w+\{/m);
    const off = await scrape(snapshot({ backups: state(await collectBackups(undefined)) }));
    expect(off).not.toMatch(/^pgbackrest_\w+\{/m);
  });
});

describe('backup and archiving rules', () => {
  it('archive_failing: 1 while the latest attempt failed, 0 once an archive succeeded after it; nothing with archive_mode off', () => {
    expect(observe('archive_failing', withArchiver({ failedCount: 3, lastFailedTime: 2000, lastArchivedTime: 1000 }, 2010))[0]).toMatchObject({ value: 1 });
    expect(observe('archive_failing', withArchiver({ failedCount: 3, lastFailedTime: 2000, lastArchivedTime: 1000 }, 2010))[0]!.text).toMatch(/WAL archiving fails: 0000000100000001000000C0 failed at/);
    expect(observe('archive_failing', withArchiver({ failedCount: 3, lastFailedTime: 2000, lastArchivedTime: 2001 }, 2010))[0]).toMatchObject({ value: 0 });
    expect(observe('archive_failing', withArchiver({ mode: 'off', failedCount: 3, lastFailedTime: 2000, lastArchivedTime: 0 }, 2010))).toEqual([]);
  });

  it('archive_lag: seconds since the last archive while segments wait, 0 when none waits', () => {
    expect(observe('archive_lag', withArchiver({ readySegments: 4, lastArchivedTime: 1000 }, 1400))[0]).toMatchObject({ value: 400 });
    expect(observe('archive_lag', withArchiver({ readySegments: 0, lastArchivedTime: 1000 }, 9400))[0]).toMatchObject({ value: 0 });
  });

  it('backup_overdue: seconds past the shorter schedule interval; no backup counts from the service start', () => {
    const day = 86400;
    expect(observe('backup_overdue', withBackups(() => {}, STOP + day - 10))[0]!.value).toBe(0);
    expect(observe('backup_overdue', withBackups(() => {}, STOP + day + 7200))[0]).toMatchObject({ value: 7200 });
    const none = observe('backup_overdue', withBackups((d) => { d.info[0].backup = []; d.startedAt = at(STOP); }, STOP + 630));
    expect(none[0]).toMatchObject({ value: 600 });
    expect(none[0]!.text).toMatch(/^No backup exists 11 min after the backup service started/);
  });

  it('backup_failed, backup_repository_error, wal_dropped and backup_service_down read the status', () => {
    expect(observe('backup_failed', withBackups((d) => (d.lastRun = { ...d.lastRun, ok: false, error: 'ERROR: [056]: unable to find primary cluster' })))[0]).toMatchObject({ value: 1, text: expect.stringMatching(/unable to find primary cluster/) });
    expect(observe('backup_failed', withBackups(() => {}))[0]!.value).toBe(0);
    expect(observe('backup_repository_error', withBackups(() => {}))[0]!.value).toBe(0);
    expect(observe('backup_repository_error', withBackups((d) => { d.info[0].status = { code: 2, message: 'no valid backups' }; }))[0]!.value).toBe(0);
    expect(observe('backup_repository_error', withBackups((d) => { d.info = null; d.infoError = 'ERROR: [039]: HTTP request failed'; }))[0]).toMatchObject({ value: 1, text: expect.stringMatching(/HTTP request failed/) });
    expect(observe('backup_repository_error', withBackups((d) => { d.info[0].repo[0].status = { code: 1, message: 'missing stanza path' }; }))[0]!.text).toMatch(/repo1: missing stanza path \(code 1\)/);
    expect(observe('wal_dropped', withBackups(() => {}))[0]!.value).toBe(0);
    const hole = { after: '0000000100000001000000CD', before: '0000000100000001000000D2', missing: 4 };
    const gap = observe('wal_dropped', withBackups((d) => { d.walGap = hole; d.lastWalGap = { ...hole, detectedAt: at(STOP) }; }))[0]!;
    expect(gap).toMatchObject({ value: 1, labels: { stanza: 'poolguard' } });
    expect(gap.text).toMatch(/4 segments after 0000000100000001000000CD \(next present: 0000000100000001000000D2\)/);
    // Closed by a full backup: still firing for the window after it was found, then resolved.
    const closed = (pollAt: number) => observe('wal_dropped', withBackups((d) => { d.lastWalGap = { ...hole, detectedAt: at(STOP) }; }, pollAt))[0]!;
    expect(closed(STOP + 14 * 60)).toMatchObject({ value: 1, text: expect.stringMatching(/^WAL was missing from the repository \(4 segments after 0000000100000001000000CD/) });
    expect(closed(STOP + 16 * 60).value).toBe(0);
    // writtenAt is 2026-12-02T19:05:35Z in the fixture: STOP + 48.
    expect(observe('backup_service_down', withBackups(() => {}, STOP + 48 + 300))[0]!.value).toBe(300);
    expect(observe('backup_service_down', snapshot({ backups: state({ ...backupsSample(), problem: 'gone' }) }))[0]).toMatchObject({ value: NO_BACKUP_STATUS, text: 'gone' });
  });
});
