#!/usr/bin/env bash
# Usage: pgbouncer-admin [psql args...]      e.g. pgbouncer-admin -c 'SHOW POOLS'
#
# Opens PgBouncer's admin console inside the container as the admin user. The password is
# read from PGBOUNCER_ADMIN_PASSWORD or PGBOUNCER_ADMIN_PASSWORD_FILE and passed in the
# environment, never on a command line.
set -euo pipefail
pw="${PGBOUNCER_ADMIN_PASSWORD:-}"
if [ -z "$pw" ] && [ -n "${PGBOUNCER_ADMIN_PASSWORD_FILE:-}" ]; then pw="$(<"$PGBOUNCER_ADMIN_PASSWORD_FILE")"; fi
[ -n "$pw" ] || { echo "pgbouncer-admin: PGBOUNCER_ADMIN_PASSWORD(_FILE) is not set" >&2; exit 1; }
PGPASSWORD="$pw" exec psql --no-psqlrc -h 127.0.0.1 -p 6432 -U "${PGBOUNCER_ADMIN_USER:-pgbouncer_admin}" -d pgbouncer "$@"
