# shellcheck shell=bash
# Usage: source "$(dirname "$0")/lib.sh"        (from any script in scripts/)
#
# The helpers every host-side script shares: messages with the script's name, prerequisite
# checks, reading one value of an env file without sourcing it (values may hold quotes, $ and
# spaces), percent-encoding for URLs, and the list of settings PgBouncer's template manages.
# Sets ROOT (the repository) and ME (the calling script's name, e.g. "up").

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ME="$(basename "${0%.sh}")"

# A command that fails where the script did not expect it still says where, before set -e exits.
trap 'printf "%s: ERROR: unexpected failure (exit %s) at %s line %s: %s\n" "$ME" "$?" "${BASH_SOURCE[0]:-$0}" "$LINENO" "$BASH_COMMAND" >&2' ERR

log()  { printf '%s: %s\n' "$ME" "$*" >&2; }
warn() { printf '%s: WARNING: %s\n' "$ME" "$*" >&2; }
die()  { printf '%s: ERROR: %s\n' "$ME" "$*" >&2; exit 1; }

# need CMD...: every command is on PATH, or stop naming the missing ones.
need() {
  local missing=() c
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  [ "${#missing[@]}" -eq 0 ] || die "needs ${missing[*]} (not found on PATH)"
}

# sidecar_deps: the sidecar's npm packages installed (npm ci when missing or older than the
# lock file): the test runner and the benchmarks' tools (autocannon) come from there.
sidecar_deps() {
  need npm
  if [ ! -d "$ROOT/sidecar/node_modules" ] || [ "$ROOT/sidecar/package-lock.json" -nt "$ROOT/sidecar/node_modules/.package-lock.json" ]; then
    log "npm ci (sidecar)"
    (cd "$ROOT/sidecar" && npm ci --no-audit --no-fund >&2)
  fi
}

# env_get FILE NAME: the value of NAME in FILE as compose reads it ("" when absent): the last
# NAME=... line wins, a CR before the line end is dropped, "double" or 'single' quotes around the
# value are removed (\" and \\ unescaped inside double quotes), and an unquoted value ends
# before " #" (a comment). An e2e test compares it with compose's own rendering.
env_get() {
  [ -f "$1" ] || return 0
  awk -v k="$2" '
    { sub(/\r$/, "") }
    index($0, k "=") == 1 { v = substr($0, length(k) + 2) }
    END {
      q = substr(v, 1, 1)
      if ((q == "\"" || q == "\047") && (e = index(substr(v, 2), q)) > 0) {
        if (q == "\"") {
          # the closing quote is the first one not escaped
          out = ""; i = 2
          while (i <= length(v)) {
            c = substr(v, i, 1)
            if (c == "\\" && i < length(v)) { out = out substr(v, i + 1, 1); i += 2; continue }
            if (c == "\"") break
            out = out c; i++
          }
          v = out
        } else v = substr(v, 2, e - 1)
      } else sub(/[ \t]+#.*$/, "", v)
      printf "%s", v
    }' "$1"
}

# env_duplicates FILE: "NAME line line..." for every name set on more than one line.
env_duplicates() {
  [ -f "$1" ] || return 0
  awk '/^[A-Za-z_][A-Za-z0-9_]*=/ { n = substr($0, 1, index($0, "=") - 1); lines[n] = lines[n] " " NR; count[n]++ }
       END { for (n in count) if (count[n] > 1) print n lines[n] }' "$1" | sort
}

# env_names FILE: every NAME of a NAME=value line, once.
env_names() {
  [ -f "$1" ] || return 0
  grep -oE '^[A-Za-z_][A-Za-z0-9_]*=' "$1" | tr -d '=' | sort -u
}

# urlencode STRING: RFC 3986 percent-encoding (everything but unreserved characters).
urlencode() {
  local LC_ALL=C s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [A-Za-z0-9._~-]) out+="$c" ;;
      *) out+="$(printf '%%%02X' "'$c")" ;;
    esac
  done
  printf '%s' "$out"
}

# urldecode STRING
urldecode() { local s="${1//+/ }"; printf '%b' "${s//%/\\x}"; }

PGBOUNCER_TEMPLATE="$ROOT/pgbouncer/pgbouncer.ini"
# pgbouncer_keys: every setting of the template's [pgbouncer] section.
pgbouncer_keys() { awk '/^\[pgbouncer\]/{s=1;next} /^\[/{s=0} s && /^[a-z_]+ = /{print $1}' "$PGBOUNCER_TEMPLATE"; }
# pgbouncer_managed: the settings the image fixes (the template's "; poolguard-managed:" line).
pgbouncer_managed() { sed -n 's/^; poolguard-managed: //p' "$PGBOUNCER_TEMPLATE" | tr ' ' '\n' | sed '/^$/d'; }

# random_secret [BYTES]: BYTES (default 32) random bytes as URL-safe base64 without padding.
random_secret() { head -c "${1:-32}" /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_'; }

# set_role_passwords SUPERUSER ROLE=VALUE...: ALTER ROLE ... PASSWORD for each pair, in Postgres,
# run through "${COMPOSE[@]}" (the caller's compose command) in the postgres container as the
# postgres OS user over its Unix socket (peer authentication: no password needed). Values go
# through the environment and psql's \getenv: never on a command line, never in a log.
set_role_passwords() {
  local superuser="$1" sql="" envs=() i=0 pair; shift
  for pair in "$@"; do
    i=$((i + 1))
    export "POOLGUARD_ROLE_$i=${pair%%=*}" "POOLGUARD_PASS_$i=${pair#*=}"
    envs+=(-e "POOLGUARD_ROLE_$i" -e "POOLGUARD_PASS_$i")
    sql+="\\getenv u POOLGUARD_ROLE_$i"$'\n'"\\getenv p POOLGUARD_PASS_$i"$'\n'"ALTER ROLE :\"u\" PASSWORD :'p';"$'\n'
  done
  "${COMPOSE[@]}" exec -T "${envs[@]}" postgres psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$superuser" -d postgres <<<"$sql"
}
