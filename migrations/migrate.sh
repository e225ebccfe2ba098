#!/usr/bin/env bash
# Usage: migrate [up|down N|redo]        (default: up)
#
# Runs the plain-SQL migrations in $MIGRATIONS_DIR (default /app/sql) with node-pg-migrate on
# the DIRECT database URL. It must never go through PgBouncer: node-pg-migrate holds a session
# advisory lock, which transaction pooling cannot keep. Concurrent runs wait for each other
# (--advisory-lock-mode wait) instead of racing.
#
# Environment:
#   DATABASE_URL_DIRECT   postgres://USER@HOST:5432/DB (a password in the URL must be
#                         percent-encoded; better: leave it out and use APP_PASSWORD)
#   APP_PASSWORD | APP_PASSWORD_FILE   the password of the URL's user (optional if in the URL)
#   MIGRATIONS_DIR        default /app/sql
set -euo pipefail

die() { printf 'migrate: ERROR: %s\n' "$*" >&2; exit 1; }

[ -n "${DATABASE_URL_DIRECT:-}" ] || die "DATABASE_URL_DIRECT is not set (postgres://USER@HOST:5432/DB)"
case "$DATABASE_URL_DIRECT" in
  postgres://*|postgresql://*) ;;
  *) die "DATABASE_URL_DIRECT must start with postgres:// or postgresql://" ;;
esac
# Refuse the pooled URL: a session advisory lock through transaction pooling is not held.
hostport="${DATABASE_URL_DIRECT#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"; hostport="${hostport%%\?*}"
if [[ "$hostport" == pgbouncer* || "$hostport" == *:6432 ]]; then
  die "DATABASE_URL_DIRECT points at PgBouncer ($hostport); migrations need the direct Postgres URL"
fi
# shellcheck source=scripts/secret-env.sh
source /usr/local/lib/poolguard/secret-env.sh
secret_export APP_PASSWORD || die "$SECRET_PROBLEM"
# node-postgres falls back to PGPASSWORD when the URL has none: no encoding pitfalls.
[ -z "${APP_PASSWORD:-}" ] || export PGPASSWORD="$APP_PASSWORD"
unset APP_PASSWORD APP_PASSWORD_FILE

dir="${MIGRATIONS_DIR:-/app/sql}"
[ -d "$dir" ] || die "MIGRATIONS_DIR $dir does not exist"
[ $# -gt 0 ] || set -- up

echo "migrate: running '$*' from $dir on ${hostport} (direct)" >&2
exec node /app/node_modules/node-pg-migrate/bin/node-pg-migrate.js "$@" \
  --database-url-var DATABASE_URL_DIRECT \
  --migrations-dir "$dir" \
  --migrations-table pgmigrations \
  --advisory-lock-mode wait \
  --check-order \
  --single-transaction \
  --verbose false
