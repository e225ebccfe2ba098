#!/usr/bin/env bash
# Usage: scripts/bench.sh            (make bench; BENCH_QUICK=1 make bench for the CI smoke)
#   BENCH_PAIRS=5      interleaved direct/pooled pairs per configuration (which side goes first
#                      alternates; a CHECKPOINT before each pair); the idle scrape is repeated as often
#   BENCH_SECONDS=20   seconds per pgbench run
#   BENCH_SCALE=100    pgbench scale factor. pgbench's docs: for the TPC-B-like test the scale
#                      should be at least the largest client count (90 here), "else you'll
#                      mostly be measuring update contention" (10 branches, 90 clients).
#   BENCH_SCRAPES=1000 scrapes of each /metrics per measurement
#   BENCH_COLD=1       7. also time a cold `make up`: REMOVES the dev stack's images and the
#                      engine's build cache first (about 1-2 min to rebuild). 0 skips it.
#   BENCH_QUICK=1      the smoke CI runs: 1 pair of 5 s runs, scale 10, 200 scrapes, a 1 s sidecar
#                      poll, no cold start;
#                      every sampler and every fail-closed check runs, and the report is written to
#                      .bench/ (ignored), never to docs/. The dev stack is removed afterwards.
#
# Benchmarks the dev stack (brings it up when needed) with pgbench in a container on the compose
# network (the postgres image ships pgbench). Every figure is a sample line in RAW/samples.tsv
# (scripts/bench-lib.sh emit), with the raw pgbench outputs beside it; scripts/bench-report.mjs
# turns them into the report, deciding each target three ways over the repetitions (PASS when
# the worst meets it, MISS when the best does not, else within noise) and failing the run when a
# figure is missing. A sampler that reads nothing stops the run. Loopback and the compose network
# only; every run is bounded by BENCH_SECONDS. Full run: about 70 minutes on 2 cores (its length is printed).
# Parts: 1. pooling overhead (select-only and TPC-B-like, 10/25/50/90 clients), 2. connection
# churn (-C, 50 clients: TPS and server CPU per new connection from cgroup accounting), 3.
# over-subscription, 4. server connections used during pooled runs (from the sidecar's
# /metrics), 5. the sidecar against Debian's exporters (bench-only image), 6. detection latency
# (default and 1 s poll), 7. `make up` warm and cold.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
case "${1:-}" in -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
root="$ROOT"
cd "$root"
need docker curl awk node
docker info >/dev/null 2>&1 || die "no Docker engine answers; run 'make setup' (scripts/ensure-docker.sh)"
# Every tool a later part needs is checked now, not after an hour of measuring.
sidecar_deps
(cd sidecar && npx --no-install autocannon --version >/dev/null 2>&1) || die "autocannon (a devDependency of sidecar/) does not run: npm ci in sidecar/"

QUICK="${BENCH_QUICK:-0}"
[[ "$QUICK" =~ ^[01]$ ]] || die "BENCH_QUICK must be 0 or 1"
if [ "$QUICK" = 1 ]; then
  d_pairs=1 d_secs=5 d_scale=10 d_scrapes=200 d_cold=0
  # A 1 s poll, so that the server-connection sampler reads something within a 5 s run.
  export SIDECAR_POLL_INTERVAL_MS=1000 SIDECAR_SOURCE_TIMEOUT_MS=800
else
  d_pairs=5 d_secs=20 d_scale=100 d_scrapes=1000 d_cold=1
