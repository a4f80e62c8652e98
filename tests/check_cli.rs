//! `rollout-guard check` as a user runs it: the real binary over examples/manifests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
        .current_dir(repo())
        .arg("check")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// A scratch file under the system temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rollout-guard-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn default_policy_over_the_examples_denies_nothing() {
    let output = check(&["-f", "examples/manifests"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}\n{}", stderr(&output));
    let lines: Vec<&str> = text.lines().collect();
    let line_starting = |prefix: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{text}"))
            .to_string()
    };
    // Mutate never denies: Deployments are allowed, possibly with a patch.
    for prefix in [
        "examples/manifests/nginx.yaml:3 Deployment default/nginx-deployment: ",
        "examples/manifests/helm-recreate.yaml:3 Deployment shop/billing-worker: ",
        "examples/manifests/all-down.yaml:2 Deployment shop/api: ",
        "examples/manifests/web-app.yaml:15 Deployment shop/storefront: ",
    ] {
        let line = line_starting(prefix);
        assert!(
            line.ends_with(": ALLOWED") || line.ends_with(": PATCHED"),
            "{line}"
        );
    }
    line_starting("examples/manifests/web-app.yaml:3 Service shop/storefront: ");
    line_starting("examples/manifests/web-app.yaml:41 Ingress shop/storefront: ");
    line_starting("examples/manifests/web-app.yaml:60 ConfigMap shop/storefront-config: not checked (ConfigMap is not a kind rollout-guard handles)");
    line_starting("examples/manifests/kube-system.yaml:3 Deployment kube-system/coredns: not checked (namespace kube-system is never intercepted)");
    // The API server's defaults are applied (and said so) before review.
    assert!(text.contains("  defaults applied as the API server would before webhooks run: spec.strategy.type, spec.strategy.rollingUpdate.maxUnavailable, spec.strategy.rollingUpdate.maxSurge, spec.revisionHistoryLimit, spec.progressDeadlineSeconds\n"), "{text}");
    assert!(text.contains("\n8 objects: 0 denied, "), "{text}");
    assert!(
        text.contains("(policies: embedded default, digest "),
        "{text}"
    );
}

/// The webhook sees defaulted Deployments, so the default policy's targets replace the API
/// server's 25% maxUnavailable even though the manifest never mentions it. (Needs the
/// rolling-update rule.)
#[test]
fn defaults_are_what_the_rules_judge() {
    let output = check(&["-f", "examples/manifests/nginx.yaml"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "examples/manifests/nginx.yaml:3 Deployment default/nginx-deployment: PATCHED\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  ~ spec.strategy.rollingUpdate.maxUnavailable: \"25%\" → 0\n"),
        "{text}"
    );
}

