//! What the store keeps of a ReplicaSet: which Deployment controls it, its revision, and a
//! digest of its pod template, so the rollback rule can tell that a Deployment's incoming
//! template is one the controller already has a ReplicaSet for.
//!
//! The Deployment controller reuses a ReplicaSet when the Deployment's template equals the
//! ReplicaSet's with the `pod-template-hash` label removed (`EqualIgnoreHash` in
//! kubernetes/pkg/controller/deployment/util, `apiequality.Semantic.DeepEqual`). The digest
//! reproduces that comparison: both templates are read with the same typed parser, the label
//! is removed, empty label and annotation maps count as absent (Semantic.DeepEqual treats a nil
//! map as an empty one), and the typed template is serialized straight into SHA-256. The typed
//! serialization is canonical for this purpose: struct fields in declaration order, maps sorted
//! (BTreeMap), absent fields left out, whatever order or nulls the JSON came with; the digest
//! is only compared within one process, so it never has to agree with another build.
//! 16 bytes of SHA-256 instead of the template: a real template is kilobytes, and a cluster
//! keeps `revisionHistoryLimit` ReplicaSets per Deployment.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use std::io::Write as _;

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest as _, Sha256};

use super::{key_of, ObjectKey};

/// The label the Deployment controller adds to a ReplicaSet's template, selector and pods.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// The annotation the Deployment controller numbers ReplicaSets (and the Deployment) with.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// A pod template reduced to 16 bytes: equal digests mean the Deployment controller sees equal
/// templates (ignoring `pod-template-hash`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateDigest(pub [u8; 16]);

impl std::fmt::Debug for TemplateDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl TemplateDigest {
    /// The digest of a pod template, as the Deployment controller compares templates.
    pub fn of(template: &PodTemplateSpec) -> Self {
        let metadata = template.metadata.as_ref().and_then(compared_metadata);
        let mut state = Hashing(Sha256::new());
        // serde_json writes a template in thousands of pieces of a few bytes; the hasher gets
        // them in blocks (the same bytes, so the same digest).
        let mut hasher = std::io::BufWriter::with_capacity(8192, &mut state);
        // Writing into a hasher cannot fail, and a typed template always serializes.
        let _ = hasher.write_all(b"{\"metadata\":");
        let _ = serde_json::to_writer(&mut hasher, &metadata);
        let _ = hasher.write_all(b",\"spec\":");
        match &template.spec {
            Some(spec) => serde_json::to_writer(&mut hasher, spec),
            // Go's PodTemplateSpec holds its spec by value: absent reads as empty.
            None => serde_json::to_writer(&mut hasher, &PodSpec::default()),
        }
        .unwrap_or_default();
        let _ = hasher.write_all(b"}");
        let _ = hasher.flush();
        drop(hasher);
        let hash = state.0.finalize();
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&hash[..16]);
        TemplateDigest(digest)
    }
}

/// The template's metadata as the controller compares it: without `pod-template-hash`, empty
/// maps as absent, and nothing at all as absent (Go holds the metadata by value).
fn compared_metadata(metadata: &ObjectMeta) -> Option<ObjectMeta> {
    let mut metadata = metadata.clone();
    if let Some(labels) = metadata.labels.as_mut() {
        labels.remove(POD_TEMPLATE_HASH);
    }
    if metadata.labels.as_ref().is_some_and(|l| l.is_empty()) {
        metadata.labels = None;
    }
    if metadata.annotations.as_ref().is_some_and(|a| a.is_empty()) {
        metadata.annotations = None;
    }
    (metadata != ObjectMeta::default()).then_some(metadata)
}

/// `io::Write` into a SHA-256 state, so the template is serialized without an intermediate text.
struct Hashing(Sha256);

impl std::io::Write for Hashing {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the store keeps of a ReplicaSet that a Deployment controls. ReplicaSets without a
/// Deployment as their controller are not kept (nothing rolls back to them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSetInfo {
    /// Namespace and name.
    pub key: ObjectKey,
    /// Name of the Deployment in its controller ownerReference.
    pub owner: Arc<str>,
    /// `deployment.kubernetes.io/revision` (0 when absent or unreadable).
    pub revision: u32,
    /// Digest of `spec.template`, `pod-template-hash` ignored.
    pub template: TemplateDigest,
    /// `spec.replicas` (the API server defaults it to 1).
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available_replicas: i32,
}

