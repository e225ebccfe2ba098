#!/usr/bin/env bash
# Usage: scripts/urls.sh [ENV_FILE]        (default: .env)
#
# Prints the URLs an app on this host uses for the dev stack, derived from ENV_FILE so they
# never disagree with it: DATABASE_URL (pooled, PgBouncer), DATABASE_URL_READ (pooled, the
# read-only role on the read alias: the replica while it is healthy and caught up, else the
# primary), DATABASE_URL_DIRECT (Postgres: migrations, LISTEN/NOTIFY) and REDIS_URL, with the
# passwords percent-encoded. Prisma: add
# ?connection_limit=N (your per-instance pool) to DATABASE_URL; never pgbouncer=true here.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
env_file="${1:-$ROOT/.env}"
[ -f "$env_file" ] || die "$env_file does not exist: run make env (or make up) first"
val() { local v; v="$(env_get "$env_file" "$1")"; printf '%s' "${v:-$2}"; }
user="$(urlencode "$(val APP_USER app)")"
db="$(urlencode "$(val APP_DB app)")"
pw="$(val APP_PASSWORD '')"; [ -n "$pw" ] || die "$env_file has no APP_PASSWORD"
rpw="$(val REDIS_PASSWORD '')"; [ -n "$rpw" ] || die "$env_file has no REDIS_PASSWORD"
printf 'DATABASE_URL=postgresql://%s:%s@127.0.0.1:%s/%s\n' "$user" "$(urlencode "$pw")" "$(val PUBLISH_PGBOUNCER_PORT 6432)" "$db"
rdpw="$(val APP_READ_PASSWORD '')"; [ -n "$rdpw" ] || die "$env_file has no APP_READ_PASSWORD (make env adds it)"
printf 'DATABASE_URL_READ=postgresql://%s:%s@127.0.0.1:%s/%s_ro\n' "$(urlencode "$(val APP_READ_USER app_reader)")" "$(urlencode "$rdpw")" "$(val PUBLISH_PGBOUNCER_PORT 6432)" "$db"
printf 'DATABASE_URL_DIRECT=postgresql://%s:%s@127.0.0.1:%s/%s\n' "$user" "$(urlencode "$pw")" "$(val PUBLISH_POSTGRES_PORT 5432)" "$db"
printf 'REDIS_URL=redis://:%s@127.0.0.1:%s/0\n' "$(urlencode "$rpw")" "$(val PUBLISH_REDIS_PORT 6379)"
