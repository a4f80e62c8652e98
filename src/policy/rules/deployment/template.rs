//! Reading and comparing a Deployment's pod template.
//!
//! Any change to `spec.template` makes the controller roll out a new ReplicaSet (the pod
//! template hash changes), so the rules compare templates with the meaning of comparing them as
//! JSON values (exactly what the controller hashes, independent of field order), but on the typed
//! objects.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Template annotation `kubectl rollout restart` sets to the current time.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

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

/// Compares two pod templates. `restorable_labels` are template label keys a rule puts back when
/// the new template lacks them (the version label): their absence is not a change, because
/// server-side apply drops fields a webhook added and they come straight back. Nor is their
/// appearance next to a stored object without them: that is the webhook's own addition seen
/// again when the API server reinvokes it, and counting it would patch a second time.
///
/// Field by field on the typed objects, naming each field as it is serialised: the same answer
/// as comparing the two templates as JSON (what the controller hashes), without serialising them
/// (that was a fifth of the CPU of a Deployment UPDATE). An absent metadata or spec compares as
/// an empty one, as an absent JSON member reads as an empty map.
pub fn diff(old: &Deployment, new: &Deployment, restorable_labels: &[String]) -> TemplateDiff {
    let mut diff = TemplateDiff::default();
    // Most updates (scale, metadata, a re-apply) leave the template alone.
    if !template_changed(new, old) {
        return diff;
    }
    let (empty_meta, empty_spec) = (ObjectMeta::default(), PodSpec::default());
    let (old, new) = (template(old), template(new));
    let old_meta = old.and_then(|t| t.metadata.as_ref()).unwrap_or(&empty_meta);
    let new_meta = new.and_then(|t| t.metadata.as_ref()).unwrap_or(&empty_meta);
    diff_metadata(&mut diff, old_meta, new_meta, restorable_labels);
    let old_spec = old.and_then(|t| t.spec.as_ref()).unwrap_or(&empty_spec);
    let new_spec = new.and_then(|t| t.spec.as_ref()).unwrap_or(&empty_spec);
    diff_pod_spec(&mut diff, old_spec, new_spec);
    diff
}

/// Calls `$changed` with the serialised name of every listed field that differs between `$old`
/// and `$new`. The fields are destructured without `..`, so a field a k8s-openapi upgrade adds
/// fails to compile here instead of going unnoticed.
macro_rules! changed_fields {
    ($old:expr, $new:expr, $kind:ident { $($field:ident => $json:literal),* $(,)? }, $changed:expr) => {{
        let $kind { $($field: _),* } = $new;
        let mut changed = $changed;
        $(
            if $old.$field != $new.$field {
                changed($json);
            }
        )*
    }};
}

/// Whether two maps are equal once the keys `skip` selects are left out of both.
fn equal_except(
    old: Option<&BTreeMap<String, String>>,
    new: Option<&BTreeMap<String, String>>,
    skip: impl Fn(&str) -> bool,
) -> bool {
    let kept_old = old.into_iter().flatten().filter(|(key, _)| !skip(key));
    let kept_new = new.into_iter().flatten().filter(|(key, _)| !skip(key));
    kept_old.eq(kept_new)
}

