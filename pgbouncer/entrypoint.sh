#!/usr/bin/env bash
# Usage: pgbouncer-entrypoint pgbouncer /var/run/pgbouncer/pgbouncer.ini
#        pgbouncer-entrypoint reload      (in the running container: render again from the same
#                                          environment and secret files, then SIGHUP PgBouncer,
#                                          which re-reads both: a rotated console or auth_user
#                                          password without a restart; clients stay connected)
#        pgbouncer-entrypoint <any other command>      (run as is, nothing rendered)
#
# Renders /etc/pgbouncer/pgbouncer.ini.template into /var/run/pgbouncer/pgbouncer.ini and
# writes the auth_file, then execs PgBouncer in the foreground.
#
# Environment (defaults in brackets):
#   APP_DB [app], POSTGRES_HOST [postgres] (a host, or a socket directory such as /var/run/postgresql),
#   POSTGRES_PORT [5432]
#   PGBOUNCER_AUTH_USER [pgbouncer_auth]    + PGBOUNCER_AUTH_PASSWORD  | _FILE  (required)
#   PGBOUNCER_ADMIN_USER [pgbouncer_admin]  + PGBOUNCER_ADMIN_PASSWORD | _FILE  (required)
#   PGBOUNCER_STATS_USER [pgbouncer_stats]  + PGBOUNCER_STATS_PASSWORD | _FILE  (required)
#   READ_REPLICA_HOST, READ_REPLICA_PORT [5432], POOLGUARD_PROFILES: with "replica" among the
#     comma-separated profiles (the compose files pass COMPOSE_PROFILES), pgbouncer-read-router
#     runs beside PgBouncer and moves the read alias ${APP_DB}_ro between the replica and the
#     primary (READ_ROUTE_MAX_LAG_SECONDS [30], READ_ROUTE_RETURN_LAG_SECONDS [5],
#     READ_ROUTE_RETURN_AFTER_SECONDS [10], READ_ROUTE_INTERVAL [1]); otherwise the alias points
#     at the primary.
#   PGBOUNCER_<SETTING>  overrides any [pgbouncer] setting of the template but the ones on its
#                        "; poolguard-managed:" line, e.g. PGBOUNCER_DEFAULT_POOL_SIZE=40,
#                        PGBOUNCER_IDLE_TRANSACTION_TIMEOUT=60
# Every bad value is reported, then it exits 1 before starting. No secret is ever printed.
set -euo pipefail

TEMPLATE=/etc/pgbouncer/pgbouncer.ini.template
RUNDIR=/var/run/pgbouncer
INI="$RUNDIR/pgbouncer.ini"
USERLIST="$RUNDIR/userlist.txt"

log() { printf '%s [entrypoint] %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S.000 UTC')" "$*" >&2; }
errors=()
err() { errors+=("$*"); }

# shellcheck source=scripts/secret-env.sh
source /usr/local/lib/poolguard/secret-env.sh
# file_env VAR: VAR or VAR_FILE into VAR (required), by the rules every poolguard image shares.
file_env() { secret_require "$1" || err "$SECRET_PROBLEM"; }

check_name() { # check_name VAR: a plain identifier (no quoting games in the ini)
  [[ "${!1}" =~ ^[A-Za-z_][A-Za-z0-9_]{0,62}$ ]] || err "$1 must be a plain identifier (letters, digits, _), got '${!1}'"
}

ROUTE="$RUNDIR/read-route.ini"
ROUTER_PASSFILE="$RUNDIR/router.pgpass"

# replica_profile: the replica profile is on (POOLGUARD_PROFILES lists it).
replica_profile() { [[ ",${POOLGUARD_PROFILES:-}," == *,replica,* ]]; }

check_whole() { # check_whole VAR DEFAULT: a whole number of seconds >= 1
  local v="${!1:-$2}"
  [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -ge 1 ] || err "$1 must be a whole number of seconds >= 1, got '$v'"
}

# pgpass_line HOST PORT DB USER PASSWORD (':' and '\' escaped, as libpq wants)
pgpass_line() { local p="${5//\\/\\\\}"; printf '%s:%s:%s:%s:%s\n' "$1" "$2" "$3" "$4" "${p//:/\\:}"; }