fi
PAIRS="${BENCH_PAIRS:-$d_pairs}"
SECS="${BENCH_SECONDS:-$d_secs}"
SCALE="${BENCH_SCALE:-$d_scale}"
SCRAPES="${BENCH_SCRAPES:-$d_scrapes}"
COLD="${BENCH_COLD:-$d_cold}"
[[ "$COLD" =~ ^[01]$ ]] || die "BENCH_COLD must be 0 or 1"
[[ "$PAIRS" =~ ^[0-9]+$ ]] && [ "$PAIRS" -ge 1 ] && [ "$PAIRS" -le 20 ] || die "BENCH_PAIRS must be 1-20"
[[ "$SECS" =~ ^[0-9]+$ ]] && [ "$SECS" -ge 1 ] && [ "$SECS" -le 300 ] || die "BENCH_SECONDS must be 1-300"
[[ "$SCALE" =~ ^[0-9]+$ ]] && [ "$SCALE" -ge 1 ] && [ "$SCALE" -le 300 ] || die "BENCH_SCALE must be 1-300"
[[ "$SCRAPES" =~ ^[0-9]+$ ]] && [ "$SCRAPES" -ge 50 ] && [ "$SCRAPES" -le 100000 ] || die "BENCH_SCRAPES must be 50-100000"
BENCH_START=$(date +%s)

