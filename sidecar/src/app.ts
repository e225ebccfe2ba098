// buildApp(deps) wires routes to a snapshot reader. It never listens and never touches the
// process: main.ts does that. Tests call it with fakes and use app.inject.
import { timingSafeEqual } from 'node:crypto';
import bearerAuth from '@fastify/bearer-auth';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AlertItem } from './alerts/engine.js';
import { healthBody, poolBody, redactHealth } from './health.js';
import type { StackSnapshot } from './snapshot.js';
import type { PoolScope } from './types.js';

export interface AppDeps {
  logger: Logger;
  snapshot: () => StackSnapshot;
  alerts: () => AlertItem[];
  /** Prometheus exposition: its content type and the (cached) text of the current snapshot. */
  metrics: { contentType: string; render: () => Promise<string> };
  redisStatus: () => string;
  isShuttingDown: () => boolean;
  /** Which PgBouncer pools are the application's, for /health's connectionPool and /pool (pools.ts poolScope). */
  pools: PoolScope;
  pollIntervalMs: number;
  /**
   * When set, /pool, /alerts and /metrics need "Authorization: Bearer <token>" (the scheme in any
   * case), and /health shows backend errors and versions only with it (redacted otherwise).
   */
  token?: string | undefined;
  now?: () => Date;
}

/** The auth scheme, compared case-insensitively (RFC 7235 section 2.1, RFC 6750 section 2.1). */
const SCHEME = 'bearer ';

/**
 * The check @fastify/bearer-auth makes with specCompliance 'rfc6749' (lib/verify-bearer-auth-factory.js
 * and lib/compare.js): the scheme in any case, the rest trimmed, then a constant-time compare; a
 * length mismatch still runs timingSafeEqual once (on the key itself) before saying no.
 */
function hasToken(authorization: string | undefined, key: Buffer): boolean {
  if (!authorization || authorization.substring(0, SCHEME.length).toLowerCase() !== SCHEME) return false;
  const sent = Buffer.from(authorization.substring(SCHEME.length).trim());
  if (sent.length !== key.length) {
    timingSafeEqual(key, key);
    return false;
  }
  return timingSafeEqual(sent, key);
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const now = deps.now ?? (() => new Date());
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024,
    routerOptions: { maxParamLength: 100 },
    return503OnClosing: true,
    requestTimeout: 10_000,
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

  // Open, always: with a token configured, a caller without it (or with a wrong one) gets the same
  // keys, status and Retry-After, minus error text and versions. Never a 401 here.
  const healthKey = deps.token ? Buffer.from(deps.token) : undefined;
  app.get('/health', async (req, reply) => {
    const body = healthBody(deps.snapshot(), { isShuttingDown: deps.isShuttingDown(), redisStatus: deps.redisStatus(), now: now(), pools: deps.pools });
    if (!body.healthy) void reply.code(503).header('Retry-After', retryAfter);
    if (!healthKey) return body;
    void reply.header('Vary', 'Authorization');
    return hasToken(req.headers.authorization, healthKey) ? body : redactHealth(body);
  });

  // Monitoring detail: behind the bearer token when one is configured.
  await app.register(async (scope) => {
    if (deps.token) {
      // specCompliance 'rfc6749': the scheme is matched case-insensitively (Bearer, bearer, BEARER).
      await scope.register(bearerAuth, { keys: new Set([deps.token]), specCompliance: 'rfc6749', errorResponse: () => ({ error: 'Unauthorized' }), verifyErrorLogLevel: 'debug' });
      scope.addHook('onResponse', async (req, reply) => {
        if (reply.statusCode === 401) {
          // Never the token itself: only whether one was sent.
          req.log.warn({ path: req.url.split('?')[0], ip: req.ip, authorization: req.headers.authorization ? 'wrong token' : 'missing' }, 'unauthorized request');
        }
      });
    }

    scope.get('/pool', async () => poolBody(deps.snapshot(), now(), deps.pools));

    scope.get('/alerts', async () => {
      const items = deps.alerts();
      return { alerts: items.map((a) => `${a.severity}: ${a.summary}`), count: items.length, timestamp: now().toISOString(), items };
    });

    scope.get('/metrics', async (_req, reply) => {
      const text = await deps.metrics.render();
      return reply.header('content-type', deps.metrics.contentType).send(text);
    });
  });

  return app;
}
