import type { Snapshot } from './poller.js';
import type { BackupsSample } from './sources/backups.js';
import type { DiskSample } from './sources/disk.js';
import type { PgBouncerSample } from './sources/pgbouncer.js';
import type { PostgresSample } from './sources/postgres.js';
import type { ProbeSample } from './sources/probe.js';
import type { RedisSample } from './sources/redis.js';

/** What each source contributes to a poll. */
export type StackSamples = {
  pgbouncer: PgBouncerSample;
  probe: ProbeSample;
  postgres: PostgresSample;
  redis: RedisSample;
  /** The filesystem of Postgres's data directory (SIDECAR_PGDATA_PATH). */
  disk: DiskSample;
  /** The backup service's status file (SIDECAR_BACKUP_STATUS_PATH); never fails a poll. */
  backups: BackupsSample;
};

export type StackSnapshot = Snapshot<StackSamples>;

/** When the snapshot was taken (its last poll), seconds since the epoch; now before the first poll. */
export const pollSeconds = (snap: StackSnapshot): number => (snap.lastPollAt === null ? Date.now() : Date.parse(snap.lastPollAt)) / 1000;