fn diff_metadata(
    diff: &mut TemplateDiff,
    old: &ObjectMeta,
    new: &ObjectMeta,
    restorable_labels: &[String],
) {
    let (old_labels, new_labels) = (old.labels.as_ref(), new.labels.as_ref());
    let has = |labels: Option<&BTreeMap<String, String>>, key: &str| {
        labels.is_some_and(|l| l.contains_key(key))
    };
    // A restorable label counts only when both sides carry it (see `diff`).
    let skipped_label = |key: &str| {
        restorable_labels.iter().any(|k| k == key)
            && !(has(old_labels, key) && has(new_labels, key))
    };
    if !equal_except(old_labels, new_labels, skipped_label) {
        diff.other.insert("labels".to_owned());
    }
    let (old_annotations, new_annotations) = (old.annotations.as_ref(), new.annotations.as_ref());
    let old_restart = old_annotations.and_then(|a| a.get(RESTARTED_AT));
    let new_restart = new_annotations.and_then(|a| a.get(RESTARTED_AT));
    diff.restart = new_restart.is_some() && old_restart != new_restart;
    if !equal_except(old_annotations, new_annotations, |key| key == RESTARTED_AT) {
        diff.other.insert("annotations".to_owned());
    }
    let mut other_changed = false;
    changed_fields!(
        old,
        new,
        ObjectMeta {
            annotations => "annotations",
            creation_timestamp => "creationTimestamp",
            deletion_grace_period_seconds => "deletionGracePeriodSeconds",
            deletion_timestamp => "deletionTimestamp",
            finalizers => "finalizers",
            generate_name => "generateName",
            generation => "generation",
            labels => "labels",
            managed_fields => "managedFields",
            name => "name",
            namespace => "namespace",
            owner_references => "ownerReferences",
            resource_version => "resourceVersion",
            self_link => "selfLink",
            uid => "uid",
        },
        |field: &str| other_changed |= field != "labels" && field != "annotations"
    );
    if other_changed {
        diff.other.insert("metadata".to_owned());
    }
}

fn diff_pod_spec(diff: &mut TemplateDiff, old: &PodSpec, new: &PodSpec) {
    // Containers before init containers: the order the JSON comparison named them in.
    if old.containers != new.containers {
        diff_containers(diff, &old.containers, &new.containers, "");
    }
    if old.init_containers != new.init_containers {
        let (before, after) = (
            old.init_containers.as_deref().unwrap_or_default(),
            new.init_containers.as_deref().unwrap_or_default(),
        );
        diff_containers(diff, before, after, " (init)");
    }
    changed_fields!(
        old,
        new,
        PodSpec {
            active_deadline_seconds => "activeDeadlineSeconds",
            affinity => "affinity",
            automount_service_account_token => "automountServiceAccountToken",
            containers => "containers",
            dns_config => "dnsConfig",
            dns_policy => "dnsPolicy",
            enable_service_links => "enableServiceLinks",
            ephemeral_containers => "ephemeralContainers",
            host_aliases => "hostAliases",
            host_ipc => "hostIPC",
            host_network => "hostNetwork",
            host_pid => "hostPID",
            host_users => "hostUsers",
            hostname => "hostname",
            image_pull_secrets => "imagePullSecrets",
            init_containers => "initContainers",
            node_name => "nodeName",
            node_selector => "nodeSelector",
            os => "os",
            overhead => "overhead",
            preemption_policy => "preemptionPolicy",
            priority => "priority",
            priority_class_name => "priorityClassName",
            readiness_gates => "readinessGates",
            resource_claims => "resourceClaims",
            resources => "resources",
            restart_policy => "restartPolicy",
            runtime_class_name => "runtimeClassName",
            scheduler_name => "schedulerName",
            scheduling_gates => "schedulingGates",
            security_context => "securityContext",
            service_account => "serviceAccount",
            service_account_name => "serviceAccountName",
            set_hostname_as_fqdn => "setHostnameAsFQDN",
            share_process_namespace => "shareProcessNamespace",
            subdomain => "subdomain",
            termination_grace_period_seconds => "terminationGracePeriodSeconds",
            tolerations => "tolerations",
            topology_spread_constraints => "topologySpreadConstraints",
            volumes => "volumes",
        },
        |field: &str| {
            if field != "containers" && field != "initContainers" {
                diff.other.insert(field.to_owned());
            }
        }
    );
}

