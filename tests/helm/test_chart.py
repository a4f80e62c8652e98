#!/usr/bin/env python3
"""Tests for charts/rollout-guard, run with the real Helm 3 and Helm 4 CLIs.

For every value combination and every Helm major version:
  * `helm lint --strict` passes;
  * `helm template` renders, and every object validates against the official
    Kubernetes JSON schemas (kubernetes-validate, strict) for several versions;
  * the safety properties hold on the parsed output: namespace exclusions
    (evaluated as a label selector, not just looked at), failurePolicy,
    timeouts, webhook rules, RBAC verbs, securityContext, probes, mounts,
    TLS wiring.
Plus negative cases (values the chart must refuse) and the check that the
chart's policies/ is a copy of the repo's policies/.

No pytest needed: a small runner prints one line per case and a final
"helm: N passed, M failed[, K skipped]" line; exit status 1 on any failure.
Run through tests/helm/run.sh, which installs Helm and the Python checkers.
Also needs the openssl CLI (to check the generated certificates).
"""

import base64
import copy
import filecmp
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import traceback

import yaml
import kubernetes_validate
from kubernetes_validate import utils as kv

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "charts", "rollout-guard")
HELMS = {
    "helm3": os.path.join(ROOT, ".tools", "helm3", "helm"),
    "helm4": os.path.join(ROOT, ".tools", "helm4", "helm"),
}
RELEASE = "rg"
NAMESPACE = "guard-system"
FULLNAME = "rg-rollout-guard"

# Kubernetes versions to validate against: every minor the checker bundles
# from the chart's minimum (kubeVersion >=1.28) up to the newest.
KUBE_VERSIONS = sorted({v for v in kv.all_versions() if tuple(map(int, v.split(".")[:2])) >= (1, 28)},
                       key=lambda v: tuple(map(int, v.split("."))))

# Kinds that are not in the Kubernetes schemas (CRDs); checked structurally below.
CRD_KINDS = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}

EXPECTED_ARGS = [
    "serve",
    "--policies", "/etc/rollout-guard/policies",
    "--tls-cert", "/etc/rollout-guard/tls/tls.crt",
    "--tls-key", "/etc/rollout-guard/tls/tls.key",
    "--addr", "0.0.0.0:8443",
    "--metrics-addr", "0.0.0.0:9090",
]

# What the store watches, and therefore all the ClusterRole may grant.
EXPECTED_RBAC = {
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("", "services"),
    ("", "namespaces"),
    ("", "pods"),
    ("argoproj.io", "rollouts"),
    ("networking.k8s.io", "ingresses"),
    ("networking.k8s.io", "ingressclasses"),
    ("gateway.networking.k8s.io", "httproutes"),
    ("gateway.networking.k8s.io", "referencegrants"),
    ("gateway.networking.k8s.io", "gateways"),
}
READ_VERBS = {"get", "list", "watch"}

# With audit.enabled only: the reports the audit writes (both report APIs), and its Lease.
AUDIT_REPORT_RULES = [
    {"apiGroups": ["openreports.io"], "resources": ["reports", "clusterreports"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports", "clusterpolicyreports"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
]
AUDIT_LEASE = FULLNAME + "-audit"
AUDIT_LEASE_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [AUDIT_LEASE],
     "verbs": ["get", "update"]},
]

MUTATING_RULES = {("apps", "v1", "deployments"): {"CREATE", "UPDATE"}}
VALIDATING_RULES = {
    ("apps", "v1", "deployments"): {"CREATE", "UPDATE"},
    ("", "v1", "services"): {"CREATE", "UPDATE"},
    ("networking.k8s.io", "v1", "ingresses"): {"CREATE", "UPDATE", "DELETE"},
}
HTTPROUTE_RULE = {("gateway.networking.k8s.io", "v1", "httproutes"): {"CREATE", "UPDATE"}}

