#!/usr/bin/env bash
# The one test command (README, CI): sets up its own checkers on a fresh machine, then runs
# formatting and lint checks, the Rust suites, the independent patch/schema checks and the chart
# tests. Safe to re-run; set-up steps are skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

step() { printf '\n==> %s\n' "$*"; }

step "python checkers (.venv)"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import jsonpatch, kubernetes_validate, yaml, junitparser, openapi_spec_validator, jsonschema' 2>/dev/null; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
fi
export ROLLOUT_GUARD_PYTHON="$root/.venv/bin/python"

step "SARIF Multitool (.tools/sarif-multitool)"
bash scripts/install-sarif-multitool.sh

step "rustfmt and clippy"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
# Fixture tests leave every patch they produce in target/patch-cases for the independent check.
# The format and API tests leave SARIF, JUnit, the OpenAPI description and recorded API
# responses in target/format-cases for the independent validators.
rm -rf target/patch-cases target/format-cases
cargo test --locked

if [ -f tests/checks/verify_patches.py ]; then
  step "independent RFC 6902 apply + Kubernetes schema check of every produced patch"
  "$ROLLOUT_GUARD_PYTHON" tests/checks/verify_patches.py target/patch-cases
fi

step "independent validation of SARIF (Microsoft SARIF Multitool + schema), JUnit (junitparser), OpenAPI (openapi-spec-validator) and API responses"
"$ROLLOUT_GUARD_PYTHON" tests/checks/validate_formats.py target/format-cases \
  --multitool .tools/sarif-multitool/package/Sarif.Multitool

if [ -x tests/helm/run.sh ]; then
  step "helm chart"
  PYTHON="$ROLLOUT_GUARD_PYTHON" tests/helm/run.sh
fi

step "all checks passed"
