#!/usr/bin/env python3
"""Seeds the fuzz corpora from the repository's fixtures.

admission_review: every fixture case under tests/fixtures/*/ wrapped as the AdmissionReview the
fixture runner sends, plus a few hand-made malformed ones.  policy_loader: policies/*.yaml and
every inline `policy:` of a fixture case.  rule_engine is structured (bytes -> shapes), so it
starts empty and grows its own corpus.

usage: seed.py REPO_ROOT CORPUS_DIR
"""
import hashlib
import json
import pathlib
import sys

import yaml


def write(directory: pathlib.Path, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def review_of(case: dict) -> dict:
    request = case.get("request") or {}
    obj = request.get("object")
    old = request.get("oldObject")
    subject = obj if obj is not None else (old or {})
    group, _, version = (subject.get("apiVersion") or "").rpartition("/")
    namespace = request.get("namespace") or (subject.get("metadata") or {}).get("namespace") or "default"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "seed",
            "kind": {"group": group, "version": version, "kind": subject.get("kind")},
            "name": (subject.get("metadata") or {}).get("name", ""),
            "namespace": namespace,
            "operation": request.get("operation", "CREATE"),
            "userInfo": {"username": "seed"},
            "object": obj,
            "oldObject": old,
        },
    }


def main() -> int:
    root, corpus = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    reviews = corpus / "admission_review"
    policies = corpus / "policy_loader"
    for path in sorted(root.glob("tests/fixtures/**/*.yaml")) + sorted(root.glob("tests/fixtures/**/*.json")):
        try:
            case = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            continue
        if not isinstance(case, dict):
            continue
        if "request" in case:
            write(reviews, json.dumps(review_of(case)).encode())
        elif case.get("kind") == "AdmissionReview":
            write(reviews, json.dumps(case).encode())
        if isinstance(case.get("policy"), dict):
            write(policies, yaml.safe_dump(case["policy"]).encode())
    for path in sorted(root.glob("policies/*.yaml")):
        write(policies, path.read_bytes())
    for malformed in (b"", b"{", b"[]", b"null", b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}',
                      b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{},"operation":"CREATE"}}'):
        write(reviews, malformed)
    print(f"seeded {len(list(reviews.iterdir()))} reviews, {len(list(policies.iterdir()))} policies into {corpus}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
