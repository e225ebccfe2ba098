#!/usr/bin/env bash
# Usage: pgbackrest [pgBackRest arguments...]     (installed as /usr/local/bin/pgbackrest)
#
# pgBackRest itself (/usr/bin/pgbackrest), with the repository key read the way every poolguard
# image reads a secret: PGBACKREST_REPO1_CIPHER_PASS_FILE (a compose secret) becomes
# PGBACKREST_REPO1_CIPHER_PASS for this process only. So `docker compose exec backup pgbackrest
# info` works as it would with a pgbackrest.conf, and the key is never in the container's
# environment, a command line or a file of ours.
set -euo pipefail
# shellcheck source=scripts/secret-env.sh
source /usr/local/lib/poolguard/secret-env.sh
secret_export PGBACKREST_REPO1_CIPHER_PASS || { printf 'pgbackrest: %s\n' "$SECRET_PROBLEM" >&2; exit 1; }
[ -n "${PGBACKREST_REPO1_CIPHER_PASS:-}" ] || unset PGBACKREST_REPO1_CIPHER_PASS
exec /usr/bin/pgbackrest "$@"
