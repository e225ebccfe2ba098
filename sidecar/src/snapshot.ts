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

/** One polled source: a kind's instance. id is the kind for its first instance, else the instance name. */
export interface PolledSource {
  id: string;
  kind: keyof StackSamples;
  instance: string;
  /** The kind's first instance (snap.sources[kind]); for postgres, the primary. */
  first: boolean;
  state: StackSnapshot['sources'][keyof StackSamples];
}

/** Every polled source of every kind, first instances first within a kind (the poller's order). */
export function polledSources(snap: StackSnapshot): PolledSource[] {
  return (Object.keys(snap.instances) as (keyof StackSamples)[]).flatMap((kind) =>
    Object.entries(snap.instances[kind]).map(([instance, state], i): PolledSource => ({ id: i === 0 ? kind : instance, kind, instance, first: i === 0, state })),
  );
}

export interface PostgresInstance {
  /** Its name: the host of its URL (SIDECAR_POSTGRES_URL's for the primary). */
  instance: string;
  /** SIDECAR_POSTGRES_URL's server; the others are SIDECAR_POSTGRES_REPLICA_URLS'. */
  primary: boolean;
  state: StackSnapshot['sources']['postgres'];
}

/** Every instance of the Postgres kind, the configured primary first. */
export function postgresInstances(snap: StackSnapshot): PostgresInstance[] {
  return Object.entries(snap.instances.postgres).map(([instance, state], i) => ({ instance, primary: i === 0, state }));
}
