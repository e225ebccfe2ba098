// poolguard HTTP abuse client: a flood of concurrent requests or a slowloris against the sidecar,
// from a container on the stack's network (node's own http and net, no packages). Bounded: stops
// at DURATION_MS. Prints one JSON summary line.
// Environment: TARGET_HOST [sidecar] TARGET_PORT [8787] MODE flood | slowloris
//   flood:     REQUESTS [10000] GET /health all at once, each on its own connection; counts
//              the answers by status and the failures by error code
//   slowloris: SOCKETS [1000] connections that each send a request head one header line every
//              DRIP_MS [1000] and never finish it; counts how many the server closed and after
//              how long (the longest any socket lived)
import http from 'node:http';
import net from 'node:net';

const env = process.env;
const host = env.TARGET_HOST ?? 'sidecar';
const port = Number(env.TARGET_PORT ?? 8787);
const mode = env.MODE;
const durationMs = Math.min(120_000, Number(env.DURATION_MS ?? 30_000));
const t0 = Date.now();

async function flood() {
  const n = Math.min(20_000, Number(env.REQUESTS ?? 10_000));
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const statuses = {};
  const errors = {};
  let slowestMs = 0;
  await Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
    const started = Date.now();
    const done = () => { slowestMs = Math.max(slowestMs, Date.now() - started); resolve(); };
    const req = http.get({ host, port, path: '/health', agent, timeout: durationMs }, (res) => {
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      res.resume();
      res.on('end', done);
      res.on('error', done);
    });
    req.on('timeout', () => req.destroy(new Error('ETIMEDOUT')));
    req.on('error', (err) => { errors[err.code ?? err.message] = (errors[err.code ?? err.message] ?? 0) + 1; done(); });
  })));
  return { mode, requests: n, statuses, errors, slowestMs, durationMs: Date.now() - t0 };
}

async function slowloris() {
  const n = Math.min(5000, Number(env.SOCKETS ?? 1000));
  const dripMs = Number(env.DRIP_MS ?? 1000);
  let connected = 0;
  let refused = 0;
  let closedByServer = 0;
  let longestLivedMs = 0;
  const sockets = [];
  await Promise.all(Array.from({ length: n }, (_, i) => new Promise((resolve) => {
    const s = net.connect(port, host);
    let opened = 0;
    let timer;
    s.on('connect', () => {
      connected += 1;
      opened = Date.now();
      s.write(`GET /health HTTP/1.1\r\nHost: ${host}\r\n`);
      timer = setInterval(() => s.write(`X-Drip-${i}: ${Date.now()}\r\n`), dripMs);
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearInterval(timer);
      if (opened === 0) refused += 1;
      else if (Date.now() < t0 + durationMs) {
        closedByServer += 1;
        longestLivedMs = Math.max(longestLivedMs, Date.now() - opened);
      }
      resolve();
    });
    sockets.push(s);
  })).concat(new Promise((r) => setTimeout(r, durationMs)).then(() => {
    for (const s of sockets) s.destroy();
  })));
  return { mode, sockets: n, connected, refused, closedByServer, stillOpenAtEnd: connected - closedByServer, longestLivedMs, durationMs: Date.now() - t0 };
}

const summary = mode === 'flood' ? await flood() : mode === 'slowloris' ? await slowloris() : null;
if (!summary) throw new Error(`MODE must be flood or slowloris, got ${mode}`);
process.stdout.write(JSON.stringify(summary) + '\n');
process.exit(0);
