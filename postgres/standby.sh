# shellcheck shell=bash
# standby.sh: the postgres image as a streaming hot standby (the compose profile "replica").
# Sourced by docker-entrypoint.sh when POSTGRES_PRIMARY_HOST is set; standby_main never returns.
#
#   POSTGRES_PRIMARY_HOST, POSTGRES_PRIMARY_PORT [5432]   the primary
#   REPLICATION_USER [replicator] + REPLICATION_PASSWORD | _FILE (required)
#   REPLICATION_SLOT [poolguard_replica]                  its physical slot on the primary
#   REPLICA_NAME [postgres-replica]                       application_name in pg_stat_replication
#   PGBACKREST_STANZA (+ PGBACKREST_*)                    set: restore_command reads the
#       pgBackRest archive, so a standby that fell behind its slot catches up from there
#
# Empty data directory: waits for the primary, then pg_basebackup over the replication
# protocol, creating the slot (or reusing it when it exists and nobody streams from it).
# Existing data directory: checks that it is a standby of this primary (the same system
# identifier) and that its slot still exists; when either is wrong it does NOT start Postgres
# and does not re-clone: it logs one line saying what is wrong and what to do, writes it to
# $PROBLEM_FILE (the healthcheck reports it: the container stays up, unhealthy, no restart
# loop) and waits. A primary that cannot be reached does not stop it: a standby serves reads
# while the primary is down.
# The password is written to a passfile on tmpfs (/tmp), never into the data directory.

PROBLEM_FILE=/tmp/poolguard-replica-problem
PASSFILE=/tmp/poolguard-replica.pgpass

standby_problem() {
  local msg="replica NOT started: $*"
  log "$msg"
  printf '%s\n' "$msg" >"$PROBLEM_FILE"
  # Wait, unhealthy, until stopped (tini passes the stop signal on; sleep ends on it).
  exec sleep infinity
}

# repl_psql COMMAND: one replication-protocol command on the primary, unaligned, no header.
repl_psql() {
  PGPASSFILE="$PASSFILE" PGCONNECT_TIMEOUT=5 psql -X -At -F '|' \
    "host=$PRIMARY_HOST port=$PRIMARY_PORT user=$REPLICATION_USER dbname=postgres replication=database application_name=${REPLICA_NAME}-check" \
    -c "$1"
}

standby_passfile() {
  secret_require REPLICATION_PASSWORD || die "$SECRET_PROBLEM (the replica logs in to the primary with it)"
  local pw="${REPLICATION_PASSWORD//\\/\\\\}"
  pw="${pw//:/\\:}"
  ( umask 077; printf '%s:%s:*:%s:%s\n' "$PRIMARY_HOST" "$PRIMARY_PORT" "$REPLICATION_USER" "$pw" >"$PASSFILE" )
  unset REPLICATION_PASSWORD
}

# The primary's system identifier, or nothing when it cannot be reached (the error in $REPL_ERR).
primary_sysid() {
  local out
  if out="$(repl_psql IDENTIFY_SYSTEM 2>&1)"; then REPL_ERR=""; cut -d'|' -f1 <<<"$out"; else REPL_ERR="$(head -n 1 <<<"$out")"; fi
}

# slot_state: "absent", "ok" or "invalidated" (no restart_lsn: its WAL is gone).
slot_state() {
  local out
  out="$(repl_psql "READ_REPLICATION_SLOT $REPLICATION_SLOT")" || return 1
  case "$out" in
    '||'*|'') echo absent ;;
    physical'||'*) echo invalidated ;;
    *) echo ok ;;
  esac
}

standby_bootstrap() {
  local waited=0 sysid state create=()
  while :; do
    sysid="$(primary_sysid)"
    [ -z "$sysid" ] || break
    if [ $((waited % 60)) -eq 0 ]; then log "waiting for the primary $PRIMARY_HOST:$PRIMARY_PORT to clone it ($REPL_ERR)"; fi
    sleep 2; waited=$((waited + 2))
  done
  state="$(slot_state)" || die "cannot read the replication slot $REPLICATION_SLOT on the primary"
  case "$state" in
    absent) create=(--create-slot) ;;
    invalidated) standby_problem "the replication slot $REPLICATION_SLOT on the primary was invalidated (its WAL is gone: max_slot_wal_keep_size). Drop it on the primary (SELECT pg_drop_replication_slot('$REPLICATION_SLOT')), then start the replica again: it clones afresh." ;;
  esac
  log "cloning the primary $PRIMARY_HOST:$PRIMARY_PORT (system $sysid) with pg_basebackup, slot $REPLICATION_SLOT${create:+ (created)}"
  local t0=$SECONDS
  PGPASSFILE="$PASSFILE" pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPLICATION_USER" -D "$PGDATA" \
    --wal-method=stream --checkpoint=fast --slot="$REPLICATION_SLOT" "${create[@]}" --no-password \
    || { rm -rf "${PGDATA:?}"/* 2>/dev/null || true; die "pg_basebackup from $PRIMARY_HOST failed (above); the data directory was emptied again, the next start retries"; }
  touch "$PGDATA/standby.signal"
  log "cloned in $((SECONDS - t0)) s"
}