impl ReplicaSetInfo {
    /// Reads a ReplicaSet, or `None` when no Deployment controls it. `namespace` is used when
    /// the object carries none.
    pub fn from_replica_set(set: &ReplicaSet, namespace: &str) -> Option<Self> {
        let owner = set
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|owner| {
                owner.controller == Some(true)
                    && owner.kind == "Deployment"
                    && owner.api_version.rsplit_once('/').map(|(group, _)| group) == Some("apps")
            })?;
        let spec = set.spec.as_ref();
        let template = spec
            .and_then(|s| s.template.as_ref())
            .map(TemplateDigest::of)
            .unwrap_or_else(|| TemplateDigest::of(&PodTemplateSpec::default()));
        Some(Self {
            key: key_of(&set.metadata, namespace),
            owner: Arc::from(owner.name.as_str()),
            revision: set
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION_ANNOTATION))
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            template,
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            available_replicas: set
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn template(value: Value) -> PodTemplateSpec {
        serde_json::from_value(value).unwrap()
    }

    fn replica_set(owner: Value, template: Value) -> ReplicaSet {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"namespace": "shop", "name": "web-756f4c7d5",
                "annotations": {"deployment.kubernetes.io/revision": "3"},
                "ownerReferences": owner},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template},
            "status": {"replicas": 2, "availableReplicas": 1}
        }))
        .unwrap()
    }

    fn deployment_owner() -> Value {
        json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u",
            "controller": true, "blockOwnerDeletion": true}])
    }

    /// The comparison the controller makes: the hash label, key order, nulls and an empty
    /// label map do not count; any real difference does.
    #[test]
    fn digests_ignore_the_hash_label_and_encoding_only() {
        let base = json!({"metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25.3", "resources": {}}],
                "securityContext": {}}});
        let digest = TemplateDigest::of(&template(base.clone()));
        let with_hash = json!({"spec": {"securityContext": {},
                "containers": [{"resources": {}, "image": "nginx:1.25.3", "name": "app"}]},
            "metadata": {"labels": {"pod-template-hash": "756f4c7d5", "app": "web"}}});
        assert_eq!(TemplateDigest::of(&template(with_hash)), digest);
        let only_hash = template(json!({"metadata": {"labels": {"pod-template-hash": "1"}},
            "spec": {"containers": []}}));
        let no_labels =
            template(json!({"metadata": {"annotations": {}}, "spec": {"containers": []}}));
        assert_eq!(
            TemplateDigest::of(&only_hash),
            TemplateDigest::of(&no_labels)
        );

        for (what, changed) in [
            ("image", "/spec/containers/0/image"),
            ("label", "/metadata/labels/app"),
        ] {
            let mut other = base.clone();
            *other.pointer_mut(changed).unwrap() = json!("other");
            assert_ne!(TemplateDigest::of(&template(other)), digest, "{what}");
        }
        let mut annotated = base.clone();
        annotated["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/restartedAt": "now"});
        assert_ne!(TemplateDigest::of(&template(annotated)), digest);
        // An empty struct is not an absent one (`emptyDir: {}` makes a volume).
        let mut without = base.clone();
        without["spec"]
            .as_object_mut()
            .unwrap()
            .remove("securityContext");
        assert_ne!(TemplateDigest::of(&template(without)), digest);
    }

    #[test]
    fn replica_sets_of_a_deployment_are_read_and_others_are_not_kept() {
        let tpl = json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "756f4c7d5"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25.3"}]}});
        let info =
            ReplicaSetInfo::from_replica_set(&replica_set(deployment_owner(), tpl.clone()), "x")
                .unwrap();
        assert_eq!(info.key, ObjectKey::new("shop", "web-756f4c7d5"));
        assert_eq!(&*info.owner, "web");
        assert_eq!(
            (info.revision, info.replicas, info.available_replicas),
            (3, 2, 1)
        );
        let deployment_template = json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25.3"}]}});
        assert_eq!(
            info.template,
            TemplateDigest::of(&template(deployment_template))
        );

        let not_controller = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
            "uid": "u"}]);
        assert!(
            ReplicaSetInfo::from_replica_set(&replica_set(not_controller, tpl.clone()), "x")
                .is_none()
        );
        let other_kind = json!([{"apiVersion": "example.com/v1", "kind": "Deployment", "name": "web",
            "uid": "u", "controller": true}]);
        assert!(
            ReplicaSetInfo::from_replica_set(&replica_set(other_kind, tpl.clone()), "x").is_none()
        );
        assert!(ReplicaSetInfo::from_replica_set(&replica_set(Value::Null, tpl), "x").is_none());
    }
}
