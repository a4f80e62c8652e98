//! The Gateway API conformance suite's manifests through `check`'s evaluation, as the suite
//! applies them: the base manifests first (`base/manifests.yaml`, `mesh-base/manifests.yaml`,
//! judged as `check` judges them), then each test file over them (`tests/*.yaml` over the base,
//! `mesh/*.yaml` over the mesh base), as applying it to a cluster holding the base would.
//!
//! The suite creates every one of these objects and then asserts their status, so a webhook
//! that denies any of them breaks a conformant cluster: nothing may be denied. The routes the
//! suite expects broken (its Go tests assert `Accepted: False` or `ResolvedRefs: False` with a
//! reason; `expectations.txt` lists the reasons per test file) must be flagged with a finding
//! naming that reason, as far as a static checker can know it.
//!
//! The corpus is not part of this repository: it is read from `../shared` next to the project
//! when present (CI and developers), and the test says plainly that it skipped otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rollout_guard::check::{check_documents, Decision, ObjectReport};
use rollout_guard::evaluate::{evaluate, Cluster, Options, Requester};
use rollout_guard::manifest::read_paths;
use rollout_guard::policy::load::embedded_default;
use rollout_guard::policy::Mode;
use rollout_guard::store::Store;

const CORPUS: &str = "../shared/corpora/gateway-api-conformance";

/// Reasons the suite expects that no static reading of these manifests can confirm, by test
/// file: the route's parent is a ListenerSet, which the store does not keep (its listeners
/// decide), so the route is taken to attach as written.
const UNKNOWABLE: &[(&str, &str)] = &[(
    "listenerset-allowed-routes-namespaces.go",
    "NotAllowedByListeners",
)];

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    dir.join("expectations.txt").is_file().then_some(dir)
}

/// Each base with its test files, as the suite applies them.
fn suites(corpus: &Path) -> Vec<(PathBuf, Vec<PathBuf>)> {
    [("base", "tests"), ("mesh-base", "mesh")]
        .into_iter()
        .map(|(base, tests)| {
            let mut files: Vec<PathBuf> = std::fs::read_dir(corpus.join(tests))
                .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            files.retain(|f| f.extension().is_some_and(|e| e == "yaml"));
            files.sort();
            (corpus.join(base).join("manifests.yaml"), files)
        })
        .collect()
}

/// What one conformance test (one Go file) expects of its manifests: the route reasons of its
/// `RouteReason…` tokens in expectations.txt (`go file | test files | conditions`), each to be
/// found on some HTTPRoute of its test files.
struct Expectation {
    go: String,
    files: Vec<String>,
    reasons: Vec<String>,
}

fn expectations(corpus: &Path) -> Vec<Expectation> {
    let text = std::fs::read_to_string(corpus.join("expectations.txt")).unwrap_or_default();
    let mut expected = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [go, files, conditions] = fields[..] else {
            continue;
        };
        let mut reasons: Vec<String> = conditions
            .split_whitespace()
            .filter_map(|token| token.strip_prefix("RouteReason"))
            .map(|token| token.split('×').next().unwrap_or(token).to_owned())
            .filter(|reason| reason != "Accepted" && reason != "ResolvedRefs")
            .collect();
        reasons.dedup();
        if !reasons.is_empty() {
            expected.push(Expectation {
                go: go.to_owned(),
                files: files.split_whitespace().map(str::to_owned).collect(),
                reasons,
            });
        }
    }
    expected
}

fn findings(report: &ObjectReport) -> impl Iterator<Item = String> + '_ {
    report.warnings.iter().cloned().chain(
        report
            .denials
            .iter()
            .map(|d| format!("{}: {}", d.source, d.message)),
    )
}

