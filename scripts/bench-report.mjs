#!/usr/bin/env node
// Usage: node scripts/bench-report.mjs --samples RAW/samples.tsv --out docs/benchmarks.md
//
// Renders `make bench`'s report from its samples alone (scripts/bench.sh writes them, one
// "kind<TAB>key=value..." line per measurement; scripts/bench-lib.sh emit). Each configuration
// ran as several interleaved direct/pooled pairs (or repetitions): every target is decided three
// ways over them, PASS when the worst meets it, MISS when the best does not, otherwise "within
// noise", with the median and min-max printed. Where the machine sets a floor below a target
// (the client's own SCRAM cost, a static node:http server's latency, a bare node's RSS), the
// floor is printed beside it; targets never move. Fails closed: a figure that is missing, not a
// number, or a sampler that read nothing makes it refuse (exit 1, each cause named) and write
// nothing. Exit 2: usage.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

let opts;
try {
  opts = parseArgs({ options: { samples: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }).values;
} catch (err) {
  process.stderr.write(`bench-report: ${err.message}\n`);
  process.exit(2);
}
if (opts.help || !opts.samples || !opts.out) {
  process.stderr.write('usage: node scripts/bench-report.mjs --samples FILE --out FILE\n');
  process.exit(opts.help ? 0 : 2);
}
if (!existsSync(opts.samples)) {
  process.stderr.write(`bench-report: no samples at ${opts.samples}\n`);
  process.exit(1);
}

const samples = readFileSync(opts.samples, 'utf8').split('\n').filter(Boolean).map((line) => {
  const [kind, ...kv] = line.split('\t');
  return { kind, ...Object.fromEntries(kv.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)])) };
});
const problems = [];
const of = (kind, where = () => true) => samples.filter((s) => s.kind === kind && where(s));
/** A number from a sample, or a problem naming what is missing. */
function num(s, key, what, { positive = false } = {}) {
  const v = s?.[key];
  const n = v === undefined || v === '' ? NaN : Number(v);
  if (!Number.isFinite(n) || (positive && !(n > 0))) {
    problems.push(`${what}: ${key} is ${v === undefined || v === '' ? 'missing' : `"${v}"`}${positive ? ' (must be > 0)' : ''}`);
    return NaN;
  }
  return n;
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '?');
/** median (min–max) of a list */
const spread = (xs, d = 2) => (xs.length === 0 ? '?' : xs.length === 1 ? f(xs[0], d) : `${f(median(xs), d)} (${f(Math.min(...xs), d)}–${f(Math.max(...xs), d)})`);
/** PASS when the worst meets the target, MISS when the best does not, else within noise. */
function verdict(xs, target, dir, label = `a target ${dir} ${target}`) {
  if (xs.length === 0 || xs.some((x) => !Number.isFinite(x))) {
    problems.push(`${label}: no figure to decide on (${xs.length ? xs.map((x) => f(x)).join(', ') : 'none'})`);
    return 'MISS (no figure)';
  }
  const worst = dir === '>=' ? Math.min(...xs) : Math.max(...xs);
  const best = dir === '>=' ? Math.max(...xs) : Math.min(...xs);
  const meets = (x) => (dir === '>=' ? x >= target : x <= target);
  return meets(worst) ? 'PASS' : !meets(best) ? 'MISS' : 'within noise';
}
const target = (xs, t, dir, unit = '', label) => `${dir === '>=' ? '≥' : '≤'} ${t}${unit}: ${verdict(xs, t, dir, label)}`;

const run = of('run').reduce((a, s) => ({ ...a, ...s }), {});
const settings = of('settings')[0] ?? {};
for (const k of ['pgbouncer', 'postgres', 'sidecar', 'pgbouncer_version', 'postgres_version']) if (!settings[k]) problems.push(`settings: ${k} was not read from the stack`);
const pairsWanted = num(run, 'pairs', 'run', { positive: true });
const setting = (name) => Number(new RegExp(`(?:^|, )${name}=(\\d+)`).exec(settings.pgbouncer ?? '')?.[1]);
const serverCap = setting('default_pool_size') + setting('reserve_pool_size');
if (!Number.isFinite(serverCap)) problems.push('settings: default_pool_size / reserve_pool_size not found in the PgBouncer settings');

