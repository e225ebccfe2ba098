#!/usr/bin/env bash
# Usage: run once by docker-entrypoint.sh on an empty data directory.
#
# Creates poolguard's roles and database (passwords from VAR or VAR_FILE):
#   APP_DB (default app)            owned by APP_USER (default app), password APP_PASSWORD
#   MONITOR_USER (poolguard_monitor) with pg_monitor, password MONITOR_PASSWORD
#   PGBOUNCER_AUTH_USER (pgbouncer_auth), password PGBOUNCER_AUTH_PASSWORD: a non-superuser
#     that may only call pgbouncer.get_auth(), a SECURITY DEFINER lookup in APP_DB with a
#     fixed search_path, for PgBouncer's auth_query (SCRAM pass-through).
#   poolguard_pooled (NOLOGIN): the three roles above are members; pg_hba.conf lets its members
#     log in with SCRAM over the Unix socket PgBouncer shares (volume pgsocket).
set -euo pipefail

fail() { printf '[initdb] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/secret-env.sh
source /usr/local/lib/poolguard/secret-env.sh
secret() { # secret VAR: VAR or VAR_FILE (scripts/secret-env.sh), required
  secret_require "$1" || fail "$SECRET_PROBLEM (needed to create the roles)"
}

APP_DB="${APP_DB:-app}"
APP_USER="${APP_USER:-app}"
MONITOR_USER="${MONITOR_USER:-poolguard_monitor}"
PGBOUNCER_AUTH_USER="${PGBOUNCER_AUTH_USER:-pgbouncer_auth}"
# Exported for psql's \getenv: passwords never appear on a command line.
secret APP_PASSWORD; secret MONITOR_PASSWORD; secret PGBOUNCER_AUTH_PASSWORD
POOLGUARD_APP_PW="$APP_PASSWORD" POOLGUARD_MON_PW="$MONITOR_PASSWORD" POOLGUARD_AUTH_PW="$PGBOUNCER_AUTH_PASSWORD"
unset APP_PASSWORD MONITOR_PASSWORD PGBOUNCER_AUTH_PASSWORD
export POOLGUARD_APP_PW POOLGUARD_MON_PW POOLGUARD_AUTH_PW

q() { psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet -h /var/run/postgresql -U "$POSTGRES_USER" "$@"; }

q -d postgres -v app_user="$APP_USER" -v app_db="$APP_DB" \
  -v mon_user="$MONITOR_USER" -v auth_user="$PGBOUNCER_AUTH_USER" <<'SQL'
\getenv app_pw POOLGUARD_APP_PW
\getenv mon_pw POOLGUARD_MON_PW
\getenv auth_pw POOLGUARD_AUTH_PW
SET password_encryption = 'scram-sha-256';
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_pw';
CREATE ROLE :"mon_user" LOGIN PASSWORD :'mon_pw' CONNECTION LIMIT 10;
GRANT pg_monitor TO :"mon_user";
-- 10: PgBouncer keeps min_pool_size (5) server connections in the app entry's auth_user pool,
-- and the read router checks the WAL position as this role once a second.
CREATE ROLE :"auth_user" LOGIN PASSWORD :'auth_pw' CONNECTION LIMIT 10;
-- Roles PgBouncer may log in as over the shared Unix socket (pg_hba.conf: +poolguard_pooled).
CREATE ROLE poolguard_pooled NOLOGIN;
GRANT poolguard_pooled TO :"app_user", :"mon_user", :"auth_user";
SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'app_db', :'app_user') \gexec
SQL

q -d "$APP_DB" -v auth_user="$PGBOUNCER_AUTH_USER" <<'SQL'
-- PgBouncer's auth_query: a SECURITY DEFINER lookup owned by the superuser, callable only by
-- the auth role, returning SCRAM secrets of ordinary login roles (never superusers, never
-- expired ones: see CVE-2025-2291).
CREATE SCHEMA pgbouncer;
REVOKE ALL ON SCHEMA pgbouncer FROM PUBLIC;
-- PL/pgSQL, not SQL: its plan is cached per session, where a SQL function is planned on every
-- call. PgBouncer runs this for every client login; that cut Postgres's CPU per pooled new
-- connection by about 0.04 ms (~15 %; docs/tuning.md).
CREATE FUNCTION pgbouncer.get_auth(p_usename text)
RETURNS TABLE (usename name, passwd text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  RETURN QUERY
  SELECT a.rolname, a.rolpassword
    FROM pg_catalog.pg_authid a
   WHERE a.rolname = p_usename
     AND a.rolcanlogin
     AND NOT a.rolsuper
     AND (a.rolvaliduntil IS NULL OR a.rolvaliduntil > pg_catalog.now());
END
$fn$;
REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA pgbouncer TO :"auth_user";
GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO :"auth_user";
SQL

printf '[initdb] created database %s, roles %s, %s (pg_monitor), %s (auth_query)\n' \
  "$APP_DB" "$APP_USER" "$MONITOR_USER" "$PGBOUNCER_AUTH_USER" >&2
unset POOLGUARD_APP_PW POOLGUARD_MON_PW POOLGUARD_AUTH_PW
