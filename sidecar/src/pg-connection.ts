// One persistent node-postgres connection that reconnects with exponential backoff. Queries
// go through the simple query protocol (no parameters), which PgBouncer's admin console needs.
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import type { Logger } from 'pino';
import { describeError } from './log.js';
import type { PgTarget } from './types.js';

export type Row = Record<string, unknown>;

/** Reconnection delay after the attempt-th failure in a row: 250 ms doubling, capped at maxMs. */
export function backoffMs(attempt: number, maxMs: number): number {
  return Math.min(maxMs, 250 * 2 ** Math.min(Math.max(attempt, 1) - 1, 16));
}

/**
 * node-postgres's `ssl` option for a target's sslmode (libpq semantics). pg spreads this object
 * into tls.connect({ socket, host, ... }), so it is exactly what node's TLS sees:
 * - disable (tls undefined): false, plain TCP (and PGSSLMODE from the environment is not consulted);
 * - require: TLS, no certificate check;
 * - verify-ca: the chain must lead to the CA; the host name is not checked;
 * - verify-full: the chain and the host name: node's default checkServerIdentity matches
 *   `servername` (or, for an IP address, which must not be sent as SNI, `host`) against the SAN.
 */
export function sslOptions(target: Pick<PgTarget, 'host' | 'tls'>): false | ConnectionOptions {
  const tls = target.tls;
  if (tls === undefined) return false;
  switch (tls.mode) {
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
      return { ca: tls.ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-full':
      return isIP(target.host) === 0 ? { ca: tls.ca, rejectUnauthorized: true, servername: target.host } : { ca: tls.ca, rejectUnauthorized: true };
  }
}

/** The only thing sources see: a way to run a parameterless query. */
export interface Queryable {
  query(sql: string): Promise<Row[]>;
}

export class NotConnectedError extends Error {
  constructor(readonly retryInMs: number, readonly lastCause: string) {
    super(`${lastCause || 'not connected'} (next connection attempt in ${Math.ceil(retryInMs / 100) / 10}s)`);
    this.name = 'NotConnectedError';
  }
}

export interface PgConnectionOptions {
  name: string;
  target: PgTarget;
  /** Which setting provides the password, for the error when none is set. */
  passwordSetting: string;
  applicationName: string;
  connectTimeoutMs: number;
  reconnectMaxMs: number;
  logger: Logger;
  now?: () => number;
  /** Called when an established connection is lost between queries. */
  onLost?: () => void;
}

export class PgConnection implements Queryable {
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  private failures = 0;
  private nextAttemptAt = 0;
  private lastError = '';
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly opts: PgConnectionOptions) {
    this.now = opts.now ?? Date.now;
  }

  get database(): string {
    return this.opts.target.database;
  }

  async query(sql: string): Promise<Row[]> {
    const client = await this.connect();
    try {
      const res = await client.query(sql);
      // A multi-statement result is an array; sources send one statement at a time.
      return (Array.isArray(res) ? (res.at(-1)?.rows ?? []) : res.rows) as Row[];
    } catch (err) {
      // Errors from the server on a healthy connection (e.g. permission) keep it; broken
      // connections are dropped so the next query reconnects.
      if (!(err instanceof Error && 'severity' in err && (err as { severity?: string }).severity === 'ERROR')) {
        this.drop(err);
      }
      throw err;
    }
  }

  /** Drops the connection (e.g. after a timeout), so the next query starts afresh. */
  drop(reason?: unknown): void {
    const c = this.client;
    this.client = undefined;
    if (c) {
      c.removeAllListeners('error');
      c.removeAllListeners('end');
      c.on('error', () => undefined);
      c.end().catch(() => undefined);
      this.opts.logger.warn({ target: this.opts.name, err: reason instanceof Error ? reason : undefined }, 'connection dropped');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = this.client;
    this.client = undefined;
    if (c) await c.end().catch(() => undefined);
  }

  private connect(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    if (this.closed) return Promise.reject(new Error('connection closed'));
    if (this.connecting) return this.connecting;
    const wait = this.nextAttemptAt - this.now();
    if (wait > 0) return Promise.reject(new NotConnectedError(wait, this.lastError));
    this.connecting = this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async open(): Promise<pg.Client> {
    const { target, applicationName, connectTimeoutMs, name, logger } = this.opts;
    if (target.password === undefined) {
      // node-postgres would fail with "client password must be a string": say what to set.
      this.failures += 1;
      this.nextAttemptAt = this.now() + this.opts.reconnectMaxMs;
      this.lastError = `no password for ${target.user}@${target.host}:${target.port}: set ${this.opts.passwordSetting}`;
      throw new Error(this.lastError);
    }
    const client = new pg.Client({
      host: target.host,
      port: target.port,
      user: target.user,
      database: target.database,
      password: target.password,
      application_name: applicationName,
      connectionTimeoutMillis: connectTimeoutMs,
      keepAlive: true,
      // A TLS failure (wrong CA, host not in the certificate) rejects connect() below and
      // becomes lastError like any other connection failure.
      ssl: sslOptions(target),
    });
    const lost = (err?: Error) => {
      // Server went away between polls: forget the client; the next poll reconnects.
      if (this.client === client) {
        this.client = undefined;
        logger.warn({ target: name, err }, 'connection lost');
        this.opts.onLost?.();
      }
    };
    client.on('error', lost);
    client.on('end', () => lost());
    try {
      await client.connect();
    } catch (caught) {
      client.end().catch(() => undefined);
      // node-postgres says only "Connection terminated due to connection timeout": name the peer.
      const err = /connection timeout/i.test(describeError(caught))
        ? new Error(`no answer from ${target.host}:${target.port} within ${connectTimeoutMs} ms while connecting: paused, overloaded, or cut off by the network`)
        : caught;
      this.failures += 1;
      const backoff = backoffMs(this.failures, this.opts.reconnectMaxMs);
      this.nextAttemptAt = this.now() + backoff;
      this.lastError = describeError(err);
      if (this.failures === 1) logger.warn({ target: name, err, retryInMs: backoff }, 'cannot connect');
      throw err;
    }
    if (this.failures > 0) logger.info({ target: name, afterFailures: this.failures }, 'reconnected');
    this.failures = 0;
    this.nextAttemptAt = 0;
    if (this.closed) {
      await client.end().catch(() => undefined);
      throw new Error('connection closed');
    }
    this.client = client;
    return client;
  }
}
