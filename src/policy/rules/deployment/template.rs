//! Reading and comparing a Deployment's pod template.
//!
//! Any change to `spec.template` makes the controller roll out a new ReplicaSet (the pod
//! template hash changes), so the rules compare templates as JSON values: exactly what the
//! controller hashes, independent of field order.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use serde_json::{Map, Value};

/// Template annotation `kubectl rollout restart` sets to the current time.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The pod template as JSON (`null` when absent).
pub fn template_json(deployment: &Deployment) -> Value {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| serde_json::to_value(&spec.template).ok())
        .unwrap_or(Value::Null)
}

/// The containers of the pod template (not init containers).
pub fn containers(deployment: &Deployment) -> &[Container] {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .map_or(&[], |pod| pod.containers.as_slice())
}

/// The container whose image carries the version: the one named, else the first.
pub fn chosen_container<'a>(
    deployment: &'a Deployment,
    name: Option<&str>,
) -> Option<&'a Container> {
    let all = containers(deployment);
    name.and_then(|wanted| all.iter().find(|c| c.name == wanted))
        .or_else(|| all.first())
}

fn template(deployment: &Deployment) -> Option<&PodTemplateSpec> {
    deployment.spec.as_ref().map(|spec| &spec.template)
}

/// True when the template differs between the two objects. Compared as typed values: the same
/// answer as comparing the JSON (serialisation maps equal values to equal JSON and back), without
/// serialising two templates on every request.
pub fn template_changed(new: &Deployment, old: &Deployment) -> bool {
    template(new) != template(old)
}

/// What changed in the pod template between two versions of a Deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateDiff {
    /// `name: old → new` per container whose image changed.
    pub images: Vec<String>,
    /// Containers added, with their image.
    pub added: Vec<String>,
    /// Containers removed.
    pub removed: Vec<String>,
    /// Containers whose `env`/`envFrom` changed.
    pub env: Vec<String>,
    /// Containers whose `resources` changed.
    pub resources: Vec<String>,
    /// `kubectl rollout restart` (the restartedAt template annotation changed).
    pub restart: bool,
    /// Other changed parts, named briefly (`labels`, `volumes`, `web.args`).
    pub other: BTreeSet<String>,
}

impl TemplateDiff {
    /// True when nothing that affects the pods changed.
    pub fn is_empty(&self) -> bool {
        *self == TemplateDiff::default()
    }

    /// One line naming what changed, most telling parts first.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.images.iter().map(|i| format!("image {i}")));
        parts.extend(self.added.iter().map(|c| format!("container {c} added")));
        parts.extend(
            self.removed
                .iter()
                .map(|c| format!("container {c} removed")),
        );
        if !self.env.is_empty() {
            parts.push(format!("env changed ({})", self.env.join(", ")));
        }
        if !self.resources.is_empty() {
            parts.push(format!("resources changed ({})", self.resources.join(", ")));
        }
        if self.restart {
            parts.push("rollout restart".to_owned());
        }
        if !self.other.is_empty() {
            let other: Vec<&str> = self.other.iter().map(String::as_str).collect();
            parts.push(format!("pod template changed ({})", other.join(", ")));
        }
        parts.join("; ")
    }
}

fn member<'a>(value: &'a Value, key: &str) -> &'a Value {
    value.get(key).unwrap_or(&Value::Null)
}

