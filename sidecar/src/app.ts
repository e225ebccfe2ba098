// buildApp(deps) wires routes to a snapshot reader. It never listens and never touches the
// process: main.ts does that. Tests call it with fakes and use app.inject.
import { timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import bearerAuth from '@fastify/bearer-auth';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AlertItem } from './alerts/engine.js';
import { healthBody, poolBody, redactHealth } from './health.js';
import { postgresInstances, type StackSnapshot } from './snapshot.js';
import type { PoolScope } from './types.js';
import { QUERY_ORDERS, topQueries, type QueryOrder, type StatementHistory } from './views/queries.js';
import { liveSettingsOf, plan, planInputFromLive } from './views/plan.js';
import { sessionsBody } from './views/sessions.js';

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
  /** The lag from which /health calls a replica lagging (replica_lag's WARNING level; 5 s by default). */
  replicaLaggingSeconds?: number | undefined;
  /**
   * When set, /pool, /alerts and /metrics need "Authorization: Bearer <token>" (the scheme in any
   * case), and /health shows backend errors and versions only with it (redacted otherwise).
   */
  token?: string | undefined;
  /** Each Postgres instance's recent pg_stat_statements counters (GET /queries?since=); none: only since the reset. */
  statementHistory?: (instance: string) => StatementHistory | undefined;
  now?: () => Date;
  /** Connection caps and timeouts (HTTP_LIMITS unless a test narrows them). */
  limits?: HttpLimits;
}

/**
 * What keeps slow or many HTTP clients from starving the sidecar (it shares 128 MB and half a core
 * with nothing else to shed): every figure bounds one way a client can hold a socket.
 */
export interface HttpLimits {
  /** Open sockets in all (Node's server.maxConnections): beyond it a new socket is closed at once. */
  maxConnections: number;
  /** Open sockets from one remote address: a flood or slowloris from one host cannot take them all. */
  maxConnectionsPerAddress: number;
  /**
   * New sockets a second from one remote address (a token bucket of this rate and twice its size):
   * beyond it a socket is closed as soon as it is accepted, before any parsing, so a flood costs
   * little and the accept queue stays short for everyone else.
   */
  newConnectionsPerSecondPerAddress: number;
  /** Node's headersTimeout: the whole request head must arrive within it (slowloris). */
  headersTimeoutMs: number;
  /** Node's requestTimeout: the whole request, head and body. */
  requestTimeoutMs: number;
  /** fastify's connectionTimeout (socket.setTimeout): a socket with no traffic for this long is closed. */
  idleTimeoutMs: number;
  /** fastify's keepAliveTimeout: an idle keep-alive socket between requests. */
  keepAliveTimeoutMs: number;
  /**
   * fastify's maxRequestsPerSocket (0: no limit). Past it Node only sets Connection: close and
   * answers every further request on that socket with 503, which a client that keeps the socket
   * (autocannon did in make bench: 19,161 of 39,161) reads as "unhealthy". So no limit: the
   * idle and keep-alive timeouts and the per-address caps bound a socket instead.
   */
  maxRequestsPerSocket: number;
  /** How often Node checks headersTimeout and requestTimeout (its default is 30 s). */
  checkIntervalMs: number;
}

/** listen()'s backlog (the kernel caps it at net.core.somaxconn, 4096 in a container here); Node's default is 511. */
export const LISTEN_BACKLOG = 4096;

export const HTTP_LIMITS: HttpLimits = {
  maxConnections: 512,
  maxConnectionsPerAddress: 64,
  newConnectionsPerSecondPerAddress: 50,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  idleTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  maxRequestsPerSocket: 0,
  checkIntervalMs: 1_000,
};

/** GET /queries: at most this many statements, and this many characters of each text. */
export const MAX_QUERIES = 100;
export const MAX_TEXT_CHARS = 2000;

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

/**
 * Closes sockets over the per-address caps as they arrive (the total cap is Node's own): more
 * than maxConnectionsPerAddress open, or more new ones than the address's token bucket allows.
 */
