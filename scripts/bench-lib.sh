# shellcheck shell=bash
# Usage: source scripts/bench-lib.sh        (from scripts/bench.sh; the unit tests source it too)
#
# The measuring pieces of `make bench` that must fail closed, kept apart so that they can be
# tested against fixture trees: a container's CPU time from its cgroup (v1 or v2), and the
# sample writer every figure goes through.

# cgroup_cpu_ns ID: CPU nanoseconds a container used so far, from its cgroup, under
# $BENCH_CGROUP_ROOT (default /sys/fs/cgroup). cgroup v1 (cpuacct.usage, cgroupfs or systemd
# driver) and v2 (cpu.stat usage_usec, systemd or cgroupfs driver). Prints nothing and returns 1,
# naming every path it tried, when none is readable: a CPU figure never silently becomes 0.
cgroup_cpu_ns() {
  local id="$1" root="${BENCH_CGROUP_ROOT:-/sys/fs/cgroup}" f v
  [ -n "$id" ] || { echo "bench: cgroup_cpu_ns needs a container id" >&2; return 1; }
  for f in "$root/cpuacct/docker/$id/cpuacct.usage" "$root/cpu,cpuacct/docker/$id/cpuacct.usage" \
           "$root/cpuacct/system.slice/docker-$id.scope/cpuacct.usage" "$root/cpu,cpuacct/system.slice/docker-$id.scope/cpuacct.usage"; do
    if [ -r "$f" ] && v="$(<"$f")" && [[ "$v" =~ ^[0-9]+$ ]]; then printf '%s\n' "$v"; return 0; fi
  done
  for f in "$root/system.slice/docker-$id.scope/cpu.stat" "$root/docker/$id/cpu.stat"; do
    if [ -r "$f" ] && v="$(awk '$1 == "usage_usec" {print $2}' "$f")" && [[ "$v" =~ ^[0-9]+$ ]]; then printf '%s\n' "$((v * 1000))"; return 0; fi
  done
  echo "bench: no readable CPU accounting for container $id under $root (tried cgroup v1 cpuacct.usage and v2 cpu.stat, cgroupfs and systemd layouts)" >&2
  return 1
}

# emit KIND KEY=VALUE...: one sample, a tab-separated line, appended to $BENCH_SAMPLES. Values
# must not hold tabs or newlines (they are replaced by spaces). scripts/bench-report.mjs reads
# the file; every figure in docs/benchmarks.md comes from one of these lines.
emit() {
  local line="$1" kv; shift
  for kv in "$@"; do line+=$'\t'"${kv//[$'\t\n']/ }"; done
  printf '%s\n' "$line" >>"${BENCH_SAMPLES:?BENCH_SAMPLES is not set}"
}