# Not a real certificate: the chart only passes the text through.
TEST_CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBdDCCARqgAwIBAgIUWmFrZS1jYS1mb3ItY2hhcnQtdGVzdHMwCgYIKoZIzj0E
AwIwETEPMA0GA1UEAwwGdGVzdGNhMB4XDTI0MDEwMTAwMDAwMFoXDTM0MDEwMTAw
MDAwMFowETEPMA0GA1UEAwwGdGVzdGNhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcD
-----END CERTIFICATE-----
"""


# --------------------------------------------------------------------------
# Value combinations. Each: values, plus what the rendered output must show.
# --------------------------------------------------------------------------
def combos():
    c = {}
    c["defaults"] = dict(values={}, expect={})
    c["cert-manager"] = dict(values={"tls": {"certManager": {"enabled": True}}},
                             expect={"tls": "certManager"})
    c["cert-manager-clusterissuer"] = dict(
        values={"tls": {"certManager": {"enabled": True,
                                        "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer",
                                                      "group": "cert-manager.io"}}}},
        expect={"tls": "certManager", "issuer": {"name": "corp-ca", "kind": "ClusterIssuer",
                                                 "group": "cert-manager.io"}})
    c["existing-secret-pem"] = dict(
        values={"tls": {"existingSecret": "my-webhook-tls", "caBundle": TEST_CA_PEM}},
        expect={"tls": "existingSecret", "secret": "my-webhook-tls",
                "caBundle": base64.b64encode(TEST_CA_PEM.encode()).decode()})
    c["existing-secret-b64"] = dict(
        values={"tls": {"existingSecret": "my-webhook-tls",
                        "caBundle": base64.b64encode(TEST_CA_PEM.encode()).decode()}},
        expect={"tls": "existingSecret", "secret": "my-webhook-tls",
                "caBundle": base64.b64encode(TEST_CA_PEM.encode()).decode()})
    c["failure-policy-fail"] = dict(values={"webhook": {"failurePolicy": "Fail"}},
                                    expect={"failurePolicy": ("Fail", "Fail")})
    c["failure-policy-split"] = dict(
        values={"webhook": {"failurePolicy": "Ignore", "validating": {"failurePolicy": "Fail",
                                                                      "timeoutSeconds": 3}}},
        expect={"failurePolicy": ("Ignore", "Fail"), "timeouts": (5, 3)})
    c["gateway-api-disabled"] = dict(values={"webhook": {"gatewayAPI": {"enabled": False}}},
                                     expect={"gateway": False})
    c["custom-policies"] = dict(
        values={"policies": {"files": {"default.yaml": "# replaced default\nrules: {}\n",
                                       "team-a.yaml": "rules:\n  replicas:\n    mode: warn\n"}}},
        expect={"policies": "overlay"})
    c["custom-policies-only"] = dict(
        values={"policies": {"useDefaults": False,
                             "files": {"only.yaml": "rules: {}\n"}}},
        expect={"policies": {"only.yaml": "rules: {}\n"}})
    c["audit"] = dict(
        values={"audit": {"enabled": True, "period": "5m", "reports": "wgpolicyk8s", "resultCap": 200}},
        expect={"audit": {"period": "5m", "reports": "wgpolicyk8s", "resultCap": "200"}})
    c["no-extra-exclusions"] = dict(values={"webhook": {"excludedNamespaces": []}},
                                    expect={"extraExcluded": []})
    c["kitchen-sink"] = dict(
        values={
            "replicaCount": 3,
            "fullnameOverride": FULLNAME,
            "image": {"repository": "registry.example.com/platform/rollout-guard",
                      "digest": "sha256:" + "a" * 64},
            "imagePullSecrets": [{"name": "regcred"}],
            "commonLabels": {"team": "platform"},
            "logLevel": "rollout_guard=debug,info",
            "logFormat": "text",
            "extraArgs": ["--some-flag"],
            "extraEnv": [{"name": "EXTRA", "value": "1"}],
            "webhook": {"excludedNamespaces": ["kube-public", "monitoring"],
                        "optOutLabel": "example.com/skip-guard",
                        "mutating": {"timeoutSeconds": 2}},
            "serviceAccount": {"annotations": {"example.com/role": "x"}},
            "podAnnotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "podLabels": {"cost-center": "42"},
            "priorityClassName": "system-cluster-critical",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra",
                             "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
            "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "kubernetes.io/hostname",
                                           "whenUnsatisfiable": "DoNotSchedule"}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"cpu": "2", "memory": "1Gi"}},
        },
        expect={"replicas": 3, "extraExcluded": ["kube-public", "monitoring"],
                "optOutLabel": "example.com/skip-guard", "timeouts": (2, 5),
                "image": "registry.example.com/platform/rollout-guard@sha256:" + "a" * 64,
                "logFormat": "text"})
    return c


# Values the chart must refuse, with a fragment of the expected error.
NEGATIVE = {
    "existing-secret-without-ca": ({"tls": {"existingSecret": "x"}}, "tls.caBundle is required"),
    "cert-manager-and-existing-secret": (
        {"tls": {"certManager": {"enabled": True}, "existingSecret": "x", "caBundle": "x"}},
        "not both"),
    "bad-failure-policy": ({"webhook": {"failurePolicy": "Sometimes"}}, "failurePolicy"),
    "timeout-over-30": ({"webhook": {"validating": {"timeoutSeconds": 31}}}, "timeoutSeconds"),
    "zero-replicas": ({"replicaCount": 0}, "replicaCount"),
    "unknown-value": ({"webhok": {"failurePolicy": "Fail"}}, "webhok"),
    "empty-opt-out-label": ({"webhook": {"optOutLabel": ""}}, "optOutLabel"),
    "bad-policy-file-name": ({"policies": {"files": {"../x.yaml": "a: 1"}}}, "../x.yaml"),
    "api-client-cert-without-ca": ({"api": {"auth": "client-cert"}}, "api.clientCA.secretName"),
    "bad-api-auth": ({"api": {"auth": "password"}}, "api"),
    "bad-audit-reports": ({"audit": {"enabled": True, "reports": "both"}}, "reports"),
    "bad-audit-period": ({"audit": {"enabled": True, "period": "ten minutes"}}, "period"),
    "zero-audit-result-cap": ({"audit": {"resultCap": 0}}, "resultCap"),
}


# --------------------------------------------------------------------------
# Small helpers.
# --------------------------------------------------------------------------
class Fail(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def write_values(tmp, name, values):
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        yaml.safe_dump(values, f)
    return path


def helm_template(helm, values_file, extra=()):
    p = run([helm, "template", RELEASE, CHART, "--namespace", NAMESPACE, "-f", values_file, *extra])
    return p


def parse_docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind):
    found = by_kind(docs, kind)
    check(len(found) == 1, f"expected exactly one {kind}, found {len(found)}")
    return found[0]


def deep_merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def selector_matches(selector, labels):
    """Evaluate a metav1.LabelSelector against a label map, as the API server does."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, vals = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and key in labels and labels[key] in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def ns_labels(name, **extra):
    # The API server sets kubernetes.io/metadata.name on every namespace (1.21+).
    return {"kubernetes.io/metadata.name": name, **extra}


