#!/usr/bin/env bash
# Usage: scripts/clean.sh [--yes] [global compose options, e.g. --env-file .env]
#
# Removes THIS checkout's dev stack with its data volumes (never the prod stack, never another
# checkout's project), the test suite's leftovers and build outputs. It first names the project
# and every volume it will delete and asks to type "yes"; without a terminal it needs --yes
# (make clean CONFIRM=yes).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
yes=0
case "${1:-}" in
  -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --yes) yes=1; shift ;;
esac
need docker
compose=("$ROOT/scripts/compose.sh" -f "$ROOT/docker-compose.dev.yml" "$@")
rendered="$("${compose[@]}" config 2>/dev/null)" || rendered="$("${compose[@]}" --env-file "$ROOT/.env.example" config)"
project="$(sed -n 's/^name: //p' <<<"$rendered" | head -n 1)"
# A project whose containers came from the prod file is never cleaned from here.
if docker ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Label "com.docker.compose.project.config_files"}}' | grep -q 'docker-compose.prod.yml'; then
  die "refusing: project '$project' runs docker-compose.prod.yml; make clean is for the dev stack only"
fi
vols="$(docker volume ls -q --filter "label=com.docker.compose.project=$project" | sort)"
echo "clean: dev project '$project': containers, networks$([ -n "$vols" ] && echo ' and these volumes (ALL THEIR DATA):' || echo '; no volumes exist')" >&2
[ -z "$vols" ] || sed 's/^/  - /' <<<"$vols" >&2
if [ -n "$vols" ] && [ "$yes" -ne 1 ]; then
  if [ -t 0 ]; then
    read -r -p "clean: type yes to delete them: " answer
    [ "$answer" = yes ] || die "nothing deleted"
  else
    die "nothing deleted: no terminal to confirm on; run 'make clean CONFIRM=yes' to delete the volumes above"
  fi
fi
"${compose[@]}" down -v --remove-orphans
# down -v leaves the volumes of services whose profile is off (the replica's, when
# COMPOSE_PROFILES no longer lists it): remove what is left of the list above.
left="$(docker volume ls -q --filter "label=com.docker.compose.project=$project")"
# shellcheck disable=SC2086
[ -z "$left" ] || docker volume rm $left >/dev/null
"$ROOT/scripts/cleanup-test-stacks.sh"
rm -rf "$ROOT/sidecar/dist"
log "removed dev project '$project'$([ -n "$vols" ] && echo " and its $(wc -l <<<"$vols") volumes")"