// pgbench runs, checked once each.
const runs = of('pgbench');
for (const r of runs) {
  const what = `pgbench ${r.name} pair ${r.pair}`;
  // The two 150-client runs are meant to be refused (section 3 checks their errors).
  if (r.name.endsWith('-c150')) continue;
  num(r, 'tps', what, { positive: true });
  num(r, 'latency_ms', what, { positive: true });
  if (!r.name.startsWith('over-')) {
    num(r, 'txs', what, { positive: true });
    num(r, 'pg_cpu_ns', what, { positive: true });
    num(r, 'client_cpu_ms', what, { positive: true });
    if (r.rc !== '0') problems.push(`${what}: pgbench exited ${r.rc}${r.error ? ` (${r.error})` : ''}`);
  }
  if (r.path === 'pooled' && !r.name.startsWith('over-')) {
    num(r, 'pgb_cpu_ns', what, { positive: true });
    if (!(Number(r.server_samples) > 0)) problems.push(`${what}: the server-connection sampler read nothing (server_samples ${r.server_samples || 0})`);
  }
}
const perTx = (r, pooled) => (Number(r.pg_cpu_ns) + (pooled ? Number(r.pgb_cpu_ns) : 0)) / Number(r.txs) / 1e6; // ms
const modeName = (m) => (m === 'select' ? 'select-only' : 'TPC-B-like');

const md = [];
md.push('# poolguard benchmarks', '');
md.push('<!-- Generated by scripts/bench.sh and scripts/bench-report.mjs (make bench) from docs/bench-raw/samples.tsv; do not edit by hand. -->', '');
md.push(`Run ${run.started ?? '?'}–${run.finished ?? '?'} (${f(Number(run.seconds) / 60, 1)} min) on ${run.cores ?? '?'} shared cores (pgbench, PgBouncer, Postgres, Redis and the sidecar all share them), dev stack as shipped: PgBouncer ${settings.pgbouncer_version ?? '?'}, Postgres ${settings.postgres_version ?? '?'}. ` +
  `Each configuration: ${run.pairs} interleaved direct/pooled pair${run.pairs === '1' ? '' : 's'} of ${run.run_seconds} s runs (which side goes first alternates; a CHECKPOINT before each pair), scale ${run.scale}. ` +
  'A verdict is PASS when the worst pair meets the target, MISS when the best does not, otherwise "within noise"; figures are medians with min–max.', '');
md.push('## Settings of this run', '', 'Read from the running services at the start of the run.', '');
md.push(`- PgBouncer: ${settings.pgbouncer}; server connections to Postgres over \`${settings.pgbouncer_target}\``);
md.push(`- Postgres: ${settings.postgres}`);
md.push(`- sidecar: \`${settings.sidecar}\`, poll interval ${settings.sidecar_poll_ms} ms`);
md.push(`- pgbench: scale ${run.scale}, ${run.run_seconds} s per run, 2 threads, simple query protocol, in a container on the compose network; ${run.scrapes} scrapes per /metrics measurement`, '');

// 1. Pooling overhead
md.push('## 1. Pooling overhead', '');
md.push('| mode | clients | direct TPS | pooled TPS | pooled/direct | direct latency ms | pooled latency ms | max server conns (pool / app backends) | target |');
md.push('|---|---|---|---|---|---|---|---|---|');
const ratiosBy = {};
for (const mode of ['select', 'tpcb']) {
  for (const c of [10, 25, 50, 90]) {
    const ps = pairsOfClients(mode, c);
    const ratios = ps.map((p) => Number(p.pooled.tps) / Number(p.direct.tps));
    ratiosBy[`${mode}-${c}`] = ratios;
    const t = c >= 25 ? target(ratios, mode === 'tpcb' ? 0.9 : 0.8, '>=', '', `${modeName(mode)} ${c} clients pooled/direct`) : '—';
    md.push(`| ${modeName(mode)} | ${c} | ${spread(ps.map((p) => Number(p.direct.tps)), 0)} | ${spread(ps.map((p) => Number(p.pooled.tps)), 0)} | ${spread(ratios)} | ${spread(ps.map((p) => Number(p.direct.latency_ms)), 3)} | ${spread(ps.map((p) => Number(p.pooled.latency_ms)), 3)} | ${Math.max(...ps.map((p) => Number(p.pooled.max_pool)))} / ${Math.max(...ps.map((p) => Number(p.pooled.max_backends)))} | ${t} |`);
  }
}
function pairsOfClients(mode, c) {
  const out = [];
  for (let i = 1; i <= (pairsWanted || 0); i += 1) {
    const direct = runs.find((r) => r.name === `${mode}-direct-c${c}` && r.pair === String(i));
    const pooled = runs.find((r) => r.name === `${mode}-pooled-c${c}` && r.pair === String(i));
    if (!direct || !pooled) problems.push(`${mode}-c${c}: pair ${i} is missing its ${!direct ? 'direct' : 'pooled'} run`);
    else out.push({ direct, pooled });
  }
  return out;
}
md.push('');

