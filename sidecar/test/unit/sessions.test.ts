// GET /sessions: sessions grouped, the oldest transaction and the longest idle-in-transaction
// session, each backend joined to the PgBouncer client behind it (SHOW SERVERS remote_pid ->
// link -> SHOW CLIENTS ptr), queries without literals.
import { describe, expect, it } from 'vitest';
import { parseConnections } from '../../src/sources/pgbouncer.js';
import { parseSessions } from '../../src/sources/postgres.js';
import { sessionsBody } from '../../src/views/sessions.js';
import { postgresSample } from '../fixtures/postgres.js';

const sessions = parseSessions([
  { pid: 101, usename: 'app', application_name: 'api', datname: 'app', state: 'idle in transaction', client_addr: 'local', xact_seconds: 120.5, state_seconds: 118, query: "UPDATE accounts SET email = 'a@b.c' WHERE id = 7" },
  { pid: 102, usename: 'app', application_name: 'api', datname: 'app', state: 'active', client_addr: 'local', xact_seconds: 0.2, state_seconds: 0.2, query: 'SELECT 1' },
  { pid: 103, usename: 'app', application_name: 'api', datname: 'app', state: 'idle', client_addr: 'local', xact_seconds: null, state_seconds: 30, query: 'COMMIT' },
  { pid: 200, usename: 'poolguard_monitor', application_name: 'poolguard-sidecar', datname: 'app', state: 'idle', client_addr: '172.18.0.9', xact_seconds: null, state_seconds: 1, query: 'SELECT 1' },
]);
const servers = parseConnections([
  { type: 'S', user: 'app', database: 'app', state: 'active', addr: 'unix', port: '5432', ptr: '0xs1', link: '0xc1', remote_pid: '101', application_name: 'api', tls: '' },
  { type: 'S', user: 'app', database: 'app', state: 'active', addr: 'unix', port: '5432', ptr: '0xs2', link: '0xc2', remote_pid: '102', application_name: 'api', tls: '' },
  { type: 'S', user: 'app', database: 'app', state: 'idle', addr: 'unix', port: '5432', ptr: '0xs3', link: '', remote_pid: '103', application_name: '', tls: '' },
]);
const clients = parseConnections([
  { type: 'C', user: 'app', database: 'app', state: 'active', addr: '172.18.0.20', port: '41000', ptr: '0xc1', link: '0xs1', remote_pid: '0', application_name: 'billing-worker', tls: '' },
  { type: 'C', user: 'app', database: 'app', state: 'active', addr: '172.18.0.21', port: '41001', ptr: '0xc2', link: '0xs2', remote_pid: '0', application_name: 'api', tls: '' },
]);

describe('sessions', () => {
  it('names the PgBouncer client behind a pooled backend, and the longest idle-in-transaction session', () => {
    const body = sessionsBody('postgres', postgresSample({ sessions }), { servers, clients });
    expect([body.total, body.viaPgBouncer]).toEqual([4, 3]);
    expect(body.longestIdleInTransaction).toMatchObject({
      pid: 101, stateSeconds: 118, viaPgBouncer: true,
      query: 'UPDATE accounts SET email = ? WHERE id = ?',
      pgbouncerClient: { addr: '172.18.0.20', port: 41000, applicationName: 'billing-worker', user: 'app', database: 'app' },
    });
    expect(body.oldestTransaction?.pid).toBe(101);
    expect(body.inTransaction.map((s) => s.pid)).toEqual([101, 102]);
    // A server connection idle in its pool holds the backend with no client behind it.
    const direct = sessionsBody('postgres', postgresSample({ sessions }), { servers, clients }, 20);
    expect(direct.groups).toContainEqual({ usename: 'app', applicationName: 'api', state: 'idle', count: 1, viaPgBouncer: 1, oldestXactSeconds: null });
    expect(direct.groups).toContainEqual({ usename: 'poolguard_monitor', applicationName: 'poolguard-sidecar', state: 'idle', count: 1, viaPgBouncer: 0, oldestXactSeconds: null });
  });

  it('without PgBouncer (down): the sessions still, nothing joined', () => {
    const body = sessionsBody('postgres', postgresSample({ sessions }), undefined);
    expect([body.total, body.viaPgBouncer, body.longestIdleInTransaction?.pgbouncerClient]).toEqual([4, 0, null]);
  });

  it('no literal reaches the body', () => {
    expect(JSON.stringify(sessionsBody('postgres', postgresSample({ sessions }), { servers, clients }))).not.toContain('a@b.c');
  });
});
