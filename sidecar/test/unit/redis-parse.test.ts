import { describe, expect, it } from 'vitest';
import { collectRedis, parseInfo } from '../../src/sources/redis.js';

const INFO = [
  '# Server', 'redis_version:8.0.2', 'redis_mode:standalone', 'uptime_in_seconds:1234', '',
  '# Clients', 'connected_clients:7', 'blocked_clients:1', 'maxclients:1000', '',
  '# Memory', 'used_memory:1048576', 'maxmemory:268435456', 'maxmemory_policy:noeviction', '',
  '# Stats', 'total_commands_processed:99', 'rejected_connections:2', 'keyspace_hits:5', 'keyspace_misses:6', '',
  '# Replication', 'role:master', 'connected_slaves:0', '',
  '# Keyspace', 'db0:keys=12,expires=1,avg_ttl=0,subexpiry=0', 'db3:keys=4,expires=0,avg_ttl=0',
].join('\r\n');

describe('Redis INFO parser', () => {
  it('flattens sections and reads the keyspace', () => {
    const { info, keyspace } = parseInfo(INFO);
    expect(info).toMatchObject({ redis_version: '8.0.2', connected_clients: '7', maxclients: '1000', maxmemory: '268435456', role: 'master' });
    expect(keyspace).toEqual({ '0': 12, '3': 4 });
  });

  it('collectRedis times PING and fails on a non-PONG answer', async () => {
    let t = 0;
    const now = () => (t += 2);
    const s = await collectRedis({ ping: async () => 'PONG', info: async () => INFO }, now);
    expect(s.pingMs).toBe(2);
    expect(s.info.connected_clients).toBe('7');
    await expect(collectRedis({ ping: async () => 'LOADING', info: async () => '' })).rejects.toThrow(/PING answered "LOADING"/);
  });
});
