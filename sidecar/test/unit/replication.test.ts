// Read replicas: the configuration (replica URLs, profiles, read alias), the parsers of the
// standby / pg_stat_replication / slot queries, the lag view, the rules, the metric lines with
// their target label, /health with a replica down, and the poller's second instance of a kind.
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AlertEngine } from '../../src/alerts/engine.js';
import { DEFAULT_RULES, type Rule } from '../../src/alerts/rules.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { REDACTED_ERROR, healthBody, redactHealth } from '../../src/health.js';
import { registerMetrics } from '../../src/metrics.js';
import { Poller } from '../../src/poller.js';
import type { StackSnapshot } from '../../src/snapshot.js';
import { exporterSetting, shortVersion, parseReplication, parseServer, parseSettings, parseSlots, type PostgresSample } from '../../src/sources/postgres.js';
import { primaryWalLsn, readRouting, replicasHealth, standbyLag } from '../../src/views/replication.js';
import { postgresSample, primaryWithStandby, replicaSample, replicaServerRow, replicationRows, slotRows } from '../fixtures/postgres.js';
import { configProblems } from '../fixtures/config.js';
import { POOLS, snapshot, state, withReplica } from '../fixtures/snapshot.js';

const REPLICA_URL = 'postgres://poolguard_monitor@postgres-replica:5432/app';

const problems = configProblems;