// 2. Churn
md.push('## 2. Connection churn (`-C`, 50 clients)', '');
md.push('Server CPU (Postgres, plus PgBouncer when pooled; cgroup accounting) per new connection: the CPU per `-C` transaction minus the same transaction\'s CPU without `-C` at 50 clients (section 1, the same pair number). The floor: every new connection also costs the client its SCRAM exchange (PBKDF2, 4096 iterations) on both paths; with the client\'s CPU counted, direct / pooled CPU per connection is the most a CPU-bound pooled/direct TPS ratio can reach on these shared cores.', '');
md.push('| mode | direct TPS | pooled TPS | pooled/direct TPS | server CPU per new connection, direct / pooled ms | CPU ratio | pgbench CPU per connection, direct / pooled ms | floor: TPS bound from CPU | target |');
md.push('|---|---|---|---|---|---|---|---|---|');
for (const mode of ['select', 'tpcb']) {
  const churn = pairsOfClients(`churn-${mode}`, 50);
  const plain = pairsOfClients(mode, 50);
  const rows = churn.map((p, i) => {
    const base = plain[i] ?? plain[0];
    const dConn = perTx(p.direct, false) - (base ? perTx(base.direct, false) : NaN);
    const pConn = perTx(p.pooled, true) - (base ? perTx(base.pooled, true) : NaN);
    const dClient = Number(p.direct.client_cpu_ms) / Number(p.direct.txs);
    const pClient = Number(p.pooled.client_cpu_ms) / Number(p.pooled.txs);
    return { tps: Number(p.pooled.tps) / Number(p.direct.tps), dTps: Number(p.direct.tps), pTps: Number(p.pooled.tps), dConn, pConn, cpu: pConn / dConn, dClient, pClient,
      bound: (perTx(p.direct, false) + dClient) / (perTx(p.pooled, true) + pClient) };
  });
  const col = (k, d = 2) => spread(rows.map((r) => r[k]), d);
  let t = target(rows.map((r) => r.cpu), 0.1, '<=', '×', `churn ${modeName(mode)} CPU ratio`);
  if (mode === 'select') t += `; TPS ${target(rows.map((r) => r.tps), 2.5, '>=', '×', 'churn select-only TPS ratio')} (floor ${col('bound')})`;
  md.push(`| ${modeName(mode)} | ${col('dTps', 0)} | ${col('pTps', 0)} | ${col('tps')} | ${col('dConn')} / ${col('pConn')} | ${col('cpu')} | ${col('dClient')} / ${col('pClient')} | ${col('bound')} | ${t} |`);
}
md.push('');

// 3. Over-subscription
md.push('## 3. Over-subscription', '');
md.push('| run | TPS | exit | failures / error |', '|---|---|---|---|');
const over = (n) => runs.find((r) => r.name === n);
for (const n of ['over-direct-c150', 'over-pooled-c98', 'over-pooled-c150']) {
  const r = over(n);
  if (!r) problems.push(`${n}: no run`);
  md.push(`| ${n} | ${r?.tps ?? '?'} | ${r?.rc ?? '?'} | ${r?.failed ?? '?'} failed transactions; ${r?.error ?? ''} |`);
}
const p98 = over('over-pooled-c98');
const p150 = over('over-pooled-c150');
const d150 = over('over-direct-c150');
if (p150 && !/max_client_conn/.test(p150.error ?? '')) problems.push(`over-pooled-c150: expected PgBouncer's max_client_conn refusal, got "${p150.error ?? ''}"`);
if (d150 && !/(too many clients|reserved for roles)/.test(d150.error ?? '')) problems.push(`over-direct-c150: expected Postgres's connection refusal, got "${d150.error ?? ''}"`);
md.push('', `0 failures up to max_client_conn minus the sidecar's 2 slots (98 clients): ${p98?.rc === '0' && p98?.failed === '0' ? 'PASS' : 'MISS'}.`, '');

