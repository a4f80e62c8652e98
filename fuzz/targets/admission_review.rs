//! Raw bytes as an AdmissionReview body through `admission::review`, on both endpoints, with the
//! embedded default policy and an empty offline store. Must never panic; whatever is answered
//! must be a JSON AdmissionReview that echoes the request's uid.
//!
//! A plain function, no libFuzzer: `fuzz_targets/admission_review.rs` wraps it for cargo fuzz and
//! `tests/fuzz_replay.rs` runs it in CI, so both check the same properties.

use std::sync::OnceLock;

use rollout_guard::admission::{review, ReviewContext};
use rollout_guard::policy::finding::Endpoint;
use rollout_guard::policy::load::embedded_default;
use rollout_guard::policy::set::PolicySet;
use rollout_guard::store::Store;

fn fixtures() -> &'static (PolicySet, Store) {
    static FIXTURES: OnceLock<(PolicySet, Store)> = OnceLock::new();
    FIXTURES.get_or_init(|| (embedded_default(), Store::offline()))
}

pub fn admission_review(body: &[u8]) {
    let (policies, store) = fixtures();
    let ctx = ReviewContext {
        policies,
        view: store,
        own_namespace: Some("rollout-guard"),
        // A fixed clock: a fuzz case must replay the same way.
        now: std::time::SystemTime::UNIX_EPOCH,
    };
    for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
        if let Ok(reviewed) = review(endpoint, body, &ctx) {
            let answer: serde_json::Value = serde_json::from_slice(&reviewed.body)
                .unwrap_or_else(|e| panic!("answer is not JSON: {e}"));
            assert_eq!(
                answer["response"]["uid"].as_str(),
                Some(reviewed.summary.uid.as_str()),
                "answer does not echo the uid"
            );
        }
    }
}
