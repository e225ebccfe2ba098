// buildApp(deps) wires routes to a snapshot reader. It never listens and never touches the
// process: main.ts does that. Tests call it with fakes and use app.inject.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import bearerAuth from '@fastify/bearer-auth';
import fastifyCookie from '@fastify/cookie';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AlertItem } from './alerts/engine.js';
import { healthBody, poolBody, redactHealth } from './health.js';
import type { HistoryBody } from './history.js';
import type { PageAssets } from './page.js';
import { postgresInstances, type StackSnapshot } from './snapshot.js';
import type { PoolScope } from './types.js';
import { QUERY_ORDERS, topQueries, type QueryOrder, type StatementHistory } from './views/queries.js';
import { liveSettingsOf, plan, planInputFromLive } from './views/plan.js';
import { sessionsBody } from './views/sessions.js';
import { statusBody } from './views/status.js';

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
  /** The last hour of the figures that move (GET /history, the page's sparklines); none: an empty history. */
  history?: { body(afterMs?: number): HistoryBody };
  /** The status page's files (page.ts loadPage); none: GET / is a 404. */
  page?: PageAssets;
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

/** The status page's session cookie: HttpOnly, SameSite=Strict, signed; its value is only an expiry time. */
export const SESSION_COOKIE = 'poolguard_session';
/** How long a page login lasts. */
export const SESSION_MAX_AGE_SECONDS = 12 * 3600;
/** Failed page logins one address may make a minute; past them POST /login answers 429. */
export const LOGIN_FAILURES_PER_MINUTE = 10;

/**
 * The status page's headers: the page loads nothing but its own files (no inline script or style,
 * no other origin), is never framed, and sends no referrer.
 */
