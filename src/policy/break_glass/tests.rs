use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::*;
use crate::policy::engine::{Denial, RecordedFinding};
use crate::policy::load::{parse_sources, PolicyErrors, Source};
use crate::policy::view::EmptyView;
use crate::testing::store_of;

/// 2026-06-01T00:00:00Z: the clock of every case (grants in the table expire around it).
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

fn policy(grants: Value) -> RolloutPolicy {
    serde_json::from_value(json!({"apiVersion": "rollout-guard.io/v1alpha1",
        "kind": "RolloutPolicy", "metadata": {"name": "shop-policy"},
        "spec": {"breakGlass": grants}}))
    .expect("test policy parses")
}

/// The grant most cases use: alice, the sre-oncall group and the ops/incident-bot service
/// account may bypass ingressCanary in shop.
fn oncall() -> Value {
    json!({"name": "oncall", "rules": ["ingressCanary"], "users": ["alice"],
        "groups": ["sre-oncall"], "serviceAccounts": ["ops/incident-bot"],
        "namespaces": {"names": ["shop"]}})
}

/// A verdict denied by `sources`, each with its recorded finding.
fn denied(sources: &[&'static str]) -> Verdict {
    let mut verdict = Verdict::default();
    for source in sources {
        let (rule, check) = source.split_once('.').unwrap();
        verdict.denials.push(Denial {
            source: (*source).to_owned(),
            message: format!("{check} is broken"),
        });
        verdict.findings.push(RecordedFinding {
            rule,
            check,
            outcome: FindingOutcome::Denied,
            message: format!("{check} is broken"),
            patch: Vec::new(),
        });
    }
    verdict
}

struct Case {
    name: &'static str,
    grants: Value,
    user: &'static str,
    groups: &'static [&'static str],
    namespace: &'static str,
    labels: &'static [(&'static str, &'static str)],
    annotation: Option<&'static str>,
    denials: &'static [&'static str],
    /// `rule.check=result` of every override recorded, in order.
    expect: &'static [&'static str],
    /// Text some warning must contain (empty: no warning at all).
    warning: &'static str,
}

const BASE: Case = Case {
    name: "",
    grants: Value::Null,
    user: "alice",
    groups: &[],
    namespace: "shop",
    labels: &[],
    annotation: Some("ingressCanary.mainRemoved: INC-4411 roll back shop"),
    denials: &["ingressCanary.mainRemoved"],
    expect: &["ingressCanary.mainRemoved=bypassed"],
    warning: "ingressCanary.mainRemoved bypassed by alice (grant oncall): INC-4411 roll back shop",
};

fn run_case(case: &Case, view: &dyn ClusterView) -> (Verdict, Vec<String>) {
    let grants = if case.grants.is_null() {
        json!([oncall()])
    } else {
        case.grants.clone()
    };
    let policy = policy(grants);
    let user = UserInfo {
        username: Some(case.user.to_owned()),
        groups: Some(case.groups.iter().map(|g| (*g).to_owned()).collect()),
        ..UserInfo::default()
    };
    let annotations: BTreeMap<String, String> = case
        .annotation
        .map(|value| (OVERRIDE_ANNOTATION.to_owned(), value.to_owned()))
        .into_iter()
        .collect();
    let labels: BTreeMap<String, String> = case
        .labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut verdict = denied(case.denials);
    apply(
        &mut verdict,
        &policy,
        &Request {
            user: &user,
            namespace: case.namespace,
            labels: Some(&labels),
            annotations: Some(&annotations),
            now: now(),
        },
        view,
    );
    let recorded = verdict
        .break_glass
        .iter()
        .map(|o| format!("{}={}", o.source, o.outcome.result()))
        .collect();
    (verdict, recorded)
}

