#!/usr/bin/env bash
# Usage: scripts/compose.sh [compose args...]
#
# Runs Docker Compose v2 as `docker compose`, or as the standalone `docker-compose` v2 binary
# when the plugin is missing (Debian's package installs both). Exits 1 with a hint when
# neither is there.
set -euo pipefail
if docker compose version >/dev/null 2>&1; then exec docker compose "$@"; fi
if command -v docker-compose >/dev/null 2>&1 && docker-compose version 2>/dev/null | grep -qE 'v?2\.'; then
  exec docker-compose "$@"
fi
echo "compose.sh: Docker Compose v2 not found; run scripts/ensure-docker.sh (or install the compose plugin)" >&2
exit 1
