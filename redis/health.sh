#!/usr/bin/env bash
# Usage: redis-health   (the image's HEALTHCHECK)
# PINGs the local server with the password from the runtime config; exit 0 only on PONG.
set -euo pipefail
pw="$(sed -n 's/^requirepass "\(.*\)"$/\1/p' /var/run/redis/runtime.conf | sed 's/\\"/"/g; s/\\\\/\\/g')"
out="$(REDISCLI_AUTH="$pw" redis-cli --no-auth-warning -h 127.0.0.1 -p 6379 ping 2>&1)"
[ "$out" = "PONG" ] || { echo "redis-health: $out" >&2; exit 1; }