#[test]
fn overrides_are_honoured_only_for_the_people_and_places_the_policy_names() {
    let shop_namespace = store_of(&[json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "shop", "labels": {"tier": "prod"}}})]);
    let cases = [
        Case {
            name: "a named user bypasses the denial the annotation names",
            ..BASE
        },
        Case {
            name: "a user the policy does not name: the denial stands",
            user: "bob",
            expect: &["ingressCanary.mainRemoved=not-named"],
            warning: "override of ingressCanary.mainRemoved not honoured: bob is not named for it in policy shop-policy (grants: oncall); the denial stands",
            ..BASE
        },
        Case {
            name: "a member of a named group",
            user: "carol",
            groups: &["system:authenticated", "sre-oncall"],
            warning: "bypassed by carol (grant oncall)",
            ..BASE
        },
        Case {
            name: "a named service account, as the API server names it",
            user: "system:serviceaccount:ops:incident-bot",
            warning: "bypassed by system:serviceaccount:ops:incident-bot",
            ..BASE
        },
        Case {
            name: "a service account of that name in another namespace is someone else",
            user: "system:serviceaccount:shop:incident-bot",
            expect: &["ingressCanary.mainRemoved=not-named"],
            warning: "not honoured",
            ..BASE
        },
        Case {
            name: "a user whose name is a named group is not in it",
            user: "sre-oncall",
            expect: &["ingressCanary.mainRemoved=not-named"],
            warning: "not honoured",
            ..BASE
        },
        Case {
            name: "the annotation names another rule",
            annotation: Some("blueGreen: INC-4411"),
            expect: &["ingressCanary.mainRemoved=not-requested"],
            warning: "the annotation names blueGreen, not ingressCanary.mainRemoved",
            ..BASE
        },
        Case {
            name: "the annotation names the rule rather than the check",
            annotation: Some("ingressCanary: INC-4411"),
            warning: "bypassed by alice",
            ..BASE
        },
        Case {
            name: "a grant of one check does not cover the rule's others",
            grants: json!([{"name": "oncall", "rules": ["ingressCanary.crossNamespace"],
                "users": ["alice"]}]),
            expect: &["ingressCanary.mainRemoved=not-covered"],
            warning: "no break-glass grant of policy shop-policy covers it",
            ..BASE
        },
        Case {
            name: "outside the grant's namespaces",
            namespace: "payments",
            expect: &["ingressCanary.mainRemoved=namespace"],
            warning: "grant oncall does not hold in namespace payments",
            ..BASE
        },
        Case {
            name: "namespace labels that match",
            grants: json!([{"name": "oncall", "rules": ["ingressCanary"], "users": ["alice"],
                "namespaces": {"matchLabels": {"tier": "prod"}}}]),
            ..BASE
        },
        Case {
            name: "namespace labels that do not match",
            grants: json!([{"name": "oncall", "rules": ["ingressCanary"], "users": ["alice"],
                "namespaces": {"matchExpressions": [{"key": "tier", "operator": "In",
                    "values": ["staging"]}]}}]),
            expect: &["ingressCanary.mainRemoved=namespace"],
            warning: "grant oncall does not hold in namespace shop",
            ..BASE
        },
        Case {
            name: "the name label holds even for a namespace the view has not seen",
            grants: json!([{"name": "oncall", "rules": ["ingressCanary"], "users": ["alice"],
                "namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "payments"}}}]),
            namespace: "payments",
            ..BASE
        },
        Case {
            name: "other labels of a namespace the view has not seen cannot be confirmed",
            grants: json!([{"name": "oncall", "rules": ["ingressCanary"], "users": ["alice"],
                "namespaces": {"matchLabels": {"tier": "prod"}}}]),
            namespace: "payments",
            expect: &["ingressCanary.mainRemoved=namespace"],
            warning: "the labels of namespace payments are not known",
            ..BASE
        },
        Case {
            name: "an object the grant's objectSelector selects",
            grants: json!([{"name": "oncall", "rules": ["ingressCanary"], "users": ["alice"],
                "objectSelector": {"matchLabels": {"app": "web"}}}]),
            labels: &[("app", "web")],
            ..BASE
        },
        Case {
            name: "an object the grant's objectSelector does not select",
            grants: json!([{"name": "oncall", "rules": ["ingressCanary"], "users": ["alice"],
                "objectSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}}]),
            expect: &["ingressCanary.mainRemoved=object"],
            warning: "grant oncall's objectSelector does not select this object",
            ..BASE
        },
        Case {
            name: "an expired grant",
            grants: json!([{"name": "oncall", "rules": ["ingressCanary"], "users": ["alice"],
                "expires": "2026-05-31T23:59:59Z"}]),
            expect: &["ingressCanary.mainRemoved=expired"],
            warning: "grant oncall expired at 2026-05-31T23:59:59Z",
            ..BASE
        },
        Case {
            name: "a grant that expires later, written with an offset",
            grants: json!([{"name": "oncall", "rules": ["ingressCanary"], "users": ["alice"],
                "expires": "2026-06-01T02:00:00+01:00"}]),
            ..BASE
        },
        Case {
            name: "no reason where the grant requires one",
            annotation: Some("ingressCanary.mainRemoved"),
            expect: &["ingressCanary.mainRemoved=no-reason"],
            warning: "grant oncall requires a reason: \"ingressCanary.mainRemoved: <why>\"",
            ..BASE
        },
        Case {
            name: "no reason where the grant does not require one",
            grants: json!([{"name": "oncall", "rules": ["ingressCanary"], "users": ["alice"],
                "requireReason": false}]),
            annotation: Some("ingressCanary.mainRemoved:"),
            warning: "bypassed by alice (grant oncall): no reason given",
            ..BASE
        },
        Case {
            name: "an annotation that names no rule",
            annotation: Some(": INC-4411"),
            expect: &["ingressCanary.mainRemoved=malformed"],
            warning: "cannot be read: it names no rule",
            ..BASE
        },
        Case {
            name: "an annotation that misspells the rule",
            annotation: Some("ingresCanary: INC-4411"),
            expect: &["ingressCanary.mainRemoved=malformed"],
            warning: "unknown rule \"ingresCanary\"",
            ..BASE
        },
        Case {
            name: "the first grant naming the user does not hold here, the second does",
            grants: json!([oncall(), {"name": "payments-oncall", "rules": ["ingressCanary"],
                "users": ["alice"], "namespaces": {"names": ["pay*"]}}]),
            namespace: "payments",
            warning: "bypassed by alice (grant payments-oncall)",
            ..BASE
        },
        Case {
            name: "only the denials the annotation names are bypassed",
            denials: &["ingressCanary.mainRemoved", "ingressCanary.crossNamespace"],
            expect: &[
                "ingressCanary.mainRemoved=bypassed",
                "ingressCanary.crossNamespace=not-requested",
            ],
            warning: "override of ingressCanary.crossNamespace not honoured: the annotation names ingressCanary.mainRemoved",
            ..BASE
        },
        Case {
            name: "a rule failing closed is bypassed by its rule's name",
            annotation: Some("ingressCanary: store down, INC-4411"),
            denials: &["ingressCanary.error"],
            expect: &["ingressCanary.error=bypassed"],
            warning: "ingressCanary.error bypassed by alice (grant oncall): store down, INC-4411",
            ..BASE
        },
        Case {
            name: "no annotation: nothing to record",
            annotation: None,
            expect: &[],
            warning: "",
            ..BASE
        },
        Case {
            name: "no denial: the annotation is not read",
            denials: &[],
            expect: &[],
            warning: "",
            ..BASE
        },
    ];
    for case in &cases {
        let (verdict, recorded) = run_case(case, &shop_namespace);
        let name = case.name;
        assert_eq!(recorded, case.expect, "{name}");
        let stands: Vec<&str> = case
            .expect
            .iter()
            .filter(|e| !e.ends_with("=bypassed"))
            .map(|e| e.split_once('=').unwrap().0)
            .chain(if case.annotation.is_none() {
                case.denials.to_vec()
            } else {
                Vec::new()
            })
            .collect();
        let denials: Vec<&str> = verdict.denials.iter().map(|d| d.source.as_str()).collect();
        assert_eq!(denials, stands, "{name}: denials left");
        for finding in &verdict.findings {
            let bypassed = case
                .expect
                .contains(&format!("{}=bypassed", finding.source()).as_str());
            let expected = if bypassed {
                FindingOutcome::Bypassed
            } else {
                FindingOutcome::Denied
            };
            assert_eq!(finding.outcome, expected, "{name}: {}", finding.source());
        }
        if case.warning.is_empty() {
            assert!(
                verdict.warnings.is_empty(),
                "{name}: {:?}",
                verdict.warnings
            );
        } else {
            assert!(
                verdict.warnings.iter().any(|w| w.contains(case.warning)),
                "{name}: no warning contains {:?}: {:#?}",
                case.warning,
                verdict.warnings
            );
        }
        for warning in &verdict.warnings {
            assert!(
                warning.starts_with("rollout-guard break-glass: "),
                "{name}: {warning}"
            );
            assert!(warning.chars().count() <= crate::policy::engine::MAX_WARNING_CHARS);
        }
        for record in &verdict.break_glass {
            assert_eq!(record.user, case.user, "{name}");
        }
    }
}

#[test]
fn the_override_annotation_syntax() {
    let ok = |value: &str| parse_override(value).expect(value);
    let parsed = ok(" ingressCanary.mainRemoved ,blueGreen:  INC-1:\n  roll back ");
    assert_eq!(parsed.rules, ["ingressCanary.mainRemoved", "blueGreen"]);
    assert_eq!(parsed.reason, "INC-1: roll back");
    assert!(parsed.names("blueGreen.switchToUnavailable"));
    assert!(parsed.names("ingressCanary.mainRemoved"));
    assert!(!parsed.names("ingressCanary.crossNamespace"));
    assert_eq!(ok("httpRoute").reason, "");
    assert_eq!(ok("httpRoute.error: x").rules, ["httpRoute.error"]);
    for (value, problem) in [
        ("", "names no rule"),
        (" , : why", "names no rule"),
        ("*: everything", "unknown rule \"*\""),
        (
            "ingressCanary.mainRemovd: x",
            "ingressCanary has no check \"mainRemovd\"",
        ),
    ] {
        let error = parse_override(value).expect_err(value);
        assert!(error.contains(problem), "{value:?}: {error}");
    }
}

#[test]
fn a_long_reason_is_cut_and_the_warning_stays_one_short_line() {
    let long = format!("ingressCanary: {}", "x".repeat(2000));
    let policy = policy(json!([oncall()]));
    let user = UserInfo {
        username: Some("alice".to_owned()),
        ..UserInfo::default()
    };
    let annotations = BTreeMap::from([(OVERRIDE_ANNOTATION.to_owned(), long)]);
    let mut verdict = denied(&["ingressCanary.mainRemoved"]);
    apply(
        &mut verdict,
        &policy,
        &Request {
            user: &user,
            namespace: "shop",
            labels: None,
            annotations: Some(&annotations),
            now: now(),
        },
        &EmptyView,
    );
    assert!(verdict.allowed());
    assert_eq!(
        verdict.break_glass[0].reason.chars().count(),
        MAX_REASON_CHARS
    );
    assert_eq!(verdict.warnings.len(), 1);
    assert!(verdict.warnings[0].chars().count() <= crate::policy::engine::MAX_WARNING_CHARS);
}

fn load_errors(grants: &str) -> Vec<String> {
    let text = format!(
        "apiVersion: rollout-guard.io/v1alpha1\nkind: RolloutPolicy\nmetadata:\n  name: p\nspec:\n  breakGlass:\n{grants}"
    );
    match parse_sources(&[Source {
        name: "p.yaml".to_owned(),
        text,
    }]) {
        Ok(_) => Vec::new(),
        Err(PolicyErrors(errors)) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn grants_are_validated_on_load_with_file_and_line() {
    let good = "    - name: oncall\n      rules: [ingressCanary.mainRemoved, blueGreen, httpRoute.error]\n      users: [alice@example.com]\n      groups: [sre-oncall]\n      serviceAccounts: [ops/incident-bot]\n      namespaces:\n        names: [shop]\n        matchExpressions:\n          - {key: tier, operator: In, values: [prod]}\n      objectSelector:\n        matchLabels: {app: web}\n      expires: 2026-12-31T00:00:00Z\n";
    assert_eq!(load_errors(good), Vec::<String>::new());

    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown rule and check names",
            "    - name: oncall\n      rules:\n        - ingresCanary\n        - blueGreen.switchToUnavailabel\n      users: [alice]\n",
            &[
                "p.yaml:9: spec.breakGlass[0].rules[0]: unknown rule \"ingresCanary\" (one of ",
                "p.yaml:10: spec.breakGlass[0].rules[1]: blueGreen has no check \"switchToUnavailabel\"",
            ],
        ),
        (
            "nobody named",
            "    - name: oncall\n      rules: [blueGreen]\n",
            &["p.yaml:7: spec.breakGlass[0]: name at least one of users, groups or serviceAccounts"],
        ),
        (
            "no rules",
            "    - name: oncall\n      rules: []\n      users: [alice]\n",
            &["p.yaml:8: spec.breakGlass[0].rules: list the rules"],
        ),
        (
            "everyone, a service account as a user, a bad service account",
            "    - name: oncall\n      rules: [blueGreen]\n      users:\n        - system:serviceaccount:ops:bot\n      groups:\n        - system:authenticated\n      serviceAccounts:\n        - ops:bot\n",
            &[
                "p.yaml:10: spec.breakGlass[0].users[0]: write service accounts under serviceAccounts",
                "p.yaml:12: spec.breakGlass[0].groups[0]: \"system:authenticated\" is everyone",
                "p.yaml:14: spec.breakGlass[0].serviceAccounts[0]: \"ops:bot\" is not namespace/name",
            ],
        ),
        (
            "a time that is not RFC 3339, an In without values",
            "    - name: oncall\n      rules: [blueGreen]\n      users: [alice]\n      expires: next friday\n      objectSelector:\n        matchExpressions:\n          - key: app\n            operator: In\n",
            &[
                "p.yaml:10: spec.breakGlass[0].expires: \"next friday\" is not an RFC 3339 time",
                "p.yaml:13: spec.breakGlass[0].objectSelector.matchExpressions[0]: In needs at least one value",
            ],
        ),
        (
            "duplicate and invalid names, an unknown field",
            "    - name: oncall\n      rules: [blueGreen]\n      users: [alice]\n    - name: oncall\n      rules: [blueGreen]\n      user: [bob]\n      groups: [sre]\n    - name: On Call\n      rules: [blueGreen]\n      users: [alice]\n",
            &[
                "p.yaml:10: spec.breakGlass[1].name: duplicate grant name \"oncall\" (also spec.breakGlass[0])",
                "p.yaml:12: spec.breakGlass[1].user: unknown field \"user\"",
                "p.yaml:14: spec.breakGlass[2].name: invalid grant name \"On Call\"",
            ],
        ),
    ];
    for (name, grants, expected) in cases {
        let errors = load_errors(grants);
        assert_eq!(errors.len(), expected.len(), "{name}: {errors:#?}");
        for (got, want) in errors.iter().zip(*expected) {
            assert!(got.starts_with(want), "{name}: {got}\n  expected {want}");
        }
    }
}
