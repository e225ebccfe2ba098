// TLS for the Postgres-protocol connections, without docker: a throwaway CA and a server
// certificate for SAN DNS:localhost made with openssl, a node TLS server on 127.0.0.1, and the
// exact `ssl` objects sslOptions() hands to node-postgres (which spreads them into
// tls.connect({ socket, host, ...ssl }) and sets servername = host for non-IP hosts).
// The last block drives a real PgConnection through the SSLRequest handshake against a fake
// server, to show a TLS failure reaches the error the sources and /health report.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer, isIP, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgTarget, PgTls } from '../../src/types.js';
import { NotConnectedError, PgConnection, sslOptions } from '../../src/pg-connection.js';

let dir: string;
let ca: string;
let otherCa: string;
let serverKey: string;
let serverChain: string;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function makeCa(name: string): void {
  openssl(
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '1', '-subj', `/CN=poolguard test ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  );
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pg-tls-'));
  makeCa('ca');
  makeCa('other-ca');
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=test server');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '1', '-extfile', 'ext.cnf');
  ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
  otherCa = readFileSync(join(dir, 'other-ca.crt'), 'utf8');
  serverKey = readFileSync(join(dir, 'server.key'), 'utf8');
  // Like most servers, send the leaf and the CA.
  serverChain = readFileSync(join(dir, 'server.crt'), 'utf8') + ca;
}, 30_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const target = (host: string, mode: PgTls['mode'] | undefined, caPem?: string): Pick<PgTarget, 'host' | 'tls'> => ({
  host,
  tls: mode === undefined ? undefined : { mode, ca: caPem },
});

describe('sslOptions: what node-postgres is given for each sslmode', () => {
  it('maps disable/require/verify-ca/verify-full to pg ssl options', () => {
    expect(sslOptions(target('pgbouncer', undefined))).toBe(false);
    expect(sslOptions(target('pgbouncer', 'require'))).toEqual({ rejectUnauthorized: false });
    const verifyCa = sslOptions(target('pgbouncer', 'verify-ca', 'PEM'));
    expect(verifyCa).toMatchObject({ ca: 'PEM', rejectUnauthorized: true });
    expect(verifyCa && verifyCa.checkServerIdentity?.('anything', {} as never)).toBeUndefined();
    expect(sslOptions(target('pgbouncer', 'verify-full', 'PEM'))).toEqual({ ca: 'PEM', rejectUnauthorized: true, servername: 'pgbouncer' });
    // An IP address is never sent as SNI (RFC 6066, and pg does the same); node then checks the IP SANs.
    expect(sslOptions(target('10.0.0.5', 'verify-full', 'PEM'))).toEqual({ ca: 'PEM', rejectUnauthorized: true });
  });
});

describe('sslOptions against a real TLS server', () => {
  let server: tls.Server;
  let port: number;

  beforeAll(async () => {
    server = tls.createServer({ key: serverKey, cert: serverChain }, (socket) => socket.end('ok'));
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** Connects the way pg's upgradeToSSL does: { host, ...ssl }, servername = host unless an IP. */
  function connect(t: Pick<PgTarget, 'host' | 'tls'>): Promise<{ ok: true; authorized: boolean } | { ok: false; message: string }> {
    const ssl = sslOptions(t);
    if (ssl === false) throw new Error('expected TLS options');
    const options: tls.ConnectionOptions = { host: t.host, port, ...ssl };
    if (isIP(t.host) === 0) options.servername = t.host;
    return new Promise((resolve) => {
      const socket = tls.connect(options, () => {
        const authorized = socket.authorized;
        socket.destroy();
        resolve({ ok: true, authorized });
      });
      socket.on('error', (err) => resolve({ ok: false, message: err.message }));
    });
  }

  it('verify-full to localhost (the SAN) succeeds with the chain checked', async () => {
    expect(await connect(target('localhost', 'verify-full', ca))).toEqual({ ok: true, authorized: true });
  });

  it('verify-full to 127.0.0.1 (not in the SAN) fails with an altname error', async () => {
    const r = await connect(target('127.0.0.1', 'verify-full', ca));
    expect(r).toMatchObject({ ok: false });
    expect(r.ok === false && r.message).toMatch(/Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.1 is not in the cert's list/);
  });

  it('verify-ca to 127.0.0.1 succeeds: chain checked, host name not', async () => {
    expect(await connect(target('127.0.0.1', 'verify-ca', ca))).toEqual({ ok: true, authorized: true });
  });

  it('require with no CA succeeds without checking anything', async () => {
    expect(await connect(target('127.0.0.1', 'require'))).toEqual({ ok: true, authorized: false });
  });

  it('verify-full and verify-ca with a different CA fail on the chain', async () => {
    for (const mode of ['verify-full', 'verify-ca'] as const) {
      const r = await connect(target('localhost', mode, otherCa));
      expect(r.ok === false && r.message, mode).toBe('self-signed certificate in certificate chain');
    }
  });
});

// A fake Postgres server: answers the SSLRequest ('S' and TLS, or 'N'), then rejects the
// StartupMessage with an ErrorResponse, which proves the startup went over the chosen transport.
describe('PgConnection over TLS: failures become the connection error', () => {
  let server: TcpServer;
  let port: number;
  let answerSsl: 'S' | 'N' = 'S';
  const seen: string[] = [];

  function errorResponse(message: string): Buffer {
    const body = Buffer.concat([Buffer.from(`SFATAL\0C28000\0M${message}\0`), Buffer.from([0])]);
    const head = Buffer.alloc(5);
    head.write('E', 0);
    head.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([head, body]);
  }

  function rejectStartup(socket: Socket | tls.TLSSocket, how: string): void {
    socket.once('data', () => {
      seen.push(how);
      socket.end(errorResponse(`startup received over ${how}`));
    });
  }

  beforeAll(async () => {
    server = createTcpServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', (first) => {
        if (first.length === 8 && first.readInt32BE(4) === 80877103) {
          socket.write(answerSsl);
          if (answerSsl === 'N') return;
          const secure = new tls.TLSSocket(socket, { isServer: true, key: serverKey, cert: serverChain });
          secure.on('error', () => undefined);
          rejectStartup(secure, 'tls');
        } else {
          seen.push('plain');
          socket.end(errorResponse('startup received over plain'));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function conn(host: string, tlsSettings: PgTls | undefined): PgConnection {
    return new PgConnection({
      name: 'pgbouncer',
      target: { host, port, user: 'u', database: 'd', password: 'pw', tls: tlsSettings },
      passwordSetting: 'SIDECAR_PGBOUNCER_PASSWORD',
      applicationName: 'test',
      connectTimeoutMs: 5000,
      reconnectMaxMs: 60_000,
      logger: pino({ level: 'silent' }),
    });
  }

  /** The first query's error, and the lastError the next query reports while backing off. */
  async function failures(c: PgConnection): Promise<{ first: string; last: string }> {
    const first = await c.query('SELECT 1').then(() => 'connected', (err: Error) => err.message);
    const next = await c.query('SELECT 1').then(() => undefined, (err: unknown) => err);
    await c.close();
    expect(next).toBeInstanceOf(NotConnectedError);
    return { first, last: (next as NotConnectedError).lastCause };
  }

  it('sslmode disable stays plain TCP; verify-full to the SAN sends the startup over TLS', async () => {
    expect((await failures(conn('localhost', undefined))).first).toBe('startup received over plain');
    expect((await failures(conn('localhost', { mode: 'verify-full', ca }))).first).toBe('startup received over tls');
    expect((await failures(conn('127.0.0.1', { mode: 'require', ca: undefined }))).first).toBe('startup received over tls');
    expect(seen).toEqual(['plain', 'tls', 'tls']);
  });

  it('a host name mismatch and an unknown CA are reported as the last error', async () => {
    const mismatch = await failures(conn('127.0.0.1', { mode: 'verify-full', ca }));
    expect(mismatch.first).toMatch(/^Hostname\/IP does not match certificate's altnames/);
    expect(mismatch.last).toBe(mismatch.first);
    const unknownCa = await failures(conn('localhost', { mode: 'verify-full', ca: otherCa }));
    expect(unknownCa.last).toBe('self-signed certificate in certificate chain');
  });

  it('a server without TLS is reported as such', async () => {
    answerSsl = 'N';
    try {
      expect((await failures(conn('localhost', { mode: 'require', ca: undefined }))).last).toBe('The server does not support SSL connections');
    } finally {
      answerSsl = 'S';
    }
  });
});
