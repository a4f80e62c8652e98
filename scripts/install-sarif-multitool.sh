#!/usr/bin/env bash
# Install Microsoft's SARIF Multitool (its `validate` command checks SARIF logs against the
# SARIF 2.1.0 schema and the spec's rules) into .tools/sarif-multitool/ from the npm registry
# package @microsoft/sarif-multitool-linux (a self-contained linux-x64 binary plus the schema,
# sarif-2.1.0.json). Idempotent: an installed copy of the expected version is left alone.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.tools/sarif-multitool"
SARIF_MULTITOOL_NPM="${SARIF_MULTITOOL_NPM:-@microsoft/sarif-multitool-linux@5.7.0}"
version="${SARIF_MULTITOOL_NPM##*@}"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "install-sarif-multitool: the npm package ships a linux-x64 binary only; this is $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

if [[ -x "$dest/package/Sarif.Multitool" ]] && grep -q "\"version\": \"$version\"" "$dest/package/package.json" 2>/dev/null; then
  echo "install-sarif-multitool: $version present"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$SARIF_MULTITOOL_NPM" >/dev/null 2>"$tmp/npm.err") || {
  cat "$tmp/npm.err" >&2; echo "install-sarif-multitool: npm pack $SARIF_MULTITOOL_NPM failed" >&2; exit 1; }
rm -rf "$dest"
mkdir -p "$dest"
tar xzf "$tmp"/*.tgz -C "$dest"
chmod +x "$dest/package/Sarif.Multitool"
echo "install-sarif-multitool: installed $version"
