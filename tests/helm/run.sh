#!/usr/bin/env bash
# Chart tests: helm lint --strict and helm template with Helm 3 and Helm 4 for
# several value combinations, every rendered object validated against the
# Kubernetes JSON schemas (kubernetes-validate, strict), and the safety
# properties asserted on the parsed output.
#
#   tests/helm/run.sh            # uses .venv/bin/python, creating .venv if missing
#   PYTHON=python3 tests/helm/run.sh
#
# Last line: "helm: N passed, M failed[, K skipped]"; exit status non-zero on failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

if [[ -z "${PYTHON:-}" ]]; then
  PYTHON="$root/.venv/bin/python"
  if [[ ! -x "$PYTHON" ]]; then
    echo "helm tests: creating .venv"
    python3 -m venv "$root/.venv"
  fi
  if ! "$PYTHON" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
    "$root/.venv/bin/pip" install --quiet -r "$root/tests/requirements.txt"
  fi
elif ! "$PYTHON" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
  echo "helm tests: $PYTHON lacks kubernetes-validate/PyYAML: pip install -r tests/requirements.txt" >&2
  exit 1
fi

bash "$root/scripts/install-helm.sh"

exec "$PYTHON" "$root/tests/helm/test_chart.py" "$@"
