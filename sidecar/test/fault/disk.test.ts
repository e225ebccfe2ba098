// Disk full, on the prod file: Postgres's data directory on a small ext4 filesystem of its own (a
// loop device), filled to ENOSPC under load, then freed. What really happens is recorded; the
// test asserts that nothing acknowledged is lost, the bank invariant holds, the sidecar raises an
// alert, and the stack recovers once space is freed with no manual step.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, Stack, image, run, sleep } from '../e2e/stack.js';
import { bankText, checkBank, errorsText, lostInserts, record, recordSettings, seedBank, startLoad, waitUntil } from './harness.js';

const SIDECAR_PORT = 38789;
const PROJECT = 'poolguard-test-disk';
const VOLUME = `${PROJECT}_pgdata`;
const work = mkdtempSync(join(tmpdir(), 'poolguard-test-disk-'));
const imageFile = join(work, 'pgdata.img');
let loopDevice = '';
let stack: Stack;
let token = '';

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim();
}

beforeAll(async () => {
  // No loop devices (some containers, some CI hosts): say so and fail, never pass silently.
  const probe = await run('losetup', ['--find']);
  if (probe.code !== 0) throw new Error(`loop devices are unavailable on this machine (losetup --find: ${probe.stderr.trim() || probe.stdout.trim()}): the disk-full test needs one to give Postgres a small filesystem of its own`);
  await run('docker', ['volume', 'rm', '-f', VOLUME]);
  await must('truncate', ['-s', '400M', imageFile]);
  loopDevice = await must('losetup', ['--find', '--show', imageFile]);
  await must('mkfs.ext4', ['-q', '-m', '0', loopDevice]);
  // An empty root owned by postgres (10004), as initdb wants it.
  const mnt = join(work, 'mnt');
  await must('mkdir', ['-p', mnt]);
  await must('mount', [loopDevice, mnt]);
  try {
    await must('rmdir', [join(mnt, 'lost+found')]);
    await must('chown', ['10004:10004', mnt]);
    await must('chmod', ['0700', mnt]);
  } finally {
    await must('umount', [mnt]);
  }
  await must('docker', ['volume', 'create', '--driver', 'local', '--opt', 'type=ext4', '--opt', `device=${loopDevice}`, VOLUME]);
  const secretsDir = join(work, 'secrets');
  expect((await run(join(ROOT, 'scripts/gen-secrets.sh'), [secretsDir])).code).toBe(0);
  token = (await must('cat', [join(secretsDir, 'sidecar_token')]));
  stack = Stack.prod(PROJECT, { PUBLISH_SIDECAR_PORT: String(SIDECAR_PORT) }, secretsDir);
  await stack.up();
  await recordSettings(stack);
});

afterAll(async () => {
  await stack?.down(true).catch(() => undefined);
  await run('docker', ['volume', 'rm', '-f', VOLUME]);
  if (loopDevice) await run('losetup', ['-d', loopDevice]);
  rmSync(work, { recursive: true, force: true });
});

async function authed(path: string): Promise<{ status: number; body: any } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${SIDECAR_PORT}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: await res.json() };
  } catch {
    return undefined;
  }
}

