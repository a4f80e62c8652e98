//! Verdicts kept from one audit run to the next.
//!
//! A periodic audit of an unchanged cluster would judge every object again to reach the same
//! verdicts. A verdict is reused instead when nothing it depends on has moved since it was
//! reached:
//!
//! - the object itself: the same `uid` and `resourceVersion` (the API server changes the
//!   version on every write), or for objects read from files the same content;
//! - the policies: a new policy digest drops every kept verdict (the audit runs after every
//!   policy change precisely to judge everything again);
//! - the cluster state the rules read: while judging, the view records which kinds the rules
//!   looked up ([`LayeredView::record_consulted`]); the verdict is kept with the store's
//!   [`Store::generation`] of each, and reused only while every one is unchanged. A Service
//!   written in any namespace re-judges every object whose rules looked at Services, a new Pod
//!   nothing that never looked at Pods: coarse, but never stale;
//! - the store being synced, then and now (rules judge differently while a kind is missing);
//! - the clock: a verdict that asked for a break-glass override (grants expire) is never kept.
//!
//! Objects not seen in a run are forgotten, so the cache holds at most one entry per object
//! the cluster has.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::Value;

use super::{audited, AuditOptions, AuditResult, AuditedObject};
use crate::admission::ReviewContext;
use crate::evaluate::{evaluate_verdict_lent, no_rule_looks_at};
use crate::manifest::Document;
use crate::policy::set::PolicySet;
use crate::policy::view::{ClusterView, SyncStatus};
use crate::store::layered::LayeredView;
use crate::store::{Store, StoredKind};

/// How an object is known to be unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// By `metadata.uid` and `metadata.resourceVersion` (objects listed from the API server);
    /// by content when either is missing.
    ResourceVersion,
    /// By each object's content: for objects whose versions say nothing and whose text is not
    /// at hand (the live loop reads files as [`Identity::File`]).
    Content,
    /// By the text of the file the objects were read from ([`file_identity`]): every object of
    /// a file is judged again when any byte of it changes. Hashing the text is a pass over bytes;
    /// hashing each parsed object walked every map and string of it, a fifth of a first run.
    File(u64),
}

/// The [`Identity::File`] of objects parsed from `text`.
pub fn file_identity(text: &str) -> Identity {
    let mut hasher = WordHasher::default();
    hasher.write(text.as_bytes());
    Identity::File(hasher.finish())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Fingerprint {
    Version {
        uid: String,
        resource_version: String,
    },
    Content(u64),
}

#[derive(Debug)]
struct Entry {
    fingerprint: Fingerprint,
    /// The generation of every kind the rules consulted, when the verdict was reached.
    generations: Vec<(StoredKind, u64)>,
    /// `None` for an object the policies do not look at.
    audited: Option<Arc<AuditedObject>>,
}

/// How one run used the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUse {
    /// Objects whose kept verdict was reused.
    pub reused: u64,
    /// Objects judged.
    pub judged: u64,
}

impl CacheUse {
    /// Adds another page's use.
    pub fn add(&mut self, other: CacheUse) {
        self.reused += other.reused;
        self.judged += other.judged;
    }
}

/// Verdicts kept between runs; one per audit loop.
#[derive(Debug, Default)]
pub struct AuditCache {
    policy_digest: String,
    /// Entries of the current run: objects seen in it.
    seen: HashMap<String, Entry>,
    /// Entries of earlier runs not seen in this one yet.
    earlier: HashMap<String, Entry>,
}

impl AuditCache {
    /// Starts a run: what the last run saw becomes reusable. An aborted run's entries are kept
    /// too, with those it did not reach.
    pub fn begin_run(&mut self) {
        let seen = std::mem::take(&mut self.seen);
        self.earlier.extend(seen);
    }

    /// Ends a complete run: objects it did not see are gone from the cluster and forgotten.
    pub fn finish_run(&mut self) {
        self.earlier = HashMap::new();
    }

    /// How many verdicts are kept.
    pub fn len(&self) -> usize {
        self.seen.len() + self.earlier.len()
    }

