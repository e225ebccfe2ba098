#!/usr/bin/env bash
# Usage: poolguard-alertmanager [more alertmanager flags]
#
# The monitoring profile's Alertmanager: writes its configuration from the environment into
# ALERTMANAGER_CONFIG_DIR (a tmpfs), checks it with amtool, then execs Alertmanager with its
# state (silences, notification log) in /alertmanager (a volume). One receiver, "default":
#   ALERTMANAGER_WEBHOOK_URL       where notifications go (a webhook receiver); empty: nowhere
#                                  (alerts are still listed in its API and UI)
#   ALERTMANAGER_RESOLVE_TIMEOUT   an alert not sent again within it is resolved (5m)
#   ALERTMANAGER_REPEAT_INTERVAL   a firing alert is notified again after (4h)
set -euo pipefail
me=poolguard-alertmanager
die() { printf '%s: ERROR: %s\n' "$me" "$*" >&2; exit 1; }
for c in prometheus-alertmanager amtool; do command -v "$c" >/dev/null || die "$c is not installed"; done

dir="${ALERTMANAGER_CONFIG_DIR:-/run/poolguard-alertmanager}"
webhook="${ALERTMANAGER_WEBHOOK_URL:-}"
resolve="${ALERTMANAGER_RESOLVE_TIMEOUT:-5m}"
repeat="${ALERTMANAGER_REPEAT_INTERVAL:-4h}"
[[ "$resolve" =~ ^[1-9][0-9]*(s|m|h)$ ]] || die "ALERTMANAGER_RESOLVE_TIMEOUT=$resolve: use a duration such as 5m"
[[ "$repeat" =~ ^[1-9][0-9]*(m|h)$ ]] || die "ALERTMANAGER_REPEAT_INTERVAL=$repeat: use a duration such as 4h"
[ -z "$webhook" ] || [[ "$webhook" =~ ^https?://[^[:space:]\"]+$ ]] || die "ALERTMANAGER_WEBHOOK_URL: must be an http:// or https:// URL"

mkdir -p "$dir" || die "cannot create $dir (mount a tmpfs there)"
umask 077
{
  printf 'global:\n  resolve_timeout: %s\n' "$resolve"
  printf 'route:\n  receiver: default\n  group_by: [alertname, severity]\n  group_wait: 10s\n  group_interval: 1m\n  repeat_interval: %s\n' "$repeat"
  printf 'receivers:\n  - name: default\n'
  if [ -n "$webhook" ]; then printf '    webhook_configs: [{ url: "%s", send_resolved: true }]\n' "$webhook"; fi
} > "$dir/alertmanager.yml"
amtool check-config "$dir/alertmanager.yml" >&2 || die "the rendered configuration $dir/alertmanager.yml does not check (see above)"
printf '%s: receiver default -> %s, resolve_timeout %s\n' "$me" "$([ -n "$webhook" ] && echo 'a webhook' || echo 'nowhere (set ALERTMANAGER_WEBHOOK_URL)')" "$resolve" >&2
# --cluster.listen-address= : one Alertmanager, no gossip peers.
exec prometheus-alertmanager --config.file="$dir/alertmanager.yml" --storage.path=/alertmanager --web.listen-address=:9093 --cluster.listen-address= "$@"
