#!/usr/bin/env bash
# Usage: scripts/passwords.sh [global compose options, e.g. --env-file .env]        (dev stack)
#
# Sets the password of every role the dev stack created (APP_USER, MONITOR_USER,
# PGBOUNCER_AUTH_USER) in Postgres to the one in the env file: roles are created once, on the
# first start of an empty volume, so a password edited in .env afterwards needs this. Runs as
# the postgres OS user over the container's Unix socket (peer authentication: no password
# needed); the passwords travel in the environment, never on a command line. Starts Postgres
# when it is not running. Then `make up` restarts what uses them.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
need docker
COMPOSE=("$ROOT/scripts/compose.sh" -f "$ROOT/docker-compose.dev.yml" "$@")
env_file="$ROOT/.env"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[i]}" != --env-file ] || env_file="${args[i+1]:-}"; done
[ -f "$env_file" ] || die "$env_file does not exist"
val() { local v; v="$(env_get "$env_file" "$1")"; printf '%s' "${v:-$2}"; }
"${COMPOSE[@]}" up -d --wait postgres >/dev/null 2>&1 || die "Postgres does not start: make up shows why"
pairs=()
for spec in APP_USER:APP_PASSWORD:app MONITOR_USER:MONITOR_PASSWORD:poolguard_monitor PGBOUNCER_AUTH_USER:PGBOUNCER_AUTH_PASSWORD:pgbouncer_auth; do
  IFS=: read -r uvar pvar def <<<"$spec"
  [ -n "$(val "$pvar" '')" ] || die "$env_file has no $pvar"
  pairs+=("$(val "$uvar" "$def")=$(val "$pvar" '')")
done
set_role_passwords "$(val POSTGRES_USER postgres)" "${pairs[@]}" || die "could not set the passwords (the psql error is above)"
log "set the passwords of $(val APP_USER app), $(val MONITOR_USER poolguard_monitor) and $(val PGBOUNCER_AUTH_USER pgbouncer_auth) from $env_file; now: make up"
