#!/usr/bin/env bash
# Usage: scripts/rotate.sh [global compose options, e.g. --env-file prod.env -p NAME] SECRET|all
#        (make rotate SECRET=app_password)
#
# Rotates one secret of the running prod stack, or all of them, in the order that keeps the
# stack working: the new value (32 random bytes) goes to Postgres or Redis first where they keep
# it, then into the secret file IN PLACE (a container sees a bind-mounted file's new content,
# not a replaced file), then every service that read the old one at start reloads or restarts.
# Ends with the sidecar's /health; exit 1 naming what failed. SECRET is one of:
#   postgres_password         ALTER ROLE (the superuser; nothing else uses it after initdb)
#   app_password              ALTER ROLE app, then the file. Your apps must re-read the file
#                             (restart them): until they do, their NEW connections are refused;
#                             connections already open keep working (measured in
#                             docs/reliability.md). The migrate job reads it at its next run.
#   monitor_password          ALTER ROLE, file, restart the sidecar (a monitoring gap of ~2 s)
#   pgbouncer_auth_password   ALTER ROLE, file, PgBouncer reloads (SIGHUP: clients stay)
#   pgbouncer_admin_password  file, PgBouncer reloads
#   pgbouncer_stats_password  file, PgBouncer reloads, the sidecar restarts
#   redis_password            CONFIG SET requirepass (open connections stay), file, the sidecar
#                             restarts; your apps must re-read it like app_password
#   sidecar_token             file, the sidecar restarts; update your scrapers
#   replication_password      ALTER ROLE replicator, file, the replica (when running) restarts:
#                             its reads move to the primary for those seconds
#   app_read_password         ALTER ROLE app_reader, then the file; your apps re-read it like
#                             app_password (DATABASE_URL_READ)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -gt 0 ] || { usage >&2; exit 2; }
case "${*: -1}" in -h|--help) usage; exit 0 ;; esac
secret="${*: -1}"
set -- "${@:1:$#-1}"
ALL=(postgres_password app_password monitor_password pgbouncer_auth_password pgbouncer_admin_password pgbouncer_stats_password redis_password sidecar_token replication_password app_read_password)
if [ "$secret" != all ] && ! printf '%s\n' "${ALL[@]}" | grep -qxF "$secret"; then
  die "unknown secret '$secret'; one of: ${ALL[*]} (or all)"
fi
need docker head base64 tr
cd "$ROOT"
COMPOSE=("$ROOT/scripts/compose.sh" -f docker-compose.prod.yml "$@")
env_file="$ROOT/prod.env"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[i]}" != --env-file ] || env_file="${args[i+1]:-}"; done
rendered="$("${COMPOSE[@]}" config 2>&1)" || die "docker-compose.prod.yml does not render: $rendered"
val() { local v; v="$(env_get "$env_file" "$1")"; printf '%s' "${v:-$2}"; }
# secret_file NAME: the host file behind a compose secret.
secret_file() { awk -v n="  $1:" '/^secrets:/{s=1;next} /^[a-z]/{s=0} s && $0==n {f=1;next} s && f && $1=="file:" {print $2; exit}' <<<"$rendered"; }
for s in sidecar postgres pgbouncer redis; do
  [ -n "$("${COMPOSE[@]}" ps -q --status running "$s" 2>/dev/null)" ] || die "the prod stack is not running ($s is not): rotate needs it up (make prod-up)"
done

# write_in_place FILE VALUE: same inode, so running containers see the new content.
write_in_place() {
  local f="$1" mode
  [ -f "$f" ] || die "secret file $f does not exist"
  mode="$(stat -c '%a' "$f")"
  chmod u+w "$f"
  printf '%s' "$2" >"$f"
  chmod "$mode" "$f"
}
# The sidecar restart and a console-password reload wait until every secret asked for is in
# place (one each, at the end); a reload that a login depends on (auth_user) happens at once.
sidecar_restart=0 pgbouncer_reload=0
reload_pgbouncer() { "${COMPOSE[@]}" exec -T pgbouncer pgbouncer-entrypoint reload >/dev/null 2>&1 || die "PgBouncer did not reload (make prod-logs)"; }