# --------------------------------------------------------------------------
# Schema validation.
# --------------------------------------------------------------------------
def validate_k8s(docs):
    """Every object against the strict Kubernetes schemas; returns #validations."""
    n = 0
    for d in docs:
        if (d["apiVersion"], d["kind"]) in CRD_KINDS:
            check_cert_manager(d)
            continue
        for v in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(d, v, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                raise Fail(f"{d['kind']}/{d['metadata']['name']} invalid for Kubernetes {v}: "
                           f"{path}: {e.message}")
            except kv.SchemaNotFoundError as e:
                raise Fail(f"no schema: {e.message}")
            n += 1
    return n


CERT_SPEC_FIELDS = {"secretName", "commonName", "dnsNames", "duration", "renewBefore", "usages",
                    "privateKey", "issuerRef", "isCA", "secretTemplate", "subject", "ipAddresses"}
ISSUER_SPEC_FIELDS = {"selfSigned", "ca"}


def check_cert_manager(d):
    """A structural check of the cert-manager objects (its CRD schemas are not bundled)."""
    check(set(d) <= {"apiVersion", "kind", "metadata", "spec"}, f"unexpected top-level keys {set(d)}")
    spec = d["spec"]
    if d["kind"] == "Certificate":
        check(set(spec) <= CERT_SPEC_FIELDS, f"unknown Certificate fields {set(spec) - CERT_SPEC_FIELDS}")
        check(spec.get("secretName") and spec.get("issuerRef", {}).get("name"),
              "Certificate needs secretName and issuerRef.name")
        check(set(spec["issuerRef"]) <= {"name", "kind", "group"}, "issuerRef fields")
        check(set(spec.get("privateKey", {})) <= {"algorithm", "size", "rotationPolicy", "encoding"},
              "privateKey fields")
    else:
        check(set(spec) <= ISSUER_SPEC_FIELDS and len(spec) == 1, f"Issuer spec {spec}")


# --------------------------------------------------------------------------
# Safety assertions on one rendered combination.
# --------------------------------------------------------------------------
def assert_safe(docs, values, expect):
    ctx = {}
    kinds = sorted(d["kind"] for d in docs)
    for k in ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment",
              "MutatingWebhookConfiguration", "PodDisruptionBudget", "Service", "ServiceAccount",
              "ValidatingWebhookConfiguration"]:
        check(k in kinds, f"missing {k} (rendered: {kinds})")
    for d in docs:
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
                             "ValidatingWebhookConfiguration"):
            check(d["metadata"].get("namespace") == NAMESPACE,
                  f"{d['kind']}/{d['metadata']['name']} not in the release namespace")

    dep = one(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    check(selector_matches(dep["spec"]["selector"], pod_labels), "Deployment selector vs pod labels")
    check(dep["spec"]["replicas"] == expect.get("replicas", 2), "replicas")
    ru = dep["spec"]["strategy"]["rollingUpdate"]
    check(ru["maxUnavailable"] == 0, "rolling update must keep all replicas up")
    check(pod["terminationGracePeriodSeconds"] == 30, "terminationGracePeriodSeconds")
    check(pod.get("automountServiceAccountToken") is True, "the store needs its token")
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        check(not pod.get(forbidden), forbidden)
    psc = pod["securityContext"]
    check(psc["runAsNonRoot"] is True and psc["runAsUser"] != 0, "pod must run as non-root")
    check(psc["seccompProfile"]["type"] == "RuntimeDefault", "pod seccomp")
    check(len(pod["containers"]) == 1 and not pod.get("initContainers"), "one container")
    c = pod["containers"][0]
    sc = c["securityContext"]
    check(sc["readOnlyRootFilesystem"] is True, "readOnlyRootFilesystem")
    check(sc["allowPrivilegeEscalation"] is False, "allowPrivilegeEscalation")
    check(sc.get("privileged") is not True, "privileged")
    check(sc["runAsNonRoot"] is True, "container runAsNonRoot")
    check(sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"),
          "capabilities: drop ALL, add none")
    check(sc["seccompProfile"]["type"] == "RuntimeDefault", "container seccomp")
    res = c["resources"]
    for kind in ("requests", "limits"):
        check(res.get(kind, {}).get("cpu") and res[kind].get("memory"), f"resources.{kind}")
    if "image" in expect:
        check(c["image"] == expect["image"], f"image {c['image']}")
    args = c["args"]
    check(args[:len(EXPECTED_ARGS)] == EXPECTED_ARGS, f"server args {args}")
    if expect.get("logFormat", "json") == "json":
        check(args[len(EXPECTED_ARGS):len(EXPECTED_ARGS) + 2] == ["--log-format", "json"], "--log-format json")
    else:
        check("--log-format" not in args, "no --log-format json for text")
    env = {e["name"]: e for e in c["env"]}
    check(env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace",
          "POD_NAMESPACE from the downward API")
    check(env["RUST_LOG"]["value"], "RUST_LOG")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports == {"https": 8443, "metrics": 9090}, f"ports {ports}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = c[probe]["httpGet"]
        check(g["path"] == path, f"{probe} path")
        check(ports.get(g["port"], g["port"]) == 9090, f"{probe} must use the plain admin port 9090")
        check(g.get("scheme", "HTTP") == "HTTP", f"{probe} scheme")
    # Mounted as directories (no subPath): the kubelet's ..data swap must reach the server.
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    check(set(mounts) == {"/etc/rollout-guard/policies", "/etc/rollout-guard/tls"}, f"mounts {set(mounts)}")
    for m in mounts.values():
        check("subPath" not in m and "subPathExpr" not in m, "no subPath mounts")
        check(m.get("readOnly") is True, "mounts read-only")
    vols = {v["name"]: v for v in pod["volumes"]}
    pol_vol = vols[mounts["/etc/rollout-guard/policies"]["name"]]
    tls_vol = vols[mounts["/etc/rollout-guard/tls"]["name"]]
    check("items" not in pol_vol["configMap"], "policies mounted whole")
    ann = dep["spec"]["template"]["metadata"].get("annotations") or {}
    check(not any(k.startswith("checksum/") for k in ann), "no checksum annotation: policies reload live")
    tsc = pod.get("topologySpreadConstraints") or []
    check(tsc, "topology spread")
    for t in tsc:
        check(selector_matches(t["labelSelector"], pod_labels), "spread selector must match own pods")

    sa = one(docs, "ServiceAccount")
    check(pod["serviceAccountName"] == sa["metadata"]["name"], "serviceAccountName")

    # RBAC: read-only, exactly what the store watches (plus, with the evaluation API's token
    # auth, creating TokenReviews: asking the API server who a token is changes nothing).
    role = one(docs, "ClusterRole")
    granted = set()
    api_auth = deep_merge({"api": {"auth": "token"}}, values)["api"]["auth"]
    token_reviews = {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"],
                     "verbs": ["create"]}
    if api_auth in ("token", "any"):
        check(token_reviews in role["rules"], "token auth needs create tokenreviews")
    audit = expect.get("audit")
    for r in AUDIT_REPORT_RULES:
        check((r in role["rules"]) == bool(audit),
              f"report RBAC must be granted exactly when audit.enabled: {r}")
    for r in role["rules"]:
        if r == token_reviews or (audit and r in AUDIT_REPORT_RULES):
            continue
        check(set(r["verbs"]) <= READ_VERBS, f"write verbs granted: {r['verbs']}")
        check("*" not in r["verbs"] + r["resources"] + r["apiGroups"], "wildcards in RBAC")
        check(not r.get("resourceNames") and not r.get("nonResourceURLs"), "unexpected rule fields")
        for g in r["apiGroups"]:
            for res_ in r["resources"]:
                granted.add((g, res_))
                check(set(r["verbs"]) == READ_VERBS, f"{g}/{res_}: needs get, list and watch")
    check(granted == EXPECTED_RBAC, f"RBAC resources: extra {granted - EXPECTED_RBAC}, "
                                    f"missing {EXPECTED_RBAC - granted}")
    check_audit(docs, c, sa, audit)
    binding = one(docs, "ClusterRoleBinding")
    check(binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                 "name": role["metadata"]["name"]}, "roleRef")
    check(binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                   "namespace": NAMESPACE}], "binding subjects")

    svc = one(docs, "Service")
    check(svc["spec"]["selector"] == {k: pod_labels[k] for k in svc["spec"]["selector"]}
          and selector_matches({"matchLabels": svc["spec"]["selector"]}, pod_labels), "Service selector")
    svc_ports = {p["port"]: p for p in svc["spec"]["ports"]}

    pdb = one(docs, "PodDisruptionBudget")
    check(selector_matches(pdb["spec"]["selector"], pod_labels), "PDB selector")
    check(pdb["spec"].get("maxUnavailable") == 1 and "minAvailable" not in pdb["spec"],
          "PDB maxUnavailable 1 (never blocks drains)")

    # Policies ConfigMap.
    cm = one(docs, "ConfigMap")
    check(pol_vol["configMap"]["name"] == cm["metadata"]["name"], "policies volume -> ConfigMap")
    bundled = {}
    pdir = os.path.join(CHART, "policies")
    for f in sorted(os.listdir(pdir)):
        if f.endswith(".yaml"):
            with open(os.path.join(pdir, f)) as fh:
                bundled[f] = fh.read()
    pol = values.get("policies", {})
    want = dict(bundled) if pol.get("useDefaults", True) else {}
    want.update(pol.get("files", {}))
    check((cm.get("data") or {}) == want, f"ConfigMap data keys {sorted(cm.get('data') or {})} "
                                          f"want {sorted(want)}")

    # Webhooks.
    mwc = one(docs, "MutatingWebhookConfiguration")
    vwc = one(docs, "ValidatingWebhookConfiguration")
    fp_m, fp_v = expect.get("failurePolicy", ("Ignore", "Ignore"))
    to_m, to_v = expect.get("timeouts", (5, 5))
    extra_excluded = expect.get("extraExcluded", ["kube-public", "kube-node-lease"])
    opt_out = expect.get("optOutLabel", "rollout-guard.io/ignore")
    tls_mode = expect.get("tls", "selfSigned")
    ca_bundles = []
    for cfg, path, fp, to, want_rules in (
            (mwc, "/mutate", fp_m, to_m, MUTATING_RULES),
            (vwc, "/validate", fp_v, to_v,
             {**VALIDATING_RULES, **(HTTPROUTE_RULE if expect.get("gateway", True) else {})})):
        check(len(cfg["webhooks"]) == 1, "one webhook per configuration")
        w = cfg["webhooks"][0]
        where = f"{cfg['kind']} {w['name']}"
        check(w["name"].count(".") >= 2, f"{where}: name must be fully qualified")
        check(w["sideEffects"] == "None", f"{where}: sideEffects")
        check(w["admissionReviewVersions"] == ["v1"], f"{where}: admissionReviewVersions")
        check(w["matchPolicy"] == "Equivalent", f"{where}: matchPolicy")
        check(w["failurePolicy"] == fp, f"{where}: failurePolicy {w['failurePolicy']} != {fp}")
        check(w["timeoutSeconds"] == to and 1 <= to <= 30, f"{where}: timeoutSeconds")
        s = w["clientConfig"]["service"]
        check(s["name"] == svc["metadata"]["name"] and s["namespace"] == NAMESPACE, f"{where}: service")
        check(s["path"] == path, f"{where}: path")
        check(s["port"] in svc_ports and svc_ports[s["port"]]["targetPort"] in ("https", 8443)
              and ports.get(svc_ports[s["port"]]["targetPort"], 8443) == 8443,
              f"{where}: service port must reach the HTTPS port 8443")
        rules = {}
        for r in w["rules"]:
            check(r.get("scope") == "Namespaced", f"{where}: scope")
            for g in r["apiGroups"]:
                for v in r["apiVersions"]:
                    for res_ in r["resources"]:
                        check("/" not in res_ and "*" not in res_, f"{where}: no subresources/wildcards")
                        rules.setdefault((g, v, res_), set()).update(r["operations"])
        check(rules == want_rules, f"{where}: rules {rules} != {want_rules}")
        if cfg["kind"] == "MutatingWebhookConfiguration":
            check(w["reinvocationPolicy"] == "IfNeeded", "reinvocationPolicy IfNeeded")
        # Namespace exclusion, evaluated as the API server would.
        sel = w["namespaceSelector"]
        for ns in ["kube-system", NAMESPACE] + extra_excluded:
            check(not selector_matches(sel, ns_labels(ns)), f"{where}: namespace {ns} is intercepted")
        check(not selector_matches(sel, ns_labels("team-a", **{opt_out: "true"})),
              f"{where}: opt-out label {opt_out}=true is not honoured")
        for ns, labels in (("team-a", {}), ("default", {}), ("team-b", {opt_out: "false"})):
            check(selector_matches(sel, ns_labels(ns, **labels)), f"{where}: namespace {ns} not intercepted")
        check(not w.get("objectSelector"), f"{where}: objectSelector")
        ca_bundles.append(w["clientConfig"].get("caBundle"))
        ann = cfg["metadata"].get("annotations") or {}
        if tls_mode == "certManager":
            check(ann.get("cert-manager.io/inject-ca-from") == f"{NAMESPACE}/{FULLNAME}",
                  f"{where}: inject-ca-from")
        else:
            check("cert-manager.io/inject-ca-from" not in ann, f"{where}: stray inject-ca-from")

    secrets = by_kind(docs, "Secret")
    tls_secret = tls_vol["secret"]["secretName"]
    if tls_mode == "selfSigned":
        check(len(secrets) == 1 and secrets[0]["metadata"]["name"] == tls_secret, "self-signed Secret")
        sec = secrets[0]
        check(sec["type"] == "kubernetes.io/tls", "Secret type")
        check(ca_bundles[0] == ca_bundles[1] == sec["data"]["ca.crt"],
              "caBundle must be the Secret's ca.crt in both webhooks")
        check_self_signed(sec, svc["metadata"]["name"])
    elif tls_mode == "existingSecret":
        check(not secrets, "the chart must not create a Secret in existingSecret mode")
        check(tls_secret == expect["secret"], "Deployment mounts the user's Secret")
        check(ca_bundles == [expect["caBundle"]] * 2, "caBundle from values")
    else:
        check(not secrets, "cert-manager writes the Secret, not the chart")
        check(ca_bundles == [None, None], "no caBundle with cert-manager (injected)")
        certs = {d["metadata"]["name"]: d for d in by_kind(docs, "Certificate")}
        check(FULLNAME in certs, "serving Certificate")
        crt = certs[FULLNAME]["spec"]
        check(crt["secretName"] == tls_secret, "Certificate writes the mounted Secret")
        check(set(crt["dnsNames"]) == set(dns_names(svc["metadata"]["name"])), "Certificate dnsNames")
        check(crt["privateKey"]["rotationPolicy"] == "Always", "rotate the key on renewal")
        issuer = expect.get("issuer")
        if issuer:
            check(crt["issuerRef"] == issuer, "issuerRef from values")
            check(not by_kind(docs, "Issuer"), "no own Issuer with a given issuerRef")
        else:
            issuers = {d["metadata"]["name"]: d for d in by_kind(docs, "Issuer")}
            ca_issuer = issuers.get(crt["issuerRef"]["name"])
            check(ca_issuer and "ca" in ca_issuer["spec"], "serving cert signed by the chart's CA Issuer")
            ca_cert = certs[FULLNAME + "-ca"]["spec"]
            check(ca_cert["isCA"] is True and ca_cert["secretName"] == ca_issuer["spec"]["ca"]["secretName"],
                  "CA Certificate feeds the CA Issuer")
            check("selfSigned" in issuers[ca_cert["issuerRef"]["name"]]["spec"], "self-signed root")
    return ctx