standby_check() {
  [ -f "$PGDATA/standby.signal" ] || standby_problem "$PGDATA holds a cluster that is not a standby (no standby.signal: a primary, or a promoted replica). This service only runs standbys: point it at an empty volume (docker compose rm -sf postgres-replica; docker volume rm <project>_pgdata_replica), and it clones the primary."
  local mine theirs state
  mine="$(pg_controldata "$PGDATA" | sed -n 's/^Database system identifier: *//p')"
  theirs="$(primary_sysid)"
  if [ -z "$theirs" ]; then
    log "the primary $PRIMARY_HOST:$PRIMARY_PORT cannot be reached ($REPL_ERR): starting anyway, serving reads as of the last replayed WAL; streaming resumes when it is back"
    return 0
  fi
  [ "$mine" = "$theirs" ] || standby_problem "$PGDATA belongs to another cluster (system identifier $mine; the primary's is $theirs). Not re-cloning over it by itself: if it may go, remove the replica's volume (docker compose rm -sf postgres-replica; docker volume rm <project>_pgdata_replica) and start it again to clone the primary."
  state="$(slot_state)" || { log "could not read the slot $REPLICATION_SLOT on the primary: starting anyway"; return 0; }
  case "$state" in
    absent) standby_problem "the replication slot $REPLICATION_SLOT is gone from the primary (dropped?), so the primary no longer keeps WAL for this replica. Not re-cloning by itself: remove the replica's volume (docker compose rm -sf postgres-replica; docker volume rm <project>_pgdata_replica) and start it again to clone the primary (the slot is created then)." ;;
    invalidated) standby_problem "the replication slot $REPLICATION_SLOT on the primary was invalidated (the replica fell more than max_slot_wal_keep_size behind). Drop the slot on the primary (SELECT pg_drop_replication_slot('$REPLICATION_SLOT')), remove the replica's volume (docker volume rm <project>_pgdata_replica) and start it again to clone the primary." ;;
  esac
}

standby_main() {
  PRIMARY_HOST="$POSTGRES_PRIMARY_HOST"
  PRIMARY_PORT="${POSTGRES_PRIMARY_PORT:-5432}"
  REPLICATION_USER="${REPLICATION_USER:-replicator}"
  REPLICATION_SLOT="${REPLICATION_SLOT:-poolguard_replica}"
  REPLICA_NAME="${REPLICA_NAME:-postgres-replica}"
  [[ "$REPLICATION_SLOT" =~ ^[a-z0-9_]{1,63}$ ]] || die "REPLICATION_SLOT must be lower-case letters, digits and _ (a Postgres slot name), got '$REPLICATION_SLOT'"
  [[ "$REPLICA_NAME" =~ ^[A-Za-z0-9_.-]{1,63}$ ]] || die "REPLICA_NAME must be letters, digits, _ . - (it becomes application_name), got '$REPLICA_NAME'"
  rm -f "$PROBLEM_FILE"
  file_env POSTGRES_USER postgres
  standby_passfile
  mkdir -p "$PGDATA"; chmod 700 "$PGDATA" 2>/dev/null || true
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    [ -z "$(ls -A "$PGDATA" 2>/dev/null)" ] || standby_problem "$PGDATA is not empty but holds no cluster (no PG_VERSION); refusing to clone over it"
    standby_bootstrap
  else
    standby_check
  fi
  local restore=()
  if [ -n "${PGBACKREST_STANZA:-}" ]; then
    restore=(-c "restore_command=pgbackrest --stanza=$PGBACKREST_STANZA archive-get %f \"%p\"")
  fi
  log "starting as a hot standby of $PRIMARY_HOST:$PRIMARY_PORT (slot $REPLICATION_SLOT)"
  # archive_mode off: a standby archives nothing; promotion is not part of this bundle.
  exec postgres -D "$PGDATA" -c config_file="$PGCONF" -c archive_mode=off \
    -c "primary_conninfo=host=$PRIMARY_HOST port=$PRIMARY_PORT user=$REPLICATION_USER passfile=$PASSFILE application_name=$REPLICA_NAME" \
    -c "primary_slot_name=$REPLICATION_SLOT" "${restore[@]}" "$@"
}