rotate_one() {
  local name="$1" file new t0 role
  file="$(secret_file "$name")"
  [ -n "$file" ] || die "docker-compose.prod.yml has no secret $name"
  new="$(random_secret 32)"
  t0=$(date +%s%N)
  case "$name" in
    postgres_password|app_password|monitor_password|pgbouncer_auth_password|replication_password|app_read_password)
      case "$name" in
        replication_password) role="$(val REPLICATION_USER replicator)" ;;
        app_read_password) role="$(val APP_READ_USER app_reader)" ;;
        postgres_password) role="$(val POSTGRES_USER postgres)" ;;
        app_password) role="$(val APP_USER app)" ;;
        monitor_password) role="$(val MONITOR_USER poolguard_monitor)" ;;
        pgbouncer_auth_password) role="$(val PGBOUNCER_AUTH_USER pgbouncer_auth)" ;;
      esac
      set_role_passwords "$(val POSTGRES_USER postgres)" "$role=$new" || die "ALTER ROLE $role failed (above); the file is unchanged"
      write_in_place "$file" "$new"
      case "$name" in
        monitor_password) sidecar_restart=1 ;;
        # The standby wrote its passfile at start: a restart reads the new one.
        replication_password)
          if [ -n "$("${COMPOSE[@]}" ps -q --status running postgres-replica 2>/dev/null)" ]; then
            "${COMPOSE[@]}" restart postgres-replica >/dev/null 2>&1 || die "the replica did not restart (make prod-logs)"
          fi ;;
        # PgBouncer's next auth_query login needs the new password at once.
        pgbouncer_auth_password) reload_pgbouncer ;;
      esac ;;
    pgbouncer_admin_password) write_in_place "$file" "$new"; pgbouncer_reload=1 ;;
    pgbouncer_stats_password) write_in_place "$file" "$new"; pgbouncer_reload=1; sidecar_restart=1 ;;
    redis_password)
      # The old password authenticates redis-cli (from the file, through the environment).
      REDISCLI_AUTH="$(<"$file")" POOLGUARD_NEW="$new" "${COMPOSE[@]}" exec -T -e REDISCLI_AUTH -e POOLGUARD_NEW redis \
        sh -c 'redis-cli -h 127.0.0.1 --no-auth-warning CONFIG SET requirepass "$POOLGUARD_NEW"' | grep -qx OK \
        || die "Redis refused CONFIG SET requirepass; the file is unchanged"
      write_in_place "$file" "$new"
      sidecar_restart=1 ;;
    sidecar_token) write_in_place "$file" "$new"; sidecar_restart=1 ;;
  esac
  log "rotated $name in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

if [ "$secret" = all ]; then for s in "${ALL[@]}"; do rotate_one "$s"; done; else rotate_one "$secret"; fi
t0=$(date +%s%N)
[ "$pgbouncer_reload" -eq 0 ] || reload_pgbouncer
[ "$sidecar_restart" -eq 0 ] || "${COMPOSE[@]}" restart sidecar >/dev/null 2>&1 || die "the sidecar did not restart"
[ "$pgbouncer_reload$sidecar_restart" = 00 ] || log "$([ "$pgbouncer_reload" -eq 0 ] || echo 'PgBouncer reloaded, ')$([ "$sidecar_restart" -eq 0 ] || echo 'the sidecar restarted, ')in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
# The sidecar answers for the whole stack once it has polled with the new values.
"${COMPOSE[@]}" up -d --wait sidecar >/dev/null 2>&1 || true
report="$("${COMPOSE[@]}" exec -T sidecar node /app/health-report.mjs 2>&1)" || { printf '%s\n' "$report" >&2; die "the stack is not healthy after rotating $secret (above)"; }
log "$report"
case "$secret" in app_password|redis_password|app_read_password|all) log "now restart your apps so they read the new $([ "$secret" = all ] && echo 'app_password, app_read_password and redis_password' || echo "$secret")" ;; esac