def check_audit(docs, container, sa, audit):
    """audit.enabled: the --audit flags, POD_NAME for the Lease holder identity, and a Role
    (release namespace) on exactly the audit's Lease. Disabled: none of it."""
    args = container["args"]
    env = {e["name"]: e for e in container["env"]}
    roles = by_kind(docs, "Role")
    bindings = by_kind(docs, "RoleBinding")
    if not audit:
        check(not any(a.startswith("--audit") for a in args), f"audit flags without audit.enabled: {args}")
        check("POD_NAME" not in env, "POD_NAME without audit.enabled")
        check(not roles and not bindings, "a Role without audit.enabled")
        return
    check("--audit" in args, f"--audit missing: {args}")
    for flag, want in (("--audit-period", audit["period"]), ("--audit-reports", audit["reports"]),
                       ("--audit-result-cap", audit["resultCap"]), ("--audit-lease-name", AUDIT_LEASE)):
        check(flag in args and args[args.index(flag) + 1] == want, f"{flag} {want}: {args}")
    check(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name",
          "POD_NAME from the downward API (the Lease holder identity)")
    check(len(roles) == 1 and len(bindings) == 1, "one Role and one RoleBinding for the Lease")
    role, binding = roles[0], bindings[0]
    check(role["metadata"]["namespace"] == NAMESPACE, "the Lease Role is in the release namespace")
    check(role["rules"] == AUDIT_LEASE_RULES, f"Lease Role rules {role['rules']}")
    check(binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                 "name": role["metadata"]["name"]}, "Lease roleRef")
    check(binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                   "namespace": NAMESPACE}], "Lease binding subjects")


