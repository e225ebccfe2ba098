#!/usr/bin/env bash
# Usage: poolguard-ensure        (inside the postgres image, as the postgres OS user)
#
# Makes sure what the bundle needs inside a primary's cluster is there, over the Unix socket as
# the superuser (peer authentication). Idempotent: the entrypoint runs it on the first start of
# an empty volume (after the init scripts) and on every later start of the primary, so a data
# volume made before a feature existed gets it too (initdb scripts never run again on it, and
# the migrate job runs as the app's owner, which cannot create these). A standby gets all of it
# from the primary.
#
# Extensions: pg_stat_statements in APP_DB (preloaded by postgresql.conf; the sidecar reads it
# as pg_monitor, which includes pg_read_all_stats).
#
# Roles the read replica and the read URL need. Passwords come from VAR or VAR_FILE and are only
# set when a role is created (make passwords / make rotate change them later):
#   REPLICATION_USER [replicator] + REPLICATION_PASSWORD   LOGIN REPLICATION, member of
#       poolguard_replication (pg_hba.conf: replication connections over TCP, SCRAM)
#   APP_READ_USER [app_reader] + APP_READ_PASSWORD          LOGIN, member of poolguard_pooled,
#       SELECT on APP_DB's public schema (now and, by default privileges, for APP_USER's future
#       tables) and nothing else: writes through the read URL fail on the primary with a
#       permission error (42501) and on the replica as read-only (25006), whatever the client sets.
# A password that is not set skips its role with one line (nothing else changes).
set -euo pipefail

say() { printf '%s [ensure] %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }
# shellcheck source=scripts/secret-env.sh
source /usr/local/lib/poolguard/secret-env.sh

APP_DB="${APP_DB:-app}"
APP_USER="${APP_USER:-app}"
REPLICATION_USER="${REPLICATION_USER:-replicator}"
APP_READ_USER="${APP_READ_USER:-app_reader}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"

q() { psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet -h /var/run/postgresql -U "$POSTGRES_USER" "$@"; }

# Wait (up to 60 s) for the server when called right after it was started.
for _ in $(seq 1 120); do pg_isready -q -h /var/run/postgresql -U "$POSTGRES_USER" && break; sleep 0.5; done
if [ "$(q -d postgres -At -c 'SELECT pg_is_in_recovery()')" = t ]; then
  exit 0 # a standby: the roles come from the primary
fi

# pg_stat_statements: only where the library is preloaded (a server started with another
# shared_preload_libraries would refuse to read it; say so instead).
if [ "$(q -d postgres -At -c "SELECT 'pg_stat_statements' = ANY (string_to_array(current_setting('shared_preload_libraries'), ', '))")" = t ]; then
  q -d "$APP_DB" -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements'
else
  say "pg_stat_statements is not in shared_preload_libraries: no query statistics (GET /queries answers 503)"
fi

q -d postgres <<'SQL'
SELECT 'CREATE ROLE poolguard_replication NOLOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'poolguard_replication') \gexec
SQL

made=()
if secret_get REPLICATION_PASSWORD; then
  POOLGUARD_REPL_PW="$SECRET_VALUE" q -d postgres -v u="$REPLICATION_USER" <<'SQL'
\getenv pw POOLGUARD_REPL_PW
SET password_encryption = 'scram-sha-256';
SELECT format('CREATE ROLE %I LOGIN REPLICATION PASSWORD %L CONNECTION LIMIT 5', :'u', :'pw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'u') \gexec
SELECT format('GRANT poolguard_replication TO %I', :'u') \gexec
SQL
  made+=("$REPLICATION_USER")
else
  say "REPLICATION_PASSWORD is not set (${SECRET_PROBLEM:-neither it nor REPLICATION_PASSWORD_FILE}): no replication role; the replica cannot connect"
fi

if secret_get APP_READ_PASSWORD; then
  POOLGUARD_READ_PW="$SECRET_VALUE" q -d postgres -v u="$APP_READ_USER" -v db="$APP_DB" <<'SQL'
\getenv pw POOLGUARD_READ_PW
SET password_encryption = 'scram-sha-256';
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'u', :'pw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'u') \gexec
SELECT format('GRANT poolguard_pooled TO %I', :'u') \gexec
-- Belt and braces: every transaction starts read-only. The grants below are what enforce it
-- (a client can SET default_transaction_read_only = off, it cannot grant itself INSERT).
SELECT format('ALTER ROLE %I SET default_transaction_read_only = on', :'u') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', :'db', :'u') \gexec
SQL
  q -d "$APP_DB" -v u="$APP_READ_USER" -v owner="$APP_USER" <<'SQL'
SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'u') \gexec
SELECT format('GRANT SELECT ON ALL TABLES IN SCHEMA public TO %I', :'u') \gexec
SELECT format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', :'u') \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT SELECT ON TABLES TO %I', :'owner', :'u') \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT SELECT ON SEQUENCES TO %I', :'owner', :'u') \gexec
SQL
  made+=("$APP_READ_USER")
else
  say "APP_READ_PASSWORD is not set (${SECRET_PROBLEM:-neither it nor APP_READ_PASSWORD_FILE}): no read-only role; the read URL cannot log in"
fi
# PgBouncer's auth user: volumes made before the read router had CONNECTION LIMIT 5, exactly what
# min_pool_size keeps in the app entry's auth_user pool: the router's check (as this role, once
# a second) was refused with "too many connections for role". 10 leaves room; a limit set higher
# (or none) is kept.
q -d postgres -v auth_user="${PGBOUNCER_AUTH_USER:-pgbouncer_auth}" <<'SQL'
SELECT format('ALTER ROLE %I CONNECTION LIMIT 10', rolname) FROM pg_roles
 WHERE rolname = :'auth_user' AND rolconnlimit BETWEEN 0 AND 9 \gexec
SQL

# The read router (PgBouncer's container) asks each server where its WAL stands, as PgBouncer's
# auth user: a SECURITY DEFINER function (pg_stat_wal_receiver shows its status only to
# pg_read_all_stats), owned by the superuser, fixed search_path, callable by that role alone.
# On the primary: lsn = pg_current_wal_lsn(); on a standby: the replay LSN, the age of the last
# replayed commit, whether the WAL receiver streams and whether replay is paused.
q -d "$APP_DB" -v auth_user="${PGBOUNCER_AUTH_USER:-pgbouncer_auth}" <<'SQL'
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS pgbouncer;
CREATE OR REPLACE FUNCTION pgbouncer.wal_position(
  OUT in_recovery boolean, OUT lsn numeric, OUT receive_lsn numeric,
  OUT replay_age_seconds double precision, OUT streaming boolean, OUT replay_paused boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT r,
         pg_wal_lsn_diff(CASE WHEN r THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, '0/0'),
         CASE WHEN r THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0') END,
         CASE WHEN r THEN extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 END,
         CASE WHEN r THEN coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false) END,
         CASE WHEN r THEN pg_is_wal_replay_paused() END
    FROM pg_is_in_recovery() AS r
$fn$;
REVOKE ALL ON FUNCTION pgbouncer.wal_position() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbouncer.wal_position() TO :"auth_user";
SQL

[ "${#made[@]}" -eq 0 ] || say "roles present: ${made[*]}"