render() {
  export APP_DB="${APP_DB:-app}" POSTGRES_HOST="${POSTGRES_HOST:-postgres}" POSTGRES_PORT="${POSTGRES_PORT:-5432}"
  export PGBOUNCER_AUTH_USER="${PGBOUNCER_AUTH_USER:-pgbouncer_auth}"
  export PGBOUNCER_ADMIN_USER="${PGBOUNCER_ADMIN_USER:-pgbouncer_admin}"
  export PGBOUNCER_STATS_USER="${PGBOUNCER_STATS_USER:-pgbouncer_stats}"
  export READ_DB="${APP_DB}_ro"
  check_name APP_DB; check_name PGBOUNCER_AUTH_USER;
  [[ ! "$APP_DB" =~ ^[A-Za-z_][A-Za-z0-9_]{0,62}$ || ${#READ_DB} -le 63 ]] || err "APP_DB is too long for the read alias ${READ_DB} (APP_DB + _ro: 63 characters at most)"
  check_name PGBOUNCER_ADMIN_USER; check_name PGBOUNCER_STATS_USER
  [[ "$POSTGRES_HOST" =~ ^[A-Za-z0-9._:-]+$ || "$POSTGRES_HOST" =~ ^/[A-Za-z0-9._/-]+$ ]] \
    || err "POSTGRES_HOST must be a host name, an address or a Unix socket directory (an absolute path), got '$POSTGRES_HOST'"
  [[ "$POSTGRES_PORT" =~ ^[0-9]+$ ]] && [ "$POSTGRES_PORT" -ge 1 ] && [ "$POSTGRES_PORT" -le 65535 ] \
    || err "POSTGRES_PORT must be a port number (1-65535), got '$POSTGRES_PORT'"
  file_env PGBOUNCER_AUTH_PASSWORD; file_env PGBOUNCER_ADMIN_PASSWORD; file_env PGBOUNCER_STATS_PASSWORD
  if replica_profile; then
    [[ "${READ_REPLICA_HOST:-}" =~ ^[A-Za-z0-9._-]+$ ]] || err "READ_REPLICA_HOST must be the replica's host name (the replica profile is on), got '${READ_REPLICA_HOST:-}'"
    local v; for v in READ_ROUTE_MAX_LAG_SECONDS:30 READ_ROUTE_RETURN_LAG_SECONDS:5 READ_ROUTE_RETURN_AFTER_SECONDS:10 READ_ROUTE_INTERVAL:1; do check_whole "${v%%:*}" "${v#*:}"; done
    if [[ "${READ_ROUTE_MAX_LAG_SECONDS:-30}" =~ ^[0-9]+$ && "${READ_ROUTE_RETURN_LAG_SECONDS:-5}" =~ ^[0-9]+$ ]] \
       && [ "${READ_ROUTE_RETURN_LAG_SECONDS:-5}" -ge "${READ_ROUTE_MAX_LAG_SECONDS:-30}" ]; then
      err "READ_ROUTE_RETURN_LAG_SECONDS (${READ_ROUTE_RETURN_LAG_SECONDS:-5}) must be below READ_ROUTE_MAX_LAG_SECONDS (${READ_ROUTE_MAX_LAG_SECONDS:-30}): reads would flap"
    fi
  fi

  # Settings overrides: PGBOUNCER_<KEY> for every "key = value" line of [pgbouncer], except the
  # ones on the template's "; poolguard-managed:" line.
  local reserved=" PGBOUNCER_AUTH_USER PGBOUNCER_ADMIN_USER PGBOUNCER_STATS_USER PGBOUNCER_AUTH_PASSWORD PGBOUNCER_ADMIN_PASSWORD PGBOUNCER_STATS_PASSWORD PGBOUNCER_AUTH_PASSWORD_FILE PGBOUNCER_ADMIN_PASSWORD_FILE PGBOUNCER_STATS_PASSWORD_FILE "
  local keys managed
  keys="$(awk '/^\[pgbouncer\]/{s=1;next} /^\[/{s=0} s && /^[a-z_]+ = /{print $1}' "$TEMPLATE")"
  managed="$(sed -n 's/^; poolguard-managed: //p' "$TEMPLATE" | tr ' ' '\n')"
  keys="$(grep -vxF "$managed" <<<"$keys")"
  local overrides=() var key def val
  while IFS= read -r var; do
    [[ "$reserved" == *" $var "* ]] && continue
    key="$(tr '[:upper:]' '[:lower:]' <<<"${var#PGBOUNCER_}")"
    if grep -qx "$key" <<<"$managed"; then err "$var: '$key' is fixed by this image (its healthcheck, auth_file and console users rely on it); remove $var"; continue; fi
    if ! grep -qx "$key" <<<"$keys"; then err "$var: '$key' is not a setting of pgbouncer.ini (settings: $(tr '\n' ' ' <<<"$keys"))"; continue; fi
    def="$(awk -v k="$key" '$1==k && $2=="=" {sub(/^[^=]*= /,""); print; exit}' "$TEMPLATE")"
    val="${!var}"
    if [[ "$def" =~ ^[0-9]+$ ]] && ! [[ "$val" =~ ^[0-9]+$ ]]; then err "$var must be a whole number >= 0, got '$val'"; continue; fi
    if [[ "$def" =~ ^[0-9]+\.[0-9]+$ ]] && ! [[ "$val" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then err "$var must be a number of seconds >= 0 such as 0.5, got '$val'"; continue; fi
    if [ "$key" = pool_mode ] && ! [[ "$val" =~ ^(session|transaction|statement)$ ]]; then err "$var must be session, transaction or statement, got '$val'"; continue; fi
    case "$val" in *$'\n'*) err "$var must be a single line"; continue ;; esac
    [ "$val" = "$def" ] || overrides+=("$key=$val")
    export "POOLGUARD_OVR_$key=$val"
  done < <(compgen -e | grep '^PGBOUNCER_' || true)

  if [ "${#errors[@]}" -gt 0 ]; then
    log "configuration error(s):"; local e; for e in "${errors[@]}"; do log "  - $e"; done
    exit 1
  fi

  umask 077
  # Placeholders, then overrides (values come through ENVIRON: no shell or sed escaping).
  awk '
    { while (match($0, /\$\{[A-Z_]+\}/)) { n = substr($0, RSTART + 2, RLENGTH - 3); $0 = substr($0, 1, RSTART - 1) ENVIRON[n] substr($0, RSTART + RLENGTH) } }
    /^\[/ { sec = $0 }
    sec == "[pgbouncer]" && /^[a-z_]+ = / && (("POOLGUARD_OVR_" $1) in ENVIRON) { $0 = $1 " = " ENVIRON["POOLGUARD_OVR_" $1] }
    { print }
  ' "$TEMPLATE" >"$INI.tmp"
  mv "$INI.tmp" "$INI"

  # auth_file: "user" "password", a double quote doubled.
  {
    local u p
    for u in AUTH ADMIN STATS; do
      p="PGBOUNCER_${u}_PASSWORD"; local n="PGBOUNCER_${u}_USER"
      printf '"%s" "%s"\n' "${!n}" "${!p//\"/\"\"}"
    done
  } >"$USERLIST.tmp"
  mv "$USERLIST.tmp" "$USERLIST"
  # The read router's logins: the auth user to both servers (pgbouncer.wal_position()), the
  # admin user to the local console over its Unix socket (PAUSE, RELOAD, RESUME: no TLS
  # handshake on the path that holds the reads).
  { pgpass_line '*' '*' "$APP_DB" "$PGBOUNCER_AUTH_USER" "$PGBOUNCER_AUTH_PASSWORD"
    pgpass_line "$RUNDIR" 6432 pgbouncer "$PGBOUNCER_ADMIN_USER" "$PGBOUNCER_ADMIN_PASSWORD"
  } >"$ROUTER_PASSFILE.tmp"
  mv "$ROUTER_PASSFILE.tmp" "$ROUTER_PASSFILE"
  unset PGBOUNCER_AUTH_PASSWORD PGBOUNCER_ADMIN_PASSWORD PGBOUNCER_STATS_PASSWORD
  # The read alias starts on the primary (a reload keeps what the router chose).
  if [ ! -f "$ROUTE" ]; then
    READ_DB="$READ_DB" APP_DB="$APP_DB" POSTGRES_HOST="$POSTGRES_HOST" POSTGRES_PORT="$POSTGRES_PORT" pgbouncer-read-router primary || return 1
  fi

  # Effective pool settings, for the log (no secrets in this file).
  setting() { awk -v k="$1" '$1==k && $2=="=" {sub(/^[^=]*= /,""); print; exit}' "$INI"; }
  log "rendered $INI: database ${APP_DB} -> ${POSTGRES_HOST}:${POSTGRES_PORT}, pool_mode=$(setting pool_mode) default_pool_size=$(setting default_pool_size) min_pool_size=$(setting min_pool_size) reserve_pool_size=$(setting reserve_pool_size) max_client_conn=$(setting max_client_conn) max_db_connections=$(setting max_db_connections) idle_transaction_timeout=$(setting idle_transaction_timeout)${overrides:+ (changed from the defaults: ${overrides[*]})}"
  local pool reserve maxdb minp
  pool="$(setting default_pool_size)"; reserve="$(setting reserve_pool_size)"; maxdb="$(setting max_db_connections)"; minp="$(setting min_pool_size)"
  if [ "$maxdb" -gt 0 ] && [ $((pool + reserve)) -gt "$maxdb" ]; then
    log "WARNING: default_pool_size + reserve_pool_size ($((pool + reserve))) > max_db_connections ($maxdb): the pool can never fill"
  fi
  if [ "$minp" -gt "$pool" ]; then
    log "WARNING: min_pool_size ($minp) > default_pool_size ($pool)"
  fi
}

if [ "${1:-}" = "pgbouncer" ]; then
  [ "$(id -u)" -ne 0 ] || { log "ERROR: refusing to run as root"; exit 1; }
  render
  if replica_profile; then
    # Double fork: the router is nobody's child but PgBouncer's (PID 1) once this shell execs.
    # It is restarted if it ever exits (it should not: every failure is a round's result).
    ( while :; do PGPASSFILE="$ROUTER_PASSFILE" pgbouncer-read-router </dev/null; log "pgbouncer-read-router exited ($?); restarting it in 5 s"; sleep 5; done & )
  else
    log "read alias $READ_DB -> the primary (no replica profile)"
  fi
fi
if [ "${1:-}" = "reload" ]; then
  pid="$(cat "$RUNDIR/pgbouncer.pid" 2>/dev/null || echo 1)"
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = pgbouncer ] || { log "ERROR: no PgBouncer process to reload (pid $pid)"; exit 1; }
  render
  kill -HUP "$pid"
  log "reloaded: rendered again and sent SIGHUP to PgBouncer (pid $pid)"
  exit 0
fi
exec "$@"
