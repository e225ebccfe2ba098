#!/usr/bin/env bash
# Usage: run-exporter pgbouncer|postgres|redis
# Starts one of Debian's exporters against the poolguard stack (compose network names).
# Env: STATS_PASSWORD (pgbouncer_stats), MONITOR_PASSWORD (poolguard_monitor), REDIS_PASSWORD,
#      APP_DB (default app).
set -euo pipefail
case "${1:-}" in
  pgbouncer)
    exec prometheus-pgbouncer-exporter --web.listen-address=:9127 \
      "--pgBouncer.connectionString=postgres://pgbouncer_stats:${STATS_PASSWORD:?}@pgbouncer:6432/pgbouncer?sslmode=disable" ;;
  postgres)
    export DATA_SOURCE_NAME="postgresql://poolguard_monitor:${MONITOR_PASSWORD:?}@postgres:5432/${APP_DB:-app}?sslmode=disable"
    exec prometheus-postgres-exporter --web.listen-address=:9187 ;;
  redis)
    export REDIS_PASSWORD="${REDIS_PASSWORD:?}"
    exec prometheus-redis-exporter --redis.addr=redis://redis:6379 --web.listen-address=:9121 ;;
  *) echo "usage: run-exporter pgbouncer|postgres|redis" >&2; exit 2 ;;
esac