    /// Whether no verdict is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// [`super::run`] over the store, reusing the verdicts `cache` kept for objects, policies and
/// cluster state that did not change; judges the rest and keeps their verdicts. The result is
/// what [`super::run`] gives for the same objects.
pub fn run_cached(
    objects: &mut [Document],
    store: &Store,
    policies: &PolicySet,
    options: &AuditOptions,
    identity: Identity,
    cache: &mut AuditCache,
) -> (AuditResult, CacheUse) {
    let digest = policies.digest().to_string();
    if cache.policy_digest != digest {
        *cache = AuditCache {
            policy_digest: digest.clone(),
            ..AuditCache::default()
        };
    }
    let (view, _) = LayeredView::new(&[], Some(store as &dyn ClusterView));
    let view = view.record_consulted();
    let ctx = ReviewContext {
        policies,
        view: &view,
        own_namespace: options.own_namespace.as_deref(),
        now: options.now,
    };
    let mut result = AuditResult {
        policy_digest: digest,
        ..AuditResult::default()
    };
    let mut used = CacheUse::default();
    // Lent to the evaluation, which validates each patched in place and restores it.
    for (index, document) in objects.iter_mut().enumerate() {
        // Most of a cluster (ReplicaSets, ConfigMaps, ...) is not looked at: nothing to keep.
        if no_rule_looks_at(document, &ctx, &options.requester) {
            result.push_audited(None);
            continue;
        }
        let key = key_of(document);
        let fingerprint = fingerprint_of(&document.value, identity);
        // Read before judging: a write racing the judgement leaves a newer generation behind,
        // and the next run judges again.
        let synced = store.sync_status() == SyncStatus::Synced;
        let kept = cache.earlier.remove(&key).filter(|entry| {
            synced
                && entry.fingerprint == fingerprint
                && entry
                    .generations
                    .iter()
                    .all(|(kind, generation)| store.generation(*kind) == *generation)
        });
        let entry = match kept {
            Some(entry) => {
                used.reused += 1;
                entry
            }
            None => {
                used.judged += 1;
                let generations: Vec<u64> = StoredKind::ALL
                    .iter()
                    .map(|k| store.generation(*k))
                    .collect();
                view.take_consulted();
                options.give_way();
                let evaluation = evaluate_verdict_lent(
                    &format!("audit-{}", index + 1),
                    document,
                    &ctx,
                    &options.requester,
                );
                let consulted = view.take_consulted();
                let keep = synced && !evaluation.depends_on_time;
                let entry = Entry {
                    fingerprint,
                    generations: StoredKind::ALL
                        .iter()
                        .zip(generations)
                        .filter(|(kind, _)| consulted.contains(kind))
                        .map(|(kind, generation)| (*kind, generation))
                        .collect(),
                    audited: audited(evaluation, document).map(Arc::new),
                };
                if !keep {
                    result.push_audited(entry.audited);
                    continue;
                }
                entry
            }
        };
        result.push_audited(entry.audited.clone());
        cache.seen.insert(key, entry);
    }
    (result, used)
}

/// Which object a document is: the same object in a later run has the same key.
fn key_of(document: &Document) -> String {
    let text = |field: &str| document.text(field).unwrap_or_default();
    let metadata = |field: &str| document.metadata_text(field).unwrap_or_default();
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
        text("apiVersion"),
        text("kind"),
        metadata("namespace"),
        metadata("name"),
        document.location(),
    )
}

fn fingerprint_of(value: &Value, identity: Identity) -> Fingerprint {
    let metadata = value.get("metadata");
    let field = |name: &str| {
        metadata
            .and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
    };
    match (identity, field("uid"), field("resourceVersion")) {
        (Identity::ResourceVersion, Some(uid), Some(version)) => Fingerprint::Version {
            uid: uid.to_owned(),
            resource_version: version.to_owned(),
        },
        // The cache key holds the object's location in the file: the file's hash is enough.
        (Identity::File(text), _, _) => Fingerprint::Content(text),
        _ => {
            let mut hasher = WordHasher::default();
            hash_value(value, &mut hasher);
            Fingerprint::Content(hasher.finish())
        }
    }
}

