#!/usr/bin/env bash
# Usage: poolguard-backup serve                 the service: schedule loop (+ TLS server in prod)
#        poolguard-backup backup [full|diff|incr]   one backup now (make backup), then status
#        poolguard-backup info                  what the repository holds, readable (make backups)
#        poolguard-backup status                the status JSON the sidecar reads
#        poolguard-backup healthcheck           exit 0 while the loop writes its status
#
# pgBackRest is configured by PGBACKREST_* variables only (no pgbackrest.conf): the compose files
# set them. The schedule lives here, not in host cron:
#   BACKUP_SCHEDULE=on|off            off: no automatic backups (status is still written)
#   BACKUP_FULL_EVERY=7d              a full backup when the newest full is older than this
#   BACKUP_DIFF_EVERY=1d              a differential when the newest backup is older than this
#   BACKUP_FIRST_FULL_DELAY=30s       the first full backup this long after the stanza exists
#   BACKUP_RETRY_AFTER=5m             a failed scheduled backup is retried after this
#   BACKUP_CHECK_INTERVAL=30s         how often the loop looks (and rewrites the status file)
#   BACKUP_STATUS_DIR=/var/lib/poolguard/backup-status   status.json for the sidecar (a volume
#                                     the sidecar mounts read-only: no key or certificate there)
# Durations: a number of seconds, or with s, m, h or d. In prod, PGBACKREST_TLS_SERVER_ADDRESS
# set starts `pgbackrest server` beside the loop (the database side pushes WAL to it), and
# PGBACKREST_REPO1_CIPHER_PASS(_FILE) is read by the rules every poolguard image shares.
set -euo pipefail

ME=poolguard-backup
log() { printf '%s [%s] %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S UTC')" "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# shellcheck source=scripts/secret-env.sh
source /usr/local/lib/poolguard/secret-env.sh
for tool in pgbackrest jq; do command -v "$tool" >/dev/null || die "$tool is missing from the image"; done
# `pgbackrest` here is the wrapper that reads the repository key (backup/pgbackrest-wrapper.sh).

STATUS_DIR="${BACKUP_STATUS_DIR:-/var/lib/poolguard/backup-status}"
STATUS="$STATUS_DIR/status.json"
STATE_DIR="${PGBACKREST_REPO1_PATH:-/var/lib/pgbackrest}/.poolguard"

# seconds NAME VALUE: a duration in seconds, or stop naming the variable.
seconds() {
  local name="$1" v="$2" n unit
  [[ "$v" =~ ^([0-9]+)([smhd]?)$ ]] || die "$name='$v' is not a duration: use seconds or a number with s, m, h or d (for example 7d, 12h, 30m)"
  n="${BASH_REMATCH[1]}" unit="${BASH_REMATCH[2]}"
  case "$unit" in m) n=$((n * 60)) ;; h) n=$((n * 3600)) ;; d) n=$((n * 86400)) ;; esac
  printf '%s' "$n"
}

load_config() {
  [ -n "${PGBACKREST_STANZA:-}" ] || die "PGBACKREST_STANZA is not set (the compose files set it to poolguard)"
  case "${BACKUP_SCHEDULE:-on}" in on|off) ;; *) die "BACKUP_SCHEDULE='${BACKUP_SCHEDULE}' must be on or off" ;; esac
  FULL_EVERY="$(seconds BACKUP_FULL_EVERY "${BACKUP_FULL_EVERY:-7d}")"
  DIFF_EVERY="$(seconds BACKUP_DIFF_EVERY "${BACKUP_DIFF_EVERY:-1d}")"
  FIRST_DELAY="$(seconds BACKUP_FIRST_FULL_DELAY "${BACKUP_FIRST_FULL_DELAY:-30s}")"
  RETRY_AFTER="$(seconds BACKUP_RETRY_AFTER "${BACKUP_RETRY_AFTER:-5m}")"
  CHECK_EVERY="$(seconds BACKUP_CHECK_INTERVAL "${BACKUP_CHECK_INTERVAL:-30s}")"
  [ "$CHECK_EVERY" -ge 1 ] || die "BACKUP_CHECK_INTERVAL must be at least 1s"
  if [ "$FULL_EVERY" -lt 60 ] || [ "$DIFF_EVERY" -lt 60 ]; then die "BACKUP_FULL_EVERY and BACKUP_DIFF_EVERY must be at least 60s"; fi
  # The key itself is read by the pgbackrest wrapper (backup/pgbackrest-wrapper.sh) at each call;
  # here only whether it can be: a missing or unreadable key stops the service at once.
  local key=0
  secret_get PGBACKREST_REPO1_CIPHER_PASS || key=$?
  [ "$key" -ne 1 ] || die "$SECRET_PROBLEM"
  if [ -n "${PGBACKREST_REPO1_CIPHER_TYPE:-}" ] && [ "${PGBACKREST_REPO1_CIPHER_TYPE}" != none ] && [ "$key" -eq 2 ]; then
    die "PGBACKREST_REPO1_CIPHER_TYPE=${PGBACKREST_REPO1_CIPHER_TYPE} needs the repository key: set PGBACKREST_REPO1_CIPHER_PASS_FILE (prod: the pgbackrest_cipher_pass secret)"
  fi
  mkdir -p "$STATUS_DIR" "$STATE_DIR" 2>/dev/null || die "cannot create $STATUS_DIR or $STATE_DIR (mount writable volumes there)"
}

