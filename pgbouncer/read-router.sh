#!/usr/bin/env bash
# Usage: pgbouncer-read-router          (started by pgbouncer-entrypoint with the replica profile on)
#        pgbouncer-read-router primary  (the entrypoint, before PgBouncer starts: write the route
#                                        to the primary and exit)
#
# Moves the read alias (READ_DB, e.g. app_ro) between the replica and the primary. PgBouncer's
# host list cannot do this (load_balance_hosts=disable never returns to the first host, and a
# down host costs server_login_retry with clients refused meanwhile), so this loop asks both
# servers where their WAL stands every READ_ROUTE_INTERVAL seconds, as PgBouncer's auth user
# through pgbouncer.wal_position() (a SECURITY DEFINER function: no monitoring role, no
# superuser here), rewrites the included file $ROUTE and sends RELOAD on the local admin console
# (the only PgBouncer privilege that can change [databases]).
#
# Reads go to the replica while it answers as a standby and its lag is below
# READ_ROUTE_MAX_LAG_SECONDS [30]; to the primary when it is down or lags that much. They return
# only after the lag stayed at or below READ_ROUTE_RETURN_LAG_SECONDS [5] for
# READ_ROUTE_RETURN_AFTER_SECONDS [10] (no flapping). Lag is measured with LSNs and this loop's
# own clock: it keeps the primary's WAL position of every round, and the lag is how long ago the
# primary first held WAL the replica has not replayed yet (0 when it replayed all of it). So an
# idle primary shows no lag however old the last commit is (the trap of now() -
# pg_last_xact_replay_timestamp()), a WAL record written between two commits does not show as
# the minutes since the last commit, and a broken stream or paused replay shows as lag growing
# by one second a second. With the primary unreachable the replica takes the reads at once (it
# is all there is). A WAL receiver that does not stream counts as lag from the moment it
# stopped, whatever the LSNs say. RELOAD of a changed entry drops that alias's server
# connections: transactions in flight on it at the switch fail, new ones go to the new host.
# One log line per switch.
#
# Between rounds a watcher per server keeps one connection busy with SELECT pg_sleep(1), one
# after the other (psql's \watch): a server that goes away (stopped, restarted, crashed) ends
# that statement at once with its FATAL, and the watcher wakes the loop for a round there and
# then, instead of at the next interval. (A one-second statement holds a snapshot for a second:
# through hot_standby_feedback that keeps the primary's vacuum from rows dead for less than a
# second, nothing more.) When the server that woke it is the one the reads are
# on, the round first PAUSEs the alias (new queries and logins wait instead of failing against
# a server that is going away), decides, moves the alias if it must, and RESUMEs it: only the
# transactions in flight when the server went away fail. The alias is RESUMEd whatever the
# round found, when the router exits, and when it starts (a router that died paused).
set -uo pipefail

ROUTE=/var/run/pgbouncer/read-route.ini
READ_DB="${READ_DB:?}" APP_DB="${APP_DB:?}"
PRIMARY_HOST="${POSTGRES_HOST:?}" PRIMARY_PORT="${POSTGRES_PORT:-5432}"
REPLICA_HOST="${READ_REPLICA_HOST:-}" REPLICA_PORT="${READ_REPLICA_PORT:-5432}"
INTERVAL="${READ_ROUTE_INTERVAL:-1}"
# One check (connect, log in, one query) longer than this counts as "cannot be reached".
CHECK_TIMEOUT=1.5
MAX_LAG="${READ_ROUTE_MAX_LAG_SECONDS:-30}"
RETURN_LAG="${READ_ROUTE_RETURN_LAG_SECONDS:-5}"
RETURN_AFTER="${READ_ROUTE_RETURN_AFTER_SECONDS:-10}"
WATCH_INTERVAL=1
export PGAPPNAME=poolguard-read-router PGPASSFILE="${PGPASSFILE:-/var/run/pgbouncer/router.pgpass}" PGCONNECT_TIMEOUT=2

# Epoch milliseconds without a fork (the wake-up path counts milliseconds).
now_ms() { local t="${EPOCHREALTIME/./}"; echo $(( t / 1000 )); }
log() { printf '%s [read-router] %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S.%3N UTC')" "$*" >&2; }

