#!/usr/bin/env bash
# Usage: poolguard-pg-health        (the healthcheck of the postgres image, primary or standby)
#
# Unhealthy when the standby entrypoint refused to start (standby.sh wrote why to the problem
# file: a foreign data directory, a slot gone) or when the server does not accept connections
# over TCP (the init-time server listens on the Unix socket only, so it does not count).
set -euo pipefail
problem=/tmp/poolguard-replica-problem
if [ -s "$problem" ]; then cat "$problem"; exit 1; fi
exec pg_isready -q -h 127.0.0.1 -p 5432 -U "${POSTGRES_USER:-postgres}"