now() { date -u +%s; }
iso() { date -u -d "@$1" +%FT%TZ; }

# The repository's own view: `pgbackrest info --output=json` (an array of stanzas), or "" on error.
INFO_ERROR=""
read_info() {
  local out err
  err="$(mktemp)"
  if out="$(pgbackrest --output=json info 2>"$err")" && jq -e 'type == "array"' >/dev/null 2>&1 <<<"$out"; then
    INFO_ERROR=""
    rm -f "$err"
    printf '%s' "$out"
  else
    INFO_ERROR="$(tr '\n' ' ' <"$err" | cut -c1-500)"
    INFO_ERROR="${INFO_ERROR:-pgbackrest info returned no JSON}"
    rm -f "$err"
    printf ''
  fi
}

# last_stop INFO TYPE_FILTER: the stop time of the newest backup whose type matches (0 if none).
last_stop() { jq -r --arg re "$2" '[.[0].backup[]? | select(.type | test($re)) | .timestamp.stop] | max // 0' <<<"$1"; }

# The last run of this service, kept in the repository volume so a restart remembers it.
LAST_RUN="$STATE_DIR/last-run.json"
STARTED_AT="$(now)"
STANZA_AT=""   # when the stanza was first seen ready by this process
WAL_GAP=""     # wal_gap's JSON from the last look, or empty

write_status() { # write_status INFO RUNNING_JSON
  local info="$1" running="$2" tmp last='null' check='null' gap='null'
  [ -s "$LAST_RUN" ] && last="$(cat "$LAST_RUN")"
  [ -s "$STATE_DIR/wal-gap.json" ] && gap="$(cat "$STATE_DIR/wal-gap.json")"
  [ -s "$STATE_DIR/check.json" ] && check="$(cat "$STATE_DIR/check.json")"
  tmp="$(mktemp "$STATUS_DIR/.status.XXXXXX")"
  jq -n --arg writtenAt "$(iso "$(now)")" --arg startedAt "$(iso "$STARTED_AT")" --arg stanza "$PGBACKREST_STANZA" \
    --arg schedule "${BACKUP_SCHEDULE:-on}" --argjson full "$FULL_EVERY" --argjson diff "$DIFF_EVERY" \
    --argjson first "$FIRST_DELAY" --argjson every "$CHECK_EVERY" \
    --arg infoError "$INFO_ERROR" --argjson lastRun "$last" --argjson running "$running" --argjson check "$check" \
    --argjson info "${info:-null}" --argjson walGap "${WAL_GAP:-null}" --argjson lastWalGap "$gap" \
    '{version: 1, writtenAt: $writtenAt, startedAt: $startedAt, stanza: $stanza,
      schedule: {enabled: ($schedule == "on"), fullEverySeconds: $full, diffEverySeconds: $diff, firstFullDelaySeconds: $first, checkIntervalSeconds: $every},
      running: $running, lastRun: $lastRun, check: $check, walGap: $walGap, lastWalGap: $lastWalGap,
      infoError: (if $infoError == "" then null else $infoError end), info: $info}' >"$tmp"
  chgrp poolguard "$tmp" 2>/dev/null || true   # the sidecar reads it as a member of group poolguard
  chmod 0640 "$tmp"
  mv -f "$tmp" "$STATUS"
}

