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
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
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
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${dir:-${POOLGUARD_SECRETS_DIR:-$root/secrets}}"

for tool in head base64 tr; do command -v "$tool" >/dev/null || { echo "gen-secrets: $tool is required" >&2; exit 1; }; done
[ -r /dev/urandom ] || { echo "gen-secrets: /dev/urandom is not readable" >&2; exit 1; }

names=(postgres_password app_password monitor_password pgbouncer_auth_password
       pgbouncer_admin_password pgbouncer_stats_password redis_password sidecar_token)

mkdir -p "$dir"
chmod 0750 "$dir" 2>/dev/null || true
created=0 kept=0
for name in "${names[@]}"; do
  f="$dir/$name"
  if [ -e "$f" ] && [ "$force" -eq 0 ]; then kept=$((kept + 1)); continue; fi
  tmp="$(mktemp "$dir/.$name.XXXXXX")"
  # 32 random bytes -> 43 URL-safe characters; no newline.
  head -c 32 /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_' >"$tmp"
  if [ "$(id -u)" -eq 0 ]; then chgrp 10001 "$tmp"; chmod 0440 "$tmp"; else chmod 0444 "$tmp"; fi
  mv -f "$tmp" "$f"
  created=$((created + 1))
done
if [ "$(id -u)" -eq 0 ]; then chgrp 10001 "$dir"; chmod 0750 "$dir"; else chmod 0755 "$dir"; fi
echo "gen-secrets: $created created, $kept kept (use --force to replace) in $dir" >&2
