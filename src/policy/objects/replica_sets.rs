//! What the store keeps of a ReplicaSet: which Deployment controls it, its revision, and a
//! digest of its pod template, so the rollback rule can tell that a Deployment's incoming
//! template is one the controller already has a ReplicaSet for.
//!
//! The Deployment controller reuses a ReplicaSet when the Deployment's template equals the
//! ReplicaSet's with the `pod-template-hash` label removed (`EqualIgnoreHash` in
//! kubernetes/pkg/controller/deployment/util, `apiequality.Semantic.DeepEqual`). The digest
//! reproduces that comparison: both templates are read with the same typed parser, the label
//! is removed, and a canonical JSON text (keys sorted, nulls dropped, empty label and
//! annotation maps dropped: Semantic.DeepEqual treats a nil map as an empty one) is hashed.
//! 16 bytes of SHA-256 instead of the template: a real template is kilobytes, and a cluster
//! keeps `revisionHistoryLimit` ReplicaSets per Deployment.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;
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
        // A typed template always serializes; should it not, nothing can equal it.
        let mut value = serde_json::to_value(template).unwrap_or(Value::Null);
        if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
                labels.remove(POD_TEMPLATE_HASH);
            }
            for map in ["labels", "annotations"] {
                if metadata
                    .get(map)
                    .and_then(Value::as_object)
                    .is_some_and(|m| m.is_empty())
                {
                    metadata.remove(map);
                }
            }
        }
        let mut text = Vec::with_capacity(4096);
        write_canonical(&value, &mut text);
        let hash = Sha256::digest(&text);
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&hash[..16]);
        TemplateDigest(digest)
    }
}

/// JSON with object keys in byte order and null members left out (an absent field and a null
/// one read the same into Go's structs). Strings and numbers are written by serde_json.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> =
                map.iter().filter(|(_, v)| !v.is_null()).collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Writing a scalar Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
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
    use serde_json::json;

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
