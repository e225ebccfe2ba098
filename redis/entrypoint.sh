#!/usr/bin/env bash
# Usage: redis-entrypoint redis-server /etc/poolguard/redis.conf
#        redis-entrypoint <any other command>     (run as is)
#
# Writes /var/run/redis/runtime.conf (mode 0600) from:
#   REDIS_PASSWORD | REDIS_PASSWORD_FILE   requirepass (required)
#   REDIS_MAXMEMORY [256mb]                e.g. 512mb, 1gb, 0 (no cap: not recommended)
#   REDIS_MAXMEMORY_POLICY [noeviction]    noeviction, allkeys-lru, volatile-lru, ...
#   REDIS_APPENDONLY [yes]                 yes | no
#   REDIS_MAXCLIENTS [1000]
# Every bad value is reported, then it exits 1 before starting. The password is never printed.
set -euo pipefail

# shellcheck source=scripts/secret-env.sh
source /usr/local/lib/poolguard/secret-env.sh
RUNTIME=/var/run/redis/runtime.conf
log() { printf '%s [entrypoint] %s\n' "$(date -u +'%d %b %Y %H:%M:%S.000')" "$*" >&2; }
errors=()
err() { errors+=("$*"); }

render() {
  local pw=""
  if secret_require REDIS_PASSWORD; then pw="$REDIS_PASSWORD"; else err "$SECRET_PROBLEM"; fi

  local maxmem="${REDIS_MAXMEMORY:-256mb}" policy="${REDIS_MAXMEMORY_POLICY:-noeviction}"
  local aof="${REDIS_APPENDONLY:-yes}" maxclients="${REDIS_MAXCLIENTS:-1000}"
  [[ "$maxmem" =~ ^[0-9]+([kmg]b?)?$ ]] || err "REDIS_MAXMEMORY must be a size such as 256mb or 1gb, got '$maxmem'"
  [[ "$policy" =~ ^(noeviction|allkeys-lru|allkeys-lfu|allkeys-random|volatile-lru|volatile-lfu|volatile-random|volatile-ttl)$ ]] \
    || err "REDIS_MAXMEMORY_POLICY must be one of noeviction, allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu, volatile-random, volatile-ttl; got '$policy'"
  [[ "$aof" =~ ^(yes|no)$ ]] || err "REDIS_APPENDONLY must be yes or no, got '$aof'"
  [[ "$maxclients" =~ ^[0-9]+$ ]] && [ "$maxclients" -ge 1 ] || err "REDIS_MAXCLIENTS must be a whole number >= 1, got '$maxclients'"

  if [ "${#errors[@]}" -gt 0 ]; then
    log "configuration error(s):"; local e; for e in "${errors[@]}"; do log "  - $e"; done
    exit 1
  fi
  # Redis config strings: double-quoted, with \\ and \" escaped.
  local q="${pw//\\/\\\\}"; q="${q//\"/\\\"}"
  umask 077
  printf 'requirepass "%s"\nmaxmemory %s\nmaxmemory-policy %s\nappendonly %s\nmaxclients %s\n' \
    "$q" "$maxmem" "$policy" "$aof" "$maxclients" >"$RUNTIME.tmp"
  mv "$RUNTIME.tmp" "$RUNTIME"
  unset REDIS_PASSWORD REDIS_PASSWORD_FILE
  log "maxmemory=$maxmem maxmemory-policy=$policy appendonly=$aof maxclients=$maxclients (requirepass set)"
}

if [ "${1:-}" = "redis-server" ]; then
  [ "$(id -u)" -ne 0 ] || { log "ERROR: refusing to run as root"; exit 1; }
  render
fi
exec "$@"