/// Hashes a JSON value by content (maps by key order, which serde_json keeps sorted).
fn hash_value(value: &Value, hasher: &mut impl Hasher) {
    match value {
        Value::Null => 0u8.hash(hasher),
        Value::Bool(b) => (1u8, b).hash(hasher),
        Value::Number(n) => {
            2u8.hash(hasher);
            match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => (0u8, u).hash(hasher),
                (None, Some(i), _) => (1u8, i).hash(hasher),
                (None, None, f) => (2u8, f.map(f64::to_bits)).hash(hasher),
            }
        }
        Value::String(s) => (3u8, s).hash(hasher),
        Value::Array(items) => {
            (4u8, items.len()).hash(hasher);
            items.iter().for_each(|item| hash_value(item, hasher));
        }
        Value::Object(map) => {
            (5u8, map.len()).hash(hasher);
            for (key, item) in map {
                key.hash(hasher);
                hash_value(item, hasher);
            }
        }
    }
}

/// A fast 64-bit hash of trusted content, a word at a time: SipHash (the std default) resists
/// crafted collisions nobody needs here and took a third of a warm run over 400 MB of objects.
/// A collision only means one audit run reuses a verdict of the object's previous content.
#[derive(Default)]
struct WordHasher(u64);

impl WordHasher {
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

    fn mix(&mut self, word: u64) {
        let mixed = (self.0 ^ word).wrapping_mul(Self::MULTIPLIER);
        self.0 = mixed ^ (mixed >> 29);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        // The length keeps "ab" + "" apart from "a" + "b".
        self.mix(u64::from_le_bytes(word) ^ ((bytes.len() as u64) << 56));
    }

    fn write_u64(&mut self, value: u64) {
        self.mix(value);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::SystemTime;

    use super::*;
    use crate::manifest::parse_text;
    use crate::policy::load::embedded_default;

    const SHOP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, uid: u-web, resourceVersion: "7"}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.27"}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web-canary
  namespace: shop
  uid: u-canary
  resourceVersion: "8"
  annotations: {nginx.ingress.kubernetes.io/canary: "true", nginx.ingress.kubernetes.io/canary-weight: "10"}
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web-canary, port: {number: 80}}}}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
"#;

    const MAIN_INGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
