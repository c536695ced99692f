#!/usr/bin/env bash
# Debian's PostgreSQL server binaries (initdb, postgres) for the PostgreSQL sink's tests
# (crates/spate-kafka/tests/transactional_store.rs, postgres_crash.rs): the tests start their
# own server in a temp dir through spate-testkit's `postgres` module, so no cluster is created
# or started here. Idempotent and quick when the binaries are already there; the package lists
# are refreshed only when the package cannot be found without it. CI runs as root (the tests
# then run the server as the package's `postgres` system user).
set -euo pipefail

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && id postgres >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "ci: installing postgresql (for the PostgreSQL sink tests)"
if ! apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