describe('disk full (prod file)', () => {
  it("Postgres's filesystem filled to ENOSPC under load: 0 acknowledged lost, the bank invariant holds, the sidecar alerts, the stack recovers by itself once space is freed", async () => {
    const writer = 'disk-full';
    await seedBank(stack, writer);
    const pgId = (await stack.containers()).find((c) => c.service === 'postgres')!.id;
    const before = await stack.inspect(pgId);
    const load = await startLoad(stack, { clients: 20, bank: 5, durationMs: 120_000, writer, idBase: 15e12, secretsDir: stack.extraEnv.POOLGUARD_SECRETS_DIR!, queryTimeoutMs: 10_000 });
    await sleep(5000);
    const fillAt = Date.now();
    const fill = await stack.exec('postgres', ['sh', '-c', 'dd if=/dev/zero of=/var/lib/postgresql/data/poolguard-fill bs=1M 2>&1; df -k /var/lib/postgresql/data | tail -1']);
    expect(fill.stdout, 'dd ran into ENOSPC').toMatch(/No space left on device/);
    const fillS = (fillAt - load.startedAt) / 1000;
    // A full disk first fails the writes that extend a table ("could not extend file": an ERROR
    // for that transaction). WAL keeps going into the segments already there (recycled ahead of
    // time), so make it need new ones: each pg_switch_wal() moves to the next segment, and once no
    // file is left to recycle, creating one fails inside a critical section: PANIC.
    const wal = await stack.exec('postgres', ['sh', '-c', `for i in $(seq 80); do psql -X -qAt -h /var/run/postgresql -U postgres -d ${stack.env.APP_DB ?? 'app'} -c "SELECT pg_logical_emit_message(false, 'poolguard-disk-test', repeat('x', 100))" -c "SELECT pg_switch_wal()" >/dev/null 2>&1 || { echo "stopped after $i switches"; exit 0; }; done; echo "80 switches"`]);
    const walSwitches = wal.stdout.trim();
    // Watch for 40 s: alerts, /health, restarts.
    const alerts = new Map<string, number>();
    let sawDown: number | undefined;
    let downError = '';
    const watchUntil = Date.now() + 40_000;
    while (Date.now() < watchUntil) {
      const a = await authed('/alerts');
      for (const item of (a?.body.items ?? []) as { name: string; severity: string }[]) if (!alerts.has(`${item.name} (${item.severity})`)) alerts.set(`${item.name} (${item.severity})`, Date.now() - fillAt);
      const h = await authed('/health');
      if (h && h.status !== 200 && sawDown === undefined) {
        sawDown = Date.now() - fillAt;
        downError = String(h.body.postgres.lastError ?? h.body.database.lastError ?? '');
      }
      await sleep(500);
    }
    const full = await stack.inspect(pgId);
    // Free the space from a helper container on the same volume: it works whether Postgres is up or not.
    const freedAt = Date.now();
    expect((await run('docker', ['run', '--rm', '-v', `${VOLUME}:/data`, '--user', '10004', '--entrypoint', 'rm', image('postgres'), '-f', '/data/poolguard-fill'])).code).toBe(0);
    const recoverMs = await waitUntil('the stack healthy again once space is freed', async () => (await authed('/health'))?.status === 200, 120_000, 200);
    const { summary, ackedIds, transferIds } = await load.result();
    const lost = await lostInserts(stack, writer, ackedIds);
    const bank = await checkBank(stack, writer, transferIds);
    const after = await stack.inspect(pgId);
    const logs = (await run('docker', ['logs', '--since', new Date(fillAt - 1000).toISOString(), pgId])).stderr;
    const panics = (logs.match(/PANIC:/g) ?? []).length;
    const enospc = [...new Set((logs.match(/(ERROR|PANIC|FATAL):\s+could not [^"\n]*/g) ?? []).map((l) => l.replace(/\s+/g, ' ')))].slice(0, 3);
    const freedS = (freedAt - load.startedAt) / 1000;
    const commitsAfter = summary.timeline.filter((t) => t.s > freedS + recoverMs / 1000).reduce((n, t) => n + t.acked, 0);
    record({
      scenario: '15. disk full (prod file)',
      load: `${summary.clients} inserting + ${summary.bankClients} bank clients through PgBouncer (TLS, query_timeout 10 s), 120 s`,
      injected: `Postgres data on a 400 MB ext4 loop device; dd filled it to ENOSPC at ${fillS.toFixed(1)} s, then pg_switch_wal() until a new WAL segment was needed (${walSwitches}); the filler removed 40 s after the fill`,
      figures: `Postgres said: ${enospc.map((l) => `"${l.slice(0, 90)}"`).join(', ') || 'nothing'}; ${panics} PANIC lines; container restarts ${before.RestartCount ?? 0} -> ${full.RestartCount} while full, ${after.RestartCount} at the end; ` +
        `sidecar: /health not 200 after ${sawDown === undefined ? 'never' : `${(sawDown / 1000).toFixed(1)} s ("${downError.slice(0, 80)}")`}, alerts ${[...alerts].map(([k, v]) => `${k} after ${(v / 1000).toFixed(1)} s`).join(', ') || 'none'}; ` +
        `healthy ${(recoverMs / 1000).toFixed(1)} s after space was freed, ${commitsAfter} commits after that; inserts acknowledged ${summary.acked}, lost ${lost}; ${bankText(bank)}; client errors: ${errorsText(summary.errors)}`,
    });
    expect(lost).toBe(0);
    expect(bank, bankText(bank)).toMatchObject({ lost: 0, mismatched: 0, held: true });
    expect(panics, 'ENOSPC in pg_wal: Postgres PANICs').toBeGreaterThan(0);
    expect(walSwitches).toMatch(/^stopped after \d+ switches$/);
    expect([...alerts.keys()]).toEqual(expect.arrayContaining(['postgres_disk_usage (CRITICAL)']));
    expect(sawDown, 'the sidecar reports Postgres down while it cannot start').toBeDefined();
    expect(commitsAfter, 'writes resume without a manual step').toBeGreaterThan(0);
    expect(after.State.Status).toBe('running');
  });
});
