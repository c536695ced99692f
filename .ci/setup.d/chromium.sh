#!/usr/bin/env bash
# Headless Chromium for the web UI's browser tests (crates/spate-ui/tests/ui_browser.rs and
# crates/spate-cli/tests/quickstart_ui_browser.rs).
# Idempotent and quick when Chromium is already there; the package lists are refreshed only
# when the package cannot be found without it. CI runs as root.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || dpkg -s chromium >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "ci: installing chromium (for the UI browser test)"
if ! apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
command -v chromium >/dev/null
