// make bench's measuring pieces fail closed: the cgroup CPU reader (v1 and v2, against fixture
// trees), and the report program (three-way verdicts over pairs; a missing figure or a sampler
// that read nothing refuses the report).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const ID = 'a'.repeat(64);

function cpu(tree: Record<string, string>) {
  const root = mkdtempSync(join(tmpdir(), 'cg-'));
  for (const [path, content] of Object.entries(tree)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  const r = spawnSync('bash', ['-c', `set -euo pipefail; source "${ROOT}/scripts/bench-lib.sh"; cgroup_cpu_ns "$1"`, 'x', ID], { encoding: 'utf8', env: { ...process.env, BENCH_CGROUP_ROOT: root } });
  return { code: r.status, out: r.stdout.trim(), err: r.stderr };
}

describe('cgroup CPU reader', () => {
  it('reads cgroup v1 (cgroupfs and systemd layouts) in nanoseconds', () => {
    expect(cpu({ [`cpuacct/docker/${ID}/cpuacct.usage`]: '123456789\n' })).toMatchObject({ code: 0, out: '123456789' });
    expect(cpu({ [`cpu,cpuacct/system.slice/docker-${ID}.scope/cpuacct.usage`]: '42\n' })).toMatchObject({ code: 0, out: '42' });
  });

  it('reads cgroup v2 cpu.stat usage_usec as nanoseconds', () => {
    expect(cpu({ [`system.slice/docker-${ID}.scope/cpu.stat`]: 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n' })).toMatchObject({ code: 0, out: '1500000' });
    expect(cpu({ [`docker/${ID}/cpu.stat`]: 'usage_usec 7\n' })).toMatchObject({ code: 0, out: '7000' });
  });

  it('fails, naming what it tried, when nothing is readable or the file holds no number', () => {
    const none = cpu({ 'cpuacct/docker/other/cpuacct.usage': '1' });
    expect(none.code).toBe(1);
    expect(none.out).toBe('');
    expect(none.err).toMatch(/no readable CPU accounting for container a+ .*cgroup v1 cpuacct.usage and v2 cpu.stat/);
    expect(cpu({ [`cpuacct/docker/${ID}/cpuacct.usage`]: 'garbage' }).code).toBe(1);
    expect(cpu({ [`docker/${ID}/cpu.stat`]: 'user_usec 5\n' }).code).toBe(1);
  });
});

type Sample = Record<string, string | number>;
/** A complete set of samples, as scripts/bench.sh would emit them, with pooled/direct ratios per pair. */
function samples(opts: { pairs?: number; ratio?: (mode: string, c: number, pair: number) => number; drop?: (s: Sample) => Sample | undefined } = {}): Sample[] {
  const pairs = opts.pairs ?? 2;
  const ratio = opts.ratio ?? (() => 1);
  const out: Sample[] = [
    { kind: 'run', quick: 0, pairs, run_seconds: 20, scale: 100, scrapes: 1000, cold: 0, cores: 2, started: '2026-12-02T10:00:00Z' },
    { kind: 'up', phase: 'warm', seconds: 9.5 },
    { kind: 'settings', pgbouncer: 'pool_mode=transaction, default_pool_size=25, min_pool_size=5, reserve_pool_size=5', pgbouncer_target: '/var/run/postgresql', postgres: 'max_connections=100', sidecar: 'node dist/main.js', sidecar_poll_ms: 5000, pgbouncer_version: '1.24.1', postgres_version: '17.12' },
  ];
  // CPU per transaction: 0.1 ms of Postgres (+0.03 ms of PgBouncer pooled); with -C a new
  // connection adds 8 ms direct, 0.5 ms pooled; the client's SCRAM 5 ms per connection.
  const pg = (name: string, path: string, c: number, pair: number, tps: number, extra: Sample = {}): Sample => {
    const churn = name.startsWith('churn');
    const txs = Math.round(tps * 20);
    return {
    kind: 'pgbench', name, path, clients: c, pair, order: 'direct-first', tps, latency_ms: 1.5, failed: 0, txs, rc: 0,
    pg_cpu_ns: Math.round(txs * (0.1 + (churn ? (path === 'pooled' ? 0.3 : 8) : 0)) * 1e6), pgb_cpu_ns: path === 'pooled' ? Math.round(txs * (0.03 + (churn ? 0.2 : 0)) * 1e6) : 0,
    client_cpu_ms: Math.round(txs * (0.02 + (churn ? 5 : 0))),
    ...(path === 'pooled' ? { max_pool: 25, max_backends: 27, server_samples: 15 } : { max_pool: '', max_backends: '', server_samples: '' }), error: '', ...extra,
    };
  };
  for (const mode of ['select', 'tpcb', 'churn-select', 'churn-tpcb']) {
    for (const c of mode.startsWith('churn') ? [50] : [10, 25, 50, 90]) {
      for (let p = 1; p <= pairs; p += 1) {
        out.push(pg(`${mode}-direct-c${c}`, 'direct', c, p, 1000));
        out.push(pg(`${mode}-pooled-c${c}`, 'pooled', c, p, 1000 * ratio(mode, c, p)));
      }
    }
  }
  out.push(pg('over-pooled-c98', 'pooled', 98, 1, 9000), pg('over-pooled-c150', 'pooled', 150, 1, 9000, { rc: 2, error: 'FATAL:  no more connections allowed (max_client_conn)' }));
  out.push(pg('over-direct-c150', 'direct', 150, 1, 9000, { rc: 2, error: 'FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute' }));
  for (const target of ['sidecar', 'pgbouncer', 'postgres', 'redis', 'static']) {
    for (let rep = 1; rep <= pairs; rep += 1) out.push({ kind: 'scrape', target, phase: 'idle', rep, scrapes: 1000, p50_ms: 1, p99_ms: 4, series: target === 'static' ? '' : 200, cpu_ns: 5e8, peak_rss_mb: 90, anon_mb: 45, file_mb: 45, conns: '' });
    out.push({ kind: 'scrape', target, phase: 'load', rep: 1, scrapes: 1000, p50_ms: 2, p99_ms: target === 'sidecar' ? 10 : 50, series: target === 'static' ? '' : 200, cpu_ns: 5e8, peak_rss_mb: 95, anon_mb: 47, file_mb: 48, conns: '' });
  }
  out.push({ kind: 'autocannon', p50_ms: 1, p99_ms: 8, rps: 9000, errors: 0 }, { kind: 'rss_floor', bare_mb: 52, packages_mb: 84 });
  for (const [poll, ms] of [['default', 5000], ['1s', 1000]] as const) for (const backend of ['postgres', 'pgbouncer', 'redis']) out.push({ kind: 'detect', poll, poll_ms: ms, backend, down_ms: 800, up_ms: 700 });
  out.push({ kind: 'run', finished: '2026-12-02T10:50:00Z', seconds: 3000 });
  return opts.drop ? out.map(opts.drop).filter((s): s is Sample => s !== undefined) : out;
}

function report(list: Sample[]) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-'));
  const file = join(dir, 'samples.tsv');
  writeFileSync(file, list.map(({ kind, ...kv }) => [kind, ...Object.entries(kv).map(([k, v]) => `${k}=${v}`)].join('\t')).join('\n') + '\n');
  const out = join(dir, 'benchmarks.md');
  const r = spawnSync('node', [join(ROOT, 'scripts/bench-report.mjs'), '--samples', file, '--out', out], { encoding: 'utf8' });
  return { code: r.status, err: r.stderr, md: existsSync(out) ? readFileSync(out, 'utf8') : undefined };
}

describe('bench report', () => {
  it('decides three ways over the pairs: PASS when the worst meets the target, MISS when the best does not, else within noise', () => {
    const ratios: Record<string, [number, number]> = { 'select-25': [0.85, 0.95], 'select-50': [0.75, 0.85], 'select-90': [0.6, 0.7] };
    const r = report(samples({ ratio: (mode, c, p) => ratios[`${mode}-${c}`]?.[p - 1] ?? 1 }));
    expect(r.code, r.err).toBe(0);
    const row = (c: number) => r.md!.split('\n').find((l) => l.startsWith(`| select-only | ${c} |`))!;
    expect(row(25)).toMatch(/\| 0\.90 \(0\.85–0\.95\) \|.*≥ 0\.8: PASS \|$/);
    expect(row(50)).toMatch(/\| 0\.80 \(0\.75–0\.85\) \|.*≥ 0\.8: within noise \|$/);
    expect(row(90)).toMatch(/\| 0\.65 \(0\.60–0\.70\) \|.*≥ 0\.8: MISS \|$/);
    expect(row(10)).toMatch(/\| — \|$/); // no target below 25 clients
    // The floors are printed beside their targets.
    expect(r.md).toMatch(/floor: the static node:http server 4\.00 \(4\.00–4\.00\) ms/);
    expect(r.md).toMatch(/a bare `node` of this image peaks at 52\.0 MB, 84\.0 MB with the sidecar's packages/);
    // Churn: server CPU per new connection 0.5 / 8 ms = 0.06 (PASS); TPS 1× < 2.5 (MISS), beside its
    // floor: (8.1 + 5.02) / (0.63 + 5.02) = 2.32 with the client's SCRAM counted.
    expect(r.md).toMatch(/\| select-only \| .*\| 8\.00 \(8\.00–8\.00\) \/ 0\.50 \(0\.50–0\.50\) \| 0\.06 .*≤ 0\.1×: PASS; TPS ≥ 2\.5×: MISS \(floor 2\.32 /);
  });

  it('refuses, naming it, when a figure is missing: an empty autocannon line, a CPU reading, a pair, a detection', () => {
    const noAc = report(samples({ drop: (s) => (s.kind === 'autocannon' ? { kind: 'autocannon', p50_ms: '', p99_ms: '', rps: '', errors: '' } : s) }));
    expect(noAc.code).toBe(1);
    expect(noAc.md).toBeUndefined();
    expect(noAc.err).toMatch(/autocannon \/health: p99_ms is missing/);
    const noCpu = report(samples({ drop: (s) => (s.name === 'tpcb-pooled-c25' && s.pair === 2 ? { ...s, pg_cpu_ns: 0 } : s) }));
    expect(noCpu.err).toMatch(/pgbench tpcb-pooled-c25 pair 2: pg_cpu_ns is "0" \(must be > 0\)/);
    const noPair = report(samples({ drop: (s) => (s.name === 'select-direct-c50' && s.pair === 2 ? undefined : s) }));
    expect(noPair.err).toMatch(/select-c50: pair 2 is missing its direct run/);
    const noDetect = report(samples({ drop: (s) => (s.kind === 'detect' && s.backend === 'redis' && s.poll === '1s' ? { ...s, down_ms: '' } : s) }));
    expect(noDetect.err).toMatch(/detection 1s redis: down_ms is missing/);
  });

  it('refuses when the server-connection sampler read nothing during a pooled run', () => {
    const r = report(samples({ drop: (s) => (s.name === 'select-pooled-c90' && s.pair === 1 ? { ...s, server_samples: 0 } : s) }));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/select-pooled-c90 pair 1: the server-connection sampler read nothing/);
  });
});
