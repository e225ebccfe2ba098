#!/usr/bin/env bash
# Usage: scripts/preflight.sh dev|prod [global compose options, e.g. -p NAME --env-file FILE -f EXTRA]
#
# Checks a stack before anything starts, and says what to change:
#   - the compose file renders with these settings (compose's own message when not: a missing
#     password, the prod file given the dev .env, ...);
#   - no name is set twice in the env file (compose would use the last silently);
#   - every NAME= in the env file is one the compose files (with any extra -f) read: a typo such as
#     PGBOUNCER_POOL_MOOD, a managed PgBouncer setting, a renamed variable, or a prod-only one in
#     the dev .env is an error naming it (compose would silently ignore it);
#   - COMPOSE_PROFILES names only profiles the compose file has (replica, monitoring);
#   - with the monitoring profile, one alert path: Prometheus's rules or the sidecar's own, not both;
#   - (dev) DATABASE_URL / DATABASE_URL_DIRECT / REDIS_URL left in .env agree with the passwords;
#   - (prod) every secret file exists and is readable;
#   - every host port the stack publishes is free, or already this project's own.
# Exit 0 when all pass; 1 after listing every problem. up.sh runs it first.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
case "${1:-}" in
  dev)  file=docker-compose.dev.yml other=docker-compose.prod.yml ;;
  prod) file=docker-compose.prod.yml other=docker-compose.dev.yml ;;
  -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 dev|prod [global compose options...]" >&2; exit 2 ;;
esac
kind="$1"; shift
need docker awk sed grep timeout
cd "$ROOT"
env_file=""
args=("$@")
extra_files=()
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --env-file) env_file="${args[i+1]:-}" ;;
    --env-file=*) env_file="${args[i]#--env-file=}" ;;
    -f|--file) extra_files+=("${args[i+1]:-}") ;;
  esac
done
[ -n "$env_file" ] || env_file="$ROOT/.env"
problems=()
problem() { problems+=("$*"); }

# 0. The env file's form. compose reads CRLF lines, quotes and " #" comments (and so do these
# scripts: lib.sh env_get), but a name set twice silently takes the last value.
if [ -f "$env_file" ]; then
  while read -r name lines; do
    [ -n "$name" ] || continue
    problem "$env_file: $name is set on lines ${lines// /, } and compose uses only the last; keep one"
  done < <(env_duplicates "$env_file")
  if grep -q $'\r$' "$env_file"; then
    warn "$env_file has Windows (CRLF) line endings; compose and poolguard read it correctly, other tools may keep the CR in values (sed -i 's/\\r\$//' '$env_file' converts it)"
  fi
fi

# 1. The file renders.
if ! rendered="$("$ROOT/scripts/compose.sh" -f "$file" "$@" config 2>&1)"; then
  die "docker-compose: $file does not render with $env_file:
$(grep -v '^\s*$' <<<"$rendered" | tail -n 5)"
fi
project="$(sed -n 's/^name: //p' <<<"$rendered" | head -n 1)"

