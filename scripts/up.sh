#!/usr/bin/env bash
# Usage: scripts/up.sh dev|prod [global compose options, e.g. -p NAME --env-file FILE -f EXTRA]
#
# Brings a stack up and says plainly whether it works:
#   1. scripts/preflight.sh: bad names in the env file, taken host ports, missing secrets stop
#      it before anything starts;
#   2. `docker compose up -d --build --wait` (containers healthy, the migration job done);
#   3. the sidecar's /health, read inside its container (with the token in prod): exit 0 only
#      when every backend is healthy; otherwise each unhealthy one with its error.
# When a step fails it prints, in a few lines, which service failed, its error, and the fix
# (a password changed after the roles were created, a failed migration, ...), and exits 1.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
case "${1:-}" in
  dev)  file=docker-compose.dev.yml ;;
  prod) file=docker-compose.prod.yml ;;
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 dev|prod [global compose options...]" >&2; exit 2 ;;
esac
kind="$1"; shift
need docker awk sed grep
cd "$ROOT"
compose=("$ROOT/scripts/compose.sh" -f "$file" "$@")
env_file="$ROOT/.env"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[i]}" != --env-file ] || env_file="${args[i+1]:-}"; done

"$ROOT/scripts/preflight.sh" "$kind" "$@" || exit 1

# hints TEXT: the fix for the errors a newcomer meets, when TEXT shows one.
hints() {
  local role
  role="$(grep -oE 'password authentication failed for user "[^"]+"' <<<"$1" | head -n 1 | sed -E 's/.*user "([^"]+)"/\1/')" || true
  if [ -n "$role" ]; then
    cat >&2 <<EOF
up: Postgres refused the password of role "$role". Roles and their passwords are created ONCE,
    on the first start of an empty data volume; a password changed in $([ "$kind" = dev ] && basename "$env_file" || echo 'a secret file') afterwards
    does not change the role. Either:
      - put the previous password back in $([ "$kind" = dev ] && basename "$env_file" || echo 'the secret file'), or
      - $([ "$kind" = dev ] && echo "make passwords   (sets every role's password in Postgres to the one in .env), then make up again" || echo "set the file's value in Postgres too (ALTER ROLE \"$role\" PASSWORD '...' as the superuser), then make prod-up; make rotate SECRET=... changes both in a safe order"), or
      - $([ "$kind" = dev ] && echo "make clean       (deletes this checkout's dev data, then make up starts from scratch)" || echo "(prod keeps its data: there is no clean for prod)")
EOF
  fi
}

# errors_of SERVICE: the distinct error lines of a service's log (at most 6).
errors_of() {
  "${compose[@]}" logs --no-color --no-log-prefix "$1" 2>/dev/null | sed -E 's/\x1b\[[0-9;]*[A-Za-z]//g' \
    | grep -iE 'error|fatal|panic|refused|failed|denied' | grep -vE '^\s' | awk '!seen[$0]++' | head -n 6 || true
}

start=$(date +%s)
if "${compose[@]}" up -d --build --wait; then
  took=$(( $(date +%s) - start ))
  # /health, read inside the sidecar container (the token is there in prod); it retries a few
  # seconds, as a backend can still be settling right after start.
  if report="$("${compose[@]}" exec -T sidecar node /app/health-report.mjs 2>&1)"; then
    log "$file is up in $took s; $report"
    "${compose[@]}" ps
    exit 0
  fi
  printf '%s\n' "$report" >&2
  hints "$report"
  log "the containers of $file run, but the stack is NOT healthy (above): the sidecar keeps watching; fix the cause, then run this again ($([ "$kind" = dev ] && echo 'make up; make health shows /health' || echo 'make prod-up'))."
  exit 1
fi

took=$(( $(date +%s) - start ))
echo >&2
log "FAILED to bring $file up healthy (after $took s):"
all_errors=""
while IFS='|' read -r svc state health code; do
  case "$state" in
    exited)
      [ "$svc" = migrate ] && [ "$code" = 0 ] && continue
      [ "$svc" = migrate ] && what="the migration job exited $code" || what="exited with code $code" ;;
    created) echo "  - $svc: not started (it waits for a service above)" >&2; continue ;;
    running) [ -z "$health" ] || [ "$health" = healthy ] && continue; what="running but $health" ;;
    *) what="$state" ;;
  esac
  errs="$(errors_of "$svc")"
  all_errors+="$errs"$'\n'
  echo "  - $svc: $what" >&2
  if [ -n "$errs" ]; then
    sed 's/^/      /' <<<"$errs" >&2
  else
    "${compose[@]}" logs --no-color --no-log-prefix --tail 10 "$svc" 2>/dev/null | sed 's/^/      /' >&2
  fi
done < <("${compose[@]}" ps -a --format '{{.Service}}|{{.State}}|{{.Health}}|{{.ExitCode}}' 2>/dev/null)
hints "$all_errors"
log "the stack is partly up. Fix the error above, then run this again; '$([ "$kind" = dev ] && echo 'make logs' || echo 'make prod-logs')' shows every log, '$([ "$kind" = dev ] && echo 'make down' || echo 'make prod-down')' stops it."
exit 1
