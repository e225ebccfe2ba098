#!/usr/bin/env bash
# Usage: scripts/plan.sh [ENV_FILE]          (make plan [APP_INSTANCES=N APP_POOL=M] [settings...])
#
# The connection budget: can PgBouncer's pools plus the direct connections fit in Postgres's
# max_connections, and the apps' pools in PgBouncer's max_client_conn? Each line with its
# figures, PASS/WARN/FAIL and one sentence of advice; exit 1 when a line fails.
#
# Two modes:
#   live      the running dev stack's sidecar answers (GET /plan on PUBLISH_SIDECAR_PORT) and no
#             setting below is given: the settings PgBouncer and Postgres run with now.
#   rendered  before a deploy ("can I scale to this?"): the settings the stack would run with,
#             from the command line, then ENV_FILE (.env), then the shipped defaults
#             (pgbouncer/pgbouncer.ini, postgres/postgresql.conf). PLAN_MODE=rendered forces it.
# Settings: PGBOUNCER_DEFAULT_POOL_SIZE PGBOUNCER_RESERVE_POOL_SIZE PGBOUNCER_MAX_DB_CONNECTIONS
#           PGBOUNCER_MAX_CLIENT_CONN POSTGRES_MAX_CONNECTIONS COMPOSE_PROFILES PGBOUNCER_INSTANCES
# Apps:     APP_INSTANCES and APP_POOL (both or neither): instances × each one's pool size.
# The rendered mode runs the sidecar image's `plan` command (the same code as GET /plan).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
need docker curl node

ENV_FILE="${1:-$ROOT/.env}"
SETTINGS=(PGBOUNCER_DEFAULT_POOL_SIZE PGBOUNCER_RESERVE_POOL_SIZE PGBOUNCER_MAX_DB_CONNECTIONS PGBOUNCER_MAX_CLIENT_CONN POSTGRES_MAX_CONNECTIONS COMPOSE_PROFILES PGBOUNCER_INSTANCES)

if { [ -n "${APP_INSTANCES:-}" ] && [ -z "${APP_POOL:-}" ]; } || { [ -z "${APP_INSTANCES:-}" ] && [ -n "${APP_POOL:-}" ]; }; then
  die "give APP_INSTANCES and APP_POOL together (make plan APP_INSTANCES=6 APP_POOL=10), or neither"
fi

# value NAME DEFAULT: the command line's, else the env file's, else DEFAULT.
value() {
  local v="${!1:-}"
  [ -n "$v" ] || v="$(env_get "$ENV_FILE" "$1")"
  printf '%s' "${v:-$2}"
}
# ini KEY FILE: a "key = value" of the shipped file.
ini() { awk -v k="$1" '$1==k && $2=="=" {print $3; exit}' "$2"; }

given=0
for s in "${SETTINGS[@]}"; do [ -z "${!s:-}" ] || given=1; done
mode="${PLAN_MODE:-}"
port="$(env_get "$ENV_FILE" PUBLISH_SIDECAR_PORT)"; port="${port:-8787}"
if [ -z "$mode" ]; then
  mode=rendered
  if [ "$given" = 0 ] && curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz" 2>/dev/null; then mode=live; fi
fi
case "$mode" in live|rendered) ;; *) die "PLAN_MODE must be live or rendered, got '$mode'" ;; esac

print() { # the plan as JSON on stdin -> the lines, and the exit status
  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const body = JSON.parse(s);
      if (!body.lines) { console.error(`plan: ${body.message ?? s}`); process.exit(2); }
      for (const l of body.lines) console.log(`${l.status.padEnd(4)}  ${l.name}\n      ${l.figures}\n      ${l.advice}`);
      console.log(body.status);
      process.exit(body.status === "FAIL" ? 1 : 0);
    });'
}

if [ "$mode" = live ]; then
  query=""
  [ -z "${APP_INSTANCES:-}" ] || query="?appInstances=$APP_INSTANCES&appPool=$APP_POOL"
  token="$(env_get "$ENV_FILE" SIDECAR_TOKEN)"
  log "live: the running stack's settings (sidecar on 127.0.0.1:$port)"
  body="$(curl -sS --max-time 5 ${token:+-H "Authorization: Bearer $token"} "http://127.0.0.1:$port/plan$query")" \
    || die "the sidecar on 127.0.0.1:$port did not answer /plan: is the stack up (make up)? PLAN_MODE=rendered plans from the settings instead"
  print <<<"$body"
  exit $?
fi

ini_file="$ROOT/pgbouncer/pgbouncer.ini"
conf="$ROOT/postgres/postgresql.conf"
tag="${POOLGUARD_IMAGE_TAG:-$(env_get "$ENV_FILE" POOLGUARD_IMAGE_TAG)}"; tag="${tag:-0.1.0-dev}"
image="poolguard/sidecar:$tag"
docker image inspect "$image" >/dev/null 2>&1 || die "no image $image to compute the plan with: run make build first"
log "rendered: the settings the stack would run with (command line, then $(basename "$ENV_FILE"), then the shipped defaults)"
env_args=(
  -e "PLAN_DEFAULT_POOL_SIZE=$(value PGBOUNCER_DEFAULT_POOL_SIZE "$(ini default_pool_size "$ini_file")")"
  -e "PLAN_RESERVE_POOL_SIZE=$(value PGBOUNCER_RESERVE_POOL_SIZE "$(ini reserve_pool_size "$ini_file")")"
  -e "PLAN_MAX_DB_CONNECTIONS=$(value PGBOUNCER_MAX_DB_CONNECTIONS "$(ini max_db_connections "$ini_file")")"
  -e "PLAN_MAX_CLIENT_CONN=$(value PGBOUNCER_MAX_CLIENT_CONN "$(ini max_client_conn "$ini_file")")"
  -e "PLAN_MAX_CONNECTIONS=$(value POSTGRES_MAX_CONNECTIONS 100)"
  -e "PLAN_SUPERUSER_RESERVED_CONNECTIONS=$(ini superuser_reserved_connections "$conf")"
  -e "PLAN_PGBOUNCER_INSTANCES=$(value PGBOUNCER_INSTANCES 1)"
  -e "PLAN_PROFILES=$(value COMPOSE_PROFILES '')"
  -e "PLAN_APP_USER=$(value APP_USER app)"
  -e "PLAN_APP_READ_USER=$(value APP_READ_USER app_reader)"
  -e "PLAN_AUTH_USER=$(value PGBOUNCER_AUTH_USER pgbouncer_auth)"
)
[ -z "${APP_INSTANCES:-}" ] || env_args+=(-e "PLAN_APP_INSTANCES=$APP_INSTANCES" -e "PLAN_APP_POOL=$APP_POOL")
docker run --rm --network none --entrypoint node "${env_args[@]}" "$image" dist/main.js plan
