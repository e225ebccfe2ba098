// The only module that touches the process: reads env, handles signals, listens.
import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { createClients, createSources } from './clients.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './log.js';
import { Poller } from './poller.js';
import type { StackSamples } from './snapshot.js';

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
  const clients = createClients(config, logger);
  const poller = new Poller<StackSamples>(createSources(clients, config.sourceTimeoutMs), {
    intervalMs: config.pollIntervalMs,
    timeoutMs: config.sourceTimeoutMs,
    onSourceError: (source, err, first) => {
      if (first) logger.warn({ source, err }, 'source down');
    },
    onSourceRecovered: (source) => logger.info({ source }, 'source up'),
  });

  let shuttingDown = false;
  const app = await buildApp({
    logger,
    snapshot: () => poller.snapshot,
    redisStatus: () => clients.redis.status,
    isShuttingDown: () => shuttingDown,
    pollIntervalMs: config.pollIntervalMs,
  });

  // close-with-grace: first signal closes gracefully within the grace; a second one, or the
  // grace running out, exits 1.
  closeWithGrace({ delay: config.shutdownGraceMs, logger }, async ({ signal, err }) => {
    shuttingDown = true;
    if (err) logger.error({ err }, 'fatal error, shutting down');
    else logger.info({ signal }, 'shutting down');
    await poller.stop();
    await app.close();
    await clients.close();
    logger.info('shutdown complete');
  });

  await poller.start();
  const s = poller.snapshot.sources;
  logger.info({ pgbouncer: s.pgbouncer.up, probe: s.probe.up, redis: s.redis.up }, 'first poll done');
  await app.listen({ host: config.host, port: config.port });
}

main().catch((err: unknown) => {
  process.stderr.write(`poolguard-sidecar: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
