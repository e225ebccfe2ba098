#!/usr/bin/env bash
# Usage: scripts/backup.sh dev|prod COMMAND [options] [-- global compose options, e.g. --env-file FILE -p NAME]
#
# Backups of a running poolguard stack (pgBackRest; docs/backups.md). Every step says what it
# does and how long it took.
#   backup [full|diff|incr]      take one backup now (default full), through the backup service
#   backups                      what the repository holds: each backup, its size and WAL range
#   restore [--time T | --lsn L] [--yes]
#                                restore the data volume from the repository: to the end of the
#                                archived WAL (the latest), to a time ("2026-12-02 14:05:00+00")
#                                or to an LSN. Refuses while Postgres runs (stop it first: the
#                                command to do so is printed), says what it will replace and asks
#                                for --yes. The old data is copied to a volume of its own first
#                                (<project>_pgdata_before_restore_<UTC time>) and kept; the
#                                restored server must come up, finish recovery and answer before
#                                it is reported done.
#   restore-check                restore the latest backup into a scratch volume beside the stack,
#                                start it, run amcheck on every B-tree index and count the rows of
#                                every table, report, and throw it away. The stack is not touched.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in
  dev)  file=docker-compose.dev.yml ;;
  prod) file=docker-compose.prod.yml ;;
  -h|--help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac
kind="$1"; shift
cmd="${1:-}"; [ $# -eq 0 ] || shift
opts=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
[ $# -eq 0 ] || shift
need docker jq
cd "$ROOT"
compose=("$ROOT/scripts/compose.sh" -f "$file" "$@")
STANZA=poolguard
PGDATA_PATH=/var/lib/postgresql/data

# step TEXT CMD...: runs CMD, saying what it does before and how long it took after; a failed
# step stops the script (after ON_FAIL, when set: what to do about it).
ON_FAIL=""
step() {
  local what="$1" t0 rc=0
  shift
  log "$what ..."
  t0=$(date +%s)
  "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then log "$what: done in $(( $(date +%s) - t0 )) s"; return 0; fi
  log "$what: FAILED after $(( $(date +%s) - t0 )) s (exit $rc; its messages are above)"
  [ -z "$ON_FAIL" ] || log "$ON_FAIL"
  exit "$rc"
}

running() { [ -n "$("${compose[@]}" ps -q --status running "$1" 2>/dev/null)" ]; }
need_running() {
  running "$1" || die "the $1 service is not running: start the stack first ($([ "$kind" = dev ] && echo 'make up' || echo 'make prod-up'))"
}
project() { "${compose[@]}" config --format json | jq -r .name; }
# in_postgres_run CMD...: a one-off container of the postgres service (its environment, volumes
# and secrets; no ports, no dependencies), as the postgres user.
in_postgres_run() { "${compose[@]}" run --rm --no-deps -T "$@"; }
# sql SERVICE DB QUERY: one value from psql over the socket inside a running container (peer auth).
sql() { "${compose[@]}" exec -T "$1" sh -c 'psql -X -qAt -h /var/run/postgresql -U "$POSTGRES_USER" -d "$1" -c "$2"' sh "$2" "$3"; }

cmd_backup() {
  local type="${opts[0]:-full}"
  case "$type" in full|diff|incr) ;; *) die "backup type '$type' must be full, diff or incr" ;; esac
  need_running backup
  need_running postgres
  step "$type backup of stanza $STANZA (pgBackRest, through the backup service)" \
    "${compose[@]}" exec -T backup poolguard-backup backup "$type"
}

cmd_backups() {
  need_running backup
  "${compose[@]}" exec -T backup poolguard-backup info
  "${compose[@]}" exec -T backup poolguard-backup status | jq -r '
    "schedule: " + (if .schedule.enabled then "full every \(.schedule.fullEverySeconds / 3600) h, differential every \(.schedule.diffEverySeconds / 3600) h" else "off (make backup only)" end),
    "last run: " + (if .lastRun then "\(.lastRun.type) \(if .lastRun.ok then "ok" else "FAILED: \(.lastRun.error)" end), \(.lastRun.finishedAt), \(.lastRun.durationSeconds) s" else "none yet" end),
    (if .running then "running now: \(.running.type) since \(.running.startedAt)" else empty end),
    (if .walGap then "WARNING: WAL missing after \(.walGap.after) (\(.walGap.missing) segments): point-in-time recovery cannot cross it until the next full backup" else empty end)'
}

