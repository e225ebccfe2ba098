# shellcheck shell=bash
# shellcheck disable=SC2034 # SECRET_VALUE and SECRET_PROBLEM are set for the callers to read
# secret-env.sh: how every poolguard image (and scripts/preflight.sh on the host) reads a secret
# given as VAR or as VAR_FILE. Sourced, never run; copied into each image at
# /usr/local/lib/poolguard/secret-env.sh. The sidecar reads its secrets by the same rules
# (sidecar/src/secrets.ts); sidecar/test/unit/secret-env.test.ts runs both on the same cases.
#
# Rules: VAR and VAR_FILE not both; the file must exist, be a regular file and be readable; one
# final line ending (LF or CRLF) is dropped; what is left must be one line, not empty and not
# only whitespace, with no carriage return. A value given directly in VAR obeys the same rules.
#
#   secret_get VAR             sets SECRET_VALUE; returns 0 when set, 2 when neither VAR nor
#                              VAR_FILE is set, 1 on a problem (then SECRET_PROBLEM says what,
#                              naming the variable and the file)
#   secret_export VAR [DEF]    exports VAR (the secret, else DEF, else empty) and unsets VAR_FILE;
#                              returns 1 with SECRET_PROBLEM on a problem
#   secret_require VAR         as secret_export, but neither set is a problem too

secret_check_value() { # secret_check_value WHAT VALUE: the content rules; WHAT names the source
  local what="$1" value="$2"
  if [ -z "$value" ]; then SECRET_PROBLEM="$what is empty"; return 1; fi
  if [[ "$value" =~ ^[[:space:]]+$ ]]; then SECRET_PROBLEM="$what holds only whitespace"; return 1; fi
  if [[ "$value" == *$'\r'* ]]; then SECRET_PROBLEM="$what holds a carriage return (CR): the secret must be one line"; return 1; fi
  if [[ "$value" == *$'\n'* ]]; then SECRET_PROBLEM="$what holds more than one line: the secret must be one line"; return 1; fi
  return 0
}

secret_get() {
  local var="$1" fvar="${1}_FILE" direct file content
  direct="${!var:-}"
  file="${!fvar:-}"
  SECRET_VALUE=""
  SECRET_PROBLEM=""
  if [ -n "$direct" ] && [ -n "$file" ]; then SECRET_PROBLEM="both $var and $fvar are set; set only one"; return 1; fi
  if [ -n "$file" ]; then
    if [ -d "$file" ]; then SECRET_PROBLEM="$fvar: $file is a directory, not a file"; return 1; fi
    if [ ! -e "$file" ]; then SECRET_PROBLEM="$fvar: $file does not exist"; return 1; fi
    if [ ! -f "$file" ]; then SECRET_PROBLEM="$fvar: $file is not a regular file"; return 1; fi
    if [ ! -r "$file" ] || ! content="$(cat -- "$file" 2>/dev/null && printf x)"; then
      SECRET_PROBLEM="$fvar: cannot read $file (permission denied for uid $(id -u))"
      return 1
    fi
    content="${content%x}"
    # One final line ending: LF, or CR LF.
    if [[ "$content" == *$'\n' ]]; then
      content="${content%$'\n'}"
      content="${content%$'\r'}"
    fi
    secret_check_value "$fvar: $file" "$content" || return 1
    SECRET_VALUE="$content"
    return 0
  fi
  if [ -n "$direct" ]; then
    secret_check_value "$var" "$direct" || return 1
    SECRET_VALUE="$direct"
    return 0
  fi
  return 2
}

secret_export() {
  local var="$1" def="${2:-}" rc=0
  secret_get "$var" || rc=$?
  case "$rc" in
    0) export "$var=$SECRET_VALUE" ;;
    2) export "$var=$def" ;;
    *) return 1 ;;
  esac
  unset "${var}_FILE"
  return 0
}

secret_require() {
  local var="$1" rc=0
  secret_get "$var" || rc=$?
  case "$rc" in
    0) export "$var=$SECRET_VALUE"; unset "${var}_FILE"; return 0 ;;
    2) SECRET_PROBLEM="$var (or ${var}_FILE) is required"; return 1 ;;
    *) return 1 ;;
  esac
}