scripts/ensure-env.sh
envval() { env_get .env "$1"; }
APP_USER="$(envval APP_USER)"; APP_DB="$(envval APP_DB)"; APP_PASSWORD="$(envval APP_PASSWORD)"
APP_USER="${APP_USER:-app}"; APP_DB="${APP_DB:-app}"
SIDECAR_PORT="$(envval PUBLISH_SIDECAR_PORT)"; SIDECAR_PORT="${SIDECAR_PORT:-8787}"
SIDECAR_POLL_MS="${SIDECAR_POLL_INTERVAL_MS:-$(envval SIDECAR_POLL_INTERVAL_MS)}"; SIDECAR_POLL_MS="${SIDECAR_POLL_MS:-5000}"
TAG="$(envval POOLGUARD_IMAGE_TAG)"; TAG="${TAG:-0.1.0-dev}" # the dev stack's images (prod's are never touched)
COMPOSE=(scripts/compose.sh -f docker-compose.dev.yml --env-file .env)
# The benchmark measures pooling: a scheduled backup in the middle of a run would only be noise
# (the first full comes 30 s after start). WAL archiving stays on, as in production, and costs
# the direct and the pooled side alike. Exported, it wins over .env for compose.
export BACKUP_SCHEDULE="${BACKUP_SCHEDULE:-off}"
if [ "$QUICK" = 1 ]; then OUTDIR=.bench; RAW=.bench/raw; else OUTDIR=docs; RAW=docs/bench-raw; fi
mkdir -p "$RAW"
rm -f "$RAW"/*.txt "$RAW"/*.tsv "$RAW"/*.json
export BENCH_SAMPLES="$RAW/samples.tsv"
: >"$BENCH_SAMPLES"
log() { printf '[bench] %s\n' "$*" >&2; }
wait_for() { # DEADLINE_S CMD...: polls every 50 ms; returns 1 on timeout
  local end=$(( $(date +%s) + $1 )); shift
  until "$@"; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 0.05; done
}
emit run quick="$QUICK" pairs="$PAIRS" run_seconds="$SECS" scale="$SCALE" scrapes="$SCRAPES" cold="$COLD" cores="$(nproc)" started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# 7. make up, warm (images built): from a stopped stack to healthy.
log "make up (warm): down, then up --wait"
"${COMPOSE[@]}" down >/dev/null 2>&1 || true
t0=$(date +%s.%N)
scripts/up.sh dev --env-file .env >"$RAW/make-up-warm.txt" 2>&1 || die "make up failed (see $RAW/make-up-warm.txt)"
emit up phase=warm seconds="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')"
NET="$("${COMPOSE[@]}" ps -q postgres | xargs docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}')"
cid() { "${COMPOSE[@]}" ps -q "$1"; }
container_cpu_ns() { # CONTAINER (name or id): its CPU nanoseconds so far; stops the run when unreadable
  local id; id="$(docker inspect -f '{{.Id}}' "$1")" || die "no container $1"
  cgroup_cpu_ns "$id" || die "CPU accounting unreadable: no CPU figure can be measured on this host"
}
cpu_ns() { container_cpu_ns "$(cid "$1")"; }
container_cpu_ns "$(cid postgres)" >/dev/null # fail before the long runs, not after

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
PG_SETTINGS="$(docker exec -i "$(cid postgres)" sh -c 'psql -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres -At' <<'SQL'
SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings
 WHERE name IN ('max_connections', 'shared_buffers', 'superuser_reserved_connections', 'password_encryption', 'synchronous_commit', 'log_connections');
SQL
)"
SIDECAR_CMD="$(docker exec "$(cid sidecar)" sh -c 'tr "\0" " " </proc/1/cmdline')"
PGB_VERSION="$(docker exec "$(cid pgbouncer)" pgbouncer --version | head -n1 | awk '{print $2}')"
PG_VERSION="$(docker exec "$(cid postgres)" postgres --version | awk '{print $3}')"
for v in PGB_SETTINGS PGB_TARGET PG_SETTINGS SIDECAR_CMD PGB_VERSION PG_VERSION; do [ -n "${!v}" ] || die "read no $v from the running stack"; done
emit settings pgbouncer="$PGB_SETTINGS" pgbouncer_target="$PGB_TARGET" postgres="$PG_SETTINGS" sidecar="$SIDECAR_CMD" sidecar_poll_ms="$SIDECAR_POLL_MS" \
  pgbouncer_version="$PGB_VERSION" postgres_version="$PG_VERSION"
log "settings: PgBouncer $PGB_SETTINGS; server connections via $PGB_TARGET; Postgres $PG_SETTINGS; sidecar: $SIDECAR_CMD"

log "pgbench -i -s $SCALE (direct)"
pgbench postgres 5432 -i -s "$SCALE" -q >"$RAW/init.txt" 2>&1 || die "pgbench -i failed (see $RAW/init.txt)"

# Samples the sidecar's metrics every second while a pooled run goes on: the app pool's server
# connections and Postgres backends of the app database (max of each), and how many samples it
# read. The first poll interval + 1 s is skipped: until the sidecar polls again its snapshot may
# still describe the previous run. A run whose sampler read nothing has no figure (the report
# then fails): it never reads as "0 server connections".
sample_servers() { # OUTFILE: runs until killed; OUTFILE holds "maxpool maxbackends samples"
  local out="$1" maxpool=0 maxback=0 n=0 m p b skip_until
  skip_until=$(( $(date +%s) + (SIDECAR_POLL_MS + 1999) / 1000 ))
  while :; do
    if [ "$(date +%s)" -lt "$skip_until" ]; then sleep 1; continue; fi
    m="$(curl -s --max-time 1 "http://127.0.0.1:$SIDECAR_PORT/metrics" || true)"
    p="$(awk -v db="$APP_DB" -v u="$APP_USER" '$1 ~ "^pgbouncer_pools_server_(active|idle|used|testing|login)_connections\\{database=\""db"\",user=\""u"\"\\}" {s+=$2; f=1} END{if (f) print s+0}' <<<"$m")"
    b="$(awk -v db="$APP_DB" '$1 ~ "^pg_stat_database_numbackends\\{.*datname=\""db"\"" {print $2+0}' <<<"$m" | head -n1)"
    if [ -n "$p" ] && [ -n "$b" ]; then
      n=$((n + 1))
      [ "$p" -gt "$maxpool" ] && maxpool="$p"
      [ "$b" -gt "$maxback" ] && maxback="$b"
    fi
    echo "$maxpool $maxback $n" >"$out"
    sleep 1
  done
}

run_one() { # NAME HOST PORT CLIENTS PAIR ORDER ARGS...: one pgbench run, emitted as a "pgbench" sample
  local name="$1" host="$2" port="$3" clients="$4" pair="$5" order="$6"; shift 6
  local out="$RAW/$name-p$pair.txt" jobs=2 sampler="" sfile
  [ "$clients" -lt 2 ] && jobs=1
  sfile="$(mktemp)"; echo "0 0 0" >"$sfile"
  if [ "$host" = pgbouncer ]; then sample_servers "$sfile" & sampler=$!; fi
  local pg0 pb0 pg1 pb1
  pg0=$(cpu_ns postgres); pb0=$(cpu_ns pgbouncer)
  set +e
  pgbench "$host" "$port" -n -c "$clients" -j "$jobs" -T "$SECS" "$@" >"$out" 2>&1
  local rc=$?
  set -e
  pg1=$(cpu_ns postgres); pb1=$(cpu_ns pgbouncer)
  [ -z "$sampler" ] || { kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true; }
  local tps lat failed txs err servers client
  tps=$(awk '/^tps = / {print $3; exit}' "$out"); lat=$(awk '/^latency average = / {print $4; exit}' "$out")
  failed=$(awk '/^number of failed transactions:/ {print $5; exit}' "$out")
  txs=$(awk '/^number of transactions actually processed:/ {split($6,a,"/"); print a[1]; exit}' "$out")
  err=$(grep -m1 -oE '(FATAL|ERROR|error):.*' "$out" | cut -c1-140 || true)
  read -r -a servers <"$sfile"; rm -f "$sfile"
  client=$(awk '/^client-cpu-ms / {print $2}' "$out")
  emit pgbench name="$name" path="$([ "$host" = pgbouncer ] && echo pooled || echo direct)" clients="$clients" pair="$pair" order="$order" \
    tps="${tps:-}" latency_ms="${lat:-}" failed="${failed:-}" txs="${txs:-}" rc="$rc" pg_cpu_ns="$((pg1 - pg0))" pgb_cpu_ns="$((pb1 - pb0))" \
    client_cpu_ms="${client:-}" max_pool="$([ "$host" = pgbouncer ] && echo "${servers[0]}")" max_backends="$([ "$host" = pgbouncer ] && echo "${servers[1]}")" \
    server_samples="$([ "$host" = pgbouncer ] && echo "${servers[2]}")" error="${err:-}"
  log "$name (pair $pair, $order): tps=${tps:-n/a} lat=${lat:-n/a} ms failed=${failed:-n/a} rc=$rc servers(max pool/backends/samples)=${servers[*]} ${err:+error: $err}"
}

# Each configuration runs as PAIRS pairs of a direct and a pooled run, back to back so that both
# meet the same moments of a shared machine; which side goes first alternates from pair to pair,
# and a CHECKPOINT precedes each pair. Before a direct run PgBouncer lets go of its idle server
# connections (min_pool_size 0 for the run, then RECONNECT): they would take Postgres slots the
# 90 direct clients need. The pooled runs use the shipped value again.
PGB_MIN_POOL="$(printf '%s\n' "$PGB_INI" | awk '$1 == "min_pool_size" && $2 == "=" {print $3}')"
pgb_admin() { docker exec "$(cid pgbouncer)" pgbouncer-admin -c "$1" >/dev/null 2>&1 || die "PgBouncer admin command failed: $1"; }
checkpoint() { docker exec "$(cid postgres)" sh -c 'psql -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres -qc CHECKPOINT' >/dev/null 2>&1 || die "CHECKPOINT failed"; }
direct_run() { pgb_admin "SET min_pool_size = 0"; pgb_admin "RECONNECT"; sleep 2; run_one "$1-direct-c$2" postgres 5432 "$2" "$3" "$4" "${@:5}"; pgb_admin "SET min_pool_size = ${PGB_MIN_POOL:-5}"; }
pooled_run() { run_one "$1-pooled-c$2" pgbouncer 6432 "$2" "$3" "$4" "${@:5}"; }
run_pairs() { # NAME CLIENTS ARGS...: PAIRS interleaved pairs
  local name="$1" c="$2" i; shift 2
  for ((i = 1; i <= PAIRS; i++)); do
    checkpoint
    if [ $((i % 2)) = 1 ]; then direct_run "$name" "$c" "$i" direct-first "$@"; pooled_run "$name" "$c" "$i" direct-first "$@"
    else pooled_run "$name" "$c" "$i" pooled-first "$@"; direct_run "$name" "$c" "$i" pooled-first "$@"; fi
  done
}
log "CHECKPOINT after the load, then a 10 s warm-up run (not reported)"
checkpoint
pgbench postgres 5432 -n -S -c 10 -j 2 -T "$([ "$QUICK" = 1 ] && echo 2 || echo 10)" >/dev/null 2>&1 || true
# 1. Pooling overhead.
for mode in select tpcb; do
  flag=(); [ "$mode" = select ] && flag=(-S)
  for c in 10 25 50 90; do run_pairs "$mode" "$c" "${flag[@]}"; done
done
# 2. Connection churn: a new connection per transaction.
for mode in select tpcb; do
  flag=(); [ "$mode" = select ] && flag=(-S)
  run_pairs "churn-$mode" 50 -C "${flag[@]}"
done
# 3. Over-subscription. The sidecar holds 2 of PgBouncer's 100 client slots: 98 is the limit.
run_one "over-pooled-c98" pgbouncer 6432 98 1 single -S
run_one "over-pooled-c150" pgbouncer 6432 150 1 single -S
log "closing PgBouncer's idle server connections (RECONNECT) before the direct 150-client run"
pgb_admin "RECONNECT"
sleep 2
run_one "over-direct-c150" postgres 5432 150 1 single -S


# 5. The sidecar against the exporters it replaces (Debian's packages, bench-only image), all
# pointed at the same stack: while a 50-client pooled pgbench runs, 1,000 sequential scrapes of
# each /metrics; then series count, RSS, CPU per scrape (cgroup), connections held to the
# backends; and the sidecar's /health under concurrent HTTP load (autocannon).
EXP_IMAGE=poolguard/bench-exporters:0.1.0
log "building the bench-only exporters image"
docker build -q -t "$EXP_IMAGE" scripts/bench-exporters >/dev/null || die "the bench-only exporters image did not build"
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
    poolguard/migrate:"$TAG" /app/latency.mjs "$1" "$SCRAPES" /metrics 2>/dev/null || true
}
scrape_all() { # LABEL REP: a "scrape" sample per target. idle: each target alone (another
  # target's scrape, e.g. postgres_exporter's queries, would load the machine), repeated PAIRS
  # times; load: SCRAPES rounds scraping every target once, so that all of them meet the same
  # moments of the pgbench load.
  local label="$1" rep="$2" t urls="" out="" lat series
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
    # from a burst of its own scrapes (a couple of seconds), as in the idle phase.
    c0[sidecar]=$(cpu_of sidecar); latency "$(net_url_of sidecar)" >/dev/null; c1[sidecar]=$(cpu_of sidecar)
  fi
  echo "$label $rep: $out" >>"$RAW/scrape-latency.txt"
  for t in "${TARGETS[@]}"; do
    lat=$(awk -v u="$(net_url_of "$t")/metrics:" '$1 == u {for (i = 2; i <= NF; i++) {split($i, a, "="); if (a[1] == "p50") p50 = a[2]; if (a[1] == "p99") p99 = a[2]}} END {print p50 " " p99}' <<<"$out")
    if [ "$t" = static ]; then series=""; else series=$(curl -s "$(url_of "$t")" | grep -vc '^#' || true); fi
    IFS='|' read -r peak anon file <<<"$(rss_mb "$t")"
    emit scrape target="$t" phase="$label" rep="$rep" scrapes="$SCRAPES" p50_ms="${lat% *}" p99_ms="${lat#* }" series="$series" \
      cpu_ns="$((c1[$t] - c0[$t]))" peak_rss_mb="$peak" anon_mb="$anon" file_mb="$file" conns="$([ "$t" = static ] || conns "$t")"
    log "scrape $t ($label $rep): p50/p99 ${lat} ms, ${series:-—} series"
  done
}
rm -f "$RAW/scrape-latency.txt"
for ((i = 1; i <= PAIRS; i++)); do scrape_all idle "$i"; done
log "50-client pooled pgbench in the background while scraping"
docker rm -f poolguard-bench-load >/dev/null 2>&1 || true
docker run -d --name poolguard-bench-load --network "$NET" -e PGPASSWORD="$APP_PASSWORD" --entrypoint pgbench poolguard/postgres:"$TAG" \
  -h pgbouncer -p 6432 -U "$APP_USER" -n -S -c 50 -j 2 -T 600 "$APP_DB" >/dev/null
sleep 2
scrape_all load 1
docker logs poolguard-bench-load >"$RAW/scrape-load.txt" 2>&1 || true
docker rm -f poolguard-bench-load >/dev/null 2>&1 || true
log "/health under concurrent HTTP load (autocannon, 20 connections, 10 s)"
AC="$(cd sidecar && npx --no-install autocannon --json -c 20 -d "$([ "$QUICK" = 1 ] && echo 3 || echo 10)" "http://127.0.0.1:$SIDECAR_PORT/health" 2>/dev/null || true)"
echo "$AC" >"$RAW/health-autocannon.json"
# shellcheck disable=SC2046
emit autocannon $(node -e 'try { const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`p50_ms=${j.latency.p50} p99_ms=${j.latency.p99} rps=${Math.round(j.requests.average)} errors=${j.errors + j.non2xx}`) } catch { console.log("p50_ms= p99_ms= rps= errors=") }' "$RAW/health-autocannon.json")
for e in "${exporters[@]}"; do docker rm -f "poolguard-bench-exp-${e%%:*}" >/dev/null 2>&1 || true; done
docker rm -f poolguard-bench-static >/dev/null 2>&1 || true
# The RSS floor: a bare node of the sidecar's image, and the same with the sidecar's packages
# imported (no code of ours running): what the runtime and the prescribed packages cost.
FLOOR="$(docker run --rm --entrypoint node -w /app poolguard/sidecar:"$TAG" --input-type=module -e '
  import { readFileSync } from "node:fs";
  const hwm = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1]) / 1024;
  const bare = hwm();
  for (const m of ["fastify", "pg", "ioredis", "prom-client", "pino", "zod", "@fastify/bearer-auth", "close-with-grace"]) await import(m);
  console.log(`bare_mb=${bare.toFixed(1)} packages_mb=${hwm().toFixed(1)}`);' 2>&1 | tail -n1)" || true
# shellcheck disable=SC2086
emit rss_floor $FLOOR

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
detect() { # LABEL POLL_MS: a "detect" sample for each backend
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
    emit detect poll="$1" poll_ms="$2" backend="$svc" down_ms="$down" up_ms="$rec"
    log "detection ($1 poll) $svc: down seen after ${down:-?} ms (stop included), healthy ${rec:-?} ms after it answered"
  done
}
detect default "$SIDECAR_POLL_MS"
log "sidecar with a 1 s poll"
SIDECAR_POLL_INTERVAL_MS=1000 SIDECAR_SOURCE_TIMEOUT_MS=800 "${COMPOSE[@]}" up -d --wait sidecar >/dev/null 2>&1
detect 1s 1000
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
  emit up phase=cold seconds="$UP_COLD"
  log "make up cold: ${UP_COLD:-failed, see $RAW/make-up-cold.txt} s"
fi

# ---- report: scripts/bench-report.mjs, from the samples alone --------------------------------
emit run finished="$(date -u +%Y-%m-%dT%H:%M:%SZ)" seconds="$(( $(date +%s) - BENCH_START ))"
if [ "$QUICK" = 1 ]; then
  log "quick run: removing the dev stack and its volumes"
  "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
fi
node scripts/bench-report.mjs --samples "$BENCH_SAMPLES" --out "$OUTDIR/benchmarks.md" || die "the report refused (above): a figure is missing or unreadable; nothing counts from this run"
log "wrote $OUTDIR/benchmarks.md from $BENCH_SAMPLES in $(( $(date +%s) - BENCH_START )) s"
grep -E 'PASS|MISS|within noise' "$OUTDIR/benchmarks.md" | sed 's/^/[bench] /' >&2 || true
