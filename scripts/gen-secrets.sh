#!/usr/bin/env bash
# Usage: scripts/gen-secrets.sh [--force] [DIR]
#
# Generates every secret file docker-compose.prod.yml needs, in DIR (default:
# $POOLGUARD_SECRETS_DIR or ./secrets), with strong random values (32 bytes from
# /dev/urandom, URL-safe base64). Existing files are kept unless --force is given.
# Files are mode 0440 owned by group 10001 ("poolguard", shared by the images' users) when run
# as root; otherwise 0444 (compose bind-mounts them as they are on the host).
#
# Changing a password after the first `prod-up` also needs ALTER ROLE in Postgres: the roles
# are created once, on an empty data volume.
#
# TLS for PgBouncer's clients (needs openssl): a CA (tls_ca.crt, its key tls_ca.key readable by
# root only: no container needs it) and PgBouncer's certificate signed by it
# (pgbouncer_tls.crt / pgbouncer_tls.key, ECDSA P-256, 825 days) for the names
# DNS:pgbouncer, DNS:localhost, IP:127.0.0.1 and those in $POOLGUARD_TLS_SANS (e.g.
# "DNS:db.example.com,IP:10.0.0.5"). Bring your own by putting pgbouncer_tls.crt/.key (and the
# tls_ca.crt your clients trust) there first: existing files are kept. Apps verify with
# sslmode=verify-full sslrootcert=<tls_ca.crt>. --force replaces these too.
#
# Backups (pgBackRest's TLS server mode, inside the stack only): a CA of their own
# (pgbackrest_ca.crt, key pgbackrest_ca.key readable by root only) and two certificates it signs,
# pgbackrest_repo.crt/.key for the backup service (DNS:backup) and pgbackrest_db.crt/.key for the
# database side (DNS:pgbackrest, also presented by Postgres's archive-push). Each side accepts
# only the other's certificate name. pgbackrest_cipher_pass is the repository's encryption key:
# keep a copy outside this host (without it no backup can be read), or keep it only outside and
# point POOLGUARD_BACKUP_CIPHER_FILE at it.
set -euo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
force=0
dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "gen-secrets: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$dir" ] || { echo "gen-secrets: one DIR only" >&2; exit 2; }; dir="$1" ;;
  esac
  shift
done
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
dir="${dir:-${POOLGUARD_SECRETS_DIR:-$ROOT/secrets}}"

for tool in head base64 tr; do command -v "$tool" >/dev/null || { echo "gen-secrets: $tool is required" >&2; exit 1; }; done
[ -r /dev/urandom ] || { echo "gen-secrets: /dev/urandom is not readable" >&2; exit 1; }

names=(postgres_password app_password monitor_password pgbouncer_auth_password
       pgbouncer_admin_password pgbouncer_stats_password redis_password sidecar_token pgbackrest_cipher_pass
       replication_password app_read_password)

mkdir -p "$dir"
chmod 0750 "$dir" 2>/dev/null || true
created=0 kept=0
for name in "${names[@]}"; do
  f="$dir/$name"
  if [ -e "$f" ] && [ "$force" -eq 0 ]; then kept=$((kept + 1)); continue; fi
  tmp="$(mktemp "$dir/.$name.XXXXXX")"
  # 32 random bytes -> 43 URL-safe characters; no newline.
  random_secret 32 >"$tmp"
  if [ "$(id -u)" -eq 0 ]; then chgrp 10001 "$tmp"; chmod 0440 "$tmp"; else chmod 0444 "$tmp"; fi
  mv -f "$tmp" "$f"
  created=$((created + 1))
done

# protect FILE MODE_AS_ROOT: ownership and mode like the password files (group 10001 reads).
protect() { if [ "$(id -u)" -eq 0 ]; then chgrp 10001 "$1"; chmod "$2" "$1"; else chmod 0444 "$1"; fi; }
tls="kept"
if [ -e "$dir/pgbouncer_tls.crt" ] && [ -e "$dir/pgbouncer_tls.key" ] && [ "$force" -eq 0 ]; then
  [ -e "$dir/tls_ca.crt" ] || echo "gen-secrets: WARNING: your own pgbouncer_tls.crt has no tls_ca.crt beside it: put the CA your clients trust there (the sidecar verifies with it)" >&2
