#!/usr/bin/env bash
# Usage: scripts/prepare-build.sh
#
# Stages the host's extra CA certificates (/usr/local/share/ca-certificates/*.crt, plus any in
# $POOLGUARD_EXTRA_CA_DIR) into sidecar/certs and migrations/certs, where their build stages
# trust them for npm (corporate proxies, TLS-intercepting sandboxes). Idempotent; the runtime
# images never carry them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src_dirs=(/usr/local/share/ca-certificates)
[ -z "${POOLGUARD_EXTRA_CA_DIR:-}" ] || src_dirs+=("$POOLGUARD_EXTRA_CA_DIR")
for dest in "$root/sidecar/certs" "$root/migrations/certs"; do
  mkdir -p "$dest"
  for dir in "${src_dirs[@]}"; do
    [ -d "$dir" ] || continue
    find "$dir" -maxdepth 2 -type f -name '*.crt' -print0 | while IFS= read -r -d '' crt; do
      cmp -s "$crt" "$dest/$(basename "$crt")" || cp "$crt" "$dest/"
    done
  done
done
