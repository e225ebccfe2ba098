#!/usr/bin/env bash
# Usage: scripts/test.sh all|unit|e2e [vitest args...]
#
# The test suite (`make test` = all). unit: the sidecar's unit tests (no Docker). e2e: builds
# every image from the project's Dockerfiles, then drives the real compose files (dev and prod)
# under their own project names (poolguard-test-*) and host ports, and removes them after.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tier="${1:-all}"; shift || true
case "$tier" in all|unit|e2e) ;; *) echo "usage: $0 all|unit|e2e [vitest args...]" >&2; exit 2 ;; esac
command -v node >/dev/null || { echo "test: node (>= 20) is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "test: npm is required" >&2; exit 1; }

start=$(date +%s)
cd "$root/sidecar"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "test: npm ci (sidecar)" >&2
  npm ci --no-audit --no-fund >&2
fi

if [ "$tier" != unit ]; then
  "$root/scripts/cleanup-test-stacks.sh"
  "$root/scripts/prepare-build.sh"
  echo "test: building images" >&2
  b0=$(date +%s)
  "$root/scripts/compose.sh" -f "$root/docker-compose.dev.yml" --env-file "$root/.env.example" build >&2
  echo "test: images built in $(( $(date +%s) - b0 )) s" >&2
fi

export TESTCONTAINERS_RYUK_DISABLED=true
case "$tier" in
  unit) npx vitest run --project unit "$@" ;;
  e2e)  npx vitest run --project e2e "$@" ;;
  all)  npx vitest run "$@" ;;
esac
echo "test: $tier finished in $(( $(date +%s) - start )) s" >&2