#[test]
fn conformance_manifests_are_never_denied_and_expected_breakage_is_flagged() {
    let Some(corpus) = corpus() else {
        eprintln!(
            "SKIPPED: the Gateway API conformance corpus is not at {CORPUS} (relative to the \
             project root); nothing was checked"
        );
        return;
    };
    let suites = suites(&corpus);
    let file_count: usize = suites.iter().map(|(_, files)| files.len()).sum();
    assert!(
        file_count > 100,
        "only {file_count} test files found under {}",
        corpus.display()
    );
    let expected = expectations(&corpus);
    let default = embedded_default();
    // The goal is every rule in `enforce`. An HTTPRoute's verdict depends on the httpRoute rule
    // alone, which the default policy already enforces (every check at its own severity), so
    // judging with the default policy is judging in enforce.
    for policy in default.policies() {
        assert_eq!(policy.spec.rules.http_route.mode, Mode::Enforce);
        assert!(policy.spec.rules.http_route.checks.is_empty());
    }

    let mut false_denials = Vec::new();
    let mut routes = 0;
    let mut flagged = Vec::new();
    let mut missed = Vec::new();
    let mut by_file: BTreeMap<String, Vec<(String, Vec<String>)>> = BTreeMap::new();
    let requester = Requester::default();
    let mut judge = |relative: &str, reports: &[ObjectReport]| {
        for report in reports {
            if report.decision == Decision::Denied || report.decision == Decision::Invalid {
                false_denials.push(format!(
                    "{relative}: {} {}/{} {:?}: {:?}{}",
                    report.kind,
                    report.namespace,
                    report.name,
                    report.decision,
                    report.denials,
                    report.error.as_deref().unwrap_or_default()
                ));
            }
        }
    };
    for (base, files) in &suites {
        let base_documents = read_paths(std::slice::from_ref(base))
            .unwrap_or_else(|e| panic!("{}: {e}", base.display()));
        judge(
            &base.display().to_string(),
            &check_documents(&base_documents, &default),
        );
        let (applied, warnings) = Store::from_documents(&base_documents);
        assert!(warnings.is_empty(), "{warnings:?}");
        for file in files {
            let relative = file
                .strip_prefix(&corpus)
                .unwrap_or(file)
                .display()
                .to_string();
            let documents = read_paths(std::slice::from_ref(file))
                .unwrap_or_else(|e| panic!("{relative}: {e}"));
            let reports = evaluate(
                &documents,
                &default,
                &Options {
                    cluster: Cluster::ManifestsOver(&applied),
                    own_namespace: None,
                    requester: &requester,
                    record_consulted: false,
                    now: std::time::SystemTime::now(),
                },
            )
            .objects;
            judge(&relative, &reports);
            let in_file: Vec<&ObjectReport> =
                reports.iter().filter(|r| r.kind == "HTTPRoute").collect();
            routes += in_file.len();
            // Findings of the file's HTTPRoutes, by route.
            let routes_found: Vec<(String, Vec<String>)> = in_file
                .iter()
                .map(|r| (r.name.clone(), findings(r).collect()))
                .collect();
            if !routes_found.is_empty() {
                by_file.insert(relative, routes_found);
            }
        }
    }
    let mut now_knowable = Vec::new();
    for expectation in &expected {
        let routes: Vec<&(String, Vec<String>)> = expectation
            .files
            .iter()
            .filter_map(|f| by_file.get(f))
            .flatten()
            .collect();
        if routes.is_empty() {
            continue; // TCPRoute, TLSRoute, UDPRoute, GRPCRoute only: not rollout-guard's.
        }
        for reason in &expectation.reasons {
            let needle = format!("({reason})");
            let hit = routes
                .iter()
                .find(|(_, found)| found.iter().any(|f| f.contains(&needle)));
            let unknowable = UNKNOWABLE.contains(&(expectation.go.as_str(), reason.as_str()));
            match (hit, unknowable) {
                (Some((route, _)), false) => {
                    flagged.push(format!("{}: {route} {reason}", expectation.go))
                }
                (Some((route, _)), true) => now_knowable.push(format!(
                    "{}: {route} is flagged {needle}: take it off UNKNOWABLE",
                    expectation.go
                )),
                (None, true) => {
                    eprintln!("not knowable statically: {}: {reason}", expectation.go)
                }
                (None, false) => missed.push(format!(
                    "{} ({}): no HTTPRoute flagged {needle}; findings: {routes:#?}",
                    expectation.go,
                    expectation.files.join(" ")
                )),
            }
        }
    }
    eprintln!(
        "conformance corpus: {} files, {routes} HTTPRoutes checked; {} expected-broken reasons \
         flagged, {} missed; {} false denials",
        file_count,
        flagged.len(),
        missed.len(),
        false_denials.len()
    );
    assert!(
        false_denials.is_empty(),
        "objects the conformance suite creates were denied:\n{}",
        false_denials.join("\n")
    );
    assert!(
        missed.is_empty(),
        "expected-broken routes not flagged:\n{}",
        missed.join("\n")
    );
    assert!(now_knowable.is_empty(), "{}", now_knowable.join("\n"));
    assert!(
        flagged.len() >= 10,
        "too few expected-broken routes flagged ({flagged:?}): is expectations.txt read?"
    );
}
