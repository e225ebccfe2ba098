#!/usr/bin/env bash
# Usage: scripts/bench.sh            (make bench)
#   BENCH_SECONDS=20   seconds per pgbench run (the issue's figure; 5 for a quick look)
#   BENCH_SCALE=100    pgbench scale factor. pgbench's docs: for the TPC-B-like test the scale
#                      should be at least the largest client count (90 here), "else you'll
#                      mostly be measuring update contention" (10 branches, 90 clients).
#   BENCH_COLD=1       7. also time a cold `make up`: REMOVES the dev stack's images and the
#                      engine's build cache first (about 1-2 min to rebuild). 0 skips it.
#
# Benchmarks the running dev stack (brings it up when needed) with pgbench in a container on
# the compose network (the postgres image ships pgbench) and writes docs/benchmarks.md plus the
# raw pgbench outputs in docs/bench-raw/. Loopback and the compose network only; every run is
# bounded by BENCH_SECONDS. Targets are printed PASS/MISS; the command does not fail on a MISS.
# Parts: 1. pooling overhead (select-only and TPC-B-like, 10/25/50/90 clients, direct vs
# pooled), 2. connection churn (-C, 50 clients: TPS and Postgres/PgBouncer CPU per new
# connection from cgroup accounting), 3. over-subscription, 4. server connections used during
# pooled runs (from the sidecar's /metrics), 6. detection latency (default and 1 s poll),
# 7. `make up` warm and cold; 5. the sidecar against Debian's exporters (bench-only image).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
for tool in docker curl awk; do command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }; done
docker info >/dev/null 2>&1 || { echo "bench: no Docker engine answers; run 'make setup' (scripts/ensure-docker.sh)" >&2; exit 1; }

SECS="${BENCH_SECONDS:-20}"
SCALE="${BENCH_SCALE:-100}"
COLD="${BENCH_COLD:-1}"
[[ "$COLD" =~ ^[01]$ ]] || { echo "bench: BENCH_COLD must be 0 or 1" >&2; exit 1; }
[[ "$SECS" =~ ^[0-9]+$ ]] && [ "$SECS" -ge 1 ] && [ "$SECS" -le 300 ] || { echo "bench: BENCH_SECONDS must be 1-300" >&2; exit 1; }
[[ "$SCALE" =~ ^[0-9]+$ ]] && [ "$SCALE" -ge 1 ] && [ "$SCALE" -le 300 ] || { echo "bench: BENCH_SCALE must be 1-300" >&2; exit 1; }

