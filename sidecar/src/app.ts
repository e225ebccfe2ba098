// buildApp(deps) wires routes to a snapshot reader. It never listens and never touches the
// process: main.ts does that. Tests call it with fakes and use app.inject.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { healthBody } from './health.js';
import type { StackSnapshot } from './snapshot.js';

export interface AppDeps {
  logger: Logger;
  snapshot: () => StackSnapshot;
  redisStatus: () => string;
  isShuttingDown: () => boolean;
  pollIntervalMs: number;
  now?: () => Date;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const now = deps.now ?? (() => new Date());
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    disableRequestLogging: true,
    bodyLimit: 1024,
    routerOptions: { maxParamLength: 100 },
    return503OnClosing: true,
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: 'Not Found', message: `no route for ${req.method} ${req.url.split('?')[0]}` });
  });
  app.setErrorHandler((err: { statusCode?: number; message: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, 'request failed');
    void reply.code(status).send({ error: status >= 500 ? 'Internal Server Error' : 'Bad Request', message: status >= 500 ? 'internal error' : err.message });
  });

  const retryAfter = String(Math.max(1, Math.ceil(deps.pollIntervalMs / 1000)));

  app.get('/livez', async () => ({ alive: true }));

  app.get('/readyz', async (_req, reply) => {
    const ready = deps.snapshot().pollCount > 0 && !deps.isShuttingDown();
    if (!ready) void reply.code(503).header('Retry-After', retryAfter);
    return { ready, isShuttingDown: deps.isShuttingDown() };
  });

  app.get('/health', async (_req, reply) => {
    const body = healthBody(deps.snapshot(), { isShuttingDown: deps.isShuttingDown(), redisStatus: deps.redisStatus(), now: now() });
    if (!body.healthy) void reply.code(503).header('Retry-After', retryAfter);
    return body;
  });

  return app;
}
