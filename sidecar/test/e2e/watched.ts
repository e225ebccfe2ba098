// The project's postgres, pgbouncer and redis images on a private testcontainers network, and the
// sidecar image watching them: the stack the sidecar-level e2e files (sidecar-monitor, status-page)
// start, each its own.
import { GenericContainer, Network, Wait, type StartedNetwork, type StartedTestContainer } from 'testcontainers';
import { image } from './stack.js';

/** Every password of the stack (test values). */
export const PW = {
  postgres: 'it-postgres-pw',
  app: 'it-app-pw',
  monitor: 'it-monitor-pw',
  auth: 'it-auth-pw',
  admin: 'it-admin-pw',
  stats: 'it-stats-pw',
  redis: 'it-redis-pw',
};

export interface Backends {
  network: StartedNetwork;
  postgres: StartedTestContainer;
  pgbouncer: StartedTestContainer;
  redis: StartedTestContainer;
  stop(): Promise<void>;
}

/** Postgres first (PgBouncer's auth query needs it), then PgBouncer and Redis together. */
export async function startBackends(): Promise<Backends> {
  const network = await new Network().start();
  const postgres = await new GenericContainer(image('postgres'))
    .withNetwork(network)
    .withNetworkAliases('postgres')
    .withEnvironment({ POSTGRES_PASSWORD: PW.postgres, APP_PASSWORD: PW.app, MONITOR_PASSWORD: PW.monitor, PGBOUNCER_AUTH_PASSWORD: PW.auth })
    .withExposedPorts(5432)
    .withWaitStrategy(Wait.forHealthCheck())
    .withStartupTimeout(120_000)
    .start();
  const [pgbouncer, redis] = await Promise.all([
    new GenericContainer(image('pgbouncer'))
      .withNetwork(network)
      .withNetworkAliases('pgbouncer')
      .withEnvironment({
        PGBOUNCER_AUTH_PASSWORD: PW.auth,
        PGBOUNCER_ADMIN_PASSWORD: PW.admin,
        PGBOUNCER_STATS_PASSWORD: PW.stats,
        // Idle server connections above min_pool_size close quickly, so utilisation falls back.
        PGBOUNCER_SERVER_IDLE_TIMEOUT: '2',
      })
      .withExposedPorts(6432)
      .withWaitStrategy(Wait.forHealthCheck())
      .start(),
    new GenericContainer(image('redis'))
      .withNetwork(network)
      .withNetworkAliases('redis')
      .withEnvironment({ REDIS_PASSWORD: PW.redis })
      .withWaitStrategy(Wait.forHealthCheck())
      .start(),
  ]);
  return {
    network,
    postgres,
    pgbouncer,
    redis,
    async stop() {
      for (const c of [pgbouncer, redis, postgres]) await c.stop().catch(() => undefined);
      await network.stop().catch(() => undefined);
    },
  };
}

/** The sidecar image watching the backends on their network (its port 8787 exposed; ready when /readyz is 200). */
export function sidecarContainer(network: StartedNetwork, env: Record<string, string> = {}): GenericContainer {
  return new GenericContainer(image('sidecar'))
    .withNetwork(network)
    .withEnvironment({
      SIDECAR_PGBOUNCER_PASSWORD: PW.stats,
      SIDECAR_POSTGRES_PASSWORD: PW.monitor,
      SIDECAR_REDIS_PASSWORD: PW.redis,
      ...env,
    })
    .withExposedPorts(8787)
    .withWaitStrategy(Wait.forHttp('/readyz', 8787).forStatusCode(200));
}