scripts/ensure-env.sh
envval() { grep -E "^$1=" .env | tail -n1 | cut -d= -f2-; }
APP_USER="$(envval APP_USER)"; APP_DB="$(envval APP_DB)"; APP_PASSWORD="$(envval APP_PASSWORD)"
SIDECAR_PORT="$(envval PUBLISH_SIDECAR_PORT)"; SIDECAR_PORT="${SIDECAR_PORT:-8787}"
SIDECAR_POLL_MS="$(envval SIDECAR_POLL_INTERVAL_MS)"; SIDECAR_POLL_MS="${SIDECAR_POLL_MS:-5000}"
TAG="$(envval POOLGUARD_IMAGE_TAG)"; TAG="${TAG:-0.1.0-dev}" # the dev stack's images (prod's are never touched)
COMPOSE=(scripts/compose.sh -f docker-compose.dev.yml --env-file .env)
RAW=docs/bench-raw
mkdir -p "$RAW"
rm -f "$RAW"/*.txt
RESULTS="$(mktemp)"
log() { printf '[bench] %s\n' "$*" >&2; }
wait_for() { # DEADLINE_S CMD...: polls every 50 ms; returns 1 on timeout
  local end=$(( $(date +%s) + $1 )); shift
  until "$@"; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 0.05; done
}

# 7. make up, warm (images built): from a stopped stack to healthy.
log "make up (warm): down, then up --wait"
"${COMPOSE[@]}" down >/dev/null 2>&1 || true
t0=$(date +%s.%N)
scripts/up.sh dev --env-file .env >"$RAW/make-up-warm.txt" 2>&1
UP_WARM=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
log "make up warm: ${UP_WARM} s"
NET="$("${COMPOSE[@]}" ps -q postgres | xargs docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}')"
cid() { "${COMPOSE[@]}" ps -q "$1"; }
container_cpu_ns() { # CONTAINER: CPU nanoseconds so far, from its cgroup (cpuacct); 0 when unreadable
  cat "/sys/fs/cgroup/cpuacct/docker/$(docker inspect -f '{{.Id}}' "$1")/cpuacct.usage" 2>/dev/null || echo 0
}
cpu_ns() { container_cpu_ns "$(cid "$1")"; }

pgbench() { # pgbench HOST PORT ARGS...: the last output line is "client-cpu-ms N" (pgbench's own
  # user + system CPU, from bash's `times`), so the client's share of a run can be reported.
  local host="$1" port="$2"; shift 2
  docker run --rm --network "$NET" -e PGPASSWORD="$APP_PASSWORD" --entrypoint bash poolguard/postgres:"$TAG" -c '
    pgbench "$@"; rc=$?
    times >/tmp/times; awk '"'"'NR==2 { for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); ms += (t[1] * 60 + t[2]) * 1000 } printf "client-cpu-ms %.0f\n", ms }'"'"' /tmp/times
    exit $rc' pgbench -h "$host" -p "$port" -U "$APP_USER" "$@" "$APP_DB"
}

# The settings every figure below was taken with, read from the running services.
PGB_INI="$(docker exec "$(cid pgbouncer)" cat /var/run/pgbouncer/pgbouncer.ini)"
PGB_SETTINGS="$(printf '%s\n' "$PGB_INI" \
  | awk '$2 == "=" && $1 ~ /^(pool_mode|default_pool_size|min_pool_size|reserve_pool_size|max_client_conn|max_db_connections|max_prepared_statements|pkt_buf|so_reuseport|log_connections|log_disconnections|server_reset_query)$/ {k = $1; sub(/^[^=]*= /, ""); printf "%s%s=%s", (n++ ? ", " : ""), k, $0}')"
PGB_TARGET="$(printf '%s\n' "$PGB_INI" | awk -v db="$APP_DB" '$1 == db && $2 == "=" {for (i = 3; i <= NF; i++) if ($i ~ /^host=/) {sub(/^host=/, "", $i); print $i}}')"
PG_SETTINGS="$(docker exec -i "$(cid postgres)" sh -c 'psql -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres -At' 2>/dev/null <<'SQL' || echo '?'
SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings
 WHERE name IN ('max_connections', 'shared_buffers', 'superuser_reserved_connections', 'password_encryption', 'synchronous_commit', 'log_connections');
SQL
)"
SIDECAR_CMD="$(docker exec "$(cid sidecar)" sh -c 'tr "\0" " " </proc/1/cmdline')"
log "settings: PgBouncer $PGB_SETTINGS; server connections via $PGB_TARGET; Postgres $PG_SETTINGS; sidecar: $SIDECAR_CMD"

log "pgbench -i -s $SCALE (direct)"
pgbench postgres 5432 -i -s "$SCALE" -q >"$RAW/init.txt" 2>&1

# Samples the sidecar's metrics every second while a pooled run goes on: the app pool's server
# connections and Postgres backends of the app database (max of each).
sample_servers() { # OUTFILE: runs until killed. The first poll interval + 1 s is skipped: until
  # the sidecar polls again its snapshot may still describe the previous (direct) run.
  local out="$1" maxpool=0 maxback=0 m p b skip_until
  skip_until=$(( $(date +%s) + (${SIDECAR_POLL_MS:-5000} + 1999) / 1000 ))
  while :; do
    if [ "$(date +%s)" -lt "$skip_until" ]; then sleep 1; continue; fi
    m="$(curl -s --max-time 1 "http://127.0.0.1:$SIDECAR_PORT/metrics" || true)"
    p="$(awk -v db="$APP_DB" -v u="$APP_USER" '$1 ~ "^pgbouncer_pools_server_(active|idle|used|testing|login)_connections\\{database=\""db"\",user=\""u"\"\\}" {s+=$2} END{print s+0}' <<<"$m")"
    b="$(awk -v db="$APP_DB" '$1 ~ "^pg_stat_database_numbackends\\{.*datname=\""db"\"" {print $2+0}' <<<"$m" | head -n1)"
    [ "${p:-0}" -gt "$maxpool" ] && maxpool="$p"
    [ "${b:-0}" -gt "$maxback" ] && maxback="$b"
    echo "$maxpool $maxback" >"$out"
    sleep 1
  done
}

run_one() { # NAME HOST PORT CLIENTS ARGS... -> appends "name tps latency failed error" to RESULTS
  local name="$1" host="$2" port="$3" clients="$4"; shift 4
  local out="$RAW/$name.txt" jobs=2 sampler="" sfile
  [ "$clients" -lt 2 ] && jobs=1
  sfile="$(mktemp)"; echo "0 0" >"$sfile"
  if [ "$host" = pgbouncer ]; then sample_servers "$sfile" & sampler=$!; fi
  local pg0 pb0 pg1 pb1
  pg0=$(cpu_ns postgres); pb0=$(cpu_ns pgbouncer)
  set +e
  pgbench "$host" "$port" -n -c "$clients" -j "$jobs" -T "$SECS" "$@" >"$out" 2>&1
  local rc=$?
  set -e
  pg1=$(cpu_ns postgres); pb1=$(cpu_ns pgbouncer)
  [ -z "$sampler" ] || { kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true; }
  local tps lat failed txs err servers
  tps=$(awk '/^tps = / {printf "%.0f", $3; exit}' "$out"); lat=$(awk '/^latency average = / {print $4; exit}' "$out")
  failed=$(awk '/^number of failed transactions:/ {print $5; exit}' "$out")
  txs=$(awk '/^number of transactions actually processed:/ {split($6,a,"/"); print a[1]; exit}' "$out")
  err=$(grep -m1 -oE '(FATAL|ERROR|error):.*' "$out" | tr '|' '/' | cut -c1-140 || true)
  servers=$(cat "$sfile"); rm -f "$sfile"
  local client; client=$(awk '/^client-cpu-ms / {print $2}' "$out")
  echo "$name|${tps:-}|${lat:-}|${failed:-}|${txs:-0}|$rc|$((pg1 - pg0))|$((pb1 - pb0))|$servers|${err:-}|${client:-}" >>"$RESULTS"
  log "$name: tps=${tps:-n/a} lat=${lat:-n/a} ms failed=${failed:-n/a} rc=$rc servers(max pool/backends)=$servers ${err:+error: $err}"
}

# Direct and pooled runs of the same mode and client count go back to back, so that both meet
# the same moments of a shared machine. Before a direct run PgBouncer lets go of its idle server
# connections (min_pool_size 0 for the run, then RECONNECT): they would take Postgres slots the
# 90 direct clients need. The pooled runs use the shipped value again.
PGB_MIN_POOL="$(printf '%s\n' "$PGB_INI" | awk '$1 == "min_pool_size" && $2 == "=" {print $3}')"
pgb_admin() { docker exec "$(cid pgbouncer)" pgbouncer-admin -c "$1" >/dev/null 2>&1 || log "PgBouncer admin command failed: $1"; }
run_pair() { # NAME CLIENTS ARGS...: NAME-direct-cN then NAME-pooled-cN
  local name="$1" c="$2"; shift 2
  pgb_admin "SET min_pool_size = 0"; pgb_admin "RECONNECT"; sleep 2
  run_one "$name-direct-c$c" postgres 5432 "$c" "$@"
  pgb_admin "SET min_pool_size = ${PGB_MIN_POOL:-5}"
  run_one "$name-pooled-c$c" pgbouncer 6432 "$c" "$@"
}
log "CHECKPOINT after the load, then a 10 s warm-up run (not reported)"
docker exec "$(cid postgres)" sh -c 'psql -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres -qc CHECKPOINT' >/dev/null 2>&1 || log "CHECKPOINT failed"
pgbench postgres 5432 -n -S -c 10 -j 2 -T 10 >/dev/null 2>&1 || true
# 1. Pooling overhead.
for mode in select tpcb; do
  flag=(); [ "$mode" = select ] && flag=(-S)
  for c in 10 25 50 90; do run_pair "$mode" "$c" "${flag[@]}"; done
done
# 2. Connection churn: a new connection per transaction.
for mode in select tpcb; do
  flag=(); [ "$mode" = select ] && flag=(-S)
  run_pair "churn-$mode" 50 -C "${flag[@]}"
done
# 3. Over-subscription. The sidecar holds 2 of PgBouncer's 100 client slots: 98 is the limit.
run_one "over-pooled-c98" pgbouncer 6432 98 -S
run_one "over-pooled-c150" pgbouncer 6432 150 -S
log "closing PgBouncer's idle server connections (RECONNECT) before the direct 150-client run"
pgb_admin "RECONNECT"
sleep 2
run_one "over-direct-c150" postgres 5432 150 -S

# 5. The sidecar against the exporters it replaces (Debian's packages, bench-only image), all
# pointed at the same stack: while a 50-client pooled pgbench runs, 1,000 sequential scrapes of
# each /metrics; then series count, RSS, CPU per scrape (cgroup), connections held to the
# backends; and the sidecar's /health under concurrent HTTP load (autocannon).
EXP_IMAGE=poolguard/bench-exporters:0.1.0
log "building the bench-only exporters image"
docker build -q -t "$EXP_IMAGE" scripts/bench-exporters >/dev/null
exporters=(pgbouncer:9127:19127 postgres:9187:19187 redis:9121:19121)
for e in "${exporters[@]}"; do
  IFS=: read -r name port hostport <<<"$e"
  docker rm -f "poolguard-bench-exp-$name" >/dev/null 2>&1 || true
  docker run -d --name "poolguard-bench-exp-$name" --network "$NET" -p "127.0.0.1:$hostport:$port" \
    -e STATS_PASSWORD="$(envval PGBOUNCER_STATS_PASSWORD)" -e MONITOR_PASSWORD="$(envval MONITOR_PASSWORD)" \
    -e REDIS_PASSWORD="$(envval REDIS_PASSWORD)" -e APP_DB="$APP_DB" "$EXP_IMAGE" "$name" >/dev/null
done
# The floor: a static Node HTTP server (node:http, no framework) answering every request with a
# body the size of the sidecar's /metrics, scraped the same way. Whatever it shows is the
# machine's and the scraping client's share of a latency figure, not the sidecar's.
BODY_BYTES=$(curl -s "http://127.0.0.1:$SIDECAR_PORT/metrics" | wc -c)
docker rm -f poolguard-bench-static >/dev/null 2>&1 || true
docker run -d --name poolguard-bench-static --network "$NET" -p 127.0.0.1:19100:8080 --entrypoint node poolguard/migrate:"$TAG" \
  -e "const b = Buffer.alloc(Number(process.argv[1]), 'x\n'); require('node:http').createServer((q, r) => { r.setHeader('content-type', 'text/plain'); r.end(b); }).listen(8080)" \
  "$BODY_BYTES" >/dev/null
SIDECAR_ID="$(cid sidecar)"
wait_for 30 curl -sf -o /dev/null "http://127.0.0.1:19187/metrics" || true
wait_for 30 curl -sf -o /dev/null "http://127.0.0.1:19127/metrics" || true
wait_for 30 curl -sf -o /dev/null "http://127.0.0.1:19121/metrics" || true
wait_for 30 curl -sf -o /dev/null "http://127.0.0.1:19100/metrics" || true

container_of() { case "$1" in sidecar) echo "$SIDECAR_ID" ;; static) echo poolguard-bench-static ;; *) echo "poolguard-bench-exp-$1" ;; esac; }
net_url_of() { case "$1" in sidecar) echo "http://sidecar:8787" ;; static) echo http://poolguard-bench-static:8080 ;; pgbouncer) echo http://poolguard-bench-exp-pgbouncer:9127 ;; postgres) echo http://poolguard-bench-exp-postgres:9187 ;; redis) echo http://poolguard-bench-exp-redis:9121 ;; esac; }
url_of() { case "$1" in sidecar) echo "http://127.0.0.1:$SIDECAR_PORT/metrics" ;; static) echo http://127.0.0.1:19100/metrics ;; pgbouncer) echo http://127.0.0.1:19127/metrics ;; postgres) echo http://127.0.0.1:19187/metrics ;; redis) echo http://127.0.0.1:19121/metrics ;; esac; }
# Peak RSS (VmHWM) and the current RSS split into anonymous memory (the process's own heap) and
# file-backed pages (mapped binaries and libraries, shared with every process that maps them).
rss_mb() { docker exec "$(container_of "$1")" sh -c 'cat /proc/1/status' 2>/dev/null \
  | awk '$1 ~ /^(VmHWM|RssAnon|RssFile):$/ {v[$1] = $2 / 1024} END {printf "%.1f|%.1f|%.1f", v["VmHWM:"], v["RssAnon:"], v["RssFile:"]}'; }
conns() { # established TCP connections from the process to 5432/6432/6379
  docker exec "$(container_of "$1")" sh -c 'cat /proc/net/tcp /proc/net/tcp6 2>/dev/null' | awk 'NR>0 && $4=="01" {split($3,a,":"); p=a[2]; if (p=="1538"||p=="1920"||p=="18EB") n[p]++} END{printf "pg %d, pgbouncer %d, redis %d", n["1538"]+0, n["1920"]+0, n["18EB"]+0}'
}
TARGETS=(sidecar pgbouncer postgres redis static)
cpu_of() { container_cpu_ns "$(container_of "$1")"; }
latency() { # URL[,URL...]: 1,000 scrapes of each, from a container on the compose network like
  # Prometheus would scrape (no docker-proxy, the published ports' userland proxy, in the path)
  docker run --rm --network "$NET" -v "$root/scripts/sidecar-latency.mjs:/app/latency.mjs:ro" --entrypoint node \
    poolguard/migrate:"$TAG" /app/latency.mjs "$1" 1000 /metrics 2>/dev/null || true
}
scrape_all() { # LABEL -> "scrape|TARGET|LABEL|p50|p99|series|cpu_ms|peak|anon|file|conns" per target.
  # idle: each target alone (another target's scrape, e.g. postgres_exporter's queries, would
  # load the machine); load: 1,000 rounds scraping every target once, so that all of them meet
  # the same moments of the pgbench load.
  local label="$1" t urls="" out="" lat series
  declare -A c0 c1
  for t in "${TARGETS[@]}"; do urls="$urls${urls:+,}$(net_url_of "$t")"; done
  if [ "$label" = idle ]; then
    for t in "${TARGETS[@]}"; do
      c0[$t]=$(cpu_of "$t")
      out="$out$(latency "$(net_url_of "$t")")"$'\n'
      c1[$t]=$(cpu_of "$t")
    done
  else
    for t in "${TARGETS[@]}"; do c0[$t]=$(cpu_of "$t"); done
    out=$(latency "$urls")
    for t in "${TARGETS[@]}"; do c1[$t]=$(cpu_of "$t"); done
    # The round-robin takes minutes; the exporters do nothing between scrapes, but the sidecar
    # polls every few seconds, and that CPU is not a scrape's. Its CPU per scrape under load comes
    # from a burst of its own 1,000 scrapes (a couple of seconds), as in the idle phase.
    c0[sidecar]=$(cpu_of sidecar); latency "$(net_url_of sidecar)" >/dev/null; c1[sidecar]=$(cpu_of sidecar)
  fi
  echo "$label: $out" >>"$RAW/scrape-latency.txt"
  for t in "${TARGETS[@]}"; do
    lat=$(awk -v u="$(net_url_of "$t")/metrics:" '$1 == u {for (i = 2; i <= NF; i++) {split($i, a, "="); if (a[1] == "p50") p50 = a[2]; if (a[1] == "p99") p99 = a[2]}} END {print p50 " " p99}' <<<"$out")
    if [ "$t" = static ]; then series="—"; else series=$(curl -s "$(url_of "$t")" | grep -vc '^#'); fi
    echo "scrape|$t|$label|${lat% *}|${lat#* }|$series|$(awk -v a="${c0[$t]}" -v b="${c1[$t]}" 'BEGIN{printf "%.2f", (b-a)/1000/1e6}')|$(rss_mb "$t")|$(conns "$t")" >>"$RESULTS"
    log "scrape $t ($label): p50/p99 ${lat} ms, $series series"
  done
}
rm -f "$RAW/scrape-latency.txt"
scrape_all idle
log "50-client pooled pgbench in the background while scraping"
docker rm -f poolguard-bench-load >/dev/null 2>&1 || true
docker run -d --name poolguard-bench-load --network "$NET" -e PGPASSWORD="$APP_PASSWORD" --entrypoint pgbench poolguard/postgres:"$TAG" \
  -h pgbouncer -p 6432 -U "$APP_USER" -n -S -c 50 -j 2 -T 300 "$APP_DB" >/dev/null
sleep 2
scrape_all load
docker logs poolguard-bench-load >"$RAW/scrape-load.txt" 2>&1 || true
docker rm -f poolguard-bench-load >/dev/null 2>&1 || true
log "/health under concurrent HTTP load (autocannon, 20 connections, 10 s)"
AC="$(cd sidecar && npx --no-install autocannon --json -c 20 -d 10 "http://127.0.0.1:$SIDECAR_PORT/health" 2>/dev/null || true)"
echo "$AC" >"$RAW/health-autocannon.json"
for e in "${exporters[@]}"; do docker rm -f "poolguard-bench-exp-${e%%:*}" >/dev/null 2>&1 || true; done
docker rm -f poolguard-bench-static >/dev/null 2>&1 || true

# 6. Detection latency: stop each backend, time until /health says so; start it, time from the
# backend accepting connections until /health is 200 again. At the default poll and at 1 s.
now_ms() { date +%s%3N; }
health_has() { curl -s --max-time 1 "http://127.0.0.1:$SIDECAR_PORT/health" | grep -q "$1"; }
health_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$SIDECAR_PORT/health")" = 200 ]; }
backend_up() { # SERVICE: the backend itself answers (not the sidecar's view)
  case "$1" in
    postgres) docker exec "$(cid postgres)" pg_isready -q -h 127.0.0.1 -p 5432 ;;
    pgbouncer) docker exec "$(cid pgbouncer)" pg_isready -q -h 127.0.0.1 -p 6432 -d pgbouncer -U pgbouncer_stats ;;
    redis) docker exec "$(cid redis)" redis-health >/dev/null 2>&1 ;;
  esac
}
detect() { # LABEL: appends "detect-LABEL-SERVICE|down_ms|recover_ms" to RESULTS for each backend
  local svc marker t0 t1 down rec
  for svc in postgres pgbouncer redis; do
    case "$svc" in
      postgres) marker='"postgres":{"healthy":false' ;;
      pgbouncer) marker='"pgbouncer":{"healthy":false' ;;
      redis) marker='"redis":{"available":false' ;;
    esac
    wait_for 60 health_ok || true
    t0=$(now_ms); "${COMPOSE[@]}" stop -t 30 "$svc" >/dev/null 2>&1
    if wait_for 60 health_has "$marker"; then down=$(( $(now_ms) - t0 )); else down=""; fi
    "${COMPOSE[@]}" start "$svc" >/dev/null 2>&1
    wait_for 60 backend_up "$svc" || true
    t1=$(now_ms)
    if wait_for 60 health_ok; then rec=$(( $(now_ms) - t1 )); else rec=""; fi
    echo "detect-$1-$svc|$down|$rec" >>"$RESULTS"
    log "detection ($1 poll) $svc: down seen after ${down:-?} ms (stop included), healthy ${rec:-?} ms after it answered"
  done
}
detect default
log "sidecar with a 1 s poll"
SIDECAR_POLL_INTERVAL_MS=1000 SIDECAR_SOURCE_TIMEOUT_MS=800 "${COMPOSE[@]}" up -d --wait sidecar >/dev/null 2>&1
detect 1s
"${COMPOSE[@]}" up -d --wait sidecar >/dev/null 2>&1 # back to the .env settings

# 7. make up, cold: no poolguard image and no build cache (the Debian base image stays: it is
# built once by scripts/ensure-docker.sh). Every image is rebuilt from its Dockerfile.
UP_COLD=""
if [ "$COLD" = 1 ]; then
  log "make up (cold): down, remove the poolguard images and the build cache, up --build --wait"
  "${COMPOSE[@]}" down >/dev/null 2>&1 || true
  docker images --format '{{.Repository}}:{{.Tag}}' | grep '^poolguard/' | grep -v '^poolguard/bench-' | grep -F ":$TAG" | xargs -r docker rmi -f >/dev/null 2>&1 || true
  docker builder prune -af >/dev/null 2>&1 || true
  t0=$(date +%s.%N)
  if scripts/up.sh dev --env-file .env >"$RAW/make-up-cold.txt" 2>&1; then
    UP_COLD=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  fi
  log "make up cold: ${UP_COLD:-failed, see $RAW/make-up-cold.txt} s"
fi

# ---- report ------------------------------------------------------------------------------
field() { awk -F'|' -v n="$1" -v k="$2" '$1==n {print $k}' "$RESULTS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="" || b=="" || b==0) print ""; else printf "%.2f", a/b }'; }
pf() { awk -v v="$1" -v t="$2" -v d="$3" 'BEGIN{ if (v=="") print "MISS (no figure)"; else if ((d==">=" && v+0>=t+0) || (d=="<=" && v+0<=t+0)) print "PASS"; else print "MISS" }'; }

{
  echo "# poolguard benchmarks"
  echo
  echo "<!-- Generated by scripts/bench.sh (make bench); do not edit by hand. Raw pgbench outputs: docs/bench-raw/. -->"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) shared cores (pgbench, PgBouncer, Postgres, Redis and the sidecar all share them), dev stack as shipped: PgBouncer $(docker exec "$(cid pgbouncer)" pgbouncer --version 2>/dev/null | head -n1 | awk '{print $2}'), Postgres $(docker exec "$(cid postgres)" postgres --version | awk '{print $3}'). Absolute figures drift on shared cores; the ratios are taken in the same run."
  echo
  echo "## Settings of this run"
  echo
  echo "Read from the running services at the start of the run; every figure below was taken with them unless its section says otherwise."
  echo
  echo "- PgBouncer: $PGB_SETTINGS; server connections to Postgres over \`$PGB_TARGET\` (the Unix socket shared through the pgsocket volume)"
  echo "- Postgres: $PG_SETTINGS"
  echo "- sidecar: \`$SIDECAR_CMD\`, poll interval $(envval SIDECAR_POLL_INTERVAL_MS || true) ms (empty: the default, 5000)"
  echo "- pgbench: scale $SCALE (pgbench's docs ask for a scale of at least the client count for TPC-B), ${SECS} s per run, 2 threads (\`-j 2\`), simple query protocol; in a container on the compose network"
  echo "- Tuning experiments behind these defaults (what was tried and what it bought): docs/tuning.md"
  echo
  echo "## 1. Pooling overhead"
  echo
  echo "| mode | clients | direct TPS | pooled TPS | pooled/direct | direct latency ms | pooled latency ms | max server conns (pool / app backends) | target |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for mode in select tpcb; do
    for c in 10 25 50 90; do
      d=$(field "$mode-direct-c$c" 2); p=$(field "$mode-pooled-c$c" 2); r=$(ratio "$p" "$d")
      tgt="—"
      if [ "$c" -ge 25 ]; then
        if [ "$mode" = tpcb ]; then tgt="≥ 0.90: $(pf "$r" 0.90 '>=')"; else tgt="≥ 0.80: $(pf "$r" 0.80 '>=')"; fi
      fi
      echo "| $([ "$mode" = select ] && echo select-only || echo TPC-B-like) | $c | $d | $p | $r | $(field "$mode-direct-c$c" 3) | $(field "$mode-pooled-c$c" 3) | $(field "$mode-pooled-c$c" 9 | tr ' ' '/') | $tgt |"
    done
  done
  echo
  echo "## 2. Connection churn (\`-C\`, 50 clients)"
  echo
  echo "Server CPU (Postgres, plus PgBouncer when pooled; cgroup accounting) per transaction with \`-C\`, and per new connection: that minus the same transaction's CPU without \`-C\` at 50 clients (section 1's runs)."
  echo
  echo "| mode | direct TPS | pooled TPS | pooled/direct | server CPU per transaction, direct / pooled | server CPU per new connection, direct / pooled | CPU ratio | pgbench's own CPU per new connection, direct / pooled | target |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for mode in select tpcb; do
    d=$(field "churn-$mode-direct-c50" 2); p=$(field "churn-$mode-pooled-c50" 2); r=$(ratio "$p" "$d")
    dtx=$(field "churn-$mode-direct-c50" 5); ptx=$(field "churn-$mode-pooled-c50" 5)
    dcpu=$(awk -v ns="$(field "churn-$mode-direct-c50" 7)" -v n="$dtx" 'BEGIN{ if (n>0) printf "%.3f", ns/n/1e6 }')
    pcpu=$(awk -v a="$(field "churn-$mode-pooled-c50" 7)" -v b="$(field "churn-$mode-pooled-c50" 8)" -v n="$ptx" 'BEGIN{ if (n>0) printf "%.3f", (a+b)/n/1e6 }')
    dss=$(awk -v ns="$(field "$mode-direct-c50" 7)" -v n="$(field "$mode-direct-c50" 5)" 'BEGIN{ if (n>0) printf "%.3f", ns/n/1e6 }')
    pss=$(awk -v a="$(field "$mode-pooled-c50" 7)" -v b="$(field "$mode-pooled-c50" 8)" -v n="$(field "$mode-pooled-c50" 5)" 'BEGIN{ if (n>0) printf "%.3f", (a+b)/n/1e6 }')
    dconn=$(awk -v a="$dcpu" -v b="$dss" 'BEGIN{ if (a!="" && b!="") printf "%.2f", a-b }')
    pconn=$(awk -v a="$pcpu" -v b="$pss" 'BEGIN{ if (a!="" && b!="") printf "%.2f", a-b }')
    cr=$(ratio "$pconn" "$dconn")
    dcl=$(awk -v ms="$(field "churn-$mode-direct-c50" 11)" -v n="$dtx" 'BEGIN{ if (n>0 && ms!="") printf "%.2f", ms/n }')
    pcl=$(awk -v ms="$(field "churn-$mode-pooled-c50" 11)" -v n="$ptx" 'BEGIN{ if (n>0 && ms!="") printf "%.2f", ms/n }')
    tgt="CPU ≤ 0.10×: $(pf "$cr" 0.10 '<=')"
    [ "$mode" = select ] && tgt="$tgt; TPS ≥ 2.5×: $(pf "$r" 2.5 '>=')"
    echo "| $([ "$mode" = select ] && echo select-only || echo TPC-B-like) | $d | $p | $r | ${dcpu} / ${pcpu} ms | ${dconn} / ${pconn} ms | $cr | ${dcl:-?} / ${pcl:-?} ms | $tgt |"
  done
  echo
  sb=$(awk -F'|' -v d="$(field churn-select-direct-c50 5)" -v p="$(field churn-select-pooled-c50 5)" '
    $1=="churn-select-direct-c50" {dc = ($7 + $11 * 1e6) / d} $1=="churn-select-pooled-c50" {pc = ($7 + $8 + $11 * 1e6) / p}
    END { if (d > 0 && p > 0 && pc > 0) printf "%.2f", dc / pc }' "$RESULTS")
  echo "Every new connection costs the client its SCRAM exchange (PBKDF2, 4096 iterations) on both paths; pooling removes only the server's share. Counting the client's CPU too, select-only CPU per connection direct / pooled is ${sb:-?}: the most a CPU-bound pooled/direct TPS ratio can reach on these shared cores."
  echo
  echo "## 3. Over-subscription"
  echo
  echo "| run | TPS | exit | failures / error |"
  echo "|---|---|---|---|"
  for n in over-direct-c150 over-pooled-c98 over-pooled-c150; do
    echo "| $n | $(field "$n" 2) | $(field "$n" 6) | $(field "$n" 4) failed transactions; $(field "$n" 10) |"
  done
  p98rc=$(field over-pooled-c98 6); p98f=$(field over-pooled-c98 4)
  echo
  echo "0 failures up to max_client_conn minus the sidecar's 2 slots (98 clients): $([ "$p98rc" = 0 ] && [ "${p98f:-1}" = 0 ] && echo PASS || echo MISS)."
  echo
  echo "## 4. Server connections used"
  echo
  maxpool=$(awk -F'|' '$1 ~ /pooled/ {split($9,a," "); if (a[1]>m) m=a[1]} END{print m+0}' "$RESULTS")
  echo "Largest app-pool server-connection count the sidecar reported during the pooled runs: $maxpool (pool + reserve = 30): $(pf "$maxpool" 30 '<='). Sampled from /metrics every second; the sidecar refreshes every poll interval (5 s), so short peaks can be missed."
  echo
  echo "## 5. The sidecar against the exporters it replaces"
  echo
  echo "Debian's prometheus-pgbouncer-exporter, prometheus-postgres-exporter and prometheus-redis-exporter (bench-only image, scripts/bench-exporters) and the sidecar, all on the same stack. 1,000 sequential scrapes of each /metrics from a container on the compose network (as Prometheus would; no docker-proxy in the path): idle, each target alone; during a 50-client pooled select-only pgbench, in 1,000 rounds that scrape every target once, so all of them meet the same moments of the load. CPU per scrape from the container's cgroup (cpuacct) over those 1,000 scrapes (under load, the sidecar's from a burst of 1,000 scrapes of its own, so that its poll loop's CPU between scrapes is not counted); RSS: the process's peak (VmHWM), and its current RSS split into anonymous and file-backed pages; connections are established TCP connections to Postgres/PgBouncer/Redis."
  echo
  echo "| process | load | p50 ms | p99 ms | series | CPU ms / scrape | peak RSS MB | RSS now: anonymous / file-backed MB | connections held |"
  echo "|---|---|---|---|---|---|---|---|---|"
  awk -F'|' '$1=="scrape" {n = $2; if (n == "static") n = "floor: static node:http server, same body size"; else if (n != "sidecar") n = n " exporter"; printf "| %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |\n", n, $3, $4, $5, $6, $7, $8, $9, $10, (n ~ /^floor/ ? "—" : $11)}' "$RESULTS"
  sp99i=$(awk -F'|' '$1=="scrape" && $2=="sidecar" && $3=="idle" {print $5}' "$RESULTS")
  sp99l=$(awk -F'|' '$1=="scrape" && $2=="sidecar" && $3=="load" {print $5}' "$RESULTS")
  best=$(awk -F'|' '$1=="scrape" && $2!="sidecar" && $2!="static" && $3=="load" && $5!="" {if (m=="" || $5+0<m+0) m=$5} END{print m}' "$RESULTS")
  floor99=$(awk -F'|' '$1=="scrape" && $2=="static" && $3=="idle" {print $5}' "$RESULTS")
  sanon=$(awk -F'|' '$1=="scrape" && $2=="sidecar" && $3=="load" {print $9 " MB anonymous + " $10 " MB file-backed"}' "$RESULTS")
  scpu=$(awk -F'|' '$1=="scrape" && $2=="sidecar" {if ($7+0>m+0) m=$7} END{print m}' "$RESULTS")
  srss=$(awk -F'|' '$1=="scrape" && $2=="sidecar" {if ($8+0>m+0) m=$8} END{print m}' "$RESULTS")
  ac50=$(node -e 'try{const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(j.latency.p50+" "+j.latency.p99+" "+Math.round(j.requests.average))}catch{console.log("")}' "$RAW/health-autocannon.json" 2>/dev/null || true)
  echo
  echo "- sidecar /metrics p99 idle ≤ 5 ms: ${sp99i:-?} ms: $(pf "$sp99i" 5 '<=') (the static node:http floor measured ${floor99:-?} ms the same way)"
  echo "- sidecar /metrics p99 under load ≤ ½ of the best exporter's (${best:-?} ms): ${sp99l:-?} ms: $(pf "$sp99l" "$(awk -v b="${best:-0}" 'BEGIN{print b/2}')" '<=')"
  echo "- sidecar CPU per scrape ≤ 4 ms: ${scpu:-?} ms: $(pf "$scpu" 4 '<=')"
  echo "- sidecar RSS ≤ 57 MB: peak ${srss:-?} MB: $(pf "$srss" 57 '<=') (now ${sanon:-?}; a bare \`node\` of this image is about 52 MB, 40 MB of it file-backed libnode/ICU/OpenSSL)"
  echo "- sidecar /health under 20 concurrent connections for 10 s (autocannon): p50 ${ac50%% *} ms, p99 $(echo "$ac50" | awk '{print $2}') ms, $(echo "$ac50" | awk '{print $3}') requests/s"
  echo
  echo "## 6. Detection latency"
  echo
  echo "Time from \`docker compose stop <backend>\` (its stop included) until \`/health\` reports it down, and from the restarted backend answering until \`/health\` is 200 again. Target: ≤ poll interval + 1 s."
  echo
  echo "| backend | poll | down seen after | healthy again after | target |"
  echo "|---|---|---|---|---|"
  POLL_DEFAULT="$(envval SIDECAR_POLL_INTERVAL_MS)"; POLL_DEFAULT="${POLL_DEFAULT:-5000}"
  for label in default 1s; do
    limit=$([ "$label" = 1s ] && echo 2000 || echo $((POLL_DEFAULT + 1000)))
    for svc in postgres pgbouncer redis; do
      dn=$(field "detect-$label-$svc" 2); rc=$(field "detect-$label-$svc" 3)
      echo "| $svc | $([ "$label" = 1s ] && echo "1 s" || echo "$((POLL_DEFAULT / 1000)) s (default)") | ${dn:-?} ms | ${rc:-?} ms | ≤ $limit ms: down $(pf "$dn" "$limit" '<='), up $(pf "$rc" "$limit" '<=') |"
    done
  done
  echo
  echo "## 7. Start-up"
  echo
  echo "\`make up\` warm (images built, stack down): ${UP_WARM} s (target ≤ 60 s): $(pf "$UP_WARM" 60 '<=')."
  if [ "$COLD" = 1 ]; then
    echo
    echo "\`make up\` cold (no poolguard image, build cache pruned; debian:trixie-slim present; packages fetched from the Debian mirror and npm): ${UP_COLD:-failed (see docs/bench-raw/make-up-cold.txt)} s."
  else
    echo
    echo "\`make up\` cold: not measured in this run (BENCH_COLD=0)."
  fi
  echo
} >docs/benchmarks.md
rm -f "$RESULTS"
log "wrote docs/benchmarks.md"
grep -E 'PASS|MISS' docs/benchmarks.md | sed 's/^/[bench] /' >&2 || true
