#!/usr/bin/env bash
# Usage: sidecar-health        (the image's HEALTHCHECK; exit 0 when /readyz answers 200)
# A plain HTTP/1.0 GET over bash's /dev/tcp: no node process per check (a `node -e fetch()`
# check cost ~50 ms of CPU and ~50 MB of memory every few seconds). Port: SIDECAR_PORT [8787].
set -euo pipefail
port="${SIDECAR_PORT:-8787}"
[[ "$port" =~ ^[0-9]+$ ]] || { echo "sidecar-health: SIDECAR_PORT must be a number, got '$port'" >&2; exit 1; }
exec 3<>"/dev/tcp/127.0.0.1/$port" || { echo "sidecar-health: nothing listens on 127.0.0.1:$port" >&2; exit 1; }
printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
read -r -t 3 _ code _ <&3 || { echo "sidecar-health: no answer from /readyz" >&2; exit 1; }
[ "$code" = 200 ] || { echo "sidecar-health: /readyz answered $code" >&2; exit 1; }
