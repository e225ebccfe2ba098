// The data-directory filesystem source: figures from statfs, the alert rule and the metric rows.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { AlertEngine } from '../../src/alerts/engine.js';
import { DEFAULT_RULES } from '../../src/alerts/rules.js';
import { FAMILIES } from '../../src/metrics.js';
import { collectDisk, diskFigures, usedPercent, type DiskSample } from '../../src/sources/disk.js';
import { POOLS, snapshot, state } from '../fixtures/snapshot.js';

const at = (availableBytes: number, sizeBytes = 1000 * 2 ** 20) => snapshot({ disk: state<DiskSample>({ path: '/var/lib/postgresql/data', sizeBytes, availableBytes }) });

describe('disk source', () => {
  it('figures from statfs: size and what an unprivileged writer has left (bavail, not bfree)', () => {
    expect(diskFigures('/d', { bsize: 4096, blocks: 1000, bavail: 250 })).toEqual({ path: '/d', sizeBytes: 4096 * 1000, availableBytes: 4096 * 250 });
    expect(usedPercent({ path: '/d', sizeBytes: 1000, availableBytes: 250 })).toBe(75);
    expect(() => diskFigures('/d', { bsize: 0, blocks: 0, bavail: 0 })).toThrow(/read no filesystem size/);
  });

  it('reads a real filesystem; without a path it reads nothing and reports no path', async () => {
    const real = await collectDisk(mkdtempSync(`${tmpdir()}/poolguard-disk-`));
    expect(real.sizeBytes).toBeGreaterThan(0);
    expect(real.availableBytes).toBeGreaterThan(0);
    expect(real.availableBytes).toBeLessThanOrEqual(real.sizeBytes);
    expect(await collectDisk(undefined, async () => { throw new Error('must not be called'); })).toEqual({ path: null, sizeBytes: 0, availableBytes: 0 });
    await expect(collectDisk('/no/such/path')).rejects.toThrow(/ENOENT/);
  });

  it('postgres_disk_usage: WARNING at 80 % used, CRITICAL at 90 %, naming the path and what is left', () => {
    const engine = new AlertEngine(DEFAULT_RULES.filter((r) => r.name === 'postgres_disk_usage'), { defaultForMs: 0, resolveForMs: 0, hysteresis: 0.05, context: { pools: POOLS } });
    expect(engine.evaluate(at(300 * 2 ** 20), 0)).toEqual([]);
    engine.evaluate(at(150 * 2 ** 20), 1000);
    expect(engine.firing().map((a) => [a.name, a.severity])).toEqual([['postgres_disk_usage', 'WARNING']]);
    engine.evaluate(at(50 * 2 ** 20), 2000);
    const [alert] = engine.firing();
    expect(alert?.severity).toBe('CRITICAL');
    expect(alert?.summary).toBe("Postgres's data filesystem (/var/lib/postgresql/data) is 95% full: 50 MiB left of 1000 MiB");
    expect(alert?.labels).toEqual({ path: '/var/lib/postgresql/data' });
  });

  it('the metric rows: size and available bytes with the path; none when not watched', () => {
    const rows = (name: string, snap = at(400 * 2 ** 20)) => FAMILIES.find((f) => f.name === name)!.samples(snap, new AlertEngine([], { defaultForMs: 0, resolveForMs: 0, hysteresis: 0, context: { pools: POOLS } }), POOLS);
    expect(rows('poolguard_pgdata_filesystem_size_bytes')).toEqual([[{ path: '/var/lib/postgresql/data' }, 1000 * 2 ** 20]]);
    expect(rows('poolguard_pgdata_filesystem_avail_bytes')).toEqual([[{ path: '/var/lib/postgresql/data' }, 400 * 2 ** 20]]);
    const unwatched = snapshot({ disk: state<DiskSample>({ path: null, sizeBytes: 0, availableBytes: 0 }) });
    expect(rows('poolguard_pgdata_filesystem_avail_bytes', unwatched)).toEqual([]);
  });
});
