#!/usr/bin/env bash
# The one test command (README, CI): sets up its own checkers on a fresh machine, then runs
# formatting and lint checks, the Rust suites, the independent patch/schema checks and the chart
# tests. Safe to re-run; set-up steps are skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

step() { printf '\n==> %s\n' "$*"; }

step "python checkers (.venv)"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import jsonpatch, kubernetes_validate, yaml' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
fi
export ROLLOUT_GUARD_PYTHON="$root/.venv/bin/python"

step "rustfmt and clippy"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
# Fixture tests leave every patch they produce in target/patch-cases for the independent check.
rm -rf target/patch-cases
cargo test --locked

if [ -f tests/checks/verify_patches.py ]; then
  step "independent RFC 6902 apply + Kubernetes schema check of every produced patch"
  "$ROLLOUT_GUARD_PYTHON" tests/checks/verify_patches.py target/patch-cases
fi

if [ -x tests/helm/run.sh ]; then
  step "helm chart"
  PYTHON="$ROLLOUT_GUARD_PYTHON" tests/helm/run.sh
fi

step "all checks passed"
