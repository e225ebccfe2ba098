#!/usr/bin/env node
// Usage: node scripts/sidecar-latency.mjs BASE_URL[,BASE_URL...] [COUNT] [PATH...]
//   e.g. node scripts/sidecar-latency.mjs http://127.0.0.1:8787 1000 /health /metrics
//        node scripts/sidecar-latency.mjs http://sidecar:8787,http://exporter:9127 1000 /metrics
// Sends COUNT sequential GETs to each PATH of each BASE_URL (loopback or compose network only)
// and prints p50/p90/p99/max latency in ms, one line per URL ("URL: n=... p50=..."). With several base URLs the
// requests go round-robin (one to each, then the next round), so every target is measured
// under the same conditions on a busy machine. SIDECAR_TOKEN in the environment is sent as a
// bearer token. Bounded: COUNT is capped at 100000; exits 1 if any request fails.
const [baseArg, countArg = '1000', ...paths] = process.argv.slice(2);
if (!baseArg) {
  console.error('usage: node scripts/sidecar-latency.mjs BASE_URL[,BASE_URL...] [COUNT] [PATH...]');
  process.exit(2);
}
const bases = baseArg.split(',').filter(Boolean);
const count = Math.min(100_000, Math.max(1, Number(countArg) || 1000));
const headers = process.env.SIDECAR_TOKEN ? { authorization: `Bearer ${process.env.SIDECAR_TOKEN}` } : {};
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
let failed = 0;
for (const path of paths.length ? paths : ['/health', '/metrics']) {
  const urls = bases.map((b) => b + path);
  const times = urls.map(() => []);
  for (let i = 0; i < 20; i += 1) for (const u of urls) await fetch(u, { headers }).then((r) => r.arrayBuffer()); // warm-up
  for (let i = 0; i < count; i += 1) {
    for (let k = 0; k < urls.length; k += 1) {
      const t0 = performance.now();
      const res = await fetch(urls[k], { headers });
      await res.arrayBuffer();
      times[k].push(performance.now() - t0);
      if (res.status >= 500 && path !== '/health') failed += 1;
    }
  }
  const f = (v) => v.toFixed(2);
  urls.forEach((u, k) => {
    const t = times[k].sort((a, b) => a - b);
    console.log(`${u}: n=${count} p50=${f(pct(t, 50))} ms p90=${f(pct(t, 90))} ms p99=${f(pct(t, 99))} ms max=${f(t.at(-1))} ms`);
  });
}
process.exit(failed > 0 ? 1 : 0);
