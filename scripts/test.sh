#!/usr/bin/env bash
# Usage: scripts/test.sh all|unit|e2e|fault [vitest args...]
#
# The test suite (`make test` = all, tier after tier). unit: the sidecar's unit and process
# tests (no Docker; the fast tier). e2e: builds every image from the project's Dockerfiles, then
# drives the real compose files (dev and prod) and the sidecar image under their own project
# names (poolguard-test-*) and host ports, and removes them after. fault (slow): load, fault
# injection, bad input and security against real stacks; its rows go to sidecar/.reliability/
# (ignored): `make reliability` writes docs/reliability.md from a run whose every test passed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tier="${1:-all}"; shift || true
case "$tier" in all|unit|e2e|fault) ;; *) echo "usage: $0 all|unit|e2e|fault [vitest args...]" >&2; exit 2 ;; esac
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
need node npm
trap - ERR # a failing test tier is reported by vitest, not as an unexpected failure

start=$(date +%s)
sidecar_deps
cd "$root/sidecar"

# Tests build and run images of their own tag, never dev's (0.1.0-dev) or prod's (0.1.0): a test
# run leaves a user's running stacks and their images as they were.
export POOLGUARD_IMAGE_TAG="${POOLGUARD_IMAGE_TAG:-0.1.0-test}"
if [ "$tier" = all ] || [ "$tier" = e2e ]; then
  # The status page's browser test drives Debian's Chromium.
  "$root/scripts/ensure-chromium.sh"
fi
if [ "$tier" != unit ]; then
  "$root/scripts/cleanup-test-stacks.sh"
  "$root/scripts/prepare-build.sh"
  echo "test: building images (tag $POOLGUARD_IMAGE_TAG)" >&2
  b0=$(date +%s)
  # Every profile's images too (the monitoring profile's Prometheus and Alertmanager).
  "$root/scripts/compose.sh" -p poolguard-test-build -f "$root/docker-compose.dev.yml" --env-file "$root/.env.example" --profile replica --profile monitoring build >&2
  echo "test: images built in $(( $(date +%s) - b0 )) s" >&2
fi

export TESTCONTAINERS_RYUK_DISABLED=true
# Tiers run one after another: stacks never compete for the 2 cores.
case "$tier" in
  all) for t in unit e2e fault; do echo "test: tier $t" >&2; npx vitest run --project "$t" "$@"; done ;;
  *) npx vitest run --project "$tier" "$@" ;;
esac
echo "test: $tier finished in $(( $(date +%s) - start )) s" >&2