def case_audit_defaults(helm, tmp):
    """audit.enabled alone: the chart's defaults reach the flags (10m, auto, 1000), and turning
    it off again removes every audit grant."""
    vf = write_values(tmp, "audit-defaults", {"audit": {"enabled": True}})
    p = helm_template(helm, vf)
    check(p.returncode == 0, f"helm template failed:\n{p.stderr}")
    docs = parse_docs(p.stdout)
    validate_k8s(docs)
    dep = one(docs, "Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    check_audit(docs, container, one(docs, "ServiceAccount"),
                {"period": "10m", "reports": "auto", "resultCap": "1000"})
    rules = one(docs, "ClusterRole")["rules"]
    check(all(r in rules for r in AUDIT_REPORT_RULES), "report RBAC with audit.enabled")
    vf = write_values(tmp, "audit-off", {"audit": {"enabled": False, "reports": "openreports"}})
    p = helm_template(helm, vf)
    check(p.returncode == 0, p.stderr)
    docs = parse_docs(p.stdout)
    rules = one(docs, "ClusterRole")["rules"]
    check(not any(r in rules for r in AUDIT_REPORT_RULES), "report RBAC without audit.enabled")
    check(not by_kind(docs, "Role"), "Lease Role without audit.enabled")
    return "defaults passed, off grants nothing"