# target_args: pgbackrest restore's target options from --time / --lsn (validated).
target_args() {
  local i
  TARGET=(); TARGET_TEXT="the end of the archived WAL (the latest)"
  for ((i = 0; i < ${#opts[@]}; i++)); do
    case "${opts[i]}" in
      --time)
        local t="${opts[i+1]:-}"
        [ -n "$t" ] && date -u -d "$t" >/dev/null 2>&1 || die "--time '$t' is not a time: use e.g. '2026-12-02 14:05:00+00' (UTC unless an offset is given)"
        [[ "$t" =~ [+-][0-9]{2}(:?[0-9]{2})?$|Z$|UTC$ ]] || t="$t+00"
        TARGET=(--type=time "--target=$t" --target-action=promote); TARGET_TEXT="the time $t"; i=$((i + 1)) ;;
      --lsn)
        local l="${opts[i+1]:-}"
        [[ "$l" =~ ^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$ ]] || die "--lsn '$l' is not an LSN: use the form 0/3000060 (SELECT pg_current_wal_lsn())"
        TARGET=(--type=lsn "--target=$l" --target-action=promote); TARGET_TEXT="the LSN $l"; i=$((i + 1)) ;;
      --yes) ;;
      *) die "restore: unknown option '${opts[i]}' (--time T, --lsn L, --yes)" ;;
    esac
  done
}

cmd_restore() {
  target_args
  local yes=0 o
  for o in "${opts[@]}"; do [ "$o" != --yes ] || yes=1; done
  need_running backup
  if running postgres; then
    die "Postgres is running: a restore replaces its data directory, so stop it first:
    $(printf '%q ' "${compose[@]}")stop postgres
  (PgBouncer and the apps get errors until the restored server is up), then run this again."
  fi
  local proj vol aside size
  proj="$(project)"
  vol="${proj}_pgdata"
  aside="${proj}_pgdata_before_restore_$(date -u +%Y%m%dT%H%M%SZ)"
  docker volume inspect "$vol" >/dev/null 2>&1 || die "the data volume $vol does not exist (nothing to restore over? start the stack once first)"
  size="$(in_postgres_run postgres du -sh "$PGDATA_PATH" 2>/dev/null | cut -f1)" || size="?"
  "${compose[@]}" exec -T backup poolguard-backup info >&2 || die "the repository cannot be read (above): nothing to restore from"
  cat >&2 <<EOF
$ME: restore plan
  - replaces:   the data volume $vol ($size), every database in it
  - with:       the newest backup that ends before the target, replayed to $TARGET_TEXT
  - old data:   copied first to the volume $aside and kept there
EOF
  [ "$yes" -eq 1 ] || die "nothing changed. To do it: add --yes (make restore ... CONFIRM=yes)"
  docker volume create "$aside" >/dev/null
  ON_FAIL="the data from before the restore is in the volume $aside (copy it back as shown in docs/backups.md, or fix the cause and run the restore again)"
  step "copying the current data to $aside" in_postgres_run -v "$aside:/var/lib/poolguard/aside" postgres sh -c "cp -a $PGDATA_PATH/. /var/lib/poolguard/aside/"
  step "emptying $vol" in_postgres_run postgres find "$PGDATA_PATH" -mindepth 1 -delete
  step "pgbackrest restore to $TARGET_TEXT" in_postgres_run postgres pgbackrest --stanza="$STANZA" restore "${TARGET[@]}"
  step "starting Postgres (recovery replays WAL from the repository)" "${compose[@]}" up -d --no-deps --wait postgres
  local t0 state=""
  t0=$(date +%s)
  while [ $(( $(date +%s) - t0 )) -lt 600 ]; do
    state="$(sql postgres postgres 'SELECT pg_is_in_recovery()' 2>/dev/null || true)"
    [ "$state" != f ] || break
    sleep 1
  done
  [ "$state" = f ] || die "Postgres has not finished recovery within 600 s (still in recovery: $state); see: $(printf '%q ' "${compose[@]}")logs postgres. The old data is in the volume $aside."
  log "recovery finished in $(( $(date +%s) - t0 )) s: last replayed commit $(sql postgres postgres "SELECT coalesce(pg_last_xact_replay_timestamp()::text, 'none')"), now on timeline $(sql postgres postgres "SELECT timeline_id FROM pg_control_checkpoint()")"
  log "verified: Postgres answers; databases: $(sql postgres postgres "SELECT string_agg(datname, ', ' ORDER BY datname) FROM pg_database WHERE NOT datistemplate")"
  "${compose[@]}" up -d >/dev/null 2>&1 || warn "could not start the rest of the stack: $(printf '%q ' "${compose[@]}")up -d"
  cat >&2 <<EOF
$ME: restore done. The data from before is kept in the volume $aside:
  - once satisfied:  docker volume rm $aside
  - to go back:      stop postgres, then copy it back:
      $(printf '%q ' "${compose[@]}")run --rm --no-deps -T -v $aside:/var/lib/poolguard/aside postgres sh -c 'find $PGDATA_PATH -mindepth 1 -delete && cp -a /var/lib/poolguard/aside/. $PGDATA_PATH/'
  A new full backup now (make backup) starts the new timeline's history with a base backup.
EOF
}

