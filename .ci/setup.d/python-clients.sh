#!/usr/bin/env bash
# Set-up for the non-librdkafka client test (crates/spate-cli/tests/python_client.rs): a Python venv
# at target/pyclients with the pure-Python kafka-python client pinned to a known version.
# Idempotent: a venv that already has the pinned version is left alone.
set -euo pipefail
cd "$(dirname "$0")/../.."

KAFKA_PYTHON_VERSION="3.0.12"
VENV="target/pyclients"
PY="$VENV/bin/python"

if [ -x "$PY" ] && "$PY" -c "import kafka, sys; sys.exit(0 if kafka.__version__ == '$KAFKA_PYTHON_VERSION' else 1)" 2>/dev/null; then
  echo "python-clients: $VENV already has kafka-python $KAFKA_PYTHON_VERSION"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
mkdir -p target
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$PY" -m pip install --quiet --disable-pip-version-check "kafka-python==$KAFKA_PYTHON_VERSION"
"$PY" -c "import kafka; print('python-clients: installed kafka-python', kafka.__version__, 'in $VENV')"
