// The only module that touches the process: reads env, handles signals, listens. `main.js plan`
// prints the connection budget of rendered settings (PLAN_*: scripts/plan.sh) and exits instead.
import closeWithGrace from 'close-with-grace';
import { HTTP_LIMITS, LISTEN_BACKLOG, buildApp } from './app.js';
import { ConfigError, loadConfig, loadPlanSettings } from './config.js';
import { createLogger } from './log.js';
import { cachedRender } from './metrics.js';
import { createMonitor } from './monitor.js';
import { loadPage } from './page.js';
import { poolScope } from './pools.js';
import type { Config } from './types.js';
import { plan, planInputFromSettings } from './views/plan.js';

/** `main.js plan`: one block per line of the budget; exit 1 when a line fails, 2 for bad settings. */
function planCommand(): never {
  try {
    const body = plan(planInputFromSettings(loadPlanSettings(process.env)));
    for (const l of body.lines) process.stdout.write(`${l.status.padEnd(4)}  ${l.name}\n      ${l.figures}\n      ${l.advice}\n`);
    process.stdout.write(`${body.status}\n`);
    process.exit(body.status === 'FAIL' ? 1 : 0);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`poolguard plan: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`poolguard-sidecar: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const monitor = createMonitor(config, logger);

  let shuttingDown = false;
  const app = await buildApp({
    logger,
    snapshot: () => monitor.poller.snapshot,
    alerts: () => monitor.engine.firing(),
    metrics: { contentType: monitor.registry.contentType, render: cachedRender(monitor.registry, () => monitor.poller.snapshot) },
    redisStatus: () => monitor.clients.redis.status,
    isShuttingDown: () => shuttingDown,
    pools: poolScope(config),
    pollIntervalMs: config.pollIntervalMs,
    replicaLaggingSeconds: monitor.replicaLaggingSeconds,
    statementHistory: monitor.statementHistory,
    history: monitor.history,
    page: loadPage(),
    token: config.token,
    limits: { ...HTTP_LIMITS, ...config.http },
  });

  // close-with-grace: the first signal closes gracefully within the grace period; a second
  // signal, or the grace running out, exits 1.
  closeWithGrace({ delay: config.shutdownGraceMs, logger }, async ({ signal, err }) => {
    shuttingDown = true;
    if (err) logger.error({ err }, 'fatal error, shutting down');
    else logger.info({ signal }, 'shutting down');
    await app.close(); // stops accepting, lets in-flight requests finish
    await monitor.stop(); // stops polling, waits for a poll in flight, closes the clients
    logger.info('shutdown complete');
  });

  await monitor.start(); // the first poll finishes before the server listens
  if (shuttingDown) return; // a signal arrived during the first poll: close-with-grace exits
  const s = monitor.poller.snapshot.sources;
  const replicas = Object.fromEntries(Object.entries(monitor.poller.snapshot.instances.postgres).slice(1).map(([name, st]) => [name, st.up]));
  logger.info({ pgbouncer: s.pgbouncer.up, probe: s.probe.up, postgres: s.postgres.up, redis: s.redis.up, ...(config.postgresReplicas.length > 0 ? { replicas } : {}), bearerAuth: config.token !== undefined }, 'first poll done');
  // A long accept queue: a burst of new connections (a flood) must not overflow it, or the
  // kernel drops other clients' SYNs too and they wait a 1 s retransmission.
  await app.listen({ host: config.host, port: config.port, backlog: LISTEN_BACKLOG });
}

if (process.argv[2] === 'plan') planCommand();

main().catch((err: unknown) => {
  process.stderr.write(`poolguard-sidecar: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