# write_route replica|primary: the included file, replaced atomically. Logins run the auth query
# on the server the reads go to, so they work while the other one is down: on the replica through
# the alias's own auth_user pool (auth_dbname = the alias), on the primary through the app
# entry's (auth_dbname = the app database: no second pool of auth connections there).
write_route() {
  { echo '[databases]'
    if [ "$1" = replica ]; then
      printf '%s = host=%s port=%s dbname=%s auth_dbname=%s\n' "$READ_DB" "$REPLICA_HOST" "$REPLICA_PORT" "$APP_DB" "$READ_DB"
    else
      printf '%s = host=%s port=%s dbname=%s auth_dbname=%s\n' "$READ_DB" "$PRIMARY_HOST" "$PRIMARY_PORT" "$APP_DB" "$APP_DB"
    fi
  } >"$ROUTE.tmp" && mv "$ROUTE.tmp" "$ROUTE"
}
case "${1:-}" in
  primary) write_route primary; exit ;;
  '') ;;
  *) echo "usage: pgbouncer-read-router [primary]" >&2; exit 2 ;;
esac
: "${REPLICA_HOST:?READ_REPLICA_HOST is required}"
AUTH_USER="${PGBOUNCER_AUTH_USER:?}" ADMIN_USER="${PGBOUNCER_ADMIN_USER:?}"

# position HOST PORT: POS="in_recovery|lsn|streaming|paused"; or POS="" with POS_ERR saying why
# and POS_DOWN=1 when the server cannot be reached (refused, no such host, shutting down or
# starting up, a timeout), POS_DOWN=0 when it answered but refused this check (too many
# connections for the role, a password): that says nothing about the server, so no decision
# is taken on it.
position() {
  local out
  local rc=0
  POS="" POS_ERR="" POS_DOWN=0
  # Bounded as a whole: on the prod file's internal network the name of a stopped container
  # takes Docker's DNS about 10 s to fail, and libpq's connect_timeout does not cover that.
  out="$(timeout -k 1 "$CHECK_TIMEOUT" psql -X -At -F '|' -h "$1" -p "$2" -U "$AUTH_USER" -d "$APP_DB" \
      -c 'SELECT in_recovery, lsn, streaming, replay_paused FROM pgbouncer.wal_position()' 2>&1)" || rc=$?
  if [ "$rc" -eq 0 ]; then
    POS="$out"
  elif [ "$rc" -ge 124 ]; then
    POS_ERR="no answer within ${CHECK_TIMEOUT} s" POS_DOWN=1
  else
    POS_ERR="$(head -n 1 <<<"$out")"
    if grep -qiE 'could not connect|connection refused|could not translate host name|timeout expired|no such file or directory|database system is (shutting down|starting up|not yet accepting|in recovery mode)|server closed the connection|unreachable|no route to host' <<<"$out"; then
      POS_DOWN=1
    fi
  fi
}

# admin COMMAND [TIMEOUT]: one command on the local admin console over one connection kept open
# (a coprocess psql: a PAUSE on the wake-up path costs a write, not a process start and a login,
# on a machine whose cores the reads keep busy). Bounded: a command not answered within TIMEOUT
# seconds [3] (PAUSE waits for the alias's transactions in flight; on a server that went away
# they have already failed) closes that connection; the next command opens another.
admin_seq=0 admin_pid="" admin_w="" admin_r=""
admin() {
  local rc
  admin_once "$@"; rc=$?
  # A connection that was gone (closed by PgBouncer, a psql that never logged in): once more on
  # a new one.
  if [ "$rc" = 2 ]; then admin_once "$@"; rc=$?; fi
  if [ "$rc" = 2 ]; then log "$1 failed: ${admin_err:-the admin console closed the connection}"; fi
  [ "$rc" = 0 ]
}
# admin_once COMMAND [TIMEOUT]: 0 done, 1 refused or no answer (logged), 2 the connection is gone.
admin_once() {
  local line out="" t="${2:-3}"
  admin_err=""
  if [ -z "$admin_pid" ]; then
    coproc ADMIN { exec psql -X -q -At -h /var/run/pgbouncer -p 6432 -U "$ADMIN_USER" -d pgbouncer 2>&1; }
    # Own copies of the pipe ends: bash closes the coprocess's when it reaps it (a psql that
    # could not log in may be gone already).
    admin_pid="${ADMIN_PID:-}"
    if [ -z "$admin_pid" ] || [ -z "${ADMIN[1]:-}" ] || ! exec {admin_w}>&"${ADMIN[1]}" {admin_r}<&"${ADMIN[0]}"; then
      admin_pid=""; return 2
    fi
  fi
  admin_seq=$(( admin_seq + 1 ))
  if ! { printf '%s;\n\\echo __done_%s\n' "$1" "$admin_seq" >&"$admin_w"; } 2>/dev/null; then
    admin_close; return 2
  fi
  while IFS= read -r -t "$t" -u "$admin_r" line; do
    if [ "$line" = "__done_$admin_seq" ]; then
      [ -z "$out" ] && return 0
      log "$1 failed: $out"; return 1
    fi
    out="${out:+$out }$line"
  done
  local timed_out=0
  kill -0 "$admin_pid" 2>/dev/null && timed_out=1
  admin_close
  if [ "$timed_out" = 1 ]; then log "$1 failed: no answer within $t s${out:+ ($out)}"; return 1; fi
  admin_err="$out"
  return 2
}
admin_close() {
  if [ -n "$admin_pid" ]; then
    exec {admin_w}>&- {admin_r}<&-
    kill "$admin_pid" 2>/dev/null
    wait "$admin_pid" 2>/dev/null
  fi
  admin_pid=""
}
reload() { admin RELOAD; }

