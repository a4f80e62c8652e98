//! Helpers shared by the rules' unit tests: a store from JSON objects, a policy from a
//! `spec.rules` section, and one review through the webhook's own path.

use serde_json::{json, Value};

use crate::admission::{review, ReviewContext};
use crate::policy::finding::Endpoint;
use crate::policy::set::PolicySet;
use crate::policy::RolloutPolicy;
use crate::store::Store;

/// An offline (synced) store holding `objects`.
pub fn store_of(objects: &[Value]) -> Store {
    let store = Store::offline();
    for object in objects {
        store.apply_object(object).expect("test object is storable");
    }
    store
}

/// A policy named `test` governing every namespace, with `rules` as its `spec.rules`.
pub fn policy_with_rules(rules: Value) -> RolloutPolicy {
    serde_json::from_value(json!({"apiVersion": "rollout-guard.io/v1alpha1",
        "kind": "RolloutPolicy", "metadata": {"name": "test"}, "spec": {"rules": rules}}))
    .expect("test policy parses")
}

/// What a review decided, with denials as `rule.check message`.
pub struct Outcome {
    /// Whether the request was allowed.
    pub allowed: bool,
    /// The warnings.
    pub warnings: Vec<String>,
    /// The denials.
    pub denials: Vec<String>,
}

/// Sends one `/validate` review of `object` (or, on DELETE, `old`) in namespace `shop` through
/// `admission::review` with the rule defaults, against `store`.
pub fn validate(
    store: &Store,
    operation: &str,
    object: Option<Value>,
    old: Option<Value>,
) -> Outcome {
    let policies = PolicySet::new(vec![policy_with_rules(json!({}))], "test".to_owned());
    let subject = object
        .as_ref()
        .or(old.as_ref())
        .cloned()
        .unwrap_or(Value::Null);
    let api_version = subject["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u1",
            "kind": {"group": group, "version": version, "kind": subject["kind"]},
            "name": subject["metadata"]["name"], "namespace": "shop", "operation": operation,
            "userInfo": {"username": "dev"}, "object": object, "oldObject": old}});
    let ctx = ReviewContext {
        policies: &policies,
        view: store,
        own_namespace: None,
        now: std::time::SystemTime::now(),
    };
    let body = serde_json::to_vec(&body).expect("serialisable");
    let reviewed = review(Endpoint::Validate, &body, &ctx).expect("a readable review");
    assert!(reviewed.invalid.is_none(), "{:?}", reviewed.invalid);
    Outcome {
        allowed: reviewed.verdict.allowed(),
        warnings: reviewed.verdict.warnings.clone(),
        denials: reviewed
            .verdict
            .denials
            .iter()
            .map(|d| format!("{} {}", d.source, d.message))
            .collect(),
    }
}

/// Whether any text contains `needle`.
pub fn has(texts: &[String], needle: &str) -> bool {
    texts.iter().any(|t| t.contains(needle))
}