function capConnections(app: FastifyInstance, limits: HttpLimits, logger: Logger): void {
  app.server.maxConnections = limits.maxConnections;
  const rate = limits.newConnectionsPerSecondPerAddress;
  const burst = rate * 2;
  const peers = new Map<string, { open: number; tokens: number; at: number }>();
  let refused = 0;
  let lastWarnAt = 0;
  app.server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const now = Date.now();
    if (peers.size > 4096) for (const [a, p] of peers) if (p.open === 0) peers.delete(a);
    const peer = peers.get(address) ?? { open: 0, tokens: burst, at: now };
    peer.tokens = Math.min(burst, peer.tokens + ((now - peer.at) * rate) / 1000);
    peer.at = now;
    peers.set(address, peer);
    if (peer.open >= limits.maxConnectionsPerAddress || peer.tokens < 1) {
      socket.destroy();
      refused += 1;
      // At most one line a minute, however hard the flood.
      if (now - lastWarnAt > 60_000) {
        logger.warn({ address, maxConnectionsPerAddress: limits.maxConnectionsPerAddress, newConnectionsPerSecondPerAddress: rate, refusedSinceLastWarning: refused }, 'too many connections from one address: closing new ones');
        lastWarnAt = now;
        refused = 0;
      }
      return;
    }
    peer.tokens -= 1;
    peer.open += 1;
    socket.once('close', () => {
      peer.open -= 1;
    });
  });
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const now = deps.now ?? (() => new Date());
  const limits = deps.limits ?? HTTP_LIMITS;
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024,
    routerOptions: { maxParamLength: 100 },
    return503OnClosing: true,
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    maxRequestsPerSocket: limits.maxRequestsPerSocket,
    http: { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: limits.checkIntervalMs },
  });
  capConnections(app, limits, deps.logger);

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
    const body = healthBody(deps.snapshot(), { isShuttingDown: deps.isShuttingDown(), redisStatus: deps.redisStatus(), now: now(), pools: deps.pools, replicaLaggingSeconds: deps.replicaLaggingSeconds });
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

    // The top statements of pg_stat_statements on the primary (or ?target=<replica host>).
    scope.get<{ Querystring: { n: number; order: QueryOrder; since?: string; target?: string; textChars: number } }>('/queries', {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            n: { type: 'integer', minimum: 1, maximum: MAX_QUERIES, default: 20 },
            order: { type: 'string', enum: [...QUERY_ORDERS], default: 'total' },
            since: { type: 'string', pattern: '^[1-9][0-9]{0,5}(s|m|h)$' },
            target: { type: 'string', maxLength: 100 },
            textChars: { type: 'integer', minimum: 0, maximum: MAX_TEXT_CHARS, default: 1000 },
          },
        },
      },
    }, async (req, reply) => {
      const q = req.query;
      const snap = deps.snapshot();
      const instances = postgresInstances(snap);
      const target = q.target === undefined ? instances[0] : instances.find((i) => i.instance === q.target);
      if (!target) return reply.code(404).send({ error: 'Not Found', message: `no Postgres instance ${JSON.stringify(q.target)}; watched: ${instances.map((i) => i.instance).join(', ')}` });
      const sinceMs = q.since === undefined ? undefined : Number(q.since.slice(0, -1)) * { s: 1000, m: 60_000, h: 3_600_000 }[q.since.slice(-1) as 's' | 'm' | 'h'];
      const history = deps.statementHistory?.(target.instance);
      if (sinceMs !== undefined && sinceMs > (history?.windowMs ?? 0)) {
        return reply.code(400).send({ error: 'Bad Request', message: `since is at most ${Math.round((history?.windowMs ?? 0) / 60_000)}m (the sidecar's history of the statistics)` });
      }
      const st = target.state.sample?.statements;
      if (!st || st.problem !== null) {
        void reply.code(503).header('Retry-After', retryAfter);
        return { error: 'Service Unavailable', message: st?.problem ?? (target.state.up ? 'no statistics yet' : `${target.instance} is down: ${target.state.lastError ?? 'not polled yet'}`) };
      }
      return { target: target.instance, ...topQueries(st, history, { n: q.n, order: q.order, sinceMs, textChars: q.textChars }, now().getTime()) };
    });

    // The connection budget from the live settings (?appInstances=&appPool= adds the apps' side).
    scope.get<{ Querystring: { appInstances?: number; appPool?: number } }>('/plan', {
      schema: {
        querystring: {
          type: 'object',
          properties: { appInstances: { type: 'integer', minimum: 1, maximum: 10_000 }, appPool: { type: 'integer', minimum: 1, maximum: 10_000 } },
        },
      },
    }, async (req, reply) => {
      const { appInstances, appPool } = req.query;
      if ((appInstances === undefined) !== (appPool === undefined)) {
        return reply.code(400).send({ error: 'Bad Request', message: 'give appInstances and appPool together' });
      }
      const live = liveSettingsOf(deps.snapshot(), deps.pools.readDatabase);
      const input = planInputFromLive(live, appInstances !== undefined && appPool !== undefined ? { instances: appInstances, pool: appPool } : undefined);
      if (!input) {
        void reply.code(503).header('Retry-After', retryAfter);
        return { error: 'Service Unavailable', message: `the budget needs the live settings of PgBouncer and the primary: ${[!live.pgbouncer && 'PgBouncer', !live.postgres && 'Postgres'].filter(Boolean).join(' and ')} did not answer the last poll` };
      }
      return { timestamp: now().toISOString(), ...plan(input) };
    });

    // Who holds the Postgres connections (the primary, or ?target=<replica host>).
    scope.get<{ Querystring: { target?: string; limit: number } }>('/sessions', {
      schema: {
        querystring: {
          type: 'object',
          properties: { target: { type: 'string', maxLength: 100 }, limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
        },
      },
    }, async (req, reply) => {
      const snap = deps.snapshot();
      const instances = postgresInstances(snap);
      const target = req.query.target === undefined ? instances[0] : instances.find((i) => i.instance === req.query.target);
      if (!target) return reply.code(404).send({ error: 'Not Found', message: `no Postgres instance ${JSON.stringify(req.query.target)}; watched: ${instances.map((i) => i.instance).join(', ')}` });
      const pg = target.state.sample;
      if (!pg) {
        void reply.code(503).header('Retry-After', retryAfter);
        return { error: 'Service Unavailable', message: `${target.instance} is down: ${target.state.lastError ?? 'not polled yet'}` };
      }
      return sessionsBody(target.instance, pg, snap.sources.pgbouncer.sample, req.query.limit);
    });

    scope.get('/metrics', async (_req, reply) => {
      const text = await deps.metrics.render();
      return reply.header('content-type', deps.metrics.contentType).send(text);
    });
  });

  return app;
}
