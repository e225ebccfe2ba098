// Types shared across layers: the validated configuration and the targets it describes. Only
// types (and no imports but type ones from leaf modules), so any layer may import it: config.ts
// produces these values, pg-connection.ts, clients.ts, pools.ts and monitor.ts consume them.
import type { RuleName, RuleOverride } from './alerts/names.js';

export interface PgTls {
  mode: 'require' | 'verify-ca' | 'verify-full';
  /** PEM text of the CA bundle (sslrootcert, else SIDECAR_PG_TLS_CA_FILE); only for verify-*. Never log it. */
  ca: string | undefined;
}

export interface PgTarget {
  host: string;
  port: number;
  user: string;
  database: string;
  password: string | undefined;
  /** From the URL's sslmode: undefined is plain TCP (sslmode=disable, the default). */
  tls: PgTls | undefined;
}

export interface RedisTarget {
  host: string;
  port: number;
  db: number;
  username: string | undefined;
  password: string | undefined;
  tls: boolean;
}

export interface Config {
  host: string;
  port: number;
  logLevel: string;
  pollIntervalMs: number;
  sourceTimeoutMs: number;
  downPollIntervalMs: number;
  reconnectMaxMs: number;
  summaryIntervalMs: number;
  shutdownGraceMs: number;
  pgbouncer: PgTarget;
  probe: PgTarget;
  /** The primary; its instance name is its host. */
  postgres: PgTarget;
  /**
   * Streaming replicas (SIDECAR_POSTGRES_REPLICA_URLS), watched as more instances of the postgres
   * kind, each named by its host; empty when none are configured or SIDECAR_PROFILES leaves out
   * `replica`. They log in with SIDECAR_POSTGRES_PASSWORD.
   */
  postgresReplicas: PgTarget[];
  /** The compose profiles the stack runs with (SIDECAR_PROFILES); undefined when not set. */
  profiles: string[] | undefined;
  redis: RedisTarget;
  token: string | undefined;
  /** Per remote address: open sockets and new sockets a second (app.ts HttpLimits). */
  http: { maxConnectionsPerAddress: number; newConnectionsPerSecondPerAddress: number };
  /** PgBouncer's [databases] alias that serves reads (SIDECAR_READ_DATABASE, app_ro by default). */
  readDatabase: string;
  /** A read-only mount of Postgres's data volume, watched with statfs (undefined: not watched). */
  pgdataPath: string | undefined;
  /** The backup service's status.json (undefined: backups are not watched). */
  backupStatusPath: string | undefined;
  /** Points of the in-memory history (SIDECAR_HISTORY_SECONDS at the poll interval; at most MAX_HISTORY_POINTS). */
  historyPoints: number;
  alerts: {
    forMs: number;
    resolveForMs: number;
    hysteresis: number;
    overrides: Partial<Record<RuleName, RuleOverride>>;
    webhook: { url: string; timeoutMs: number; retries: number } | undefined;
    /** The sidecar's own alerts to Alertmanager (SIDECAR_ALERTMANAGER_URL); undefined: not sent. */
    alertmanager: { url: string; timeoutMs: number; retries: number; resendMs: number; generatorURL: string } | undefined;
  };
}

/**
 * Which PgBouncer pools are whose (pools.ts): PgBouncer names a pool by its database entry and
 * its user. From the config (poolScope in pools.ts): the database of SIDECAR_POSTGRES_URL is the
 * application's (PgBouncer's entry for it has the same name in this bundle) and
 * SIDECAR_PROBE_URL's database and user are the sidecar's probe. PgBouncer's auth_user is read
 * from SHOW CONFIG at each poll instead.
 */
export interface PoolScope {
  appDatabase: string;
  probe: { database: string; user: string };
  /** PgBouncer's [databases] alias that serves reads (SIDECAR_READ_DATABASE): its host tells where reads go. */
  readDatabase: string;
}

/**
 * `make plan` before a deploy: the settings the stack would render (scripts/plan.sh reads them
 * from the env file, the overrides given and the shipped defaults, and passes them as PLAN_*).
 */
export interface PlanSettings {
  maxConnections: number;
  superuserReservedConnections: number;
  reservedConnections: number;
  defaultPoolSize: number;
  reservePoolSize: number;
  maxDbConnections: number;
  maxClientConn: number;
  pgbouncerInstances: number;
  /** The replica profile: the read alias may sit on the replica, and the router holds a console slot. */
  replica: boolean;
  /** The sidecar's probe entry in PgBouncer and its user (pool_size 1). */
  probe: { database: string; user: string };
  appUser: string;
  appReadUser: string;
  authUser: string;
  app: { instances: number; pool: number } | undefined;
}

