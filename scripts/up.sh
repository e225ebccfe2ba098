#!/usr/bin/env bash
# Usage: scripts/up.sh dev|prod [global compose options, e.g. -p NAME --env-file FILE]
#
# Builds and brings a stack up with `docker compose up -d --build --wait`. When that fails it prints what failed:
# the migration job's output (its SQL error), unhealthy or exited services and their last log
# lines, so a half-started stack never goes unnoticed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
case "${1:-}" in
  dev)  file=docker-compose.dev.yml ;;
  prod) file=docker-compose.prod.yml ;;
  *) echo "usage: $0 dev|prod [global compose options...]" >&2; exit 2 ;;
esac
shift
compose=("$root/scripts/compose.sh" -f "$file" "$@")
start=$(date +%s)
if "${compose[@]}" up -d --build --wait; then
  echo "up: $file is up and healthy in $(( $(date +%s) - start )) s" >&2
  "${compose[@]}" ps
  exit 0
fi
echo >&2
echo "up: FAILED to bring $file up healthy. What went wrong:" >&2
"${compose[@]}" ps -a >&2 || true
mig_state="$("${compose[@]}" ps -a --format '{{.Service}} {{.State}} {{.ExitCode}}' 2>/dev/null | awk '$1=="migrate"{print $2" "$3}')"
if [ -n "$mig_state" ] && [ "$mig_state" != "exited 0" ]; then
  echo "---- migrate (the migration job) output ----" >&2
  "${compose[@]}" logs --no-color --no-log-prefix migrate >&2 || true
fi
for svc in $("${compose[@]}" ps -a --format '{{.Service}} {{.State}} {{.Health}}' 2>/dev/null | awk '$1!="migrate" && ($2!="running" || ($3!="" && $3!="healthy")){print $1}'); do
  echo "---- $svc (last 30 lines) ----" >&2
  "${compose[@]}" logs --no-color --tail 30 "$svc" >&2 || true
done
echo "up: the stack is partly up; fix the error above, then 'make up' again (or 'make down')." >&2
exit 1