# Times are whole milliseconds and LSNs whole bytes: bash's 64-bit integers, no floats.
ms() { printf '%s\n' $(( $1 * 1000 )); }
secs() { printf '%d.%d' $(( $1 / 1000 )) $(( $1 % 1000 / 100 )); }
MAX_LAG_MS=$(ms "$MAX_LAG") RETURN_LAG_MS=$(ms "$RETURN_LAG") RETURN_AFTER_MS=$(ms "$RETURN_AFTER")

# The primary's WAL position at each round (ms, LSN bytes), oldest first, kept for twice the max
# lag: enough to time a lag past the threshold.
hist_t=() hist_lsn=()
remember() {
  hist_t+=("$1") hist_lsn+=("$2")
  while [ "${#hist_t[@]}" -gt 1 ] && [ "${hist_t[0]}" -lt $(( $1 - 2 * MAX_LAG_MS - 5000 )) ]; do
    hist_t=("${hist_t[@]:1}") hist_lsn=("${hist_lsn[@]:1}")
  done
}
# lag_of NOW REPLAY_LSN: ms since the primary first held WAL past REPLAY_LSN (0: none).
lag_of() {
  local i
  for i in "${!hist_lsn[@]}"; do
    if [ "${hist_lsn[$i]}" -gt "$2" ]; then echo $(( $1 - hist_t[i] )); return; fi
  done
  echo 0
}

# Wake-ups: a FIFO opened read-write (never blocks, never sees EOF) that the watchers write a
# line to; the loop waits on it for at most INTERVAL.
WAKE=/var/run/pgbouncer/read-router.wake
if ! { rm -f "$WAKE" && mkfifo -m 0600 "$WAKE" && exec 3<>"$WAKE"; }; then log "cannot make the wake-up FIFO $WAKE"; exit 1; fi
# watch HOST PORT: until killed, hold a connection busy with pg_sleep(WATCH_INTERVAL); when a
# connection that had been up for a while breaks, wake the loop. A server that cannot be reached
# is retried every second without waking anyone (the loop's rounds see it).
watch() {
  local t psql_pid=""
  trap '[ -z "$psql_pid" ] || kill "$psql_pid" 2>/dev/null; exit 0' TERM
  while :; do
    t=$(now_ms)
    printf 'SELECT pg_sleep(%s) \\watch 0.01\n' "$WATCH_INTERVAL" | psql -X -q -At -h "$1" -p "$2" -U "$AUTH_USER" -d "$APP_DB" >/dev/null 2>&1 &
    psql_pid=$!
    wait "$psql_pid"
    psql_pid=""
    if [ $(( $(now_ms) - t )) -gt 1000 ]; then echo "$1" >&3; fi
    sleep 1
  done
}
watch "$PRIMARY_HOST" "$PRIMARY_PORT" & watchers=$!
watch "$REPLICA_HOST" "$REPLICA_PORT" & watchers="$watchers $!"
trap 'exit 0' TERM INT
trap '' PIPE
# wait_round: sleep INTERVAL or until a watcher wakes us (then drain the other wake-ups); WOKE
# is the host whose connection broke, or empty.
wait_round() {
  WOKE=""
  if read -r -t "$INTERVAL" -u 3 WOKE; then
    while read -r -t 0.01 -u 3 _; do :; done
  fi
}

