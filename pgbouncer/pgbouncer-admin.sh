#!/usr/bin/env bash
# Usage: pgbouncer-admin [psql args...]      e.g. pgbouncer-admin -c 'SHOW POOLS'
#
# Opens PgBouncer's admin console inside the container as the admin user. The password is
# read from PGBOUNCER_ADMIN_PASSWORD or PGBOUNCER_ADMIN_PASSWORD_FILE and passed in the
# environment, never on a command line.
set -euo pipefail
# shellcheck source=scripts/secret-env.sh
source /usr/local/lib/poolguard/secret-env.sh
secret_require PGBOUNCER_ADMIN_PASSWORD || { echo "pgbouncer-admin: $SECRET_PROBLEM" >&2; exit 1; }
PGPASSWORD="$PGBOUNCER_ADMIN_PASSWORD" exec psql --no-psqlrc -h 127.0.0.1 -p 6432 -U "${PGBOUNCER_ADMIN_USER:-pgbouncer_admin}" -d pgbouncer "$@"
