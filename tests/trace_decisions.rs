//! Replays the AdmissionReviews a real API server sent (`../shared/traces/apiserver-1.20/`,
//! read in place, never copied into the project) through `admission::review` and compares each
//! decision with the one the recorded build gave.
//!
//! The cluster state each request is judged against is rebuilt from the trace itself: after
//! every `/validate` call the API server acted on (recorded as allowed, not a dry run), the
//! object is stored (CREATE, UPDATE) or removed (DELETE) through the same `Store::apply_object`
//! the watchers use. The recorded outcome drives the state, not today's, because the later
//! requests in a trace are what the API server sent after the recorded answers.
//!
//! Controllers' status writes never reach the webhook, so the Deployments' status (replicas,
//! available, observed generation) is taken from the trace's `states[]`, recorded after each
//! step once the Deployment controller had caught up, and applied before the next step's calls.
//!
//! What must hold:
//! - nothing the recorded build allowed is denied now (the traces are everyday workflows);
//! - the namespace controller's DELETEs are never denied (the recorded build denied 26 and the
//!   namespace stayed Terminating);
//! - a canary created before its main is allowed with a warning (the recorded build denied it);
//! - the denials that were right stay (a user deleting the main Ingress of a canary, a
//!   blue/green switch to pods that are not ready).
//!
//! When `../shared` is absent (a checkout without the shared material) the test says so and
//! passes: it cannot check anything then, and it must not pretend it did.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rollout_guard::admission::{review, ReviewContext};
use rollout_guard::policy::load::embedded_default;
use rollout_guard::policy::Endpoint;
use rollout_guard::store::Store;
use serde_json::Value;

fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces/apiserver-1.20")
}

/// One replayed webhook call.
#[derive(Debug)]
struct Replayed {
    file: String,
    seq: u64,
    operation: String,
    kind: String,
    name: String,
    user: String,
    recorded_allowed: bool,
    allowed: bool,
    warnings: Vec<String>,
    audit: Value,
}

