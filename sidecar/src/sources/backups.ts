// The backup service's status file (SIDECAR_BACKUP_STATUS_PATH): what `pgbackrest info
// --output=json` said, plus the service's schedule and its last run, written atomically by
// backup/poolguard-backup.sh on a volume the sidecar mounts read-only. The sidecar holds no
// repository key or certificate: this file is all it reads. A missing or unreadable file is a
// sample with a problem (the backup service is down or never started), not a failed poll: backup
// trouble is an alert, never a reason for /health to fail.
import { readFile } from 'node:fs/promises';

export interface BackupEntry {
  label: string;
  type: 'full' | 'diff' | 'incr' | string;
  /** Seconds since the epoch. */
  startTime: number;
  stopTime: number;
  sizeBytes: number;
  deltaBytes: number;
  repoSizeBytes: number;
  repoDeltaBytes: number;
  /** pgBackRest found page checksum errors in this backup. */
  error: boolean;
  databaseId: number;
  repoKey: number;
  walStart: string;
  walStop: string;
  lsnStart: string;
  lsnStop: string;
  prior: string;
  backrestVersion: string;
  blockIncr: boolean;
}

export interface ArchiveRange {
  databaseId: number;
  repoKey: number;
  pgVersion: string;
  min: string;
  max: string;
}

export interface BackupRun {
  type: string;
  reason: string;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  ok: boolean;
  error: string | null;
}

export interface BackupsSample {
  /** The file watched, or null when SIDECAR_BACKUP_STATUS_PATH is not set (nothing is read). */
  path: string | null;
  /** Why the file could not be used (missing, unreadable, not the expected JSON), else null. */
  problem: string | null;
  /** When the backup service wrote it, seconds since the epoch (0 when unknown). */
  writtenAt: number;
  stanza: string;
  schedule: { enabled: boolean; fullEverySeconds: number; diffEverySeconds: number; firstFullDelaySeconds: number; checkIntervalSeconds: number } | null;
  /** When the backup service (its current process) started, seconds since the epoch. */
  serviceStartedAt: number;
  running: { type: string; startedAt: string } | null;
  lastRun: BackupRun | null;
  /** `pgbackrest check` at the service's start: archiving works end to end. */
  check: { at: string; ok: boolean; error: string | null } | null;
  /** pgbackrest info failed (repository unreachable, bad key...): its message. */
  infoError: string | null;
  /** The stanza's status.code (0 ok, 1 missing stanza path, 2 no valid backups, ...; 99 other), or null without info. */
  stanzaStatus: { code: number; message: string; lockHeld: boolean } | null;
  repos: { key: number; cipher: string; code: number; message: string }[];
  backups: BackupEntry[];
  archives: ArchiveRange[];
  /** WAL segments missing from the repository after the newest backup started (the backup service checks), else null. */
  walGap: WalGap | null;
  /** The last gap the backup service found (kept after the full backup that closed it), with when. */
  lastWalGap: (WalGap & { detectedAt: number }) | null;
}

export interface WalGap {
  /** The last segment present before the hole, and the first one after it. */
  after: string;
  before: string;
  missing: number;
}

const EMPTY: Omit<BackupsSample, 'path' | 'problem'> = {
  writtenAt: 0,
  stanza: '',
  schedule: null,
  serviceStartedAt: 0,
  running: null,
  lastRun: null,
  check: null,
  infoError: null,
  stanzaStatus: null,
  repos: [],
  backups: [],
  archives: [],
  walGap: null,
  lastWalGap: null,
};

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const epoch = (v: unknown): number => {
  const t = Date.parse(text(v));
  return Number.isFinite(t) ? t / 1000 : 0;
};

function parseRun(v: unknown): BackupRun | null {
  const r = obj(v);
  if (typeof r.ok !== 'boolean') return null;
  return {
    type: text(r.type),
    reason: text(r.reason),
    startedAt: text(r.startedAt),
    finishedAt: text(r.finishedAt),
    durationSeconds: num(r.durationSeconds),
    ok: r.ok,
    error: typeof r.error === 'string' ? r.error : null,
  };
}

/** The pgBackRest version of each database id of the stanza ("17"), for the pg_version label. */
function pgVersions(stanza: Obj): Map<string, string> {
  const m = new Map<string, string>();
  for (const d of arr(stanza.db)) {
    const db = obj(d);
    m.set(`${num(db.id)}/${num(db['repo-key'])}`, text(db.version));
  }
  return m;
}

