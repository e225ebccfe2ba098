#!/usr/bin/env node
// Usage: node scripts/sidecar-latency.mjs BASE_URL [COUNT] [PATH...]
//   e.g. node scripts/sidecar-latency.mjs http://127.0.0.1:8787 1000 /health /metrics
// Sends COUNT sequential GETs to each PATH (loopback or compose network only) and prints
// p50/p90/p99/max latency in ms. SIDECAR_TOKEN in the environment is sent as a bearer token.
// Bounded: COUNT is capped at 100000; exits 1 if any request fails.
const [base, countArg = '1000', ...paths] = process.argv.slice(2);
if (!base) {
  console.error('usage: node scripts/sidecar-latency.mjs BASE_URL [COUNT] [PATH...]');
  process.exit(2);
}
const count = Math.min(100_000, Math.max(1, Number(countArg) || 1000));
const headers = process.env.SIDECAR_TOKEN ? { authorization: `Bearer ${process.env.SIDECAR_TOKEN}` } : {};
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
let failed = 0;
for (const path of paths.length ? paths : ['/health', '/metrics']) {
  const times = [];
  for (let i = 0; i < 20; i += 1) await fetch(base + path, { headers }).then((r) => r.arrayBuffer()); // warm-up
  for (let i = 0; i < count; i += 1) {
    const t0 = performance.now();
    const res = await fetch(base + path, { headers });
    await res.arrayBuffer();
    times.push(performance.now() - t0);
    if (res.status >= 500 && path !== '/health') failed += 1;
  }
  times.sort((a, b) => a - b);
  const f = (v) => v.toFixed(2);
  console.log(`${path}: n=${count} p50=${f(pct(times, 50))} ms p90=${f(pct(times, 90))} ms p99=${f(pct(times, 99))} ms max=${f(times.at(-1))} ms`);
}
process.exit(failed > 0 ? 1 : 0);
