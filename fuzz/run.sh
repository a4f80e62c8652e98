#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: fuzz/run.sh [seconds-per-target] [target...]
#
# Not part of the CI test command (too slow); CI runs the same target bodies over the regression
# corpus, the fixture seeds and a short mutation run (tests/fuzz_replay.rs, see README.md).
# Needs cargo-fuzz (`cargo install cargo-fuzz`).
# cargo fuzz passes nightly-only flags to rustc; with only the stable toolchain it works with
# RUSTC_BOOTSTRAP=1 (set here). Sanitizer: none by default (safe Rust; panics and assertion
# failures are what we look for and they abort either way); FUZZ_SANITIZER=address for ASan.
# Crashes land in fuzz/artifacts/<target>/; reproduce with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(admission_review policy_loader rule_engine)
sanitizer=${FUZZ_SANITIZER:-none}
# Seeds and regression inputs come from the CI replay test, so the fuzzer starts from the inputs
# CI checks (a debug build of the main crate's tests; quick when `cargo test` has run). It runs
# before RUSTC_BOOTSTRAP is set: cargo rebuilds every crate when that variable changes, here and
# again at the next plain `cargo test`.
FUZZ_CORPUS="$PWD/corpus" cargo test --locked --manifest-path ../Cargo.toml --test fuzz_replay \
  -- --ignored --exact export_seeds --nocapture
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build --sanitizer "$sanitizer"

status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  echo "==> $target for ${seconds}s"
  log="artifacts/$target.log"
  rc=0
  cargo fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1 || rc=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|panicked at|^SUMMARY|Test unit written' "$log" || true
  if [ "$rc" -ne 0 ]; then
    echo "!! $target failed (exit $rc): see fuzz/$log and fuzz/artifacts/$target/"
    status=1
  fi
done
exit $status
