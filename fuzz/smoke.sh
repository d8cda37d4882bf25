#!/usr/bin/env bash
# Builds every fuzz target and runs each for a short, bounded time (the test command's fuzz
# smoke). cargo-fuzz needs unstable compiler flags; RUSTC_BOOTSTRAP=1 allows them on stable.
# Usage: fuzz/smoke.sh [seconds per target, default 20]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-${FUZZ_SECONDS:-20}}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build
for target in $(cargo fuzz list); do
  # A scratch corpus seeded from the committed one, so runs never dirty the work tree.
  scratch="$(mktemp -d)"
  cp corpus/"$target"/* "$scratch"/ 2>/dev/null || true
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run "$target" "$scratch" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|ERROR|panicked|SUMMARY" || true
  status=${PIPESTATUS[0]}
  rm -rf "$scratch"
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target failed" >&2
    exit "$status"
  fi
done