export const PAGE_HEADERS = {
  'content-security-policy': "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/**
 * The cookie's signing key, derived from the token (HMAC-SHA256): never the token itself, and a new
 * token (a rotation and a restart) ends every session signed with the old one.
 */
const sessionSecret = (token: string) => createHmac('sha256', token).update('poolguard status page session').digest();

/** Failed logins per address, counted in the current minute (bounded: a flood of addresses is forgotten). */
function loginLimiter(perMinute: number) {
  const failures = new Map<string, { count: number; minute: number }>();
  const minute = () => Math.floor(Date.now() / 60_000);
  return {
    blocked: (ip: string) => {
      const f = failures.get(ip);
      return f !== undefined && f.minute === minute() && f.count >= perMinute;
    },
    failed: (ip: string) => {
      if (failures.size > 4096) failures.clear();
      const m = minute();
      const f = failures.get(ip);
      failures.set(ip, f && f.minute === m ? { count: f.count + 1, minute: m } : { count: 1, minute: m });
    },
  };
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

  // The status page: its files are open (they hold no figures); the figures come from /status and
  // /history, behind the token when one is set. GET / is the page itself.
  const page = deps.page;
  if (page) {
    const sendAsset = (name: string, req: FastifyRequest, reply: FastifyReply) => {
      const asset = page.get(name);
      if (!asset) return reply.code(404).send({ error: 'Not Found', message: `no page file ${name}` });
      void reply.headers(PAGE_HEADERS).header('etag', asset.etag);
      if (req.headers['if-none-match'] === asset.etag) return reply.code(304).send();
      return reply.header('content-type', asset.contentType).send(asset.body);
    };
    app.get('/', async (req, reply) => sendAsset('index.html', req, reply));
    app.get<{ Params: { name: string } }>('/page/:name', async (req, reply) => (req.params.name === 'index.html' ? reply.code(404).send({ error: 'Not Found', message: 'no page file index.html (the page is at /)' }) : sendAsset(req.params.name, req, reply)));
  }

  // The page's data, and its login: the bearer token as elsewhere, or (browsers' EventSource and
  // fetch from a page cannot be given a header by hand) the session cookie POST /login hands out.
  await app.register(async (scope) => {
    const token = deps.token;
    const key = token ? Buffer.from(token) : undefined;
    if (token) await scope.register(fastifyCookie, { secret: sessionSecret(token), hook: 'onRequest' });
    const hasSession = (req: FastifyRequest): boolean => {
      const raw = req.cookies?.[SESSION_COOKIE];
      if (raw === undefined) return false;
      const r = req.unsignCookie(raw);
      return r.valid && r.value !== null && /^\d+$/.test(r.value) && Number(r.value) > Date.now();
    };
    if (key) {
      scope.addHook('onRequest', async (req, reply) => {
        if (req.url.split('?')[0] === '/login' || req.url.split('?')[0] === '/logout') return;
        if (hasToken(req.headers.authorization, key) || hasSession(req)) return;
        req.log.warn({ path: req.url.split('?')[0], ip: req.ip, authorization: req.headers.authorization ? 'wrong token' : req.cookies?.[SESSION_COOKIE] ? 'expired or bad session' : 'missing' }, 'unauthorized request');
        return reply.code(401).header('cache-control', 'no-store').send({ error: 'Unauthorized', login: true });
      });
    }

    const limiter = loginLimiter(LOGIN_FAILURES_PER_MINUTE);
    // The token in a JSON body (never a URL, never a log line): only a JSON body is parsed here, so
    // a form on another site cannot post one (and SameSite=Strict keeps the cookie off its requests).
    scope.post<{ Body: { token: string } }>('/login', {
      schema: { body: { type: 'object', required: ['token'], additionalProperties: false, properties: { token: { type: 'string', minLength: 1, maxLength: 512 } } } },
    }, async (req, reply) => {
      void reply.header('cache-control', 'no-store');
      if (!key) return { ok: true, auth: false };
      if (limiter.blocked(req.ip)) {
        return reply.code(429).header('Retry-After', '60').send({ error: 'Too Many Requests', message: `more than ${LOGIN_FAILURES_PER_MINUTE} failed logins from this address this minute: wait a minute` });
      }
      if (!hasToken(`Bearer ${req.body.token}`, key)) {
        limiter.failed(req.ip);
        req.log.warn({ ip: req.ip }, 'status page login failed: wrong token');
        return reply.code(401).send({ error: 'Unauthorized', message: 'wrong token' });
      }
      const expires = Date.now() + SESSION_MAX_AGE_SECONDS * 1000;
      void reply.setCookie(SESSION_COOKIE, String(expires), { signed: true, httpOnly: true, sameSite: 'strict', path: '/', maxAge: SESSION_MAX_AGE_SECONDS, secure: req.protocol === 'https' });
      req.log.info({ ip: req.ip }, 'status page login');
      return { ok: true, auth: true, expires: new Date(expires).toISOString() };
    });

    scope.post('/logout', async (_req, reply) => {
      if (key) void reply.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'strict' });
      return reply.header('cache-control', 'no-store').send({ ok: true });
    });

    scope.get('/status', async (_req, reply) => {
      void reply.header('cache-control', 'no-store');
      return statusBody(deps.snapshot(), deps.alerts(), {
        now: now(),
        pools: deps.pools,
        pollIntervalMs: deps.pollIntervalMs,
        isShuttingDown: deps.isShuttingDown(),
        replicaLaggingSeconds: deps.replicaLaggingSeconds,
        statementHistory: deps.statementHistory,
      });
    });

    scope.get<{ Querystring: { after?: number } }>('/history', {
      schema: { querystring: { type: 'object', properties: { after: { type: 'integer', minimum: 0 } } } },
    }, async (req, reply) => {
      void reply.header('cache-control', 'no-store');
      return deps.history?.body(req.query.after) ?? { intervalMs: deps.pollIntervalMs, capacity: 0, windowSeconds: 0, points: 0, memoryBytes: 0, t: [], series: {} };
    });
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
