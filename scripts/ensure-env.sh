#!/usr/bin/env bash
# Usage: scripts/ensure-env.sh [ENV_FILE]        (default: .env in the checkout)
#
# Creates ENV_FILE from .env.example when it is missing, with
#   - a random value (32 URL-safe characters) for every *_PASSWORD, so there is nothing to
#     edit before the first start (roles are created on the first start, once);
#   - POOLGUARD_PROJECT=poolguard-<folder>-<6 hex of the checkout's path>, so two checkouts on
#     one host never share containers or volumes.
# An existing file is kept as it is, but for *_PASSWORD variables .env.example has and it lacks
# (a newer version of the bundle added a role): those are appended with a random value, and
# said. Other variables it lacks are named (their defaults apply).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
need head base64 tr sha256sum
env_file="${1:-$ROOT/.env}"
example="$ROOT/.env.example"
[ -f "$example" ] || die ".env.example is missing from $ROOT"

# project_name: poolguard-<folder>-<hash>, lower case, as compose wants project names.
project_name() {
  local folder hash
  folder="$(basename "$ROOT" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9_-' '-' | sed 's/-*$//' | cut -c1-30)"
  hash="$(printf '%s' "$ROOT" | sha256sum | cut -c1-6)"
  printf 'poolguard-%s-%s' "${folder:-checkout}" "$hash"
}

if [ ! -f "$env_file" ]; then
  project="$(project_name)"
  tmp="$(mktemp "$env_file.XXXXXX")"
  chmod 0600 "$tmp"
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
      *_PASSWORD=*) printf '%s=%s\n' "${line%%=*}" "$(random_secret 24)" ;;
      POOLGUARD_PROJECT=*) printf 'POOLGUARD_PROJECT=%s\n' "$project" ;;
      *) printf '%s\n' "$line" ;;
    esac
  done <"$example" >"$tmp"
  mv "$tmp" "$env_file"
  log "created $env_file from .env.example: random dev passwords, project $project (make urls prints the app's URLs)"
  exit 0
fi
added=()
[ ! -s "$env_file" ] || [ -z "$(tail -c 1 "$env_file")" ] || echo >>"$env_file" # a last line without its newline
while IFS= read -r name; do
  printf '%s=%s\n' "$name" "$(random_secret 24)" >>"$env_file"
  added+=("$name")
done < <(comm -23 <(env_names "$example") <(env_names "$env_file") | grep '_PASSWORD$' || true)
[ "${#added[@]}" -eq 0 ] || log "added ${added[*]} to $env_file with random values (roles this version of the bundle needs; they are created on the next start)"
lacking="$(comm -23 <(env_names "$example") <(env_names "$env_file") | tr '\n' ' ')"
[ -z "$lacking" ] || log "$env_file lacks $lacking(their defaults apply; see .env.example)"
if [ -z "$(env_get "$env_file" POOLGUARD_PROJECT)" ]; then
  log "$env_file sets no POOLGUARD_PROJECT: this checkout uses the shared project name 'poolguard' (another checkout with the same would share its volumes). To keep it apart, add POOLGUARD_PROJECT=$(project_name) (a new name starts with empty volumes)."
fi