describe('config: SIDECAR_POSTGRES_REPLICA_URLS, SIDECAR_PROFILES, SIDECAR_READ_DATABASE', () => {
  it('defaults: no replica, profiles unset, read alias app_ro', () => {
    const c = loadConfig({});
    expect([c.postgresReplicas, c.profiles, c.readDatabase]).toEqual([[], undefined, 'app_ro']);
  });

  it('replica URLs: parsed like SIDECAR_POSTGRES_URL, with SIDECAR_POSTGRES_PASSWORD; blanks around commas ignored', () => {
    const c = loadConfig({ SIDECAR_POSTGRES_REPLICA_URLS: ` ${REPLICA_URL} , postgres://m@replica-2/app?sslmode=require`, SIDECAR_POSTGRES_PASSWORD: 'pw' });
    expect(c.postgresReplicas).toEqual([
      { host: 'postgres-replica', port: 5432, user: 'poolguard_monitor', database: 'app', password: 'pw', tls: undefined },
      { host: 'replica-2', port: 5432, user: 'm', database: 'app', password: 'pw', tls: { mode: 'require', ca: undefined } },
    ]);
    expect(loadConfig({ SIDECAR_POSTGRES_REPLICA_URLS: '' }).postgresReplicas).toEqual([]);
    expect(loadConfig({ SIDECAR_POSTGRES_REPLICA_URLS: ' , ' }).postgresReplicas).toEqual([]);
  });

  it('SIDECAR_PROFILES: set (even empty) watches the replicas only with `replica`; unset watches them always', () => {
    const hosts = (env: Record<string, string>) => loadConfig({ SIDECAR_POSTGRES_REPLICA_URLS: REPLICA_URL, ...env }).postgresReplicas.map((t) => t.host);
    expect(hosts({})).toEqual(['postgres-replica']);
    expect(hosts({ SIDECAR_PROFILES: '' })).toEqual([]);
    expect(hosts({ SIDECAR_PROFILES: 'backup' })).toEqual([]);
    expect(hosts({ SIDECAR_PROFILES: 'backup, replica' })).toEqual(['postgres-replica']);
    expect(loadConfig({ SIDECAR_PROFILES: 'backup,replica' }).profiles).toEqual(['backup', 'replica']);
    expect(loadConfig({ SIDECAR_PROFILES: '' }).profiles).toEqual([]);
  });

  it('a bad replica URL is named by its position and says what to change', () => {
    expect(problems({ SIDECAR_POSTGRES_REPLICA_URLS: `${REPLICA_URL},mysql://x/db` })).toEqual([
      expect.stringMatching(/^SIDECAR_POSTGRES_REPLICA_URLS: URL 2 \("mysql:\/\/x\/db"\): must be a URL starting with postgres:\/\/ or postgresql:\/\//),
    ]);
    expect(problems({ SIDECAR_POSTGRES_REPLICA_URLS: `${REPLICA_URL},,postgres://r2/app` })[0]).toMatch(/^SIDECAR_POSTGRES_REPLICA_URLS: entry 2 is empty: separate the URLs with single commas/);
    expect(problems({ SIDECAR_POSTGRES_REPLICA_URLS: 'postgres://r/db?sslmode=prefer' })[0]).toMatch(/^SIDECAR_POSTGRES_REPLICA_URLS: URL 1 .*sslmode "prefer" is not allowed: use one of disable, require, verify-ca, verify-full/);
  });

  it('TLS of a replica URL: verify-full needs a CA, a bad sslrootcert is named with the URL', () => {
    expect(problems({ SIDECAR_POSTGRES_REPLICA_URLS: 'postgres://r/db?sslmode=verify-full' })).toEqual([
      'SIDECAR_POSTGRES_REPLICA_URLS: URL 1 (r): sslmode=verify-full needs a CA to check the server certificate against: add sslrootcert=/path/to/ca.pem to the URL or set SIDECAR_PG_TLS_CA_FILE',
    ]);
    expect(problems({ SIDECAR_POSTGRES_REPLICA_URLS: 'postgres://r/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem' })).toEqual([
      'SIDECAR_POSTGRES_REPLICA_URLS: URL 1 (r): sslrootcert: cannot read /nonexistent/ca.pem (ENOENT)',
    ]);
  });

  it('instance names: a replica on the primary host, twice the same host, or a source name is an error', () => {
    expect(problems({ SIDECAR_POSTGRES_REPLICA_URLS: 'postgres://m@postgres:5433/app' })[0]).toMatch(/^SIDECAR_POSTGRES_REPLICA_URLS: the replica "postgres" has the host of SIDECAR_POSTGRES_URL: .*own host name/);
    expect(problems({ SIDECAR_POSTGRES_REPLICA_URLS: `${REPLICA_URL},${REPLICA_URL}` })[0]).toMatch(/^SIDECAR_POSTGRES_REPLICA_URLS: two replicas have the host "postgres-replica"/);
    expect(problems({ SIDECAR_POSTGRES_URL: 'postgres://m@db/app', SIDECAR_POSTGRES_REPLICA_URLS: 'postgres://m@redis/app' })[0]).toMatch(/^SIDECAR_POSTGRES_REPLICA_URLS: a replica cannot have the host "redis", the name of one of the sidecar's sources/);
    expect(problems({ SIDECAR_POSTGRES_URL: 'postgres://m@db/app', SIDECAR_POSTGRES_REPLICA_URLS: 'postgres://m@postgres/app' })).toHaveLength(1);
  });

  it('bad SIDECAR_PROFILES and SIDECAR_READ_DATABASE values', () => {
    expect(problems({ SIDECAR_PROFILES: 'replica,-x' })[0]).toMatch(/^SIDECAR_PROFILES: "-x" is not a compose profile name/);
    expect(problems({ SIDECAR_READ_DATABASE: '' })[0]).toMatch(/^SIDECAR_READ_DATABASE: must be a PgBouncer \[databases\] name, such as app_ro/);
    expect(problems({ SIDECAR_READ_DATABASE: 'app ro' })[0]).toMatch(/^SIDECAR_READ_DATABASE: /);
    expect(loadConfig({ SIDECAR_READ_DATABASE: 'reads' }).readDatabase).toBe('reads');
  });
});

describe('parsers (rows as node-postgres returns them: numeric and int8 as strings)', () => {
  it("pg_settings as postgres_exporter names and converts them (units, -1 kept, bool, dots)", () => {
    expect(exporterSetting('shared_buffers', '16384', '8kB', 'integer')).toEqual(['shared_buffers_bytes', 134217728]);
    expect(exporterSetting('work_mem', '4096', 'kB', 'integer')).toEqual(['work_mem_bytes', 4194304]);
    expect(exporterSetting('max_wal_size', '1024', 'MB', 'integer')).toEqual(['max_wal_size_bytes', 1073741824]);
    expect(exporterSetting('statement_timeout', '1500', 'ms', 'integer')).toEqual(['statement_timeout_seconds', 1.5]);
    expect(exporterSetting('autovacuum_naptime', '1', 'min', 'integer')).toEqual(['autovacuum_naptime_seconds', 60]);
    expect(exporterSetting('commit_delay', '250', 'us', 'integer')).toEqual(['commit_delay_seconds', 0.00025]);
    expect(exporterSetting('temp_file_limit', '-1', 'kB', 'integer')).toEqual(['temp_file_limit_bytes', -1]);
    expect(exporterSetting('random_page_cost', '1.1', '', 'real')).toEqual(['random_page_cost', 1.1]);
    expect(exporterSetting('fsync', 'on', '', 'bool')).toEqual(['fsync', 1]);
    expect(exporterSetting('jit', 'off', '', 'bool')).toEqual(['jit', 0]);
    expect(exporterSetting('pg_stat_statements.max', '5000', '', 'integer')).toEqual(['pg_stat_statements_max', 5000]);
    expect(exporterSetting('server_version', '17.6', '', 'string')).toBeUndefined();
    expect(exporterSetting('odd', '3', 'furlongs', 'integer')).toBeUndefined();
    const s = parseSettings([{ name: 'max_connections', setting: '100', unit: null, vartype: 'integer' }, { name: 'server_version', setting: '17.6', unit: null, vartype: 'string' }]);
    expect(s).toMatchObject({ version: '17.6', maxConnections: 100, settings: { max_connections: 100 } });
    expect(Object.keys(s.settings)).toEqual(['max_connections']);
    expect(['17.6 (Debian 17.6-1)', '17.6', '16.10', '18beta1', '17', 'x'].map(shortVersion)).toEqual(['17.6.0', '17.6.0', '16.10.0', '18.0.0', '17.0.0', '']);
  });
  it('server row of a primary: current LSN, no standby side', () => {
    const s = postgresSample();
    expect([s.isReplica, s.currentLsnBytes, s.standby]).toEqual([false, 50331648, null]);
  });

  it('server row of a streaming replica', () => {
    expect(parseServer([replicaServerRow])).toMatchObject({
      isReplica: true,
      currentLsnBytes: null,
      standby: {
        receiveLsnBytes: 50331648, replayLsnBytes: 50331648, lastReplayAt: 1767225557.5, replayAgeSeconds: 42.5, replayPaused: false,
        receiver: { status: 'streaming', senderHost: 'postgres', slotName: 'replica1', lastMsgReceiptAt: 1767225599.9 },
      },
    });
  });

  it('no pg_stat_wal_receiver row (LEFT JOIN nulls) is no receiver; replay_paused as "t"', () => {
    const s = parseServer([{ ...replicaServerRow, receiver_status: null, receiver_sender_host: null, receiver_slot_name: null, receiver_last_msg_time: null, replay_paused: 't', last_replay_time: null, replay_age_seconds: null }]);
    expect(s.standby).toMatchObject({ receiver: null, replayPaused: true, lastReplayAt: null, replayAgeSeconds: null });
  });

  it('pg_stat_replication: LSNs in bytes, NULL lag intervals stay null', () => {
    expect(parseReplication(replicationRows)).toEqual([{
      applicationName: 'postgres-replica', clientAddr: '172.18.0.7', state: 'streaming', syncState: 'async',
      currentLsnBytes: 50331648, sentLsnBytes: 50331648, writeLsnBytes: 50331648, flushLsnBytes: 50331648, replayLsnBytes: 50331648,
      lsnDiffBytes: 0, writeLagSeconds: null, flushLagSeconds: null, replayLagSeconds: 0.000912, replyTime: 1767225599.8,
    }]);
  });

  it('pg_replication_slots: active as boolean or "f", wal_status, retained bytes', () => {
    expect(parseSlots([...slotRows, { slot_name: 'old', slot_type: 'physical', active: 'f', wal_status: 'lost', restart_lsn_bytes: null, retained_bytes: null, safe_wal_size: '-123' }])).toEqual([
      { slotName: 'replica1', slotType: 'physical', active: true, walStatus: 'reserved', restartLsnBytes: 50331648, retainedBytes: 0, safeWalSizeBytes: null },
      { slotName: 'old', slotType: 'physical', active: false, walStatus: 'lost', restartLsnBytes: null, retainedBytes: null, safeWalSizeBytes: -123 },
    ]);
  });
});

describe('lag view', () => {
  const standby = (row: Parameters<typeof replicaSample>[0] = {}) => replicaSample(row).standby!;

  it('idle primary: replayed up to its current LSN is lag 0, however old the last transaction', () => {
    expect(standbyLag(standby({ replay_age_seconds: 3600 }), 50331648)).toMatchObject({ seconds: 0, bytes: 0, broken: false });
  });

  it('behind the primary (replay paused): the age of the last replayed transaction, growing', () => {
    const paused = (age: number) => standbyLag(standby({ replay_paused: true, replay_age_seconds: age, receive_lsn_bytes: '50397184' }), 50397184);
    expect(paused(12)).toMatchObject({ seconds: 12, bytes: 65536, broken: false, reason: 'replay is paused (pg_wal_replay_pause)' });
    expect(paused(47).seconds).toBe(47);
  });

  it('dead stream: no WAL receiver is broken, lag growing even though receive = replay', () => {
    const dead = (age: number) => standbyLag(standby({ receiver_status: null, replay_age_seconds: age }), 50331648 + 8192);
    expect(dead(20)).toMatchObject({ seconds: 20, bytes: 8192, broken: true, reason: 'no WAL receiver: the stream from the primary is not running' });
    expect(dead(80).seconds).toBe(80);
    expect(standbyLag(standby({ receiver_status: 'waiting', replay_age_seconds: 5 }), null)).toMatchObject({ seconds: 5, broken: true, reason: 'the WAL receiver is waiting, not streaming' });
  });

  it('primary unknown this poll: receive = replay while streaming is lag 0; otherwise the replay age', () => {
    expect(standbyLag(standby({ replay_age_seconds: 99 }), null)).toMatchObject({ seconds: 0, bytes: null });
    expect(standbyLag(standby({ replay_age_seconds: 9, receive_lsn_bytes: '50331700' }), null)).toMatchObject({ seconds: 9, bytes: null });
    expect(standbyLag(standby({ replay_age_seconds: null, receive_lsn_bytes: '50331700' }), null).seconds).toBeNull();
  });

  it('the primary LSN comes from the first instance up and not in recovery; none while it is down', () => {
    expect(primaryWalLsn(withReplica())).toBe(50331648);
    expect(primaryWalLsn(withReplica({ primary: {} }))).toBe(50331648);
    const down = snapshot({ postgres: state<PostgresSample>(undefined, 'ECONNREFUSED') }, 1, { 'postgres-replica': state(replicaSample()) });
    expect(primaryWalLsn(down)).toBeNull();
  });

  it('replica statuses: streaming, catching_up, lagging, broken, down', () => {
    const one = (snap: StackSnapshot) => replicasHealth(snap)[0]!;
    expect(one(withReplica())).toMatchObject({ instance: 'postgres-replica', healthy: true, status: 'streaming', lagSeconds: 0, lagBytes: 0, replayPaused: false, receiverStatus: 'streaming' });
    const behind = (age: number) => withReplica({ primary: { currentLsnBytes: 50331648 + 4096 }, replica: { replay_age_seconds: age } });
    expect(one(behind(1.25))).toMatchObject({ healthy: true, status: 'catching_up', lagSeconds: 1.25, lagBytes: 4096 });
    expect(one(behind(6))).toMatchObject({ healthy: false, status: 'lagging', lagSeconds: 6 });
    expect(replicasHealth(behind(6), 10)[0]).toMatchObject({ healthy: true, status: 'catching_up' });
    expect(one(withReplica({ replica: { receiver_status: null } }))).toMatchObject({ healthy: false, status: 'broken', lagSeconds: 42.5, receiverStatus: null });
    expect(one(withReplica({ replica: { is_replica: false, current_lsn_bytes: '1' } }))).toMatchObject({ healthy: false, status: 'broken', reason: expect.stringMatching(/^not in recovery/) });
    expect(one(withReplica({ replicaState: state<PostgresSample>(undefined, 'connect ECONNREFUSED 172.18.0.7:5432') }))).toMatchObject({
      healthy: false, status: 'down', lagSeconds: null, lastError: 'connect ECONNREFUSED 172.18.0.7:5432',
    });
    expect(replicasHealth(snapshot())).toEqual([]);
  });

  it('read routing: the alias on the primary host, on the replica, in a host list; absent without replicas or alias', () => {
    expect(readRouting(withReplica(), 'app_ro')).toEqual({ database: 'app_ro', host: 'postgres', onPrimary: true });
    expect(readRouting(withReplica({ readHost: 'postgres-replica' }), 'app_ro')?.onPrimary).toBe(false);
    expect(readRouting(withReplica({ readHost: 'postgres-replica,postgres' }), 'app_ro')?.onPrimary).toBe(false);
    expect(readRouting(withReplica(), 'reads')).toBeUndefined();
    expect(readRouting(snapshot(), 'app_ro')).toBeUndefined();
  });
});

describe('replication rules', () => {
  const rule = (name: string): Rule => DEFAULT_RULES.find((r) => r.name === name)!;
  const observe = (name: string, snap: StackSnapshot) => rule(name).observe(snap, undefined, { pools: POOLS }).map((o) => ({ labels: o.labels, value: o.value, text: o.describe(o.value) }));

  it('replica_lag: WARNING 5 s, CRITICAL 30 s, per target, on the computed lag', () => {
    expect([rule('replica_lag').warning, rule('replica_lag').critical]).toEqual([5, 30]);
    expect(observe('replica_lag', withReplica())).toEqual([{ labels: { target: 'postgres-replica' }, value: 0, text: expect.any(String) }]);
    const broken = observe('replica_lag', withReplica({ replica: { receiver_status: null, replay_age_seconds: 31 }, primary: { currentLsnBytes: 50335744 } }));
    expect(broken).toEqual([{ labels: { target: 'postgres-replica' }, value: 31, text: 'Replica postgres-replica is 31 s behind the primary (0 MiB of WAL): no WAL receiver: the stream from the primary is not running' }]);
    expect(observe('replica_lag', withReplica({ replicaState: state<PostgresSample>(undefined, 'down') }))).toEqual([]);
  });

  it('replica_down: CRITICAL per configured replica, label target', () => {
    expect(rule('replica_down').critical).toBe(1);
    expect(observe('replica_down', withReplica()).map((o) => [o.labels, o.value])).toEqual([[{ target: 'postgres-replica' }, 0]]);
    const down = observe('replica_down', withReplica({ replicaState: state<PostgresSample>(undefined, 'connect ECONNREFUSED') }));
    expect(down).toEqual([{ labels: { target: 'postgres-replica' }, value: 1, text: 'Replica postgres-replica is down: connect ECONNREFUSED' }]);
    expect(observe('replica_down', snapshot())).toEqual([]);
  });

  it('replication_slot_inactive: inactive physical slot 1, unreserved 1, lost 2 (CRITICAL); active reserved 0', () => {
    const slots = (rows: Record<string, unknown>[]) => withReplica({ primary: { slots: parseSlots(rows) } });
    const base = slotRows[0]!;
    expect(observe('replication_slot_inactive', slots([base])).map((o) => o.value)).toEqual([0]);
    const values = observe('replication_slot_inactive', slots([
      { ...base, slot_name: 'idle', active: false, retained_bytes: '16777216' },
      { ...base, slot_name: 'near', wal_status: 'unreserved' },
      { ...base, slot_name: 'gone', active: false, wal_status: 'lost' },
      { ...base, slot_name: 'logical_idle', slot_type: 'logical', active: false },
    ]));
    expect(values.map((o) => [o.labels.slot_name, o.value])).toEqual([['idle', 1], ['near', 1], ['gone', 2], ['logical_idle', 0]]);
    expect(values[0]!.labels).toEqual({ target: 'postgres', slot_name: 'idle' });
    expect(values[0]!.text).toMatch(/Physical replication slot idle on postgres is inactive, keeping 16 MiB of WAL/);
    expect(values[2]!.text).toMatch(/lost its WAL/);
    expect([rule('replication_slot_inactive').warning, rule('replication_slot_inactive').critical]).toEqual([1, 2]);
  });

  it('replica_not_streaming: replicas configured and no standby streaming in pg_stat_replication', () => {
    expect(observe('replica_not_streaming', withReplica()).map((o) => o.value)).toEqual([0]);
    const none = observe('replica_not_streaming', withReplica({ primary: { replication: [] } }));
    expect(none).toEqual([{ labels: { target: 'postgres' }, value: 1, text: '1 replica(s) configured (postgres-replica), but the primary postgres streams WAL to none: pg_stat_replication shows no standby at all' }]);
    const catchup = withReplica({ primary: { replication: parseReplication([{ ...replicationRows[0]!, state: 'catchup' }]) } });
    expect(observe('replica_not_streaming', catchup)[0]).toMatchObject({ value: 1, text: expect.stringMatching(/shows postgres-replica@172\.18\.0\.7 catchup$/) });
    // No replica configured: nothing to say.
    expect(observe('replica_not_streaming', snapshot())).toEqual([]);
  });

  it('reads_on_primary: WARNING when the read alias points at no replica', () => {
    expect(observe('reads_on_primary', withReplica())).toEqual([{ labels: { database: 'app_ro' }, value: 1, text: "PgBouncer's read database app_ro points at postgres, not at a replica (postgres-replica): reads run on the primary" }]);
    expect(observe('reads_on_primary', withReplica({ readHost: 'postgres-replica' })).map((o) => o.value)).toEqual([0]);
    expect(observe('reads_on_primary', snapshot())).toEqual([]);
  });

  it('the engine fires replica_down at CRITICAL and replica_lag at CRITICAL past 30 s', () => {
    const engine = new AlertEngine(DEFAULT_RULES.filter((r) => r.name === 'replica_down' || r.name === 'replica_lag').map((r) => ({ ...r, forMs: 0 })), { defaultForMs: 0, resolveForMs: 0, hysteresis: 0.05, context: { pools: POOLS } });
    engine.evaluate(withReplica({ replica: { receiver_status: null, replay_age_seconds: 45 } }), 0);
    expect(engine.firing().map((a) => [a.name, a.severity, a.labels])).toEqual([['replica_lag', 'CRITICAL', { target: 'postgres-replica' }]]);
    engine.evaluate(withReplica({ replicaState: state<PostgresSample>(undefined, 'ECONNREFUSED') }), 1000);
    expect(engine.firing().map((a) => [a.name, a.severity])).toEqual([['replica_down', 'CRITICAL']]);
  });
});

describe('replication metrics (label target on every Postgres family, one series per instance)', () => {
  async function scrape(snap: StackSnapshot): Promise<string[]> {
    const registry = new Registry();
    const engine = new AlertEngine([], { defaultForMs: 0, resolveForMs: 0, hysteresis: 0.05, context: { pools: POOLS } });
    registerMetrics(registry, () => ({ snapshot: snap, alerts: engine }), POOLS);
    return (await registry.metrics()).split('\n');
  }

  it('primary and replica side by side', async () => {
    const lines = await scrape(withReplica({ primary: { currentLsnBytes: 50331648 + 4096 }, replica: { replay_age_seconds: 2.5 } }));
    expect(lines).toEqual(expect.arrayContaining([
      'pg_up{target="postgres"} 1',
      'pg_up{target="postgres-replica"} 1',
      'pg_replication_is_replica{target="postgres"} 0',
      'pg_replication_is_replica{target="postgres-replica"} 1',
      'pg_replication_lag_seconds{target="postgres"} 0',
      'pg_replication_lag_seconds{target="postgres-replica"} 2.5',
      'pg_replication_last_replay_seconds{target="postgres-replica"} 2.5',
      'poolguard_pg_replication_lag_bytes{target="postgres-replica"} 4096',
      'poolguard_pg_replay_paused{target="postgres-replica"} 0',
      'poolguard_pg_wal_receiver_streaming{target="postgres-replica"} 1',
      'pg_stat_replication_pg_current_wal_lsn_bytes{application_name="postgres-replica",client_addr="172.18.0.7",state="streaming",target="postgres"} 50331648',
      'pg_stat_replication_pg_wal_lsn_diff{application_name="postgres-replica",client_addr="172.18.0.7",state="streaming",target="postgres"} 0',
      'pg_stat_replication_reply_time{application_name="postgres-replica",client_addr="172.18.0.7",state="streaming",target="postgres"} 1767225599.8',
      'poolguard_pg_stat_replication_replay_lag_seconds{application_name="postgres-replica",client_addr="172.18.0.7",state="streaming",target="postgres"} 0.000912',
      'pg_replication_slots_active{slot_name="replica1",slot_type="physical",target="postgres"} 1',
      'pg_replication_slots_pg_wal_lsn_diff{slot_name="replica1",slot_type="physical",target="postgres"} 0',
      'poolguard_pg_replication_slot_wal_status{slot_name="replica1",wal_status="reserved",target="postgres"} 1',
      'pg_settings_max_connections{target="postgres-replica"} 100',
      'pg_stat_activity_count{datname="app",state="idle",target="postgres-replica"} 21',
      'poolguard_reads_on_primary{database="app_ro"} 1',
      'poolguard_source_up{source="postgres"} 1',
      'poolguard_source_up{source="postgres-replica"} 1',
      '# TYPE pg_replication_lag_seconds gauge',
      '# TYPE pg_stat_replication_pg_wal_lsn_diff gauge',
    ]));
    // NULL write_lag / flush_lag: absent, never a made-up 0; the primary has no standby-side series.
    expect(lines.filter((l) => /^poolguard_pg_stat_replication_(write|flush)_lag_seconds\{/.test(l))).toEqual([]);
    expect(lines.filter((l) => /^(pg_replication_last_replay_seconds|poolguard_pg_replay_paused)\{target="postgres"\}/.test(l))).toEqual([]);
  });

  it('a replica down: pg_up 0 for it, its other series absent; reads on the replica read 0', async () => {
    const lines = await scrape(withReplica({ replicaState: state<PostgresSample>(undefined, 'down'), readHost: 'postgres-replica' }));
    expect(lines).toEqual(expect.arrayContaining(['pg_up{target="postgres-replica"} 0', 'poolguard_source_up{source="postgres-replica"} 0', 'poolguard_reads_on_primary{database="app_ro"} 0']));
    expect(lines.filter((l) => l.includes('target="postgres-replica"') && !l.startsWith('pg_up'))).toEqual([]);
  });

  it('no replica configured: no read-routing gauge (even with the alias)', async () => {
    const lines = await scrape(snapshot({ pgbouncer: withReplica().sources.pgbouncer }));
    expect(lines.filter((l) => l.startsWith('poolguard_reads_on_primary{'))).toEqual([]);
  });
});

describe('/health with replicas', () => {
  const app = (snap: StackSnapshot, token?: string) =>
    buildApp({
      logger: pino({ level: 'silent' }), snapshot: () => snap, alerts: () => [],
      metrics: { contentType: new Registry().contentType, render: async () => '' },
      redisStatus: () => 'ready', isShuttingDown: () => false, pools: POOLS, pollIntervalMs: 5000, token,
      now: () => new Date('2026-01-01T00:00:01.000Z'),
    });

  it('a replica down: still 200 and healthy, degraded, the replica listed with its error', async () => {
    const res = await (await app(withReplica({ replicaState: state<PostgresSample>(undefined, 'connect ECONNREFUSED 172.18.0.7:5432') }))).inject('/health');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      healthy: true,
      degraded: true,
      postgres: { healthy: true },
      replicas: [{ instance: 'postgres-replica', healthy: false, status: 'down', lagSeconds: null, replayPaused: null, lastError: 'connect ECONNREFUSED 172.18.0.7:5432', restarts: 0 }],
    });
  });

  it('a streaming replica: not degraded; no replica: an empty list', async () => {
    expect((await (await app(withReplica())).inject('/health')).json()).toMatchObject({ healthy: true, degraded: false, replicas: [{ status: 'streaming', healthy: true, lagSeconds: 0 }] });
    expect((await (await app(snapshot())).inject('/health')).json()).toMatchObject({ degraded: false, replicas: [] });
  });

  it('without the token a replica error is redacted like the others', async () => {
    const TOKEN = 'test-token-0123456789abcdef';
    const snap = withReplica({ replicaState: state<PostgresSample>(undefined, 'password authentication failed for user "poolguard_monitor"') });
    const open = (await (await app(snap, TOKEN)).inject('/health')).json();
    expect(open.replicas[0].lastError).toBe(REDACTED_ERROR);
    const withToken = (await (await app(snap, TOKEN)).inject({ url: '/health', headers: { authorization: `Bearer ${TOKEN}` } })).json();
    expect(withToken.replicas[0].lastError).toMatch(/password authentication failed/);
    const body = healthBody(snap, { isShuttingDown: false, redisStatus: 'ready', now: new Date(0), pools: POOLS });
    expect(redactHealth(body).replicas[0]!.lastError).toBe(REDACTED_ERROR);
    expect(body.replicas[0]!.lastError).toMatch(/password/); // redactHealth returns a copy
  });

  it('the primary down stays unhealthy (503) whatever the replica', async () => {
    const snap = snapshot({ postgres: state<PostgresSample>(undefined, 'ECONNREFUSED') }, 1, { 'postgres-replica': state(replicaSample()) });
    const res = await (await app(snap)).inject('/health');
    expect(res.statusCode).toBe(503);
    // Primary unknown, receive = replay while streaming: the replica still reads as caught up.
    expect(res.json()).toMatchObject({ healthy: false, degraded: false, replicas: [{ status: 'streaming' }] });
  });
});

describe('poller: a second instance of a kind is configuration, not code', () => {
  it('polls every instance; sources holds the first, instances every one; ids name the hooks', async () => {
    let replicaUp = false;
    const errors: string[] = [];
    const poller = new Poller<{ postgres: PostgresSample; redis: number }>(
      { postgres: { instance: 'postgres', run: async () => primaryWithStandby() }, redis: { run: async () => 1 } },
      { intervalMs: 1000, timeoutMs: 100, onSourceError: (name) => errors.push(name) },
      { postgres: [{ instance: 'postgres-replica', run: async () => { if (!replicaUp) throw new Error('ECONNREFUSED'); return replicaSample(); } }] },
    );
    await poller.pollOnce();
    const snap = poller.snapshot;
    expect(Object.keys(snap.instances.postgres)).toEqual(['postgres', 'postgres-replica']);
    expect(snap.instances.postgres.postgres).toBe(snap.sources.postgres);
    expect(Object.keys(snap.instances.redis)).toEqual(['redis']);
    expect([snap.sources.postgres.up, snap.instances.postgres['postgres-replica']!.up]).toEqual([true, false]);
    expect(errors).toEqual(['postgres-replica']);
    replicaUp = true;
    await poller.pollOnce();
    expect(poller.snapshot.instances.postgres['postgres-replica']).toMatchObject({ up: true, consecutiveFailures: 0, errorsTotal: 1 });
  });

  it('an instance named like a kind is refused', () => {
    expect(() => new Poller<{ postgres: number; redis: number }>({ postgres: { run: async () => 1 }, redis: { run: async () => 1 } }, { intervalMs: 1000, timeoutMs: 100 }, { postgres: [{ instance: 'redis', run: async () => 1 }] })).toThrow(/share the id "redis"/);
  });
});