// 4. Server connections used
const pooledRuns = runs.filter((r) => r.path === 'pooled' && !r.name.startsWith('over-'));
const maxPool = Math.max(...pooledRuns.map((r) => Number(r.max_pool)));
md.push('## 4. Server connections used', '');
md.push(`Largest app-pool server-connection count the sidecar reported during the ${pooledRuns.length} pooled runs (each sampled every second, ${pooledRuns.reduce((n, r) => n + Number(r.server_samples), 0)} samples in all): ${maxPool} (pool + reserve = ${serverCap}): ${verdict([maxPool], serverCap, '<=')}. The sidecar refreshes every poll interval, so short peaks can be missed.`, '');

// 5. The sidecar against the exporters
const scrapes = of('scrape');
const targets = ['sidecar', 'pgbouncer', 'postgres', 'redis', 'static'];
for (const s of scrapes) {
  const what = `scrape ${s.target} ${s.phase} ${s.rep}`;
  num(s, 'p50_ms', what, { positive: true });
  num(s, 'p99_ms', what, { positive: true });
  num(s, 'cpu_ns', what, { positive: true });
  num(s, 'peak_rss_mb', what, { positive: true });
  if (s.target !== 'static') num(s, 'series', what, { positive: true });
}
for (const t of targets) for (const phase of ['idle', 'load']) if (!scrapes.some((s) => s.target === t && s.phase === phase)) problems.push(`scrape ${t} ${phase}: no measurement`);
const sc = (t, phase) => scrapes.filter((s) => s.target === t && s.phase === phase);
const cpuPer = (s) => Number(s.cpu_ns) / Number(s.scrapes) / 1e6;
md.push('## 5. The sidecar against the exporters it replaces', '');
md.push(`Debian's prometheus-pgbouncer-exporter, prometheus-postgres-exporter and prometheus-redis-exporter (bench-only image, scripts/bench-exporters) and the sidecar, on the same stack. ${run.scrapes} sequential scrapes of each /metrics from a container on the compose network: idle, each target alone, repeated ${run.pairs}×; during a 50-client pooled select-only pgbench, in rounds that scrape every target once. CPU per scrape from the container's cgroup; peak RSS is VmHWM; the floor is a static node:http server answering a body of the sidecar's size.`, '');
md.push('| process | load | p50 ms | p99 ms | series | CPU ms / scrape | peak RSS MB | RSS anonymous / file-backed MB | connections held |', '|---|---|---|---|---|---|---|---|---|');
for (const t of targets) for (const phase of ['idle', 'load']) {
  const xs = sc(t, phase);
  const name = t === 'static' ? 'floor: static node:http server' : t === 'sidecar' ? 'sidecar' : `${t} exporter`;
  md.push(`| ${name} | ${phase} | ${spread(xs.map((s) => Number(s.p50_ms)))} | ${spread(xs.map((s) => Number(s.p99_ms)))} | ${xs[0]?.series || '—'} | ${spread(xs.map(cpuPer))} | ${spread(xs.map((s) => Number(s.peak_rss_mb)), 1)} | ${xs.at(-1)?.anon_mb ?? '?'} / ${xs.at(-1)?.file_mb ?? '?'} | ${xs[0]?.conns || '—'} |`);
}
const ac = of('autocannon')[0];
for (const k of ['p50_ms', 'p99_ms', 'rps']) num(ac, k, 'autocannon /health', { positive: k !== 'p50_ms' });
num(ac, 'errors', 'autocannon /health');
const floorRss = of('rss_floor')[0];
num(floorRss, 'bare_mb', 'RSS floor', { positive: true });
num(floorRss, 'packages_mb', 'RSS floor', { positive: true });
const bestLoad = Math.min(...['pgbouncer', 'postgres', 'redis'].map((t) => median(sc(t, 'load').map((s) => Number(s.p99_ms)))));
md.push('');
md.push(`- sidecar /metrics p99 idle ${target(sc('sidecar', 'idle').map((s) => Number(s.p99_ms)), 5, '<=', ' ms')}: ${spread(sc('sidecar', 'idle').map((s) => Number(s.p99_ms)))} ms (floor: the static node:http server ${spread(sc('static', 'idle').map((s) => Number(s.p99_ms)))} ms the same way)`);
md.push(`- sidecar /metrics p99 under load ≤ ½ of the best exporter's (${f(bestLoad)} ms): ${spread(sc('sidecar', 'load').map((s) => Number(s.p99_ms)))} ms: ${verdict(sc('sidecar', 'load').map((s) => Number(s.p99_ms)), bestLoad / 2, '<=')}`);
md.push(`- sidecar CPU per scrape ${target(scrapes.filter((s) => s.target === 'sidecar').map(cpuPer), 4, '<=', ' ms')}: ${spread(scrapes.filter((s) => s.target === 'sidecar').map(cpuPer))} ms`);
md.push(`- sidecar peak RSS ${target(scrapes.filter((s) => s.target === 'sidecar').map((s) => Number(s.peak_rss_mb)), 57, '<=', ' MB')}: ${spread(scrapes.filter((s) => s.target === 'sidecar').map((s) => Number(s.peak_rss_mb)), 1)} MB (floor: a bare \`node\` of this image peaks at ${f(Number(floorRss?.bare_mb), 1)} MB, ${f(Number(floorRss?.packages_mb), 1)} MB with the sidecar's packages imported and none of its code running)`);
md.push(`- sidecar /health under 20 concurrent connections (autocannon): p50 ${ac?.p50_ms ?? '?'} ms, p99 ${ac?.p99_ms ?? '?'} ms, ${ac?.rps ?? '?'} requests/s, ${ac?.errors ?? '?'} errors or answers other than 200 (every one must be 200: /health was healthy throughout): ${Number(ac?.errors) === 0 ? 'PASS' : 'MISS'}`, '');

