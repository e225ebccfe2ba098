#!/usr/bin/env bash
# Usage: poolguard-prometheus [more prometheus flags]
#
# The monitoring profile's Prometheus: writes its configuration from the environment into
# PROMETHEUS_CONFIG_DIR (a tmpfs; the root filesystem is read-only in prod), checks it with
# promtool, then execs prometheus with its data in /prometheus (a volume).
#   PROMETHEUS_SIDECAR_TARGET   host:port of the sidecar (sidecar:8787)
#   PROMETHEUS_SIDECAR_TOKEN_FILE  file holding the sidecar's bearer token (prod: a secret), or
#   PROMETHEUS_SIDECAR_TOKEN    the token itself (dev: SIDECAR_TOKEN; empty = the sidecar has none)
#   PROMETHEUS_SCRAPE_INTERVAL  scrape and rule evaluation interval (15s)
#   PROMETHEUS_RETENTION        how long samples are kept (15d)
#   PROMETHEUS_RULES            on: evaluate /etc/poolguard/alerts.yml and send to Alertmanager;
#                               off: the sidecar sends its own alerts (SIDECAR_ALERTMANAGER_URL)
#   PROMETHEUS_ALERTMANAGER     host:port of Alertmanager (alertmanager:9093)
set -euo pipefail
me=poolguard-prometheus
die() { printf '%s: ERROR: %s\n' "$me" "$*" >&2; exit 1; }
for c in prometheus promtool; do command -v "$c" >/dev/null || die "$c is not installed"; done

dir="${PROMETHEUS_CONFIG_DIR:-/run/poolguard-prometheus}"
target="${PROMETHEUS_SIDECAR_TARGET:-sidecar:8787}"
interval="${PROMETHEUS_SCRAPE_INTERVAL:-15s}"
retention="${PROMETHEUS_RETENTION:-15d}"
rules="${PROMETHEUS_RULES:-on}"
alertmanager="${PROMETHEUS_ALERTMANAGER:-alertmanager:9093}"

[[ "$interval" =~ ^[1-9][0-9]*(s|m)$ ]] || die "PROMETHEUS_SCRAPE_INTERVAL=$interval: use a duration such as 15s or 1m"
[[ "$retention" =~ ^[1-9][0-9]*(h|d|w|y)$ ]] || die "PROMETHEUS_RETENTION=$retention: use a duration such as 15d or 12h"
[[ "$rules" =~ ^(on|off)$ ]] || die "PROMETHEUS_RULES=$rules: use on (Prometheus evaluates monitoring/alerts.yml) or off (the sidecar sends its own alerts)"
[[ "$target" =~ ^[A-Za-z0-9._-]+:[0-9]+$ ]] || die "PROMETHEUS_SIDECAR_TARGET=$target: use host:port, such as sidecar:8787"
[[ "$alertmanager" =~ ^[A-Za-z0-9._-]+:[0-9]+$ ]] || die "PROMETHEUS_ALERTMANAGER=$alertmanager: use host:port, such as alertmanager:9093"

mkdir -p "$dir" || die "cannot create $dir (mount a tmpfs there)"
umask 077
token_file="${PROMETHEUS_SIDECAR_TOKEN_FILE:-}"
if [ -z "$token_file" ] && [ -n "${PROMETHEUS_SIDECAR_TOKEN:-}" ]; then
  token_file="$dir/sidecar-token"
  printf '%s' "$PROMETHEUS_SIDECAR_TOKEN" > "$token_file"
fi
unset PROMETHEUS_SIDECAR_TOKEN
if [ -n "$token_file" ]; then
  [ -r "$token_file" ] || die "PROMETHEUS_SIDECAR_TOKEN_FILE=$token_file is not readable"
  auth="    authorization: { type: Bearer, credentials_file: $token_file }"
else
  auth=""
fi

{
  printf 'global:\n  scrape_interval: %s\n  evaluation_interval: %s\n' "$interval" "$interval"
  if [ "$rules" = on ]; then
    printf 'rule_files: [/etc/poolguard/alerts.yml]\n'
    printf 'alerting:\n  alertmanagers:\n    - static_configs: [{ targets: ["%s"] }]\n' "$alertmanager"
  fi
  printf 'scrape_configs:\n'
  printf '  - job_name: poolguard-sidecar\n    metrics_path: /metrics\n'
  if [ -n "$auth" ]; then printf '%s\n' "$auth"; fi
  printf '    static_configs: [{ targets: ["%s"] }]\n' "$target"
  printf '  - job_name: prometheus\n    static_configs: [{ targets: ["localhost:9090"] }]\n'
  printf '  - job_name: alertmanager\n    static_configs: [{ targets: ["%s"] }]\n' "$alertmanager"
} > "$dir/prometheus.yml"

promtool check config "$dir/prometheus.yml" >&2 || die "the rendered configuration $dir/prometheus.yml does not check (see above)"
printf '%s: scraping %s every %s (token: %s), rules %s, retention %s\n' "$me" "$target" "$interval" "$([ -n "$auth" ] && echo yes || echo no)" "$rules" "$retention" >&2
exec prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path=/prometheus --storage.tsdb.retention.time="$retention" --web.listen-address=:9090 "$@"
