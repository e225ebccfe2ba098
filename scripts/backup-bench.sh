#!/usr/bin/env bash
# Usage: scripts/backup-bench.sh [--scale N] [--seconds S] [-- global compose options]
#
# Backup timings on the dev stack (make backup-bench; manual, a few minutes; never in CI):
#   1. pgbench -i at scale N (default 65: about 1 GB) in the app database, unless it already
#      holds pgbench tables of that scale;
#   2. a full backup (make backup): its time, the database size and the repository size;
#   3. make restore-check: the restore's time, then amcheck and row counts;
#   4. WAL archiving under load: pgbench TPC-B (16 clients through PgBouncer) for S seconds
#      (default 60) while pg_stat_archiver is sampled every second: segments waiting
#      (.ready) and the age of the last archive while some wait, median and max.
# Prints the figures; writes no file. The dev stack must be up (make up).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

scale=65 seconds=60
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  case "$1" in
    --scale) scale="${2:-}"; shift ;;
    --seconds) seconds="${2:-}"; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (--scale N, --seconds S)" ;;
  esac
  shift
done
[ $# -eq 0 ] || shift
[[ "$scale" =~ ^[0-9]+$ ]] && [ "$scale" -ge 1 ] && [ "$scale" -le 1000 ] || die "--scale must be 1-1000"
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -ge 10 ] || die "--seconds must be at least 10"
need docker jq awk
cd "$ROOT"
globals=("$@")
[ ${#globals[@]} -gt 0 ] || globals=(--env-file .env)
env_file=.env
for ((i = 0; i < ${#globals[@]}; i++)); do [ "${globals[i]}" != --env-file ] || env_file="${globals[i+1]:-}"; done
app_user="$(env_get "$env_file" APP_USER)"; app_user="${app_user:-app}"
app_db="$(env_get "$env_file" APP_DB)"; app_db="${app_db:-app}"
compose=("$ROOT/scripts/compose.sh" -f docker-compose.dev.yml "${globals[@]}")
[ -n "$("${compose[@]}" ps -q --status running postgres)" ] || die "the dev stack is not running: make up first"

psql_in() { "${compose[@]}" exec -T postgres sh -c 'psql -X -qAt -h /var/run/postgresql -U "$POSTGRES_USER" -d "${APP_DB:-app}" -c "$1"' sh "$1"; }
have=0
[ "$(psql_in "SELECT to_regclass('pgbench_branches') IS NOT NULL")" != t ] || have="$(psql_in 'SELECT count(*) FROM pgbench_branches')"
app_password="$(env_get "$env_file" APP_PASSWORD)"
# pgbench from the postgres image, in a one-off container on the stack's network, as the app role.
pgbench_run() { PGPASSWORD="$app_password" "${compose[@]}" run --rm --no-deps -T -e PGPASSWORD postgres pgbench "$@"; }
if [ "$have" != "$scale" ]; then
  log "pgbench -i -s $scale as $app_user (about $((scale * 15)) MB) ..."
  t0=$(date +%s)
  pgbench_run -i -q -s "$scale" -h postgres -p 5432 -U "$app_user" "$app_db" >&2
  log "pgbench -i: done in $(( $(date +%s) - t0 )) s"
fi
size="$(psql_in "SELECT pg_size_pretty(pg_database_size(current_database()))")"

t0=$(date +%s)
"$ROOT/scripts/backup.sh" dev backup full -- "${globals[@]}" >/dev/null
backup_s=$(( $(date +%s) - t0 ))
last="$("${compose[@]}" exec -T backup pgbackrest --output=json info | jq -r '.[0].backup | max_by(.timestamp.stop) | "\(.timestamp.stop - .timestamp.start) \(.info.size) \(.info.repository.size)"')"
read -r pgbr_s db_bytes repo_bytes <<<"$last"

check="$("$ROOT/scripts/backup.sh" dev restore-check -- "${globals[@]}" 2>&1)" || { printf '%s\n' "$check" >&2; die "restore-check failed"; }
restore_line="$(grep -o 'pgbackrest restore: done in [0-9]* s ([^)]*)' <<<"$check")"
recovered_line="$(grep -o 'started and recovered in [0-9]* s' <<<"$check")"
amcheck_line="$(grep -o 'amcheck on .*: done in [0-9]* s' <<<"$check")"
total_line="$(grep -o 'restore-check passed in [0-9]* s' <<<"$check")"

log "pgbench TPC-B, 16 clients through PgBouncer, ${seconds} s, sampling the archiver every second ..."
samples="$(mktemp)"
pgbench_run -n -c 16 -j 2 -T "$seconds" -h pgbouncer -p 6432 -U "$app_user" "$app_db" >"$samples.pgbench" 2>&1 &
bench=$!
archived0="$(psql_in 'SELECT archived_count FROM pg_stat_archiver')"
while kill -0 "$bench" 2>/dev/null; do
  psql_in "SELECT (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'), coalesce(extract(epoch FROM clock_timestamp() - last_archived_time), 0)::int FROM pg_stat_archiver" >>"$samples" || true
  sleep 1
done
wait "$bench" || { cat "$samples.pgbench" >&2; die "pgbench failed"; }
archived=$(( $(psql_in 'SELECT archived_count FROM pg_stat_archiver') - archived0 ))
stats() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) {print "none"; exit} printf "median %s, max %s (%d samples)", a[int((NR+1)/2)], a[NR], NR}'; }
ready="$(cut -d'|' -f1 "$samples" | stats)"
age="$(awk -F'|' '$1 > 0 {print $2}' "$samples" | stats)"
tps="$(grep -o 'tps = [0-9.]*' "$samples.pgbench" | head -1)"
rm -f "$samples" "$samples.pgbench"

cat <<EOF
backup-bench (scale $scale, database $size, $(nproc) cores)
  full backup:        $backup_s s end to end (pgBackRest ${pgbr_s} s; $((db_bytes / 1048576)) MiB database, $((repo_bytes / 1048576)) MiB in the repository, zstd)
  restore-check:      ${total_line#restore-check }: ${restore_line}; ${recovered_line}; ${amcheck_line}
  archiving, load:    pgbench TPC-B 16 clients ${seconds} s ($tps), $archived segments archived
    segments waiting: $ready
    last archive age while some wait (s): $age
EOF
