#!/usr/bin/env bash
# Usage: docker-entrypoint.sh postgres [postgres options...]
#        docker-entrypoint.sh <any other command>     (run as is)
#
# Mirrors the official postgres image's interface:
#   POSTGRES_PASSWORD | POSTGRES_PASSWORD_FILE   superuser password (required on first start)
#   POSTGRES_USER     | POSTGRES_USER_FILE       superuser name (default: postgres)
#   POSTGRES_DB       | POSTGRES_DB_FILE         default database (default: $POSTGRES_USER)
#   POSTGRES_INITDB_ARGS                         extra initdb arguments
#   PGDATA                                       data directory (a volume)
#   PGBACKREST_STANZA (+ PGBACKREST_*)           WAL archiving to pgBackRest on (else off)
#   POSTGRES_PRIMARY_HOST                        set: run as a streaming hot standby of that
#                                                primary instead (standby.sh says how)
# On an empty data directory it runs initdb, then every *.sh, *.sql and *.sql.gz in
# /docker-entrypoint-initdb.d (sorted) against a temporary server that listens on the Unix
# socket only, then stops it and execs the real server. On every start of a primary it also
# makes sure the replication and read-only roles exist (poolguard-ensure, in the
# background once the server answers). Secrets are never printed.
set -euo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# shellcheck source=scripts/secret-env.sh
source /usr/local/lib/poolguard/secret-env.sh
# file_env VAR [DEFAULT]: VAR or VAR_FILE into VAR, by the rules every poolguard image shares.
file_env() { secret_export "$@" || die "$SECRET_PROBLEM"; }

PGCONF=/etc/poolguard/postgresql.conf

run_init_scripts() {
  local f
  for f in /docker-entrypoint-initdb.d/*; do
    [ -e "$f" ] || continue
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then log "running $f"; "$f"
        else log "sourcing $f"; # shellcheck disable=SC1090
          . "$f"; fi ;;
      *.sql)    log "running $f"; psql_init -f "$f" ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | psql_init ;;
      *)        log "ignoring $f" ;;
    esac
  done
}

psql_init() {
  psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet -h /var/run/postgresql -U "$POSTGRES_USER" -d "$POSTGRES_DB" "$@"
}
export -f psql_init

init_cluster() {
  [ -n "${POSTGRES_PASSWORD:-}" ] || die "the data directory $PGDATA is empty and POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) is not set; it is required to initialise the database"
  log "initialising a new cluster in $PGDATA"
  local pwfile
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  # shellcheck disable=SC2086
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pwfile"
  # Map the container's OS user to the superuser role for Unix-socket peer auth.
  printf 'poolguard  postgres  %s\n' "$POSTGRES_USER" >>"$PGDATA/pg_ident.conf"

  log "starting a temporary server on the Unix socket only"
  pg_ctl -D "$PGDATA" -o "-c config_file=$PGCONF -c listen_addresses='' -p 5432" -w -t 60 start >/dev/null
  if [ "$POSTGRES_DB" != "postgres" ]; then
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres \
      -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  run_init_scripts
  poolguard-ensure
  log "stopping the temporary server"
  pg_ctl -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
  log "initialisation complete"
}

main() {
  if [ "${1:-}" = "postgres" ]; then
    shift
    [ "$(id -u)" -ne 0 ] || die "refusing to run as root; the image runs as the postgres user"
    if [ -n "${POSTGRES_PRIMARY_HOST:-}" ]; then
      # shellcheck source=postgres/standby.sh
      source /usr/local/lib/poolguard/standby.sh
      standby_main "$@"
    fi
    file_env POSTGRES_USER postgres
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_DB "$POSTGRES_USER"
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA" 2>/dev/null || true
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
      if [ -n "$(ls -A "$PGDATA" 2>/dev/null)" ]; then
        die "$PGDATA is not empty but holds no cluster (no PG_VERSION); refusing to initialise over it"
      fi
      init_cluster
    fi
    unset POSTGRES_PASSWORD
    # The replica's roles, on volumes made before they existed too. Double fork: the helper is
    # re-parented to tini, never a child of the postmaster (which would take its exit for a
    # crashed backend).
    ( poolguard-ensure </dev/null & ) || true
    # WAL archiving to pgBackRest when the stack configures it (PGBACKREST_STANZA and the rest of
    # the PGBACKREST_* variables come from the compose file and reach archive_command through
    # the server's environment); without it, no archiving (a bare container never piles up WAL
    # for an archive that does not exist).
    local archive=(-c archive_mode=off)
    if [ -n "${PGBACKREST_STANZA:-}" ]; then
      archive=(-c archive_mode=on -c "archive_command=pgbackrest --stanza=$PGBACKREST_STANZA archive-push %p")
    fi
    exec postgres -D "$PGDATA" -c config_file="$PGCONF" "${archive[@]}" "$@"
  fi
  exec "$@"
}

main "$@"
