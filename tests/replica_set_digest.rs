//! The template digest against what a real API server sent (`../shared/traces/apiserver-1.20/`,
//! read in place, never copied): the template `kubectl rollout undo` sends must digest equal to
//! the target ReplicaSet's template, and different from every other revision's, or the rollback
//! rule would either miss real rollbacks or freeze ordinary template changes.
//!
//! The traces' `states[]` keep only the essentials of each ReplicaSet (labels, annotations,
//! container names and images), not the full template. The full template of a revision is the
//! template of the Deployment the controller copied it from: the `/validate` request's object
//! (the final object, after rollout-guard's patch) of the write that created the revision, or,
//! for a revision made while the webhook was not registered, the `oldObject` of the first
//! request that followed. The ReplicaSet is rebuilt from that template, the `pod-template-hash`
//! label and the name and revision from `states[]`, and read with the store's own parser.
//!
//! When `../shared` is absent the tests say so and pass: they cannot check anything then.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use rollout_guard::policy::objects::{ReplicaSetInfo, TemplateDigest};
use rollout_guard::policy::view::ClusterView;
use rollout_guard::store::{Store, StoredKind};
use serde_json::{json, Value};

fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces/apiserver-1.20")
}

fn trace(name: &str) -> Option<Value> {
    let path = traces_dir().join(name);
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!(
            "SKIPPED: {} not found; the digest was not checked against it",
            path.display()
        );
        return None;
    };
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// The request of exchange `seq`.
fn request(trace: &Value, seq: u64) -> &Value {
    let exchange = trace["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["seq"] == seq)
        .unwrap_or_else(|| panic!("no exchange {seq}"));
    &exchange["request"]["request"]
}

fn deployment_digest(object: &Value) -> TemplateDigest {
    let deployment: Deployment = serde_json::from_value(object.clone()).unwrap();
    TemplateDigest::of(&deployment.spec.unwrap().template)
}

/// The ReplicaSet of `revision` as `states[]` (after `after_step`) names it, with the template
/// of `deployment` (the object the controller copied it from).
fn replica_set(trace: &Value, after_step: u64, revision: &str, deployment: &Value) -> Value {
    let state = trace["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["after_step"] == after_step)
        .unwrap_or_else(|| panic!("no state after step {after_step}"));
    let recorded = state["replicasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["revision"] == revision)
        .unwrap_or_else(|| panic!("no revision {revision} after step {after_step}"));
    let name = recorded["name"].as_str().unwrap();
    let hash = recorded["template"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    let mut template = deployment["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    // The rebuilt template must be the one the trace recorded (the essentials it keeps).
    assert_eq!(
        template["metadata"]["labels"], recorded["template"]["labels"],
        "{name}: labels"
    );
    let images: Vec<&Value> = template["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["image"])
        .collect();
    let recorded_images: Vec<&Value> = recorded["template"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["image"])
        .collect();
    assert_eq!(images, recorded_images, "{name}: images");
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"namespace": trace["namespace"], "name": name,
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                "name": deployment["metadata"]["name"], "uid": "u", "controller": true}]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"pod-template-hash": hash}},
            "template": template}})
}

fn stored(replica_set: &Value) -> ReplicaSetInfo {
    let store = Store::offline();
    assert_eq!(
        store.apply_object(replica_set).unwrap(),
        StoredKind::ReplicaSet
    );
    let namespace = replica_set["metadata"]["namespace"].as_str().unwrap();
    let owner = replica_set["metadata"]["ownerReferences"][0]["name"]
        .as_str()
        .unwrap();
    let found = store.replica_sets_of(namespace, owner);
    assert_eq!(found.len(), 1);
    (*found[0]).clone()
}

/// Revision 1 was created while the webhook was not registered; `rollout undo` sends its
/// template (without pod-template-hash): equal to revision 1's, not to revision 2's.
#[test]
fn undo_to_a_revision_made_before_the_webhook_digests_equal_to_its_replica_set() {
    let Some(trace) = trace("kubectl-rollout-undo-pre-webhook.json") else {
        return;
    };
    // seq 1: the annotate, the first request the webhook saw; its oldObject is the Deployment
    // as revision 1 was made from it. seq 4: the validated `set image` (revision 2).
    let revision_1 = stored(&replica_set(
        &trace,
        6,
        "1",
        &request(&trace, 1)["oldObject"],
    ));
    let revision_2 = stored(&replica_set(&trace, 7, "2", &request(&trace, 4)["object"]));
    assert_eq!(revision_1.revision, 1);
    assert_eq!(&*revision_1.owner, "web");
    // seq 5: the undo on /mutate, the template as kubectl sent it.
    let undo = request(&trace, 5);
    assert_eq!(undo["operation"], "UPDATE");
    assert!(
        undo["options"].get("fieldManager").is_none(),
        "undo sends no fieldManager"
    );
    let sent = deployment_digest(&undo["object"]);
    assert_eq!(
        sent, revision_1.template,
        "the undo's template is revision 1's"
    );
    assert_ne!(sent, revision_2.template);
    assert_ne!(deployment_digest(&undo["oldObject"]), revision_1.template);
}

/// With the webhook registered throughout: each undo's template equals the target revision's
/// ReplicaSet and no other.
#[test]
fn undo_templates_digest_equal_to_their_target_replica_set_only() {
    let Some(trace) = trace("kubectl-rollout-undo.json") else {
        return;
    };
    // The /validate calls of create (seq 2), set image 1.25.4 (seq 4) and 1.25.5 (seq 6) carry
    // the final objects revisions 1, 2 and 3 were made from.
    let revisions: Vec<ReplicaSetInfo> = [(3, "1", 2), (4, "2", 4), (5, "3", 6)]
        .into_iter()
        .map(|(step, revision, seq)| {
            stored(&replica_set(
                &trace,
                step,
                revision,
                &request(&trace, seq)["object"],
            ))
        })
        .collect();
    // seq 7: `rollout undo` (back to revision 2); seq 9: `undo --to-revision=1`.
    for (seq, target) in [(7, 1), (9, 0)] {
        let sent = deployment_digest(&request(&trace, seq)["object"]);
        for (i, revision) in revisions.iter().enumerate() {
            assert_eq!(
                sent == revision.template,
                i == target,
                "undo seq {seq} against revision {}",
                revision.revision
            );
        }
    }
}