def dns_names(svc_name):
    return [f"{svc_name}.{NAMESPACE}.svc", f"{svc_name}.{NAMESPACE}.svc.cluster.local",
            f"{svc_name}.{NAMESPACE}", svc_name]


def check_self_signed(secret, svc_name):
    """The generated serving cert: signed by ca.crt, right SANs, key matches."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for k in ("ca.crt", "tls.crt", "tls.key"):
            paths[k] = os.path.join(tmp, k)
            with open(paths[k], "wb") as f:
                f.write(base64.b64decode(secret["data"][k]))
        p = run(["openssl", "verify", "-CAfile", paths["ca.crt"], paths["tls.crt"]])
        check(p.returncode == 0, f"tls.crt not signed by ca.crt: {p.stdout}{p.stderr}")
        p = run(["openssl", "x509", "-in", paths["tls.crt"], "-noout", "-ext", "subjectAltName"])
        sans = {s.strip().removeprefix("DNS:") for s in p.stdout.splitlines()[1].split(",")}
        check(sans == set(dns_names(svc_name)), f"SANs {sans}")
        pub_crt = run(["openssl", "x509", "-in", paths["tls.crt"], "-noout", "-pubkey"]).stdout
        pub_key = run(["openssl", "pkey", "-in", paths["tls.key"], "-pubout"]).stdout
        check(pub_crt and pub_crt == pub_key, "tls.key does not match tls.crt")


# --------------------------------------------------------------------------
# Cases.
# --------------------------------------------------------------------------
def case_lint(helm, tmp, name, values):
    vf = write_values(tmp, "lint-" + name, values)
    p = run([helm, "lint", "--strict", CHART, "--namespace", NAMESPACE, "-f", vf])
    check(p.returncode == 0, f"helm lint --strict failed:\n{p.stdout}{p.stderr}")
    return "lint --strict"


def case_render(helm, tmp, name, spec):
    vf = write_values(tmp, "render-" + name, spec["values"])
    p = helm_template(helm, vf)
    check(p.returncode == 0, f"helm template failed:\n{p.stderr}")
    docs = parse_docs(p.stdout)
    n = validate_k8s(docs)
    assert_safe(docs, spec["values"], spec["expect"])
    return f"{len(docs)} objects, {n} schema validations"


def case_negative(helm, tmp, name, values, fragment):
    vf = write_values(tmp, "neg-" + name, values)
    p = helm_template(helm, vf)
    check(p.returncode != 0, "rendered, but the chart must refuse these values")
    check(fragment in p.stderr, f"error does not mention {fragment!r}: {p.stderr.strip()}")
    return "refused"


def case_api_auth(helm, tmp):
    """The evaluation API: token auth (the default) gets `create tokenreviews` and the flag;
    `none` gets neither; `client-cert` mounts the CA Secret and passes it."""
    def render(values):
        vf = write_values(tmp, "api-" + values["api"]["auth"], values)
        p = helm_template(helm, vf)
        check(p.returncode == 0, f"helm template failed:\n{p.stderr}")
        docs = parse_docs(p.stdout)
        validate_k8s(docs)
        role = one(docs, "ClusterRole")
        reviews = [r for r in role["rules"] if "tokenreviews" in r.get("resources", [])]
        container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        return docs, reviews, container["args"], container

    _, reviews, args, _ = render({"api": {"auth": "token"}})
    check(reviews == [{"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"],
                       "verbs": ["create"]}], f"token auth needs create tokenreviews: {reviews}")
    check(args[args.index("--api-auth") + 1] == "token", f"{args}")
    check(args[args.index("--api-rate-limit") + 1] == "20", f"{args}")
    _, reviews, args, _ = render({"api": {"auth": "none"}})
    check(reviews == [], "no TokenReview rights without token auth")
    check(args[args.index("--api-auth") + 1] == "none", f"{args}")
    _, reviews, args, container = render({"api": {"auth": "client-cert",
                                                  "clientCA": {"secretName": "ci-ca"}}})
    check(reviews == [], "client certificates need no TokenReviews")
    check(args[args.index("--api-client-ca") + 1] == "/etc/rollout-guard/api-ca/ca.crt", f"{args}")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    check(mounts.get("api-ca") == "/etc/rollout-guard/api-ca", f"{mounts}")
    return "token, none, client-cert"


def case_kube_version(helm, tmp):
    vf = write_values(tmp, "kv", {})
    p = helm_template(helm, vf, ["--kube-version", "1.27.0"])
    check(p.returncode != 0 and "kubeVersion" in (p.stderr + p.stdout),
          "Kubernetes 1.27 must be refused by Chart.yaml kubeVersion")
    p = helm_template(helm, vf, ["--kube-version", "1.28.0"])
    check(p.returncode == 0, f"Kubernetes 1.28 refused: {p.stderr}")
    return "1.27 refused, 1.28 accepted"


def case_cli_validate(helm, tmp):
    """The kubernetes-validate CLI itself (as CI would call it) agrees on the default render."""
    vf = write_values(tmp, "cli", {})
    p = helm_template(helm, vf)
    check(p.returncode == 0, p.stderr)
    out = os.path.join(tmp, "rendered.yaml")
    with open(out, "w") as f:
        f.write(p.stdout)
    for v in KUBE_VERSIONS:
        r = run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", v, out])
        check(r.returncode == 0 and "ERROR" not in r.stdout, f"kubernetes-validate -k {v}:\n{r.stdout}{r.stderr}")
    return "kubernetes-validate --strict -k " + ",".join(KUBE_VERSIONS)


def case_policies_in_sync():
    """The chart's policies/ must be an exact copy of the repo's policies/."""
    repo = os.path.join(ROOT, "policies")
    chart = os.path.join(CHART, "policies")
    if not os.path.isdir(repo):
        return "SKIP: no policies/ in the repo yet; the chart ships a placeholder"
    want = sorted(f for f in os.listdir(repo) if f.endswith(".yaml"))
    have = sorted(f for f in os.listdir(chart) if f.endswith(".yaml"))
    _, mismatch, errors = filecmp.cmpfiles(repo, chart, want, shallow=False)
    if want != have or mismatch or errors:
        raise Fail("charts/rollout-guard/policies/ differs from policies/ "
                   f"(missing {sorted(set(want) - set(have))}, extra {sorted(set(have) - set(want))}, "
                   f"changed {sorted(set(mismatch + errors) & set(have))}). Fix with:\n"
                   "  rm -f charts/rollout-guard/policies/*.yaml && "
                   "cp policies/*.yaml charts/rollout-guard/policies/")
    return f"{len(want)} files identical"


# Values documented as one block (their sub-keys are Kubernetes fields).
WHOLE_VALUES = {"podSecurityContext", "securityContext", "livenessProbe", "readinessProbe", "resources"}


def value_keys(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v and key not in WHOLE_VALUES:
            yield from value_keys(v, key)
        else:
            yield key


def case_readme_lists_every_value():
    """Every key of values.yaml has a row in the chart README's values table."""
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = yaml.safe_load(f)
    with open(os.path.join(CHART, "README.md")) as f:
        readme = f.read()
    rows = {line.split("|")[1].strip().strip("`") for line in readme.splitlines()
            if line.startswith("| `")}
    keys = set(value_keys(values))
    check(keys <= rows, f"values missing from README.md: {sorted(keys - rows)}")
    check(rows <= keys, f"README.md documents values that do not exist: {sorted(rows - keys)}")
    with open(os.path.join(CHART, "values.schema.json")) as f:
        schema = json.load(f)
    top = set(schema["properties"]) - {"global"}
    check(top == set(values), f"schema and values.yaml top-level keys differ: {top ^ set(values)}")
    return f"{len(keys)} values documented"