# 2. Every name in the env file is read by the compose file.
# reads FILE: the variables a compose file reads (${NAME...} and bare "NAME:" environment keys).
reads() {
  { grep -oE '(^|[^$])\$\{[A-Z_][A-Z0-9_]*' "$1" | sed -E 's/.*\$\{//' || true
    grep -oE '^ +[A-Z_][A-Z0-9_]*:$' "$1" | tr -d ' :' || true; } | sort -u
}
known="$(reads "$file"; for f in "${extra_files[@]}"; do [ ! -f "$f" ] || reads "$f"; done)"
known_other="$(reads "$other")"
managed="$(pgbouncer_managed)"
settings="$(grep -vxF "$managed" <(pgbouncer_keys) | tr '[:lower:]' '[:upper:]' | sed 's/^/PGBOUNCER_/')"
if [ -f "$env_file" ]; then
  while IFS= read -r name; do
    grep -qxF "$name" <<<"$known" && continue
    case "$name" in
      COMPOSE_*|DOCKER_*) continue ;;
      DATABASE_URL|DATABASE_URL_DIRECT|REDIS_URL) [ "$kind" = dev ] && continue ;;
      SIDECAR_PUBLISH_PORT) problem "$env_file: SIDECAR_PUBLISH_PORT was renamed PUBLISH_SIDECAR_PORT (the same name in dev and prod): rename it" ; continue ;;
      SIDECAR_BIND_ADDR) problem "$env_file: SIDECAR_BIND_ADDR was renamed PUBLISH_SIDECAR_ADDR: rename it"; continue ;;
    esac
    if [[ "$name" == PGBOUNCER_* ]]; then
      key="$(tr '[:upper:]' '[:lower:]' <<<"${name#PGBOUNCER_}")"
      if grep -qxF "$key" <<<"$managed"; then
        problem "$env_file: $name: '$key' is fixed by the image (pgbouncer/pgbouncer.ini, poolguard-managed); remove it"
      elif ! grep -qxF "$name" <<<"$settings"; then
        problem "$env_file: $name: '$key' is not a setting of pgbouncer/pgbouncer.ini (a typo?); settings: $(tr '\n' ' ' <<<"$settings" | sed 's/PGBOUNCER_//g')"
      fi
      continue
    fi
    if grep -qxF "$name" <<<"$known_other"; then
      problem "$env_file: $name is read only by $other, not by $file: remove it here$([ "$kind" = dev ] && echo ' (prod settings live in prod.env)')"
    else
      problem "$env_file: $name is not read by $file (a typo?): fix or remove it"
    fi
  done < <(env_names "$env_file")
fi

# 2b. COMPOSE_PROFILES names profiles the compose file has: Compose ignores an unknown one, so a
# typo ("replicas") would silently run no replica.
if [ -f "$env_file" ]; then
  have="$(awk '/^ +profiles: \[/ { gsub(/.*\[|\].*/, ""); gsub(/[ ,]+/, "\n"); print }' "$file" | sed '/^$/d' | sort -u)"
  IFS=, read -r -a wanted <<<"$(env_get "$env_file" COMPOSE_PROFILES)"
  for p in "${wanted[@]}"; do
    p="${p// /}"
    [ -z "$p" ] || grep -qxF "$p" <<<"$have" || problem "$env_file: COMPOSE_PROFILES lists '$p', a profile $file does not have (it has: $(tr '\n' ' ' <<<"$have")): fix or remove it"
  done
fi

# 2c. One alert path into Alertmanager: with the monitoring profile, either Prometheus's rules
# (PROMETHEUS_RULES=on, the default) or the sidecar's own alerts (SIDECAR_ALERTMANAGER_URL), never
# both: every alert would arrive twice.
if [ -f "$env_file" ] && [[ ",$(env_get "$env_file" COMPOSE_PROFILES | tr -d ' ')," == *,monitoring,* ]]; then
  am_url="$(env_get "$env_file" SIDECAR_ALERTMANAGER_URL)"
  rules="$(env_get "$env_file" PROMETHEUS_RULES)"
  if [ -n "$am_url" ] && [ "${rules:-on}" != off ]; then
    problem "$env_file: SIDECAR_ALERTMANAGER_URL is set and PROMETHEUS_RULES is ${rules:-on (the default)}: both would send every alert to Alertmanager. Keep one path: set PROMETHEUS_RULES=off (the sidecar's own alerts), or remove SIDECAR_ALERTMANAGER_URL (Prometheus's rules)"
  fi
  case "${rules:-on}" in on|off) ;; *) problem "$env_file: PROMETHEUS_RULES=$rules: use on or off" ;; esac
fi

