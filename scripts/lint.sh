#!/usr/bin/env bash
# Usage: scripts/lint.sh
#
# Type-checks the sidecar (strict TypeScript), syntax-checks every shell script (and runs
# the shellcheck linter when installed), and validates both compose files.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
status=0
echo "lint: tsc --noEmit (sidecar, and the status page's checked JavaScript)" >&2
(cd sidecar && { [ -d node_modules ] || npm ci --no-audit --no-fund >&2; } && npm run --silent lint) || status=1
mapfile -t scripts < <(git ls-files '*.sh' .ci/run 2>/dev/null || find . -name '*.sh' -not -path './*/node_modules/*')
echo "lint: bash -n on ${#scripts[@]} scripts" >&2
for s in "${scripts[@]}"; do bash -n "$s" || status=1; done
if command -v shellcheck >/dev/null; then
  shellcheck -S warning "${scripts[@]}" || status=1
else
  echo "lint: shellcheck not installed; skipped (apt-get install shellcheck)" >&2
fi
if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; then
  echo "lint: compose config (dev, prod)" >&2
  scripts/compose.sh -f docker-compose.dev.yml --env-file .env.example config -q || status=1
  d="$(mktemp -d)"; trap 'rm -rf "$d"' EXIT
  POOLGUARD_SECRETS_DIR="$d" scripts/gen-secrets.sh "$d" 2>/dev/null
  POOLGUARD_SECRETS_DIR="$d" scripts/compose.sh -f docker-compose.prod.yml --env-file prod.env config -q || status=1
fi
[ "$status" -eq 0 ] && echo "lint: ok" >&2
exit "$status"