def case_dockerfile():
    """The image the chart runs: static, non-root, and the ENTRYPOINT the chart's args rely on."""
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        lines = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
    froms = [l for l in lines if l.upper().startswith("FROM ")]
    check(len(froms) >= 2, "multi-stage build")
    check(froms[-1].split()[1].startswith("gcr.io/distroless/static") and froms[-1].split()[1].endswith(":nonroot"),
          f"runtime image {froms[-1]}")
    check("USER 65532:65532" in lines or "USER 65532" in lines, "USER 65532")
    check('ENTRYPOINT ["/rollout-guard"]' in lines, "ENTRYPOINT /rollout-guard")
    check(any("unknown-linux-musl" in l for l in lines), "static musl build")
    check(any("--release" in l and "--locked" in l for l in lines), "cargo build --release --locked")
    with open(os.path.join(CHART, "templates", "deployment.yaml")) as f:
        dep = f.read()
    check("command:" not in dep, "the chart must rely on the image ENTRYPOINT (args only)")
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        ignored = {l.strip().rstrip("/") for l in f if l.strip() and not l.startswith("#")}
    check({"target", ".venv", ".tools", ".git"} <= ignored, f".dockerignore {ignored}")
    uid = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))["securityContext"]["runAsUser"]
    check(uid == 65532, "chart runAsUser matches the image user")
    return "multi-stage, distroless static nonroot, ENTRYPOINT matches the chart"


def case_package(helm, tmp):
    """helm package keeps the policies, and the packaged chart renders like the directory."""
    out = os.path.join(tmp, "pkg-" + os.path.basename(os.path.dirname(helm)))
    os.makedirs(out, exist_ok=True)
    p = run([helm, "package", CHART, "-d", out])
    check(p.returncode == 0, f"helm package: {p.stderr}")
    tgz = [f for f in os.listdir(out) if f.endswith(".tgz")]
    check(len(tgz) == 1, f"package output {tgz}")
    vf = write_values(tmp, "pkg", {})
    a = run([helm, "template", RELEASE, os.path.join(out, tgz[0]), "-n", NAMESPACE, "-f", vf])
    b = helm_template(helm, vf)
    check(a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr)
    cm = lambda t: one(parse_docs(t), "ConfigMap")
    check(cm(a.stdout) == cm(b.stdout), "packaged chart renders other policies")
    return tgz[0]


# What the fake API server's discovery advertises: every kind the chart renders.
DISCOVERY = {
    "v1": [("secrets", "Secret", True), ("services", "Service", True), ("configmaps", "ConfigMap", True),
           ("serviceaccounts", "ServiceAccount", True), ("namespaces", "Namespace", False)],
    "apps/v1": [("deployments", "Deployment", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "rbac.authorization.k8s.io/v1": [("clusterroles", "ClusterRole", False),
                                     ("clusterrolebindings", "ClusterRoleBinding", False)],
    "admissionregistration.k8s.io/v1": [
        ("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False),
        ("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False)],
}


class FakeAPIServer:
    """Just enough of a Kubernetes API server on 127.0.0.1 for Helm's `lookup`
    (discovery, /version, GET of the Secrets it holds), so the upgrade path of
    the self-signed mode is tested without a cluster."""

    def __init__(self, secrets):
        self.secrets = secrets  # {(namespace, name): Secret}
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.split("?")[0]
                fake.requests.append(path)
                parts = path.strip("/").split("/")
                if path == "/version":
                    return self.reply(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0",
                                            "platform": "linux/amd64"})
                if path == "/api":
                    return self.reply(200, {"kind": "APIVersions", "versions": ["v1"],
                                            "serverAddressByClientCIDRs": [
                                                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
                if path == "/apis":
                    groups = {}
                    for gv in DISCOVERY:
                        if "/" in gv:
                            g, v = gv.split("/")
                            groups.setdefault(g, []).append({"groupVersion": gv, "version": v})
                    return self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                        {"name": g, "versions": vs, "preferredVersion": vs[0]} for g, vs in groups.items()]})
                gv = "/".join(parts[1:]) if parts[0] == "apis" and len(parts) == 3 else \
                    parts[1] if parts[0] == "api" and len(parts) == 2 else None
                if gv in DISCOVERY:
                    return self.reply(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                                            "resources": [{"name": n, "singularName": k.lower(), "namespaced": ns,
                                                           "kind": k, "verbs": ["get", "list"]}
                                                          for n, k, ns in DISCOVERY[gv]]})
                if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
                    found = fake.secrets.get((parts[3], parts[5]))
                    if found:
                        return self.reply(200, found)
                self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "reason": "NotFound", "code": 404})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, tmp):
        port = self.server.server_address[1]
        path = os.path.join(tmp, f"kubeconfig-{port}")
        with open(path, "w") as f:
            yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "fake", "user": {"token": "test"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            }, f)
        os.chmod(path, 0o600)
        return path