// 6. Detection
md.push('## 6. Detection latency', '');
md.push('Time from `docker compose stop <backend>` (its stop included) until `/health` reports it down, and from the restarted backend answering until `/health` is 200 again. Target: ≤ poll interval + 1 s.', '');
md.push('| backend | poll | down seen after ms | healthy again after ms | target |', '|---|---|---|---|---|');
for (const d of of('detect')) {
  const down = num(d, 'down_ms', `detection ${d.poll} ${d.backend}`);
  const up = num(d, 'up_ms', `detection ${d.poll} ${d.backend}`);
  const limit = Number(d.poll_ms) + 1000;
  md.push(`| ${d.backend} | ${d.poll_ms} ms | ${down} | ${up} | ≤ ${limit} ms: down ${verdict([down], limit, '<=')}, up ${verdict([up], limit, '<=')} |`);
}
if (of('detect').length !== 6) problems.push(`detection: ${of('detect').length} of 6 measurements`);
md.push('');

// 7. Start-up
md.push('## 7. Start-up', '');
const warm = of('up', (s) => s.phase === 'warm')[0];
md.push(`\`make up\` warm (images built, stack down): ${warm?.seconds ?? '?'} s: ${target([num(warm, 'seconds', 'make up warm', { positive: true })], 60, '<=', ' s')}.`, '');
if (run.cold === '1') {
  const cold = of('up', (s) => s.phase === 'cold')[0];
  md.push(`\`make up\` cold (no poolguard dev image, build cache pruned; debian:trixie-slim present): ${f(num(cold, 'seconds', 'make up cold', { positive: true }), 1)} s.`, '');
} else md.push('`make up` cold: not measured in this run (BENCH_COLD=0).', '');

if (problems.length > 0) {
  process.stderr.write(`bench-report: refusing to write ${opts.out}: ${problems.length} figure(s) missing or unreadable:\n${[...new Set(problems)].map((p) => `  - ${p}`).join('\n')}\n`);
  process.exit(1);
}
writeFileSync(opts.out, md.join('\n'));
process.stderr.write(`bench-report: wrote ${opts.out} from ${samples.length} samples\n`);
