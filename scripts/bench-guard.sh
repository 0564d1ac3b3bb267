#!/usr/bin/env bash
# Performance regression guard (issue 15): counts the user-space instructions per request of a
# release Sluice under valgrind's callgrind (repeatable on a busy machine, unlike wall time) and
# fails when a Sluice row exceeds its figure in crates/sluice-bench/baseline.txt by more than
# 20 % (a ratio, not an absolute time). `--write` records a new baseline after a deliberate
# change. Needs valgrind (apt-get install -y valgrind); the run itself takes well under 2 minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
  echo "bench-guard: valgrind is not installed (apt-get install -y valgrind)" >&2
  exit 1
fi
cargo build --release -p sluice -p sluice-mock -p sluice-bench
bench="${CARGO_TARGET_DIR:-target}/release/sluice-bench"
baseline=crates/sluice-bench/baseline.txt
args=(--instructions --no-nginx --concurrency 4 --requests 300 --warmup 100)
if [ "${1:-}" = --write ]; then
  exec timeout 300 "$bench" "${args[@]}" --write-baseline "$baseline"
fi
if [ ! -f "$baseline" ]; then
  echo "bench-guard: no baseline at $baseline yet: record one with scripts/bench-guard.sh --write" >&2
  exit 1
fi
exec timeout 120 "$bench" "${args[@]}" --baseline "$baseline"
