#!/usr/bin/env bash
# Usage: scripts/ensure-env.sh
#
# Creates .env from .env.example when .env is missing (dev passwords: fake on purpose), and
# warns about variables that .env.example has and .env lacks.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
[ -f .env.example ] || { echo "ensure-env: .env.example is missing" >&2; exit 1; }
if [ ! -f .env ]; then
  cp .env.example .env
  echo "ensure-env: created .env from .env.example (dev passwords; edit before sharing the machine)" >&2
  exit 0
fi
missing="$(comm -23 <(grep -oE '^[A-Z_][A-Z0-9_]*=' .env.example | sort -u) <(grep -oE '^[A-Z_][A-Z0-9_]*=' .env | sort -u) | tr -d '=' | tr '\n' ' ')"
[ -z "$missing" ] || echo "ensure-env: .env lacks $missing(defaults apply; see .env.example)" >&2
