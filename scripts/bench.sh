#!/usr/bin/env bash
# Builds the gateway, the fake upstream and the benchmark in release mode, then runs the
# side-by-side benchmark. Arguments go to sluice-bench (try --help, or --markdown).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -p sluice -p sluice-mock -p sluice-bench
exec "${CARGO_TARGET_DIR:-target}/release/sluice-bench" "$@"