fn diff_containers(diff: &mut TemplateDiff, old: &[Container], new: &[Container], suffix: &str) {
    for after in new {
        let name = after.name.as_str();
        let label = format!("{name}{suffix}");
        let Some(before) = old.iter().find(|c| c.name == name) else {
            diff.added.push(format!(
                "{label} ({})",
                after.image.as_deref().unwrap_or("")
            ));
            continue;
        };
        let mut env_changed = false;
        changed_fields!(
            before,
            after,
            Container {
                args => "args",
                command => "command",
                env => "env",
                env_from => "envFrom",
                image => "image",
                image_pull_policy => "imagePullPolicy",
                lifecycle => "lifecycle",
                liveness_probe => "livenessProbe",
                name => "name",
                ports => "ports",
                readiness_probe => "readinessProbe",
                resize_policy => "resizePolicy",
                resources => "resources",
                restart_policy => "restartPolicy",
                security_context => "securityContext",
                startup_probe => "startupProbe",
                stdin => "stdin",
                stdin_once => "stdinOnce",
                termination_message_path => "terminationMessagePath",
                termination_message_policy => "terminationMessagePolicy",
                tty => "tty",
                volume_devices => "volumeDevices",
                volume_mounts => "volumeMounts",
                working_dir => "workingDir",
            },
            |field: &str| match field {
                "image" => diff.images.push(format!(
                    "{label}: {} → {}",
                    before.image.as_deref().unwrap_or(""),
                    after.image.as_deref().unwrap_or("")
                )),
                "env" | "envFrom" => env_changed = true,
                "resources" => diff.resources.push(label.clone()),
                other => {
                    diff.other.insert(format!("{name}.{other}"));
                }
            }
        );
        if env_changed {
            diff.env.push(label);
        }
    }
    for before in old {
        if !new.iter().any(|c| c.name == before.name) {
            diff.removed.push(format!("{}{suffix}", before.name));
        }
    }
}

/// The topology key that puts one pod per node.
const HOSTNAME_KEY: &str = "kubernetes.io/hostname";