/// A policy that enforces rolling-update safety denies a rollout that stops every pod, and the
/// exit code says so. (Needs the rolling-update rule.)
#[test]
fn a_denial_exits_1_with_the_reason() {
    let output = check(&[
        "-f",
        "examples/manifests/all-down.yaml",
        "--policies",
        "tests/fixtures/policies/strict",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}\n{}", stderr(&output));
    assert!(
        text.contains("examples/manifests/all-down.yaml:2 Deployment shop/api: DENIED\n"),
        "{text}"
    );
    assert!(text.contains("  denied [rollingUpdate."), "{text}");
    assert!(text.contains("\n1 object: 1 denied, "), "{text}");
}

#[test]
fn json_output_is_one_document() {
    let output = check(&["-f", "examples/manifests", "--output", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON document");
    let objects = report["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 8);
    assert_eq!(report["summary"]["objects"], 8);
    assert_eq!(report["exitCode"], 0);
    for object in objects {
        for field in [
            "location",
            "kind",
            "namespace",
            "name",
            "allowed",
            "warnings",
            "denials",
            "patch",
            "exempt",
            "decision",
        ] {
            assert!(object.get(field).is_some(), "{field} missing in {object}");
        }
        assert!(object["patch"].is_array());
    }
    let config_map = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    assert_eq!(config_map["decision"], "not-checked");
    assert_eq!(config_map["exempt"], "kind");
    assert_eq!(config_map["location"], "examples/manifests/web-app.yaml:60");
    let nginx = objects
        .iter()
        .find(|o| o["name"] == "nginx-deployment")
        .unwrap();
    assert_eq!(nginx["namespace"], "default");
    assert_eq!(nginx["allowed"], true);
    assert_eq!(nginx["defaultsApplied"].as_array().unwrap().len(), 5);
}

#[test]
fn yaml_syntax_error_reports_file_and_line_and_exits_2() {
    let broken = TempFile::new(
        "broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: [unclosed\n",
    );
    let output = check(&["-f", broken.0.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let error = stderr(&output);
    // The unclosed list starts on line 8; the parser notices at the end of the file (line 9).
    let at = |line: usize| format!("{}:{line}: ", broken.0.display());
    assert!(error.contains(&at(8)) || error.contains(&at(9)), "{error}");
}

/// One broken file, one broken document and one missing path do not hide the verdicts of the
/// rest: every readable object is judged, each unreadable thing is reported with file:line, and
/// the exit code is 2 at the end (also in the JSON report).
#[test]
fn every_readable_manifest_is_evaluated_and_the_unreadable_reported() {
    let broken = TempFile::new(
        "half-broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: before}\n---\nkind: [unclosed\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: after}\n",
    );
    let missing = "examples/manifests/does-not-exist.yaml";
    let args = [
        "-f",
        missing,
        broken.0.to_str().unwrap(),
        "examples/manifests/all-down.yaml",
        "--policies",
        "tests/fixtures/policies/strict",
    ];
    let output = check(&args);
    let (text, error) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(2), "{text}\n{error}");
    assert!(
        text.contains("ConfigMap default/before: not checked"),
        "{text}"
    );
    assert!(
        text.contains("ConfigMap default/after: not checked"),
        "{text}"
    );
    // The denial is still reported, though the exit code says "unreadable input" first.
    assert!(text.contains("Deployment shop/api: DENIED"), "{text}");
    assert!(text.contains(", 2 unreadable (policies: "), "{text}");
    assert!(error.contains(&format!("error: {missing}: ")), "{error}");
    let at = |line: usize| format!("error: {}:{line}: ", broken.0.display());
    assert!(error.contains(&at(5)) || error.contains(&at(6)), "{error}");

    let mut json_args = args.to_vec();
    json_args.extend(["-o", "json"]);
    let output = check(&json_args);
    assert_eq!(output.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["summary"]["objects"], 3);
    assert_eq!(report["summary"]["denied"], 1);
    assert_eq!(report["summary"]["unreadable"], 2);
    assert_eq!(report["exitCode"], 2);
    let unreadable = report["unreadable"].as_array().unwrap();
    assert_eq!(unreadable[0]["file"], missing);
    assert!(unreadable[0]["line"].is_null());
    assert!(unreadable[1]["line"]
        .as_u64()
        .is_some_and(|l| (5..=6).contains(&l)));
}

#[test]
fn unreadable_inputs_exit_2() {
    let missing = check(&["-f", "examples/manifests/does-not-exist.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("does-not-exist.yaml"),
        "{}",
        stderr(&missing)
    );

    let bad_policies = check(&[
        "-f",
        "examples/manifests",
        "--policies",
        "tests/fixtures/policies/invalid",
    ]);
    assert_eq!(bad_policies.status.code(), Some(2));
    assert!(
        stderr(&bad_policies)
            .contains("structure.yaml:15: spec.rules.rollingUpdate.mode: unknown variant"),
        "{}",
        stderr(&bad_policies)
    );

    let usage = check(&[]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "clap reports usage errors with 2"
    );
}

#[test]
fn objects_that_are_not_kubernetes_objects_are_invalid() {
    let odd = TempFile::new(
        "odd.yaml",
        "just: a mapping\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: typed-wrong}\nspec:\n  replicas: many\n",
    );
    let output = check(&["-f", odd.0.to_str().unwrap()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains(":1 document: INVALID: not a Kubernetes object"),
        "{text}"
    );
    assert!(
        text.contains(":3 Deployment default/typed-wrong: INVALID: "),
        "{text}"
    );
}

/// The manifests given together are the cluster state: a canary is judged against the main
/// Ingress in another file of the same run.
#[test]
fn cross_object_rules_see_the_other_manifests() {
    let paired = check(&["-f", "tests/fixtures/check/canary-pair"]);
    let text = stdout(&paired);
    assert_eq!(paired.status.code(), Some(0), "{text}\n{}", stderr(&paired));
    assert!(text.contains("Ingress shop/web-canary: ALLOWED"), "{text}");

    // A canary without its main is not certainly broken (the main may already be in the
    // cluster, or come next): allowed, with a warning that names the missing main.
    let orphan = check(&["-f", "tests/fixtures/check/canary-without-main"]);
    let text = stdout(&orphan);
    assert_eq!(orphan.status.code(), Some(0), "{text}\n{}", stderr(&orphan));
    assert!(text.contains("Ingress shop/web-canary: ALLOWED"), "{text}");
    assert!(
        text.contains("ingressCanary.missingMain: no main (class nginx) for shop.example.com/checkout (Prefix) yet"),
        "{text}"
    );

    // ingress-nginx's documented two-file setup, with canary.yaml sorting first: whatever order
    // the files come in, the canary has its main (and ImplementationSpecific reads as Prefix).
    let docs = check(&["-f", "tests/fixtures/check/canary-before-main"]);
    let text = stdout(&docs);
    assert_eq!(docs.status.code(), Some(0), "{text}\n{}", stderr(&docs));
    assert!(text.contains("Ingress shop/canary: ALLOWED"), "{text}");
    assert!(!text.contains("ingressCanary"), "{text}");
}

/// Services whose pods an Argo Rollout or a StatefulSet runs (no Deployment): `check` finds
/// those workloads in the other manifests and warns about none of the Services.
#[test]
fn services_of_rollouts_and_stateful_sets_select_their_pods() {
    let output = check(&["-f", "tests/fixtures/check/argo-rollouts-bluegreen"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}\n{}", stderr(&output));
    for service in [
        "rollout-bluegreen-active",
        "rollout-bluegreen-preview",
        "db",
    ] {
        assert!(
            text.contains(&format!("Service shop/{service}: ALLOWED")),
            "{service}: {text}"
        );
    }
    assert!(!text.contains("blueGreen"), "{text}");
}

/// ingress-nginx's own canary e2e scenarios (rebuilt in tests/fixtures/check/ingress-nginx-e2e):
/// each works in ingress-nginx, so nothing is denied; the side effects worth knowing are warned.
#[test]
fn ingress_nginx_e2e_scenarios_are_never_denied() {
    let output = check(&["-f", "tests/fixtures/check/ingress-nginx-e2e"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}\n{}", stderr(&output));
    let canary_warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("warning: rollout-guard ingressCanary."))
        .collect();
    for expected in [
        "ingressCanary.header: both canary-by-header-value and canary-by-header-pattern",
        "ingressCanary.noRouting",
        "ingressCanary.weight: canary-weight 100 is at least the total 100",
        "ingressCanary.weight: canary-weight 1000 is at least the total 1000",
        "ingressCanary.sessionAffinity: main Ingress e2e-affinity/foo",
        "ingressCanary.defaultBackend",
        "ingressCanary.missingMain: no main (class nginx) for foo.e2e-other-domain.example/",
        "ingressCanary.missingMain: no main (class nginx) for foo.e2e-two-paths.example/foo (Prefix), foo.e2e-two-paths.example/bar (Prefix)",
    ] {
        assert!(
            canary_warnings.iter().any(|w| w.contains(expected)),
            "no warning {expected:?} in:\n{text}"
        );
    }
    assert_eq!(canary_warnings.len(), 8, "{canary_warnings:#?}");
}

/// Ingresses in the v1beta1 API versions removed in Kubernetes 1.22 are named as such and not
/// counted as checked: the run exits 2 instead of passing with nothing checked.
#[test]
fn removed_ingress_api_versions_are_not_passed_as_checked() {
    let output = check(&["-f", "tests/fixtures/check/ingress-v1beta1"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}\n{}", stderr(&output));
    for name in ["Ingress shop/web:", "Ingress shop/web-canary:"] {
        let line = text
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no line for {name} in:\n{text}"));
        assert!(
            line.contains("NOT CHECKED") && line.contains("not served since Kubernetes 1.22"),
            "{line}"
        );
    }
    assert!(text.contains("Service shop/web-v1: ALLOWED"), "{text}");
}

/// The strategy examples: everything sound is allowed, the broken HTTPRoute is denied for its
/// regex and warned about its implicit weight, and the canary split put in a second route with
/// the same match as the main route is denied (the main route takes its requests).
#[test]
fn strategy_examples_get_the_documented_verdicts() {
    let output = check(&["-f", "examples/strategies"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}\n{}", stderr(&output));
    assert!(text.contains("HTTPRoute store/search: DENIED"), "{text}");
    assert!(text.contains("denied [httpRoute.neverMatches]"), "{text}");
    assert!(text.contains("httpRoute.implicitWeight"), "{text}");
    assert!(text.contains("90.9%"), "{text}");
    assert!(text.contains("HTTPRoute store/checkout: ALLOWED"), "{text}");
    assert!(text.contains("Service shop/shop: ALLOWED"), "{text}");
    assert!(!text.contains("deploymentSiblings"), "{text}");
    assert!(
        text.contains("HTTPRoute store/cart-canary: DENIED"),
        "{text}"
    );
    assert!(
        text.contains("denied [httpRoute.shadowedMatch]: HTTPRoute store/cart has"),
        "{text}"
    );
    assert!(text.contains("HTTPRoute store/cart: ALLOWED"), "{text}");
    assert!(text.contains("\n16 objects: 2 denied, "), "{text}");
}
