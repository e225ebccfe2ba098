#!/usr/bin/env bash
# Usage: scripts/cleanup-test-stacks.sh
#
# Removes what the test suite's compose projects (named poolguard-test-*) left behind:
# containers, networks and volumes. A killed session leaves them recorded, and dockerd
# restarts "unless-stopped" containers on its next start, so CI calls this before testing.
set -euo pipefail
command -v docker >/dev/null || { echo "cleanup-test-stacks: docker not found" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "cleanup-test-stacks: no Docker engine answers (run scripts/ensure-docker.sh)" >&2; exit 1; }
projects="$(docker ps -a --format '{{.Label "com.docker.compose.project"}}' | grep -E '^poolguard-test-' | sort -u || true)"
projects="$(printf '%s\n%s\n' "$projects" "$(docker volume ls --format '{{.Label "com.docker.compose.project"}}' | grep -E '^poolguard-test-' | sort -u || true)" | sort -u | sed '/^$/d')"
for p in $projects; do
  echo "cleanup-test-stacks: removing leftover project $p" >&2
  ids="$(docker ps -aq --filter "label=com.docker.compose.project=$p")"
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  nets="$(docker network ls -q --filter "label=com.docker.compose.project=$p")"
  [ -z "$nets" ] || docker network rm $nets >/dev/null
  vols="$(docker volume ls -q --filter "label=com.docker.compose.project=$p")"
  [ -z "$vols" ] || docker volume rm $vols >/dev/null
done
# Volumes made beside a test stack by scripts/backup.sh (restore's copy of the old data, the
# restore-check scratch volume) carry the project's name but no compose label.
extra="$(docker volume ls -q | grep -E '^poolguard-test-.*_(pgdata_before_restore|restore_check)_' || true)"
[ -z "$extra" ] || { echo "cleanup-test-stacks: removing leftover restore volumes" >&2; docker volume rm $extra >/dev/null; }
