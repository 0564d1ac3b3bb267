#!/usr/bin/env bash
# Every test Sluice has: the Rust workspace, then the official-SDK conformance suite against the
# real binary. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo build (binaries used by the SDK suite)"
cargo build --workspace --bins

echo "==> cargo test"
cargo test --workspace

echo "==> seed 003's curl examples, verbatim, against the real binary (tests/management)"
python3 tests/management/seed_curl.py

echo "==> /openapi.json checked by schemathesis against the real binary (tests/openapi)"
tests/openapi/run.sh

echo "==> official SDK conformance (tests/sdk)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
.venv/bin/python -m pytest tests/sdk -q

echo "==> the dashboard in a real browser (tests/browser: playwright-core + Debian's Chromium)"
tests/browser/run.sh