cmd_restore_check() {
  need_running backup
  local proj vol started
  proj="$(project)"
  vol="${proj}_restore_check_$(date -u +%Y%m%dT%H%M%SZ)"
  started=$(date +%s)
  docker volume create "$vol" >/dev/null
  # shellcheck disable=SC2064 # the volume name is fixed now
  trap "docker volume rm -f '$vol' >/dev/null 2>&1 || true" EXIT
  log "restoring the latest backup into the scratch volume $vol (a container of its own; the stack is not touched)"
  local rc=0
  in_postgres_run -v "$vol:/var/lib/poolguard/restore-check" -e RC_DIR=/var/lib/poolguard/restore-check postgres bash -s <<'EOF' || rc=$?
set -euo pipefail
say() { printf 'restore-check: %s\n' "$*" >&2; }
t() { date +%s; }
dir="$RC_DIR/data" sock="$(mktemp -d)"
mkdir -m 0700 "$dir"
t0=$(t)
say "pgbackrest restore (latest backup, WAL to the end of the archive; the copy never archives) ..."
pgbackrest --stanza="$PGBACKREST_STANZA" --pg1-path="$dir" --archive-mode=off restore >&2
say "pgbackrest restore: done in $(( $(t) - t0 )) s ($(du -sh "$dir" | cut -f1))"
t0=$(t)
say "starting the restored copy (socket only, no TCP) and waiting for recovery to finish ..."
# Recovery needs max_connections (and the other limits) at least as high as the primary's: take
# them from the backup's pg_control.
setting() { pg_controldata "$dir" | sed -n "s/^$1 setting: *//p"; }
limits="-c max_connections=$(setting max_connections) -c max_worker_processes=$(setting max_worker_processes) -c max_wal_senders=$(setting max_wal_senders) -c max_prepared_transactions=$(setting max_prepared_xacts) -c max_locks_per_transaction=$(setting max_locks_per_xact)"
pg_ctl -D "$dir" -l "$RC_DIR/server.log" -w -t 600 \
  -o "-c config_file=/etc/poolguard/postgresql.conf -c hba_file=/etc/poolguard/pg_hba.conf -c listen_addresses= -c unix_socket_directories=$sock -c archive_mode=off -c shared_buffers=64MB $limits" start >/dev/null \
  || { say "FAILED: the restored copy did not start; its log:"; tail -20 "$RC_DIR/server.log" >&2; exit 1; }
q() { psql -X -qAt -h "$sock" -U "$POSTGRES_USER" -d "$1" -v ON_ERROR_STOP=1 -c "$2"; }
for _ in $(seq 600); do [ "$(q postgres 'SELECT pg_is_in_recovery()')" = f ] && break; sleep 1; done
[ "$(q postgres 'SELECT pg_is_in_recovery()')" = f ] || { say "FAILED: still in recovery after 600 s"; tail -20 "$RC_DIR/server.log" >&2; exit 1; }
say "started and recovered in $(( $(t) - t0 )) s: last replayed commit $(q postgres "SELECT coalesce(pg_last_xact_replay_timestamp()::text, 'none')")"
t0=$(t)
failed=0 indexes=0 tables=0 rows=0
for db in $(q postgres "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1"); do
  q "$db" 'CREATE EXTENSION IF NOT EXISTS amcheck' >/dev/null
  n="$(q "$db" "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relpersistence <> 't' AND i.indisvalid")"
  if ! q "$db" "SELECT bt_index_check(c.oid, true) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relpersistence <> 't' AND i.indisvalid" >/dev/null; then
    say "amcheck FAILED in database $db (above)"; failed=1
  fi
  indexes=$((indexes + n))
  counts="$(mktemp)"
  if ! q "$db" "SELECT format('SELECT %L, count(*) FROM %s;', c.oid::regclass, c.oid::regclass) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1" \
      | psql -X -qAt -h "$sock" -U "$POSTGRES_USER" -d "$db" -v ON_ERROR_STOP=1 -F '|' >"$counts"; then
    say "row counts FAILED in database $db (above)"; failed=1
  fi
  while IFS='|' read -r rel count; do
    [ -n "$rel" ] || continue
    printf 'restore-check:   %-12s %-40s %12s rows\n' "$db" "$rel" "$count" >&2
    tables=$((tables + 1)); rows=$((rows + count))
  done <"$counts"
  rm -f "$counts"
done
say "amcheck on $indexes B-tree indexes (heapallindexed) and row counts of $tables tables ($rows rows): done in $(( $(t) - t0 )) s"
pg_ctl -D "$dir" -m fast -w stop >/dev/null
[ "$failed" -eq 0 ] || { say "FAILED: amcheck or a row count failed (above)"; exit 1; }
say "PASSED"
EOF
  if [ "$rc" -eq 0 ]; then log "restore-check passed in $(( $(date +%s) - started )) s; scratch volume $vol removed"; return 0; fi
  log "restore-check FAILED (exit $rc) after $(( $(date +%s) - started )) s; scratch volume $vol removed"
  exit "$rc"
}

case "$cmd" in
  backup) cmd_backup ;;
  backups) cmd_backups ;;
  restore) cmd_restore ;;
  restore-check) cmd_restore_check ;;
  "") usage >&2; exit 2 ;;
  *) die "unknown command '$cmd' (backup, backups, restore, restore-check)" ;;
esac
