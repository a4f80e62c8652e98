//! HTTPRoutes given to `check` as several files, as an apply of a directory sends them: the
//! evaluation `check` runs (every document against the store of all of them) over
//! `tests/fixtures/check/httproute-*`.

use std::path::Path;

use rollout_guard::check::{check_documents, exit_code, Decision, ObjectReport};
use rollout_guard::manifest::read_paths;
use rollout_guard::policy::load::embedded_default;

fn check_dir(name: &str) -> Vec<ObjectReport> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/check")
        .join(name);
    let documents = read_paths(&[dir]).expect("readable fixture directory");
    check_documents(&documents, &embedded_default())
}

fn route<'a>(reports: &'a [ObjectReport], name: &str) -> &'a ObjectReport {
    reports
        .iter()
        .find(|r| r.kind == "HTTPRoute" && r.name == name)
        .unwrap_or_else(|| panic!("no HTTPRoute {name} in {reports:#?}"))
}

fn route_warnings(report: &ObjectReport) -> Vec<&String> {
    report
        .warnings
        .iter()
        .filter(|w| w.contains("httpRoute."))
        .collect()
}

/// route.yaml sorts before services.yaml, as `kubectl apply -f dir/` creates them; the directory
/// is one apply, so the split sees both Services and nothing is reported.
#[test]
fn a_directory_is_judged_as_one_apply() {
    let reports = check_dir("httproute-apply-dir");
    let web = route(&reports, "web");
    assert_eq!(web.decision, Decision::Allowed, "{web:#?}");
    assert!(route_warnings(web).is_empty(), "{web:#?}");
    assert_eq!(exit_code(&reports), 0);
}

/// The canary Service is missing: a warning that names it, exit 0.
#[test]
fn a_missing_canary_service_warns_and_names_it() {
    let reports = check_dir("httproute-missing-service");
    let web = route(&reports, "web");
    assert_eq!(web.decision, Decision::Allowed, "{web:#?}");
    let warnings = route_warnings(web);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("httpRoute.invalidBackend")
            && warnings[0].contains("Service shop/web-v2 does not exist (BackendNotFound)")
            && warnings[0].contains("10.0% share gets 500"),
        "{warnings:#?}"
    );
    assert_eq!(exit_code(&reports), 0);
}

/// A split in a second route with the main route's match: the main route comes first (created
/// together: by namespace/name) and takes every request, so the split is denied; the main route
/// is told it takes them.
#[test]
fn a_split_in_a_second_route_with_the_same_match_is_denied() {
    let reports = check_dir("httproute-split-in-second-route");
    let canary = route(&reports, "web-canary");
    assert_eq!(canary.decision, Decision::Denied, "{canary:#?}");
    assert!(
        canary
            .denials
            .iter()
            .any(|d| d.source == "httpRoute.shadowedMatch"
                && d.message
                    .contains("HTTPRoute shop/web has the identical match and comes first")),
        "{canary:#?}"
    );
    let main = route(&reports, "web");
    assert_eq!(main.decision, Decision::Allowed, "{main:#?}");
    assert!(
        route_warnings(main)
            .iter()
            .any(|w| w.contains("shop/web-canary has the identical match and comes after")),
        "{main:#?}"
    );
    assert_eq!(exit_code(&reports), 1);
}

/// The same route twice (same match, same backend): nothing to report on either.
#[test]
fn identical_routes_split_nothing() {
    let reports = check_dir("httproute-identical-routes");
    for name in ["web", "web-copy"] {
        let report = route(&reports, name);
        assert_eq!(report.decision, Decision::Allowed, "{report:#?}");
        assert!(route_warnings(report).is_empty(), "{report:#?}");
    }
    assert_eq!(exit_code(&reports), 0);
}