def case_self_signed_kept_on_upgrade(helm, tmp):
    """With the Secret already in the cluster (as after a first install), the
    chart reuses it byte for byte and puts its ca.crt in both webhooks; a
    Secret missing a key is replaced by a fresh, complete one."""
    vf = write_values(tmp, "upgrade", {})
    first = helm_template(helm, vf)
    check(first.returncode == 0, first.stderr)
    installed = one(parse_docs(first.stdout), "Secret")
    # As Helm leaves it after `helm install` (Helm 4 checks this ownership).
    installed["metadata"]["annotations"] = {"meta.helm.sh/release-name": RELEASE,
                                            "meta.helm.sh/release-namespace": NAMESPACE}
    name = installed["metadata"]["name"]
    with FakeAPIServer({(NAMESPACE, name): installed}) as api:
        p = helm_template(helm, vf, ["--dry-run=server", "--disable-openapi-validation", "--kubeconfig", api.kubeconfig(tmp)])
        check(p.returncode == 0, f"helm template --dry-run=server: {p.stderr}")
        docs = parse_docs(p.stdout)
        check(f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}" in api.requests,
              f"the chart never looked the Secret up: {api.requests}")
        again = one(docs, "Secret")
        check(again["data"] == installed["data"], "upgrade generated a new certificate instead of reusing it")
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            check(one(docs, kind)["webhooks"][0]["clientConfig"]["caBundle"] == installed["data"]["ca.crt"],
                  f"{kind} caBundle is not the kept CA")
    broken = copy.deepcopy(installed)
    del broken["data"]["tls.key"]
    with FakeAPIServer({(NAMESPACE, name): broken}) as api:
        p = helm_template(helm, vf, ["--dry-run=server", "--disable-openapi-validation", "--kubeconfig", api.kubeconfig(tmp)])
        check(p.returncode == 0, p.stderr)
        fresh = one(parse_docs(p.stdout), "Secret")
        check(set(fresh["data"]) == {"ca.crt", "tls.crt", "tls.key"}
              and fresh["data"]["ca.crt"] != installed["data"]["ca.crt"], "an incomplete Secret must be replaced")
        check_self_signed(fresh, FULLNAME)
    return "lookup reuses the Secret and its CA"


def main():
    results = {"passed": 0, "failed": 0, "skipped": 0}
    per_helm = {}

    def record(label, fn, *args, helm_name=None):
        t0 = time.time()
        try:
            note = fn(*args)
            if isinstance(note, str) and note.startswith("SKIP"):
                results["skipped"] += 1
                print(f"skip  {label}: {note[5:].strip()}")
                return
            results["passed"] += 1
            if helm_name:
                per_helm[helm_name] = per_helm.get(helm_name, 0) + 1
            print(f"ok    {label} ({note}, {time.time() - t0:.1f}s)")
        except Fail as e:
            results["failed"] += 1
            print(f"FAIL  {label}: {e}")
        except Exception:
            results["failed"] += 1
            print(f"FAIL  {label}: unexpected error\n{traceback.format_exc()}")

    print(f"helm tests: chart {os.path.relpath(CHART, ROOT)}, Kubernetes schemas {', '.join(KUBE_VERSIONS)}")
    record("policies in sync with policies/", case_policies_in_sync)
    record("README lists every value", case_readme_lists_every_value)
    record("Dockerfile conventions", case_dockerfile)
    with tempfile.TemporaryDirectory() as tmp:
        for helm_name, helm in HELMS.items():
            if not os.access(helm, os.X_OK):
                record(f"{helm_name}: binary", lambda: (_ for _ in ()).throw(
                    Fail(f"{helm} missing: run scripts/install-helm.sh")))
                continue
            version = run([helm, "version", "--short"]).stdout.strip()
            print(f"--- {helm_name} {version}")
            for name, spec in combos().items():
                record(f"{helm_name}: lint {name}", case_lint, helm, tmp, name, spec["values"],
                       helm_name=helm_name)
                record(f"{helm_name}: render {name}", case_render, helm, tmp, name, spec,
                       helm_name=helm_name)
            for name, (values, fragment) in NEGATIVE.items():
                record(f"{helm_name}: refuse {name}", case_negative, helm, tmp, name, values, fragment,
                       helm_name=helm_name)
            record(f"{helm_name}: kubeVersion constraint", case_kube_version, helm, tmp, helm_name=helm_name)
            record(f"{helm_name}: evaluation API auth", case_api_auth, helm, tmp, helm_name=helm_name)
            record(f"{helm_name}: background audit defaults and RBAC", case_audit_defaults, helm, tmp,
                   helm_name=helm_name)
            record(f"{helm_name}: kubernetes-validate CLI", case_cli_validate, helm, tmp, helm_name=helm_name)
            record(f"{helm_name}: package", case_package, helm, tmp, helm_name=helm_name)
            record(f"{helm_name}: self-signed CA kept on upgrade", case_self_signed_kept_on_upgrade, helm, tmp,
                   helm_name=helm_name)
    print("per Helm version: " + ", ".join(f"{k} {v} passed" for k, v in per_helm.items()))
    line = f"helm: {results['passed']} passed, {results['failed']} failed"
    if results["skipped"]:
        line += f", {results['skipped']} skipped"
    print(line)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