# run_backup TYPE WHY: one pgbackrest backup, its outcome recorded in LAST_RUN. Returns its status.
run_backup() {
  local type="$1" why="$2" start end rc=0 errf msg
  start="$(now)"
  errf="$(mktemp)"
  log "backup $type starting ($why)"
  pgbackrest --type="$type" backup 2> >(tee "$errf" >&2) || rc=$?
  end="$(now)"
  msg=""
  if [ "$rc" -eq 0 ]; then
    log "backup $type done in $((end - start)) s"
  else
    msg="$(grep -E 'ERROR|WARN' "$errf" | tail -3 | tr '\n' ' ' | cut -c1-500)"
    log "backup $type FAILED after $((end - start)) s (exit $rc): ${msg:-see the lines above}"
  fi
  rm -f "$errf"
  jq -n --arg type "$type" --arg why "$why" --arg s "$(iso "$start")" --arg e "$(iso "$end")" --argjson rc "$rc" --arg err "$msg" \
    '{type: $type, reason: $why, startedAt: $s, finishedAt: $e, durationSeconds: (($e | fromdate) - ($s | fromdate)), ok: ($rc == 0), exitCode: $rc, error: (if $rc == 0 then null else ($err | if . == "" then "pgbackrest exited \($rc)" else . end) end)}' \
    >"$LAST_RUN.tmp" && mv -f "$LAST_RUN.tmp" "$LAST_RUN"
  return "$rc"
}

# ensure_stanza: stanza-create (idempotent) and one `check` (archiving works end to end).
ensure_stanza() {
  local out rc=0
  out="$(pgbackrest stanza-create 2>&1)" || rc=$?
  if [ "$rc" -ne 0 ]; then
    log "stanza $PGBACKREST_STANZA not ready yet (exit $rc): $(grep -E 'ERROR' <<<"$out" | tail -1)"
    return 1
  fi
  rc=0
  out="$(pgbackrest check 2>&1)" || rc=$?
  jq -n --arg at "$(iso "$(now)")" --argjson rc "$rc" --arg err "$(grep -E 'ERROR' <<<"$out" | tail -1)" \
    '{at: $at, ok: ($rc == 0), error: (if $rc == 0 then null else $err end)}' >"$STATE_DIR/check.json"
  if [ "$rc" -eq 0 ]; then log "stanza $PGBACKREST_STANZA ready; pgbackrest check passed (WAL archiving works)"
  else log "pgbackrest check FAILED (exit $rc): $(grep -E 'ERROR' <<<"$out" | tail -1)"; fi
  return 0
}

