#!/usr/bin/env python3
"""Independent check of every JSON Patch the Rust test suite produced.

Each case file in DIR (written by tests/fixtures.rs and friends) is
{"object": ..., "patch": [...], "expectedObject"?: ...}. For each one:
  1. the patch is applied with Python `jsonpatch` (an RFC 6902 implementation unrelated to ours);
  2. the result must equal `expectedObject` when given (what the Rust side got);
  3. the result must pass the official Kubernetes schema, strictly (unknown fields are errors),
     with `kubernetes-validate`.
Prints `patch-check: N passed, M failed` and exits non-zero on any failure, and also when DIR
holds no cases: a check that checked nothing must not pass.
"""

import argparse
import copy
import json
import pathlib
import sys

import jsonpatch
import kubernetes_validate

DEFAULT_K8S_VERSION = "1.33"  # the API version k8s-openapi is built for (Cargo feature v1_33)


def check_case(path: pathlib.Path, k8s_version: str) -> list:
    """Returns the problems of one case (empty when it passes)."""
    try:
        case = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return [f"unreadable case: {error}"]
    for key in ("object", "patch"):
        if key not in case:
            return [f"case lacks {key!r}"]
    if not isinstance(case["patch"], list) or not case["patch"]:
        return ["patch is not a non-empty list of operations"]
    try:
        patched = jsonpatch.apply_patch(copy.deepcopy(case["object"]), case["patch"])
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        return [f"patch does not apply (RFC 6902): {error}"]
    problems = []
    expected = case.get("expectedObject")
    if expected is not None and patched != expected:
        diff = jsonpatch.make_patch(expected, patched).patch
        problems.append(f"result differs from the Rust result: {json.dumps(diff)[:400]}")
    try:
        kubernetes_validate.validate(patched, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = "/".join(str(p) for p in getattr(error, "absolute_path", []))
        problems.append(f"schema: /{where}: {getattr(error, 'message', error)}")
    except (
        kubernetes_validate.SchemaNotFoundError,
        kubernetes_validate.InvalidSchemaError,
        kubernetes_validate.utils.VersionNotSupportedError,
    ) as error:
        problems.append(f"schema unavailable: {getattr(error, 'message', error)}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=pathlib.Path, help="directory of patch cases (*.json)")
    parser.add_argument("--k8s-version", default=DEFAULT_K8S_VERSION)
    args = parser.parse_args()

    cases = sorted(args.dir.glob("*.json")) if args.dir.is_dir() else []
    passed = failed = 0
    for path in cases:
        problems = check_case(path, args.k8s_version)
        if problems:
            failed += 1
            for problem in problems:
                print(f"FAIL {path.name}: {problem}")
        else:
            passed += 1
    if not cases:
        print(f"patch-check: no cases in {args.dir} (run cargo test first)")
        failed = max(failed, 1)
    print(f"patch-check: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