else
  command -v openssl >/dev/null || { echo "gen-secrets: openssl is required for PgBouncer's TLS certificate (apt-get install openssl)" >&2; exit 1; }
  sans="DNS:pgbouncer,DNS:localhost,IP:127.0.0.1${POOLGUARD_TLS_SANS:+,$POOLGUARD_TLS_SANS}"
  [[ "$sans" =~ ^((DNS:[A-Za-z0-9.*-]+|IP:[0-9a-fA-F.:]+)(,|$))+$ ]] || { echo "gen-secrets: POOLGUARD_TLS_SANS must be a comma list of DNS:name and IP:address, got '${POOLGUARD_TLS_SANS:-}'" >&2; exit 1; }
  work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
  if [ ! -e "$dir/tls_ca.key" ] || [ "$force" -eq 1 ]; then
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=poolguard CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
    chmod 0400 "$work/ca.key"; mv -f "$work/ca.key" "$dir/tls_ca.key"
    cp "$work/ca.crt" "$work/ca.pub"; mv -f "$work/ca.pub" "$dir/tls_ca.crt"; protect "$dir/tls_ca.crt" 0444
  fi
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=pgbouncer" \
    -keyout "$work/pgb.key" -out "$work/pgb.csr" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' "$sans" >"$work/ext"
  openssl x509 -req -in "$work/pgb.csr" -CA "$dir/tls_ca.crt" -CAkey "$dir/tls_ca.key" -CAcreateserial -CAserial "$work/serial" \
    -days 825 -extfile "$work/ext" -out "$work/pgb.crt" 2>/dev/null
  protect "$work/pgb.key" 0440; mv -f "$work/pgb.key" "$dir/pgbouncer_tls.key"
  protect "$work/pgb.crt" 0444; mv -f "$work/pgb.crt" "$dir/pgbouncer_tls.crt"
  tls="created for $sans"
fi

# pgBackRest's own CA and the two certificates of its TLS server mode (see the header).
# issue NAME CN: NAME.crt/.key signed by pgbackrest_ca, for DNS:CN, usable as server and client.
issue() {
  local name="$1" cn="$2" w
  w="$(mktemp -d)"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" -keyout "$w/k" -out "$w/csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' "$cn" >"$w/ext"
  openssl x509 -req -in "$w/csr" -CA "$dir/pgbackrest_ca.crt" -CAkey "$dir/pgbackrest_ca.key" -CAcreateserial -CAserial "$w/serial" \
    -days 825 -extfile "$w/ext" -out "$w/crt" 2>/dev/null
  protect "$w/k" 0440; mv -f "$w/k" "$dir/$name.key"
  protect "$w/crt" 0444; mv -f "$w/crt" "$dir/$name.crt"
  rm -rf "$w"
}
backup_tls="kept"
if [ ! -e "$dir/pgbackrest_repo.crt" ] || [ ! -e "$dir/pgbackrest_db.crt" ] || [ ! -e "$dir/pgbackrest_ca.crt" ] || [ "$force" -eq 1 ]; then
  command -v openssl >/dev/null || { echo "gen-secrets: openssl is required for the backup service's TLS certificates (apt-get install openssl)" >&2; exit 1; }
  w="$(mktemp -d)"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=poolguard backup CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$w/ca.key" -out "$w/ca.crt" 2>/dev/null
  chmod 0400 "$w/ca.key"; mv -f "$w/ca.key" "$dir/pgbackrest_ca.key"
  protect "$w/ca.crt" 0444; mv -f "$w/ca.crt" "$dir/pgbackrest_ca.crt"
  rm -rf "$w"
  issue pgbackrest_repo backup
  issue pgbackrest_db pgbackrest
  backup_tls="created (backup, pgbackrest)"
fi
if [ "$(id -u)" -eq 0 ]; then chgrp 10001 "$dir"; chmod 0750 "$dir"; else chmod 0755 "$dir"; fi
echo "gen-secrets: $created created, $kept kept (use --force to replace) in $dir; PgBouncer TLS certificate $tls; backup TLS certificates $backup_tls" >&2