fn object(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// The members of a JSON object, borrowed (none for anything else).
fn members(value: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    value
        .as_object()
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// Compares two pod templates. `restorable_labels` are template label keys a rule puts back when
/// the new template lacks them (the version label): their absence is not a change, because
/// server-side apply drops fields a webhook added and they come straight back. Nor is their
/// appearance next to a stored object without them: that is the webhook's own addition seen
/// again when the API server reinvokes it, and counting it would patch a second time.
pub fn diff(old: &Deployment, new: &Deployment, restorable_labels: &[String]) -> TemplateDiff {
    let mut diff = TemplateDiff::default();
    // Most updates (scale, metadata, a re-apply) leave the template alone: no serialising then.
    if !template_changed(new, old) {
        return diff;
    }
    let (old, new) = (template_json(old), template_json(new));
    let (old_meta, new_meta) = (member(&old, "metadata"), member(&new, "metadata"));
    let mut old_labels = object(member(old_meta, "labels"));
    let mut new_labels = object(member(new_meta, "labels"));
    for key in restorable_labels {
        if !new_labels.contains_key(key) || !old_labels.contains_key(key) {
            old_labels.remove(key);
            new_labels.remove(key);
        }
    }
    if old_labels != new_labels {
        diff.other.insert("labels".to_owned());
    }
    let mut old_annotations = object(member(old_meta, "annotations"));
    let mut new_annotations = object(member(new_meta, "annotations"));
    let old_restart = old_annotations.remove(RESTARTED_AT);
    let new_restart = new_annotations.remove(RESTARTED_AT);
    diff.restart = new_restart.is_some() && old_restart != new_restart;
    if old_annotations != new_annotations {
        diff.other.insert("annotations".to_owned());
    }
    let (old_meta_map, new_meta_map) = (members(old_meta), members(new_meta));
    let other_metadata_changed = old_meta_map
        .keys()
        .chain(new_meta_map.keys())
        .filter(|k| *k != "labels" && *k != "annotations")
        .any(|k| old_meta_map.get(k) != new_meta_map.get(k));
    if other_metadata_changed {
        diff.other.insert("metadata".to_owned());
    }

    let (old_spec, new_spec) = (members(member(&old, "spec")), members(member(&new, "spec")));
    let spec_keys: BTreeSet<&String> = old_spec.keys().chain(new_spec.keys()).collect();
    for key in spec_keys {
        let (before, after) = (
            old_spec.get(key).unwrap_or(&Value::Null),
            new_spec.get(key).unwrap_or(&Value::Null),
        );
        if before == after {
            continue;
        }
        match key.as_str() {
            "containers" => diff_containers(&mut diff, before, after, ""),
            "initContainers" => diff_containers(&mut diff, before, after, " (init)"),
            other => {
                diff.other.insert(other.to_owned());
            }
        }
    }
    diff
}

fn diff_containers(diff: &mut TemplateDiff, old: &Value, new: &Value, suffix: &str) {
    let empty = Vec::new();
    let old = old.as_array().unwrap_or(&empty);
    let new = new.as_array().unwrap_or(&empty);
    let name_of = |c: &Value| {
        c.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let image_of = |c: &Value| {
        c.get("image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    for container in new {
        let name = name_of(container);
        let label = format!("{name}{suffix}");
        let Some(before) = old.iter().find(|c| name_of(c) == name) else {
            diff.added
                .push(format!("{label} ({})", image_of(container)));
            continue;
        };
        let (before, after) = (members(before), members(container));
        let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        let mut env_changed = false;
        for key in keys {
            if before.get(key) == after.get(key) {
                continue;
            }
            match key.as_str() {
                "image" => diff.images.push(format!(
                    "{label}: {} → {}",
                    before.get("image").and_then(Value::as_str).unwrap_or(""),
                    after.get("image").and_then(Value::as_str).unwrap_or("")
                )),
                "env" | "envFrom" => env_changed = true,
                "resources" => diff.resources.push(label.clone()),
                other => {
                    diff.other.insert(format!("{name}.{other}"));
                }
            }
        }
        if env_changed {
            diff.env.push(label);
        }
    }
    for container in old {
        let name = name_of(container);
        if !new.iter().any(|c| name_of(c) == name) {
            diff.removed.push(format!("{name}{suffix}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_template_labels(labels: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "web:1.2.3"}]},
                },
            },
        }))
        .expect("deployment")
    }

    /// Found by tests/properties.rs: an UPDATE of a Deployment stored without the version label
    /// got the label from versionLabel, and on reinvocation changeCause saw that label as a user's
    /// template change and patched a second time (mutate was not idempotent).
    #[test]
    fn restorable_labels_count_only_when_their_value_changes() {
        let keys = ["app.kubernetes.io/version".to_owned()];
        let without = with_template_labels(json!({"app": "web"}));
        let v1 = with_template_labels(json!({"app": "web", "app.kubernetes.io/version": "1.2.3"}));
        let v2 = with_template_labels(json!({"app": "web", "app.kubernetes.io/version": "1.2.4"}));
        let other = with_template_labels(json!({"app": "web", "tier": "front"}));
        assert!(
            diff(&without, &v1, &keys).is_empty(),
            "added by the webhook"
        );
        assert!(
            diff(&v1, &without, &keys).is_empty(),
            "dropped by apply, restored"
        );
        assert_eq!(
            diff(&v1, &v2, &keys).other,
            BTreeSet::from(["labels".to_owned()])
        );
        assert_eq!(
            diff(&without, &other, &keys).other,
            BTreeSet::from(["labels".to_owned()])
        );
    }
}
