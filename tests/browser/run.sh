#!/usr/bin/env bash
# The dashboard in a real browser (playwright-core driving Debian's Chromium) against the real
# binary and sluice-mock. Skips, saying why, when node or /usr/bin/chromium is missing.
# Builds nothing: run `cargo build -p sluice -p sluice-mock --bins` first.
# Usage: tests/browser/run.sh [scenario-name-filter]
set -euo pipefail
cd "$(dirname "$0")"
chromium="${SLUICE_CHROMIUM:-/usr/bin/chromium}"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "SKIP browser suite: node/npm not installed (apt-get install nodejs npm)"
  exit 0
fi
if [ ! -x "$chromium" ]; then
  echo "SKIP browser suite: $chromium not installed (apt-get install chromium)"
  exit 0
fi
# npm ci from the committed lock file, again whenever the lock file changed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --silent
fi
exec node run.mjs "$@"
