#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 5) from the committed seeds.
#
#   fuzz/run.sh [SECONDS] [TARGET…]
#
# Needs the nightly toolchain (cargo-fuzz is installed when missing); without nightly it prints
# why and exits 0, so CI on a fresh machine skips the step. New corpus entries go to a scratch
# directory (FUZZ_CORPUS_DIR, default a temporary one), never into seeds/; a crash's input is
# saved under fuzz/artifacts/<target>/ and the script exits 1 after running the rest.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-5}
shift || true

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: skipped — no nightly toolchain (install it with: rustup toolchain install nightly)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version '^0.13'
fi

# --sanitizer none: the gateway's crates forbid unsafe code, so AddressSanitizer would only
# watch dependencies, at about twice the build time and half the executions per second.
# Overflow checks and debug assertions stay on (cargo-fuzz's default).
echo "==> cargo fuzz build (nightly, --sanitizer none)"
cargo +nightly fuzz build --sanitizer none
bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
scratch=${FUZZ_CORPUS_DIR:-$(mktemp -d)}
failed=()
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target" "artifacts/$target" "seeds/$target"
  log="$scratch/$target.log"
  if "$bin/$target" "$scratch/$target" "seeds/$target" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"$log" 2>&1; then
    stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
    echo "fuzz $target: ok ${stats:-}"
  else
    echo "fuzz $target: FAILED"
    grep -E -A6 'panicked at' "$log" | grep -vE '^ +[0-9]+: |^ +at ' | head -20 || true
    grep -E 'ERROR|SUMMARY|Test unit written|out-of-memory|timeout' "$log" | head -8 || true
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failing targets: ${failed[*]} (inputs under fuzz/artifacts/)"
  exit 1
fi