fn replay(path: &Path) -> Vec<Replayed> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let trace: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let policies = embedded_default();
    let store = Store::offline();
    let namespace = trace["namespace"].as_str().unwrap_or_default().to_owned();
    // The last stored version of each Deployment, by name, to lay the recorded status over.
    let mut deployments: BTreeMap<String, Value> = BTreeMap::new();
    let states: Vec<&Value> = trace["states"].as_array().into_iter().flatten().collect();
    let mut next_state = 0;
    let mut out = Vec::new();
    for exchange in trace["exchanges"].as_array().into_iter().flatten() {
        let step = exchange["step"].as_u64().unwrap_or_default();
        while next_state < states.len()
            && states[next_state]["after_step"]
                .as_u64()
                .unwrap_or_default()
                < step
        {
            for recorded in states[next_state]["deployments"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let name = recorded["name"].as_str().unwrap_or_default();
                if let Some(object) = deployments.get_mut(name) {
                    object["metadata"]["generation"] = recorded["generation"].clone();
                    object["status"] = recorded["status"].clone();
                    object["status"]["observedGeneration"] = recorded["observedGeneration"].clone();
                    object["metadata"]["namespace"] = Value::from(namespace.as_str());
                    let _ = store.apply_object(object);
                }
            }
            next_state += 1;
        }
        let endpoint = match exchange["path"].as_str().unwrap_or_default() {
            p if p.starts_with("/mutate") => Endpoint::Mutate,
            p if p.starts_with("/validate") => Endpoint::Validate,
            other => panic!("{file}: unknown path {other}"),
        };
        let review_body = &exchange["request"];
        let request = &review_body["request"];
        let body = serde_json::to_vec(review_body).unwrap();
        let ctx = ReviewContext {
            policies: &policies,
            view: &store,
            own_namespace: Some("rollout-guard"),
            now: std::time::SystemTime::now(),
        };
        let reviewed = review(endpoint, &body, &ctx)
            .unwrap_or_else(|e| panic!("{file} seq {}: {e}", exchange["seq"]));
        let answer: Value = serde_json::from_slice(&reviewed.body).unwrap();
        let answer = &answer["response"];
        assert_eq!(
            answer["uid"], request["uid"],
            "{file}: the uid must be echoed"
        );
        let recorded_allowed = exchange["response"]["response"]["allowed"] == true;
        let name = request["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .or(request["oldObject"]["metadata"]["name"].as_str())
            .unwrap_or_default();
        out.push(Replayed {
            file: file.clone(),
            seq: exchange["seq"].as_u64().unwrap_or_default(),
            operation: request["operation"].as_str().unwrap_or_default().to_owned(),
            kind: request["kind"]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            name: name.to_owned(),
            user: request["userInfo"]["username"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            recorded_allowed,
            allowed: answer["allowed"] == true,
            warnings: answer["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            audit: answer["auditAnnotations"].clone(),
        });

        // What the API server did with the recorded answer becomes the state for what follows.
        let persisted = endpoint == Endpoint::Validate
            && recorded_allowed
            && request["dryRun"] != true
            && request["subResource"].is_null();
        if persisted {
            match request["operation"].as_str() {
                Some("CREATE" | "UPDATE") => {
                    let object = &request["object"];
                    if object["kind"] == "Deployment" {
                        let name = object["metadata"]["name"].as_str().unwrap_or_default();
                        deployments.insert(name.to_owned(), object.clone());
                    }
                    let _ = store.apply_object(object);
                }
                Some("DELETE") => {
                    let _ = store.delete_object(&request["oldObject"]);
                }
                _ => {}
            }
        }
    }
    out
}

fn all_traces() -> Option<Vec<Replayed>> {
    let dir = traces_dir();
    let Ok(entries) = fs::read_dir(&dir) else {
        println!(
            "SKIPPED: {} not found; the trace replay checked nothing",
            dir.display()
        );
        return None;
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no traces", dir.display());
    Some(files.iter().flat_map(|f| replay(f)).collect())
}

fn describe(r: &Replayed) -> String {
    format!(
        "{} seq {}: {} {} {} by {}",
        r.file, r.seq, r.operation, r.kind, r.name, r.user
    )
}

#[test]
fn replayed_traces_deny_only_what_is_broken() {
    let Some(replayed) = all_traces() else {
        return;
    };
    let denied = |list: &[&Replayed], now: bool| {
        list.iter()
            .filter(|r| !(if now { r.allowed } else { r.recorded_allowed }))
            .count()
    };
    let all: Vec<&Replayed> = replayed.iter().collect();
    println!(
        "trace replay: {} webhook calls; denied by the recorded build {}, denied now {}",
        all.len(),
        denied(&all, false),
        denied(&all, true)
    );

    // Nothing that worked is denied now.
    let newly_denied: Vec<String> = replayed
        .iter()
        .filter(|r| r.recorded_allowed && !r.allowed)
        .map(describe)
        .collect();
    assert!(
        newly_denied.is_empty(),
        "allowed when recorded, denied now:\n{}",
        newly_denied.join("\n")
    );

    // Namespace deletion: every DELETE the namespace controller sends is allowed, and says why.
    let controller_deletes: Vec<&Replayed> = replayed
        .iter()
        .filter(|r| {
            r.operation == "DELETE"
                && r.user == "system:serviceaccount:kube-system:namespace-controller"
        })
        .collect();
    let stuck: Vec<&Replayed> = controller_deletes
        .iter()
        .copied()
        .filter(|r| r.file == "namespace-delete-main-and-canary-ingress.json")
        .collect();
    println!(
        "namespace controller DELETEs: {} (denied by the recorded build {}, denied now {})",
        controller_deletes.len(),
        denied(&controller_deletes, false),
        denied(&controller_deletes, true)
    );
    assert_eq!(
        denied(&stuck, false),
        26,
        "the trace records 26 denied DELETEs of the main Ingress"
    );
    for r in &controller_deletes {
        assert!(r.allowed, "{}", describe(r));
        assert_eq!(
            r.audit["cleanup"],
            "namespace-controller",
            "{}",
            describe(r)
        );
    }
    // Where a rule would have denied, the warning says what it found and why it let it pass.
    for r in stuck.iter().filter(|r| !r.recorded_allowed) {
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("ingressCanary.mainRemoved")
                    && w.contains("namespace controller cleanup")
                    && w.contains("web-canary")),
            "{}: {:?}",
            describe(r),
            r.warnings
        );
    }

    // A canary created without a main is a warning now: the main may be the next object.
    let orphan_canary = replayed
        .iter()
        .find(|r| r.file == "ingress-canary.json" && r.name == "orphan-canary")
        .expect("ingress-canary.json creates orphan-canary");
    assert!(!orphan_canary.recorded_allowed && orphan_canary.allowed);
    assert!(
        orphan_canary
            .warnings
            .iter()
            .any(|w| w.contains("ingressCanary.missingMain: no main (class nginx) for")),
        "{:?}",
        orphan_canary.warnings
    );

    // The denial that protects a canary from a user's DELETE of its main stays.
    let user_delete_of_main = replayed
        .iter()
        .find(|r| r.file == "ingress-canary.json" && r.operation == "DELETE" && r.name == "shop")
        .expect("ingress-canary.json deletes the main Ingress shop");
    assert!(!user_delete_of_main.recorded_allowed && !user_delete_of_main.allowed);
    // So does the switch of a Service to a version none of whose pods is ready (seq 6, and the
    // API server's retry, seq 7).
    let switches: Vec<&Replayed> = replayed
        .iter()
        .filter(|r| {
            r.file == "service-bluegreen.json" && r.kind == "Service" && !r.recorded_allowed
        })
        .collect();
    assert_eq!(switches.len(), 2);
    assert!(switches.iter().all(|r| !r.allowed), "{switches:#?}");
}
