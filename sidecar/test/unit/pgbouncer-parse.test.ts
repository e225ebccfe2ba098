import { describe, expect, it } from 'vitest';
import { parseConfig, parseDatabases, parseLists, parsePools, parseStats, parseVersion } from '../../src/sources/pgbouncer.js';
import * as fx from '../fixtures/pgbouncer.js';

describe('PgBouncer admin-console parsers', () => {
  it('SHOW POOLS: same result for 1.18 and 1.24 column sets; maxwait keeps microseconds', () => {
    const [a] = parsePools(fx.pools_1_18);
    const [b] = parsePools(fx.pools_1_24);
    expect(a).toEqual(b);
    expect(a).toMatchObject({ database: 'app', user: 'app', clActive: 12, clWaiting: 3, svActive: 10, svIdle: 2, svUsed: 1, maxwaitSeconds: 1.25, poolMode: 'transaction' });
  });

  it('SHOW POOLS: 1.17 cl_cancel_req maps to the active cancel count', () => {
    expect(parsePools(fx.pools_1_17)[0]).toMatchObject({ clActiveCancelReq: 2, clWaitingCancelReq: 0 });
  });

  it('SHOW DATABASES: reserve_pool (1.18) and reserve_pool_size (1.24) both read', () => {
    const [a] = parseDatabases(fx.databases_1_18);
    const [b] = parseDatabases(fx.databases_1_24);
    expect(a).toEqual(b);
    expect(a).toMatchObject({ name: 'app', poolSize: 25, reservePool: 5, maxConnections: 50, currentConnections: 13, forceUser: '', paused: 0 });
  });

  it('SHOW STATS: 1.24-only counters are present there and absent (not zero) on 1.18', () => {
    const [a] = parseStats(fx.stats_1_18);
    const [b] = parseStats(fx.stats_1_24);
    expect(a).toMatchObject({ xactCount: 100, queryCount: 300, receivedBytes: 5000, sentBytes: 9000, waitTimeUs: 500000 });
    expect(a?.serverAssignmentCount).toBeUndefined();
    expect(a?.bindCount).toBeUndefined();
    expect(b).toMatchObject({ serverAssignmentCount: 120, clientParseCount: 7, serverParseCount: 3, bindCount: 11 });
  });

  it('SHOW LISTS clamps the negative dns_queries seen under load', () => {
    const l = parseLists(fx.lists);
    expect(l.used_clients).toBe(10);
    expect(l.dns_queries).toBe(0);
  });

  it('SHOW CONFIG and SHOW VERSION', () => {
    expect(parseConfig(fx.config)).toEqual({ max_client_conn: '100', default_pool_size: '25', max_user_connections: '0' });
    expect(parseVersion([{ version: 'PgBouncer 1.24.1' }])).toBe('1.24.1');
    expect(parseVersion([{ version: 'PgBouncer 1.18.0' }])).toBe('1.18.0');
  });
});
