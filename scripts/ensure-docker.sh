#!/usr/bin/env bash
# Usage: scripts/ensure-docker.sh
#
# Makes sure a Docker engine, Compose v2 and the base image debian:trixie-slim are
# available, installing/starting what is missing. Idempotent and fast when already done.
#
# On Debian as root it:
#   1. installs docker.io and debootstrap from the distribution (apt),
#   2. installs Compose v2 from Debian 13 (trixie), pinned so nothing else comes from there,
#   3. starts dockerd in the background when no engine answers,
#   4. builds debian:trixie-slim with debootstrap when it is missing and cannot be pulled.
# Anywhere else it stops and says exactly what to install.
set -euo pipefail

log() { printf '[ensure-docker] %s\n' "$*" >&2; }
die() { printf '[ensure-docker] ERROR: %s\n' "$*" >&2; exit 1; }

BASE_IMAGE="${POOLGUARD_BASE_IMAGE:-debian:trixie-slim}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/poolguard-dockerd.log}"

is_root() { [ "$(id -u)" -eq 0 ]; }
is_debian() { [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; }

compose_ok() {
  docker compose version >/dev/null 2>&1 && return 0
  command -v docker-compose >/dev/null 2>&1 && docker-compose version 2>/dev/null | grep -qE 'v?2\.' && return 0
  return 1
}

manual_help() {
  cat >&2 <<'MSG'
[ensure-docker] Cannot install or start Docker automatically here (needs root on Debian).
Do this yourself, then run the command again:
  - install Docker Engine (>= 20.10) and Compose v2 (`docker compose version` must answer),
  - start the engine (`sudo systemctl start docker` or `sudo dockerd &`),
  - make sure your user can talk to it (`docker info` must work without sudo),
  - provide the base image: `docker pull debian:trixie-slim`
    (offline: `debootstrap --variant=minbase trixie DIR && tar -C DIR -c . | docker import - debian:trixie-slim`).
MSG
  exit 1
}

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    log "apt-get update"
    apt-get update -qq >&2
    apt_updated=1
  fi
}

install_engine_packages() {
  local need=()
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  # docker.io needs these at run time; minimal images sometimes lack them.
  command -v iptables >/dev/null 2>&1 || need+=(iptables)
  if [ "${#need[@]}" -gt 0 ]; then
    is_root && is_debian || manual_help
    apt_update_once
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
  fi
}

install_compose() {
  compose_ok && return 0
  is_root && is_debian || manual_help
  local src=/etc/apt/sources.list.d/poolguard-trixie.sources
  local pin=/etc/apt/preferences.d/poolguard-trixie
  if [ ! -f "$src" ]; then
    local uris
    uris=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uris" ] || uris="http://deb.debian.org/debian"
    log "adding Debian trixie source ($uris), pinned to priority 100"
    cat >"$src" <<SRC
Types: deb
URIs: $uris
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    cat >"$pin" <<PIN
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
    apt_updated=0
  fi
  apt_update_once
  log "installing docker-compose (v2) from trixie"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t trixie --no-install-recommends docker-compose >&2
  compose_ok || die "docker-compose was installed but neither 'docker compose' nor 'docker-compose' v2 answers"
}

start_engine() {
  docker info >/dev/null 2>&1 && return 0
  is_root || manual_help
  command -v dockerd >/dev/null 2>&1 || manual_help
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    # containerd is started by dockerd itself when not running.
    nohup dockerd >"$DOCKERD_LOG" 2>&1 &
  fi
  local _
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && { log "engine is up"; return 0; }
    sleep 1
  done
  tail -n 30 "$DOCKERD_LOG" >&2 || true
  die "dockerd did not answer within 60 s (see $DOCKERD_LOG)"
}

ensure_base_image() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
  log "base image $BASE_IMAGE missing; trying to pull"
  if timeout 30 docker pull "$BASE_IMAGE" >/dev/null 2>&1; then return 0; fi
  is_root && command -v debootstrap >/dev/null 2>&1 || die "cannot pull $BASE_IMAGE and cannot build it (needs root and debootstrap)"
  local suite="${BASE_IMAGE#debian:}"; suite="${suite%-slim}"
  local mirror
  mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
  local dir; dir=$(mktemp -d /tmp/poolguard-rootfs.XXXXXX)
  log "building $BASE_IMAGE with debootstrap ($suite from $mirror, about a minute)"
  if ! debootstrap --variant=minbase "$suite" "$dir" "$mirror" >/tmp/poolguard-debootstrap.log 2>&1; then
    tail -n 30 /tmp/poolguard-debootstrap.log >&2
    rm -rf "$dir"
    die "debootstrap failed (see /tmp/poolguard-debootstrap.log)"
  fi
  # Trim like the official slim image: no apt lists, no docs.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/usr/share/doc/* "$dir"/usr/share/man/*
  tar -C "$dir" -c . | docker import -c 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir"
  log "imported $BASE_IMAGE"
}

main() {
  if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then sed -n '2,13p' "$0"; exit 0; fi
  command -v docker >/dev/null 2>&1 || install_engine_packages
  if ! docker info >/dev/null 2>&1; then install_engine_packages; fi
  start_engine
  install_compose
  ensure_base_image
}

main "$@"