# wal_gap INFO: the first hole in the repository's WAL after the newest backup started, as JSON
# ({after, before, missing}), or nothing. Segments are numbered across timelines (a
# promotion continues the numbering on the next timeline), 16 MB each (initdb's default).
# A hole there means archive-push-queue-max dropped WAL (or files were lost): point-in-time
# recovery cannot cross it until the next full backup.
wal_gap() {
  local info="$1" id start dir
  id="$(jq -r '.[0].archive[0].id // empty' <<<"$info")"
  start="$(jq -r '[.[0].backup[]?] | max_by(.timestamp.stop) | .archive.start // empty' <<<"$info")"
  dir="${PGBACKREST_REPO1_PATH:-/var/lib/pgbackrest}/archive/$PGBACKREST_STANZA/$id"
  [ -n "$id" ] && [ -n "$start" ] && [ -d "$dir" ] || return 0
  find "$dir" -mindepth 2 -maxdepth 2 -type f -name '????????????????????????-*' -printf '%f\n' 2>/dev/null \
    | cut -c1-24 | awk -v start="$start" '
        function hex(s,   i, n) { n = 0; for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789ABCDEF", substr(s, i, 1)) - 1; return n }
        function segno(w) { return hex(substr(w, 9, 8)) * 256 + hex(substr(w, 17, 8)) }
        BEGIN { first = segno(start) }
        { n = segno($0); if (n >= first) { seen[n] = $0; if (n > max) max = n } }
        END {
          if (!(first in seen)) exit
          for (n = first; n <= max; n++) if (!(n in seen)) {
            for (m = n; !(m in seen); m++) ;
            printf "{\"after\":\"%s\",\"before\":\"%s\",\"missing\":%d}\n", seen[n - 1], seen[m], m - n
            exit
          }
        }'
}

# due INFO: prints "full|diff WHY" when a scheduled backup is due now, else nothing.
due() {
  local info="$1" t full any
  t="$(now)"
  full="$(last_stop "$info" '^full$')"
  any="$(last_stop "$info" '.')"
  if [ "$full" -eq 0 ]; then
    [ $((t - STANZA_AT)) -ge "$FIRST_DELAY" ] && echo "full first full backup"
    return 0
  fi
  if [ -n "$WAL_GAP" ]; then echo "full WAL is missing from the repository after $(jq -r .after <<<"$WAL_GAP"): only a new full backup makes point-in-time recovery possible again"; return 0; fi
  if [ $((t - full)) -ge "$FULL_EVERY" ]; then echo "full the newest full backup is $((t - full)) s old (BACKUP_FULL_EVERY ${FULL_EVERY} s)"; return 0; fi
  if [ $((t - any)) -ge "$DIFF_EVERY" ]; then echo "diff the newest backup is $((t - any)) s old (BACKUP_DIFF_EVERY ${DIFF_EVERY} s)"; fi
}

serve() {
  load_config
  local server_pid="" job_pid="" job_type="" job_since="" info next last_fail=0 stop=0 last_gap=
  trap 'stop=1' TERM INT
  if [ -n "${PGBACKREST_TLS_SERVER_ADDRESS:-}" ]; then
    pgbackrest server &
    server_pid=$!
    log "pgbackrest TLS server started (pid $server_pid, port ${PGBACKREST_TLS_SERVER_PORT:-8432}): the database side pushes WAL here"
  fi
  log "schedule: ${BACKUP_SCHEDULE:-on}; full every ${FULL_EVERY} s, differential every ${DIFF_EVERY} s, first full ${FIRST_DELAY} s after the stanza is ready; status in $STATUS"
  while [ "$stop" -eq 0 ]; do
    if [ -n "$server_pid" ] && ! kill -0 "$server_pid" 2>/dev/null; then
      wait "$server_pid" || true
      die "the pgbackrest TLS server exited: see the lines above (certificates under /run/secrets?)"
    fi
    if [ -z "$STANZA_AT" ] && ensure_stanza; then STANZA_AT="$(now)"; fi
    if [ -n "$job_pid" ] && ! kill -0 "$job_pid" 2>/dev/null; then
      wait "$job_pid" || last_fail="$(now)"
      job_pid="" job_type=""
    fi
    info="$(read_info)"
    WAL_GAP=""
    [ -z "$info" ] || WAL_GAP="$(wal_gap "$info")"
    if [ -n "$WAL_GAP" ] && [ "$WAL_GAP" != "$last_gap" ]; then
      log "WARNING: WAL missing from the repository: $WAL_GAP (dropped by archive-push-queue-max while the repository was unreachable, or lost); a full backup follows"
      jq --arg at "$(iso "$(now)")" '. + {detectedAt: $at}' <<<"$WAL_GAP" >"$STATE_DIR/wal-gap.json"
    fi
    last_gap="$WAL_GAP"
    if [ -z "$job_pid" ] && [ -n "$STANZA_AT" ] && [ -n "$info" ] && [ "${BACKUP_SCHEDULE:-on}" = on ] && [ $(( $(now) - last_fail )) -ge "$RETRY_AFTER" ]; then
      next="$(due "$info")"
      if [ -n "$next" ]; then
        job_type="${next%% *}" job_since="$(now)"
        run_backup "$job_type" "scheduled: ${next#* }" &
        job_pid=$!
      fi
    fi
    if [ -n "$job_pid" ]; then
      write_status "$info" "$(jq -n --arg t "$job_type" --arg s "$(iso "$job_since")" '{type: $t, startedAt: $s}')"
    else
      write_status "$info" null
    fi
    sleep "$CHECK_EVERY" & wait $! || true
  done
  log "stopping"
  [ -z "$job_pid" ] || { kill -TERM "$job_pid" 2>/dev/null; wait "$job_pid" || true; }
  [ -z "$server_pid" ] || { kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" || true; }
}

case "${1:-serve}" in
  serve) serve ;;
  backup)
    load_config
    type="${2:-full}"
    case "$type" in full|diff|incr) ;; *) die "backup type '$type' must be full, diff or incr" ;; esac
    rc=0; run_backup "$type" "on request" || rc=$?
    write_status "$(read_info)" null
    pgbackrest info >&2 || true
    exit "$rc" ;;
  info) load_config; pgbackrest info ;;
  status) cat "$STATUS" ;;
  healthcheck)
    load_config >/dev/null 2>&1 || exit 1
    [ -s "$STATUS" ] || exit 1
    age=$(( $(now) - $(date -u -r "$STATUS" +%s) ))
    [ "$age" -le $((3 * CHECK_EVERY + 30)) ] ;;
  -h|--help|help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (serve, backup, info, status, healthcheck)" ;;
esac
