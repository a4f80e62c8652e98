//! Raw bytes as the text of a policy file through `policy::load::parse_sources`. Must never
//! panic; a set that loads must then govern a real review without panicking either (fuzzed
//! modes, overrides, globs and parameters reach the rules).
//!
//! A plain function, no libFuzzer: `fuzz_targets/policy_loader.rs` wraps it for cargo fuzz and
//! `tests/fuzz_replay.rs` runs it in CI, so both check the same properties.

use rollout_guard::admission::{review, ReviewContext};
use rollout_guard::policy::finding::Endpoint;
use rollout_guard::policy::load::{parse_sources, Source};
use rollout_guard::store::Store;

/// An UPDATE of a Deployment that changes its image, so every Deployment rule has work to do.
const DEPLOYMENT_UPDATE: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
"request":{"uid":"fuzz","kind":{"group":"apps","version":"v1","kind":"Deployment"},
"name":"web","namespace":"shop","operation":"UPDATE","userInfo":{"username":"alice"},
"object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop","labels":{"app":"web"}},
 "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},
  "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}},
  "progressDeadlineSeconds":600,"revisionHistoryLimit":10,
  "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"registry.example.com/web:1.2.4"}]}}}},
"oldObject":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop","labels":{"app":"web"}},
 "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},
  "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}},
  "progressDeadlineSeconds":600,"revisionHistoryLimit":10,
  "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"registry.example.com/web:1.2.3"}]}}}}}}"#;

pub fn policy_loader(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sources = [Source {
        name: "fuzz.yaml".to_owned(),
        text: text.to_owned(),
    }];
    match parse_sources(&sources) {
        Ok(set) => {
            let store = Store::offline();
            let ctx = ReviewContext {
                policies: &set,
                view: &store,
                own_namespace: None,
                // A fixed clock: a fuzz case must replay the same way.
                now: std::time::SystemTime::UNIX_EPOCH,
            };
            for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
                let reviewed = review(endpoint, DEPLOYMENT_UPDATE.as_bytes(), &ctx);
                assert!(reviewed.is_ok(), "a valid review must be answered");
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error result must name an error");
            let _ = errors.to_string();
        }
    }
}