/** Pure: a sample from the status file's text. Throws on text that is not the status JSON. */
export function parseBackupStatus(path: string, raw: string): BackupsSample {
  let doc: Obj;
  try {
    doc = obj(JSON.parse(raw));
  } catch {
    throw new Error(`${path} is not JSON (was it written by the backup service?)`);
  }
  if (doc.version !== 1) throw new Error(`${path} has status version ${JSON.stringify(doc.version)}; this sidecar reads version 1`);
  const schedule = obj(doc.schedule);
  const check = obj(doc.check);
  const running = obj(doc.running);
  const stanza = obj(arr(doc.info)[0]);
  const status = obj(stanza.status);
  const versions = pgVersions(stanza);
  const hasInfo = Array.isArray(doc.info);
  const gap = obj(doc.walGap);
  const lastGap = obj(doc.lastWalGap);
  return {
    path,
    problem: null,
    writtenAt: epoch(doc.writtenAt),
    stanza: text(doc.stanza) || text(stanza.name),
    schedule:
      typeof schedule.enabled === 'boolean'
        ? {
            enabled: schedule.enabled,
            fullEverySeconds: num(schedule.fullEverySeconds),
            diffEverySeconds: num(schedule.diffEverySeconds),
            firstFullDelaySeconds: num(schedule.firstFullDelaySeconds),
            checkIntervalSeconds: num(schedule.checkIntervalSeconds),
          }
        : null,
    serviceStartedAt: epoch(doc.startedAt),
    running: typeof running.type === 'string' ? { type: running.type, startedAt: text(running.startedAt) } : null,
    lastRun: parseRun(doc.lastRun),
    check: typeof check.ok === 'boolean' ? { at: text(check.at), ok: check.ok, error: typeof check.error === 'string' ? check.error : null } : null,
    infoError: typeof doc.infoError === 'string' ? doc.infoError : null,
    stanzaStatus: hasInfo && typeof status.code === 'number' ? { code: status.code, message: text(status.message), lockHeld: obj(obj(status.lock).backup).held === true } : null,
    repos: arr(stanza.repo).map((r) => {
      const repo = obj(r);
      return { key: num(repo.key), cipher: text(repo.cipher), code: num(obj(repo.status).code), message: text(obj(repo.status).message) };
    }),
    backups: arr(stanza.backup).map((b): BackupEntry => {
      const e = obj(b);
      const info = obj(e.info);
      const repo = obj(info.repository);
      const db = obj(e.database);
      return {
        label: text(e.label),
        type: text(e.type),
        startTime: num(obj(e.timestamp).start),
        stopTime: num(obj(e.timestamp).stop),
        sizeBytes: num(info.size),
        deltaBytes: num(info.delta),
        repoSizeBytes: num(repo.size),
        repoDeltaBytes: num(repo.delta),
        error: e.error === true,
        databaseId: num(db.id),
        repoKey: num(db['repo-key']),
        walStart: text(obj(e.archive).start),
        walStop: text(obj(e.archive).stop),
        lsnStart: text(obj(e.lsn).start) || '-',
        lsnStop: text(obj(e.lsn).stop) || '-',
        prior: text(e.prior),
        backrestVersion: text(obj(e.backrest).version),
        blockIncr: repo['size-map'] != null && repo['delta-map'] != null,
      };
    }),
    walGap: typeof gap.after === 'string' ? { after: gap.after, before: text(gap.before), missing: num(gap.missing) } : null,
    lastWalGap: typeof lastGap.after === 'string' ? { after: lastGap.after, before: text(lastGap.before), missing: num(lastGap.missing), detectedAt: epoch(lastGap.detectedAt) } : null,
    archives: arr(stanza.archive).map((a): ArchiveRange => {
      const r = obj(a);
      const db = obj(r.database);
      const key = `${num(db.id)}/${num(db['repo-key'])}`;
      return { databaseId: num(db.id), repoKey: num(db['repo-key']), pgVersion: versions.get(key) ?? '', min: text(r.min), max: text(r.max) };
    }),
  };
}

/** The newest successful backup of each kind, exporter style: "diff" is full or diff, "incr" any. */
export function lastBackups(s: BackupsSample): Partial<Record<'full' | 'diff' | 'incr', BackupEntry>> {
  const newest = (types: string[]) =>
    s.backups.filter((b) => types.includes(b.type)).reduce<BackupEntry | undefined>((best, b) => (best === undefined || b.stopTime > best.stopTime ? b : best), undefined);
  const full = newest(['full']);
  if (full === undefined) return {};
  return { full, diff: newest(['full', 'diff'])!, incr: newest(['full', 'diff', 'incr'])! };
}

export async function collectBackups(path: string | undefined, read: (p: string) => Promise<string> = (p) => readFile(p, 'utf8')): Promise<BackupsSample> {
  if (path === undefined) return { path: null, problem: null, ...EMPTY };
  let raw: string;
  try {
    raw = await read(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? `${path} does not exist yet: the backup service has not written its status (is it running? docker compose ps backup)`
        : `cannot read ${path} (${code ?? String(err)})`;
    return { path, problem: why, ...EMPTY };
  }
  try {
    return parseBackupStatus(path, raw);
  } catch (err) {
    return { path, problem: (err as Error).message, ...EMPTY };
  }
}
