// The alert rules' names and the shape of a config override: what config.ts validates
// SIDECAR_ALERT_RULES against. A leaf module (no imports), so the config layer never imports the
// rules themselves. rules.ts implements exactly these names (test/unit/rules.test.ts checks it).
export const RULE_NAMES = [
  'pgbouncer_pool_utilization',
  'pgbouncer_client_utilization',
  'pgbouncer_clients_waiting',
  'postgres_connections',
  'postgres_idle_in_transaction',
  'postgres_long_transaction',
  'backend_down',
  'backend_restarted',
  'postgres_disk_usage',
  'redis_memory',
  'redis_rejected_connections',
  'replica_lag',
  'replica_down',
  'replication_slot_inactive',
  'replica_not_streaming',
  'reads_on_primary',
  'connection_budget',
  'slow_statement',
  'archive_failing',
  'archive_lag',
  'wal_dropped',
  'backup_failed',
  'backup_overdue',
  'backup_repository_error',
  'backup_service_down',
] as const;

export type RuleName = (typeof RULE_NAMES)[number];

/** SIDECAR_ALERT_RULES entry for one rule: null removes a level, enabled: false drops the rule. */
export interface RuleOverride {
  warning?: number | null | undefined;
  critical?: number | null | undefined;
  forMs?: number | undefined;
  enabled?: boolean | undefined;
}
