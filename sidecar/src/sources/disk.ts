// The filesystem that holds Postgres's data directory, seen through a read-only mount of the same
// volume (SIDECAR_PGDATA_PATH): statfs() needs no permission on the directory's contents. A full
// disk leaves Postgres up and answering SELECTs while every write fails (or, in pg_wal, PANICs
// it): nothing else the sidecar reads would show it coming.
import { statfs } from 'node:fs/promises';

export interface DiskSample {
  /** The path watched, or null when SIDECAR_PGDATA_PATH is not set (then nothing is read). */
  path: string | null;
  sizeBytes: number;
  /** What an unprivileged process (Postgres) can still write: statfs's bavail. */
  availableBytes: number;
}

/** The fields of statfs(2) used, as Node returns them. */
export interface StatFs {
  bsize: number;
  blocks: number;
  bavail: number;
}

/** Pure: the figures from a statfs result. */
export function diskFigures(path: string, s: StatFs): DiskSample {
  if (!(s.bsize > 0) || !(s.blocks > 0)) throw new Error(`statfs(${path}) read no filesystem size (bsize ${s.bsize}, blocks ${s.blocks})`);
  return { path, sizeBytes: s.bsize * s.blocks, availableBytes: s.bsize * s.bavail };
}

/** Used space in percent of the size. */
export const usedPercent = (d: DiskSample): number => (d.sizeBytes > 0 ? ((d.sizeBytes - d.availableBytes) / d.sizeBytes) * 100 : 0);

export async function collectDisk(path: string | undefined, read: (p: string) => Promise<StatFs> = statfs): Promise<DiskSample> {
  if (path === undefined) return { path: null, sizeBytes: 0, availableBytes: 0 };
  return diskFigures(path, await read(path));
}