"#;

    fn documents(yaml: &str) -> Vec<Document> {
        parse_text(Path::new("shop.yaml"), yaml).unwrap()
    }

    fn options() -> AuditOptions {
        AuditOptions::at(SystemTime::now())
    }

    /// One run through the cache, as the live loop makes it.
    fn cached_run(
        objects: &[Document],
        store: &Store,
        policies: &PolicySet,
        cache: &mut AuditCache,
    ) -> (AuditResult, CacheUse) {
        cache.begin_run();
        let mut lent = objects.to_vec();
        let ran = run_cached(
            &mut lent,
            store,
            policies,
            &options(),
            Identity::Content,
            cache,
        );
        cache.finish_run();
        assert_eq!(lent, objects, "the documents are restored after the run");
        ran
    }

    fn rules_of(result: &AuditResult, name: &str) -> Vec<String> {
        result
            .objects
            .iter()
            .filter(|o| o.name == name)
            .flat_map(|o| o.findings.iter().map(|f| format!("{}.{}", f.rule, f.check)))
            .collect()
    }

    #[test]
    fn an_unchanged_cluster_is_judged_once_and_reported_alike() {
        let objects = documents(SHOP);
        let (store, _) = Store::from_documents(&objects);
        let policies = embedded_default();
        let mut cache = AuditCache::default();
        let uncached = super::super::run(&objects, &store, &policies, &options());

        let (first, used) = cached_run(&objects, &store, &policies, &mut cache);
        assert_eq!(
            used,
            CacheUse {
                reused: 0,
                judged: 2
            },
            "the ConfigMap is not judged"
        );
        assert_eq!(first, uncached);
        let (second, used) = cached_run(&objects, &store, &policies, &mut cache);
        assert_eq!(
            used,
            CacheUse {
                reused: 2,
                judged: 0
            }
        );
        assert_eq!(second, uncached);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_write_to_a_kind_the_rules_read_judges_again() {
        let objects = documents(SHOP);
        let (store, _) = Store::from_documents(&objects);
        let policies = embedded_default();
        let mut cache = AuditCache::default();
        let (before, _) = cached_run(&objects, &store, &policies, &mut cache);
        assert!(
            rules_of(&before, "web-canary").contains(&"ingressCanary.missingMain".to_owned()),
            "{:?}",
            rules_of(&before, "web-canary")
        );

        // The main Ingress appears: the canary's rules read Ingresses, so it is judged again.
        let main = documents(MAIN_INGRESS);
        store.apply_object(&main[0].value).unwrap();
        let (after, used) = cached_run(&objects, &store, &policies, &mut cache);
        assert!(used.judged >= 1, "{used:?}");
        assert!(
            !rules_of(&after, "web-canary").contains(&"ingressCanary.missingMain".to_owned()),
            "{:?}",
            rules_of(&after, "web-canary")
        );
        assert_eq!(
            after,
            super::super::run(&objects, &store, &policies, &options())
        );

        // Unchanged since: reused.
        let (_, used) = cached_run(&objects, &store, &policies, &mut cache);
        assert_eq!(
            used,
            CacheUse {
                reused: 2,
                judged: 0
            }
        );
    }

    #[test]
    fn new_policies_new_content_and_gone_objects() {
        let objects = documents(SHOP);
        let (store, _) = Store::from_documents(&objects);
        let policies = embedded_default();
        let mut cache = AuditCache::default();
        cached_run(&objects, &store, &policies, &mut cache);

        // Other policies (another digest): everything is judged again.
        let edited = PolicySet::new(policies.policies().to_vec(), "edited".to_owned());
        let (_, used) = cached_run(&objects, &store, &edited, &mut cache);
        assert_eq!(
            used,
            CacheUse {
                reused: 0,
                judged: 2
            }
        );

        // The Deployment's content changes: only it is judged again, and as the new content.
        let mut changed = objects.clone();
        changed[0].value["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx".into();
        let (result, used) = cached_run(&changed, &store, &edited, &mut cache);
        assert_eq!(
            used,
            CacheUse {
                reused: 1,
                judged: 1
            }
        );
        assert_eq!(
            result,
            super::super::run(&changed, &store, &edited, &options())
        );

        // Gone from the cluster: forgotten after a complete run.
        let (_, used) = cached_run(&changed[..1], &store, &edited, &mut cache);
        assert_eq!(
            used,
            CacheUse {
                reused: 1,
                judged: 0
            }
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn listed_objects_are_known_by_uid_and_resource_version() {
        let objects = documents(SHOP);
        let value = &objects[0].value;
        assert_eq!(
            fingerprint_of(value, Identity::ResourceVersion),
            Fingerprint::Version {
                uid: "u-web".into(),
                resource_version: "7".into()
            }
        );
        // Without both, and for files, by content: a changed field changes the fingerprint.
        let mut edited = value.clone();
        assert_eq!(
            fingerprint_of(value, Identity::Content),
            fingerprint_of(&edited, Identity::Content)
        );
        edited["spec"]["replicas"] = 4.into();
        assert_ne!(
            fingerprint_of(value, Identity::Content),
            fingerprint_of(&edited, Identity::Content)
        );
        edited["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        assert!(matches!(
            fingerprint_of(&edited, Identity::ResourceVersion),
            Fingerprint::Content(_)
        ));
        // Strings are told apart by where they end, not just their bytes.
        let split =
            |a: &str, b: &str| fingerprint_of(&serde_json::json!([a, b]), Identity::Content);
        assert_ne!(split("ab", "c"), split("a", "bc"));
        assert_ne!(split("abcdefgh", ""), split("abcdefg", "h"));
    }
}
