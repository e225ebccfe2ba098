#!/usr/bin/env bash
# Usage: scripts/ensure-chromium.sh
#
# Makes sure Debian's Chromium is installed for the status page's browser test
# (sidecar/test/e2e/status-page.test.ts drives it with playwright-core). Idempotent: prints the
# path and does nothing else when a working chromium is already on PATH (or CHROMIUM_PATH names
# one). On Debian as root it installs the `chromium` package with apt; anywhere else it stops and
# says what to install. Never downloads a browser of its own (no `playwright install`).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

path="${CHROMIUM_PATH:-$(command -v chromium || true)}"
if [ -n "$path" ] && "$path" --version >/dev/null 2>&1; then
  log "$("$path" --version 2>/dev/null | head -1) at $path"
  exit 0
fi
[ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1 || die "no chromium found: install Chromium (Debian package chromium) or set CHROMIUM_PATH to its binary"
[ "$(id -u)" -eq 0 ] || die "no chromium found: run 'sudo apt-get install -y chromium' (or set CHROMIUM_PATH to a Chromium binary)"
log "installing Debian's chromium (apt-get; about 1-2 minutes)"
# The package lists may be missing or stale on a fresh machine.
apt-get update -q >&2 || warn "apt-get update failed; trying the install with the lists present"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2 || die "apt-get install chromium failed (see above): install it by hand or set CHROMIUM_PATH"
command -v chromium >/dev/null || die "chromium is still not on PATH after the install"
log "$(chromium --version 2>/dev/null | head -1) installed"