/// Why a surge pod (one more pod than replicas, started before an old one stops) may never be
/// scheduled: a `hostPort` (the scheduler's NodePorts filter refuses a node that already runs a
/// pod on that port) or a required pod anti-affinity per node (`topologyKey:
/// kubernetes.io/hostname`). When every node already runs one pod, the surge pod stays Pending
/// and a rollout with maxUnavailable 0 cannot progress. `None` when neither applies.
pub fn surge_unschedulable(deployment: &Deployment) -> Option<String> {
    let pod = deployment.spec.as_ref()?.template.spec.as_ref()?;
    let host_port = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .find_map(|c| {
            c.ports
                .iter()
                .flatten()
                .find(|p| p.host_port.is_some_and(|port| port > 0))
                .map(|p| (c.name.as_str(), p.host_port.unwrap_or_default()))
        });
    if let Some((container, port)) = host_port {
        return Some(format!("container {container} uses hostPort {port}"));
    }
    let per_node = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|anti| {
            anti.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_some_and(|terms| terms.iter().any(|t| t.topology_key == HOSTNAME_KEY));
    per_node.then(|| {
        format!("the pod template requires pod anti-affinity per node (topologyKey {HOSTNAME_KEY})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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

    /// The comparison as it was before it went typed: both templates serialised to JSON and
    /// compared member by member. Kept as the oracle the typed comparison must agree with.
    mod json_reference {
        use super::super::{template_changed, TemplateDiff, RESTARTED_AT};
        use k8s_openapi::api::apps::v1::Deployment;
        use serde_json::{Map, Value};
        use std::collections::BTreeSet;

        fn template_json(deployment: &Deployment) -> Value {
            deployment
                .spec
                .as_ref()
                .and_then(|spec| serde_json::to_value(&spec.template).ok())
                .unwrap_or(Value::Null)
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
        pub fn json_diff(
            old: &Deployment,
            new: &Deployment,
            restorable_labels: &[String],
        ) -> TemplateDiff {
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

            let (old_spec, new_spec) =
                (members(member(&old, "spec")), members(member(&new, "spec")));
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
    }

    /// Templates that differ in one or a few places each, every pair compared both ways.
    fn variants() -> Vec<Deployment> {
        let base = json!({
            "metadata": {"labels": {"app": "web", "app.kubernetes.io/version": "1.2.3"},
                         "annotations": {"a": "1"}},
            "spec": {
                "initContainers": [{"name": "init", "image": "busybox:1"}],
                "containers": [
                    {"name": "web", "image": "web:1.2.3", "args": ["--x"],
                     "env": [{"name": "A", "value": "1"}],
                     "resources": {"limits": {"cpu": "1"}}},
                    {"name": "side", "image": "side:1"},
                ],
                "volumes": [{"name": "v", "emptyDir": {}}],
            },
        });
        let edits: Vec<fn(&mut Value)> = vec![
            |_| {},
            |t| t["metadata"]["labels"]["tier"] = json!("front"),
            |t| t["metadata"]["labels"]["app.kubernetes.io/version"] = json!("1.2.4"),
            |t| {
                drop(
                    t["metadata"]["labels"]
                        .as_object_mut()
                        .map(|l| l.remove("app.kubernetes.io/version")),
                )
            },
            |t| t["metadata"]["annotations"][RESTARTED_AT] = json!("2026-01-01T00:00:00Z"),
            |t| t["metadata"]["annotations"]["a"] = json!("2"),
            |t| t["metadata"]["annotations"] = json!({}),
            |t| drop(t.as_object_mut().map(|m| m.remove("metadata"))),
            |t| t["metadata"]["name"] = json!("x"),
            |t| t["metadata"]["finalizers"] = json!([]),
            |t| t["spec"]["containers"][0]["image"] = json!("web:1.3.0"),
            |t| t["spec"]["containers"][0]["env"][0]["value"] = json!("2"),
            |t| t["spec"]["containers"][1]["envFrom"] = json!([{"configMapRef": {"name": "c"}}]),
            |t| t["spec"]["containers"][0]["resources"] = json!({}),
            |t| t["spec"]["containers"][0]["args"] = json!(["--y"]),
            |t| t["spec"]["containers"][0]["livenessProbe"] = json!({"periodSeconds": 5}),
            |t| t["spec"]["containers"][1]["name"] = json!("other"),
            |t| drop(t["spec"]["containers"].as_array_mut().map(Vec::pop)),
            |t| t["spec"]["containers"] = json!([]),
            |t| t["spec"]["initContainers"][0]["image"] = json!("busybox:2"),
            |t| t["spec"]["initContainers"] = json!([]),
            |t| {
                drop(
                    t["spec"]
                        .as_object_mut()
                        .map(|m| m.remove("initContainers")),
                )
            },
            |t| t["spec"]["hostIPC"] = json!(true),
            |t| t["spec"]["setHostnameAsFQDN"] = json!(false),
            |t| t["spec"]["nodeSelector"] = json!({"disk": "ssd"}),
            |t| drop(t["spec"].as_object_mut().map(|m| m.remove("volumes"))),
            |t| t["spec"] = json!({"containers": []}),
            |t| drop(t.as_object_mut().map(|m| m.remove("spec"))),
            |t| {
                t["spec"]["containers"][0]["image"] = json!("web:2");
                t["spec"]["containers"][1]["image"] = json!("side:2");
                t["spec"]["dnsPolicy"] = json!("None");
                t["metadata"]["annotations"][RESTARTED_AT] = json!("now");
            },
        ];
        edits
            .into_iter()
            .map(|edit| {
                let mut template = base.clone();
                edit(&mut template);
                serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
                    "selector": {"matchLabels": {"app": "web"}}, "template": template}}))
                .expect("deployment")
            })
            .collect()
    }

    #[test]
    fn typed_diff_agrees_with_json_diff() {
        let keys = ["app.kubernetes.io/version".to_owned()];
        let variants = variants();
        for (i, old) in variants.iter().enumerate() {
            for (j, new) in variants.iter().enumerate() {
                assert_eq!(
                    diff(old, new, &keys),
                    json_reference::json_diff(old, new, &keys),
                    "variant {i} → {j}"
                );
            }
        }
    }
}