# 3. (dev) URLs left in .env agree with the passwords they repeat.
if [ "$kind" = dev ] && [ -f "$env_file" ]; then
  for pair in DATABASE_URL:APP_PASSWORD DATABASE_URL_DIRECT:APP_PASSWORD REDIS_URL:REDIS_PASSWORD; do
    url="$(env_get "$env_file" "${pair%%:*}")"; pw="$(env_get "$env_file" "${pair#*:}")"
    [ -n "$url" ] || continue
    inurl="${url#*://}"; inurl="${inurl%%@*}"; inurl="${inurl#*:}"
    if [ "$(urldecode "$inurl")" != "$pw" ]; then
      warn "$env_file: the password in ${pair%%:*} is not ${pair#*:}: the URL is stale. Remove it (make urls prints the right one)."
    fi
  done
fi

# 4. (prod) Secret files.
if [ "$kind" = prod ]; then
  # The rules every image reads its secrets by (scripts/secret-env.sh): checked here, before
  # anything starts, so a bad file never leaves the stack half up. Certificates and keys (PEM)
  # are many lines: they only have to be non-empty files.
  # shellcheck source=scripts/secret-env.sh
  source "$ROOT/scripts/secret-env.sh"
  missing_secrets=0
  while IFS= read -r f; do
    case "$f" in
      *.crt|*.key|*.pem)
        pem=""
        if [ -d "$f" ]; then pem="is a directory, not a file"
        elif [ ! -e "$f" ]; then pem="does not exist"
        elif [ ! -s "$f" ]; then pem="is empty"
        fi
        if [ -n "$pem" ]; then problem "secret file $f $pem"; missing_secrets=1; continue; fi ;;
      *)
        if ! POOLGUARD_SECRET_FILE="$f" secret_get POOLGUARD_SECRET; then
          problem "secret file $f ${SECRET_PROBLEM#"POOLGUARD_SECRET_FILE: $f "}"; missing_secrets=1; continue
        fi ;;
    esac
    # The services run as uids 10001-10004 in group 10001 (poolguard): they read the file
    # through the group or "other" read bit, never as its owner.
    read -r gid mode < <(stat -c '%g %a' "$f")
    if ! { [ $(( 8#$mode & 4 )) -ne 0 ] || { [ "$gid" = 10001 ] && [ $(( 8#$mode & 040 )) -ne 0 ]; }; }; then
      problem "secret file $f (mode $mode, group $gid) is not readable by the services (uids 10001-10004, group 10001): chgrp 10001 '$f' && chmod 0440 '$f' (what gen-secrets.sh does)"
      missing_secrets=1
    fi
  done < <(awk '/^secrets:/{s=1;next} /^[a-z]/{s=0} s && $1=="file:"{print $2}' <<<"$rendered")
  [ "$missing_secrets" -eq 0 ] || warn "secret files come from scripts/gen-secrets.sh (make prod-secrets), or yours under POOLGUARD_SECRETS_DIR"
fi

# 5. Published host ports: free, or this project's own.
# publish_var SERVICE: the variable that sets the service's host port in the compose file.
publish_var() {
  awk -v svc="  $1:" '$0 == svc {s=1; next} s && /^  [a-z]/ {s=0} s && /PUBLISH_[A-Z_]*PORT/ {match($0, /PUBLISH_[A-Z_]*PORT/); print substr($0, RSTART, RLENGTH); exit}' "$file"
}
while read -r svc ip port; do
  [ -n "$port" ] || continue
  holder="$(docker ps --filter "publish=$port" --format '{{.Label "com.docker.compose.project"}} {{.Names}}' 2>/dev/null | head -n 1 || true)"
  if [ -n "$holder" ]; then
    owner="${holder%% *}"
    [ "$owner" = "$project" ] && continue
    problem "host port $ip:$port ($svc) is taken by container ${holder#* }${owner:+ of compose project $owner}: stop that, or set $(publish_var "$svc") to a free port in $env_file"
    continue
  fi
  probe_ip="$ip"; [ "$probe_ip" != 0.0.0.0 ] && [ -n "$probe_ip" ] || probe_ip=127.0.0.1
  if timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$probe_ip" "$port" 2>/dev/null; then
    problem "host port $ip:$port ($svc) is taken by a process on this host (ss -ltnp 'sport = :$port' names it): stop it, or set $(publish_var "$svc") to a free port in $env_file"
  fi
done < <(awk '
  /^services:/ {s=1; next} /^[a-z]/ {s=0}
  s && /^  [a-z0-9_-]+:$/ {svc=$1; sub(":", "", svc)}
  s && $1=="host_ip:" {ip=$2}
  s && $1=="published:" {gsub("\"", "", $2); print svc, ip, $2; ip=""}
' <<<"$rendered")

if [ "${#problems[@]}" -gt 0 ]; then
  printf '%s: %s cannot start; nothing was started. Change:\n' "$ME" "$file" >&2
  printf '  - %s\n' "${problems[@]}" >&2
  exit 1
fi