# The entrypoint wrote the primary into $ROUTE before PgBouncer started: reads work from the
# first second; the first good look at the replica moves them there without the wait.
current=primary first=1 below_since="" last_unknown="" broken_since="" WOKE="" paused=""
admin "RESUME $READ_DB" 1 2>/dev/null || true # not paused: PgBouncer says so, nothing to do
trap 'kill $watchers 2>/dev/null; [ -z "$paused" ] || admin "RESUME $READ_DB"; admin_close' EXIT
log "watching $REPLICA_HOST:$REPLICA_PORT for $READ_DB (max lag ${MAX_LAG} s, back below ${RETURN_LAG} s for ${RETURN_AFTER} s)"
while :; do
  now=$(now_ms)
  route_host="$PRIMARY_HOST"; [ "$current" = primary ] || route_host="$REPLICA_HOST"
  # (paused stays set while a RESUME failed: it is tried again at the end of this round.)
  if [ -z "$paused" ] && [ -n "$WOKE" ] && [ "$WOKE" = "$route_host" ] && admin "PAUSE $READ_DB" 1; then paused="$now"; fi
  position "$PRIMARY_HOST" "$PRIMARY_PORT"; p="$POS" p_err="$POS_ERR" p_down="$POS_DOWN"
  position "$REPLICA_HOST" "$REPLICA_PORT"; r="$POS" r_err="$POS_ERR" r_down="$POS_DOWN"
  down="" unknown="" lag=0 # ms
  if [ -n "$p" ]; then IFS='|' read -r _ p_lsn _ <<<"$p"; remember "$now" "$p_lsn"; fi
  if [ -z "$r" ] && [ "$r_down" = 1 ]; then
    down="replica unreachable: $r_err"
  elif [ -z "$r" ]; then
    unknown="the replica refused the check: $r_err"
  elif [ -z "$p" ] && [ "$p_down" = 0 ]; then
    unknown="the primary refused the check: $p_err"
  else
    IFS='|' read -r r_rec r_lsn r_streaming r_paused <<<"$r"
    if [ "$r_rec" != t ]; then
      down="$REPLICA_HOST is not a standby (not in recovery)"
    elif [ -n "$p" ]; then
      lag="$(lag_of "$now" "$r_lsn")"
      # A WAL receiver that does not stream gets nothing new: however current the replica looks
      # by LSN (an idle primary, or a primary restored to an earlier point on a new timeline), it
      # counts as behind by how long the stream has been broken.
      if [ "$r_streaming" != t ]; then
        [ -n "$broken_since" ] || broken_since="$now"
        [ $(( now - broken_since )) -le "$lag" ] || lag=$(( now - broken_since ))
      else
        broken_since=""
      fi
    fi
  fi
  want="$current" reason=""
  if [ -n "$unknown" ]; then
    # Cannot tell: keep the route, say so once.
    [ "$unknown" = "$last_unknown" ] || log "$READ_DB stays on the $current: $unknown"
  elif [ -n "$down" ]; then
    want=primary reason="$down"; below_since=""
  elif [ -z "$p" ]; then
    want=replica reason="primary unreachable ($p_err): the replica takes the reads"
  elif [ "$lag" -ge "$MAX_LAG_MS" ]; then
    want=primary reason="replica lag $(secs "$lag") s >= ${MAX_LAG} s (streaming=$r_streaming, replay paused=$r_paused)"; below_since=""
  elif [ "$current" = primary ]; then
    if [ "$lag" -le "$RETURN_LAG_MS" ]; then
      [ -n "$below_since" ] || below_since="$now"
      if [ "$first" = 1 ] || [ $(( now - below_since )) -ge "$RETURN_AFTER_MS" ]; then
        want=replica reason="replica lag $(secs "$lag") s <= ${RETURN_LAG} s$([ "$first" = 1 ] || echo " for ${RETURN_AFTER} s")"
      fi
    else
      below_since=""
    fi
  fi
  last_unknown="$unknown"
  [ "$current" = primary ] || first=0
  if [ "$want" != "$current" ]; then
    write_route "$want"
    if reload; then
      log "$READ_DB -> $want: $reason${paused:+ (new queries held $(( $(now_ms) - paused )) ms meanwhile)}"
      current="$want" below_since=""
    else
      write_route "$current"
    fi
  fi
  if [ -n "$paused" ]; then admin "RESUME $READ_DB" && paused=""; fi
  wait_round
done
