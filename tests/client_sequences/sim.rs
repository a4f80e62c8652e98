//! A small, honest simulation of the clients, the API server and the Deployment controller, for
//! replaying client sequences through the webhook's own review path.
//!
//! What it models, and only that (the fields the rules read and the clients write):
//!
//! - **API server**: defaults (the 1.20 `apps/v1` Deployment defaults the traces show in every
//!   mutating request), `metadata.generation` (up on a spec or annotation change, not on a label
//!   change), managedFields entries (`Apply` with the applied configuration's `fieldsV1` for
//!   server-side apply, `Update` for everything else), the AdmissionReview as the traces show it,
//!   the mutating then the validating call, and the JSON Patch applied with the `json-patch`
//!   crate. Every write that reaches the server calls the webhook, even a no-op one.
//! - **Clients**: client-side apply (three-way merge of the last-applied annotation, the manifest
//!   and the live object: maps by key, `name`-keyed lists by name, other lists replaced; no
//!   request when the merge changes nothing, as kubectl and Argo CD skip it), server-side apply
//!   (the applied configuration replaces what that manager applied before; every apply is sent),
//!   Helm 3 (a three-way merge against the previous release's manifest, manager `helm`, no
//!   last-applied), Helm 4 (server-side apply as `helm`), replace, set image/env, pause/resume,
//!   scale (the subresource, which the chart's rules never send to the webhook), annotate and
//!   `rollout undo` (template and annotations from the target ReplicaSet, as kubectl does).
//! - **Deployment controller**: a new ReplicaSet exactly when the template differs from every
//!   existing one (ignoring `pod-template-hash`), else the matching one becomes the newest
//!   revision; nothing while paused; the Deployment's annotations copied to the current
//!   ReplicaSet (without the ones kubectl and the controller skip).

use std::collections::BTreeMap;

use base64::Engine as _;
use rollout_guard::admission::{review, ReviewContext};
use rollout_guard::policy::load::embedded_default;
use rollout_guard::policy::{Endpoint, PolicySet};
use rollout_guard::store::Store;
use serde_json::{json, Map, Value};

pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
const REVISION: &str = "deployment.kubernetes.io/revision";
const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Annotations the controller does not copy to ReplicaSets and `rollout undo` does not take
/// from them (kubectl's `annotationsToSkip`, the controller's `skipCopyAnnotation`).
const NOT_COPIED: &[&str] = &[
    LAST_APPLIED,
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// One ReplicaSet as the controller keeps it.
#[derive(Debug, Clone)]
pub struct ReplicaSet {
    pub revision: u64,
    /// The pod template without `pod-template-hash`.
    pub template: Value,
    pub annotations: Map<String, Value>,
    pub name: String,
}

/// What one write did.
#[derive(Debug, Clone, Default)]
pub struct Write {
    /// The request reached the API server (and so the webhook, when installed).
    pub sent: bool,
    /// The mutating webhook's JSON Patch.
    pub patch: Vec<Value>,
    pub warnings: Vec<String>,
    /// The request object as the API server sent it to the mutating webhook.
    pub request_object: Option<Value>,
}

/// The cluster: one Deployment, its ReplicaSets, and whether the webhook is registered.
pub struct Cluster {
    pub webhook: bool,
    /// The namespace of every object (the traces' `tr-*` for cross-checks).
    pub namespace: String,
    policies: PolicySet,
    pub store: Store,
    pub deployment: Option<Value>,
    pub replica_sets: Vec<ReplicaSet>,
    /// Server-side apply: each manager's last applied configuration (what it owns).
    applied: BTreeMap<String, Value>,
    /// Helm 3's previous release manifest.
    helm_release: Option<Value>,
    resource_version: u64,
    uid_counter: u64,
}

impl Cluster {
    pub fn new(webhook: bool) -> Self {
        Self {
            webhook,
            namespace: "shop".to_owned(),
            policies: embedded_default(),
            store: Store::offline(),
            deployment: None,
            replica_sets: Vec::new(),
            applied: BTreeMap::new(),
            helm_release: None,
            resource_version: 100,
            uid_counter: 0,
        }
    }

    fn live(&self) -> Value {
        self.deployment.clone().expect("the Deployment exists")
    }

    // ---- clients

    /// `kubectl apply` (client-side) with `manager` as field manager (`argocd-controller` for
    /// Argo CD's default sync).
    pub fn client_side_apply(&mut self, manifest: &Value, manager: &str) -> Write {
        // What kubectl records: the manifest with its namespace and an annotations map, without
        // the annotation itself, as JSON with a final newline.
        let mut applied = manifest.clone();
        applied["metadata"]["namespace"] = json!(self.namespace);
        if applied["metadata"].get("annotations").is_none() {
            applied["metadata"]["annotations"] = json!({});
        }
        remove_path(&mut applied, &["metadata", "annotations", LAST_APPLIED]);
        let text = format!("{}\n", serde_json::to_string(&applied).unwrap());
        let mut modified = applied.clone();
        set_annotation(&mut modified, LAST_APPLIED, &text);
        let Some(live) = self.deployment.clone() else {
            return self.write(modified, manager, None, Some("CreateOptions"));
        };
        let last = annotation(&live, LAST_APPLIED)
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .unwrap_or(Value::Null);
        let mut object = merge3(&last, &modified, &live);
        default_deployment(&mut object);
        if same_object(&object, &live) {
            // kubectl: "unchanged", nothing sent.
            return Write::default();
        }
        self.write(object, manager, None, Some("UpdateOptions"))
    }

    /// `kubectl apply --server-side --field-manager=manager [--force-conflicts]`.
    pub fn server_side_apply(&mut self, manifest: &Value, manager: &str) -> Write {
        let previous = self.applied.insert(manager.to_owned(), manifest.clone());
        let Some(live) = self.deployment.clone() else {
            return self.write(
                manifest.clone(),
                manager,
                Some(manifest),
                Some("CreateOptions"),
            );
        };
        let mut object = live;
        if let Some(previous) = previous {
            remove_unowned(&previous, manifest, &mut object);
        }
        overlay(&mut object, manifest);
        self.write(object, manager, Some(manifest), Some("UpdateOptions"))
    }

    /// `helm install` / `helm upgrade` with Helm 3: a three-way merge against the previous
    /// release's manifest; nothing sent when the merge changes nothing.
    pub fn helm3_upgrade(&mut self, rendered: &Value) -> Write {
        let previous = self.helm_release.replace(rendered.clone());
        let Some(live) = self.deployment.clone() else {
            return self.write(rendered.clone(), "helm", None, Some("CreateOptions"));
        };
        let mut object = merge3(&previous.unwrap_or(Value::Null), rendered, &live);
        default_deployment(&mut object);
        if same_object(&object, &live) {
            return Write::default();
        }
        self.write(object, "helm", None, Some("UpdateOptions"))
    }

    /// `kubectl replace -f` / a plain PUT of `manifest`.
    pub fn replace(&mut self, manifest: &Value) -> Write {
        let mut object = manifest.clone();
        let live = self.live();
        object["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
        self.write(object, "kubectl-replace", None, Some("UpdateOptions"))
    }

    /// `kubectl create -f` (with or without the webhook registered).
    pub fn create(&mut self, manifest: &Value) -> Write {
        self.write(
            manifest.clone(),
            "kubectl-create",
            None,
            Some("CreateOptions"),
        )
    }

    /// `kubectl set image deploy/web container=image`; nothing sent for the same image.
    pub fn set_image(&mut self, container: &str, image: &str) -> Write {
        let mut object = self.live();
        let c = container_mut(&mut object, container);
        if c["image"] == image {
            return Write::default();
        }
        c["image"] = json!(image);
        self.write(object, "kubectl-set", None, Some("UpdateOptions"))
    }

    /// `kubectl set env deploy/web NAME=value`.
    pub fn set_env(&mut self, container: &str, name: &str, value: &str) -> Write {
        let mut object = self.live();
        let c = container_mut(&mut object, container);
        let env = c
            .as_object_mut()
            .unwrap()
            .entry("env")
            .or_insert_with(|| json!([]));
        let list = env.as_array_mut().unwrap();
        list.retain(|e| e["name"] != name);
        list.push(json!({"name": name, "value": value}));
        self.write(object, "kubectl-set", None, Some("UpdateOptions"))
    }

    /// `kubectl rollout pause` / `resume`.
    pub fn set_paused(&mut self, paused: bool) -> Write {
        let mut object = self.live();
        if paused {
            object["spec"]["paused"] = json!(true);
        } else {
            remove_path(&mut object, &["spec", "paused"]);
        }
        self.write(object, "kubectl-rollout", None, Some("UpdateOptions"))
    }

    /// `kubectl annotate deploy/web key=value`.
    pub fn annotate(&mut self, key: &str, value: &str) -> Write {
        let mut object = self.live();
        set_annotation(&mut object, key, value);
        self.write(object, "kubectl-annotate", None, Some("UpdateOptions"))
    }

    /// `kubectl scale`: the `scale` subresource, which the chart's webhook rules do not match
    /// (kubectl-scale.json): the replicas change with no webhook call.
    pub fn scale_subresource(&mut self, replicas: u64) {
        let mut object = self.live();
        object["spec"]["replicas"] = json!(replicas);
        self.store_object(object, true);
    }

    /// `kubectl patch --type=merge -p '{"spec":{"replicas":N}}'`: reaches the webhook.
    pub fn patch_replicas(&mut self, replicas: u64) -> Write {
        let mut object = self.live();
        object["spec"]["replicas"] = json!(replicas);
        self.write(object, "kubectl-patch", None, Some("UpdateOptions"))
    }

    /// `kubectl rollout undo [--to-revision=N]` (the previous revision when `None`): the
    /// template and the annotations of the target ReplicaSet; no fieldManager in the options.
    pub fn undo(&mut self, to_revision: Option<u64>) -> Write {
        let mut by_revision = self.replica_sets.clone();
        by_revision.sort_by_key(|rs| rs.revision);
        let target = match to_revision {
            Some(revision) => by_revision.iter().find(|rs| rs.revision == revision),
            None => by_revision.iter().rev().nth(1),
        }
        .expect("the target revision exists")
        .clone();
        let mut object = self.live();
        object["spec"]["template"] = target.template.clone();
        let old = object["metadata"]["annotations"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut annotations: Map<String, Value> = old
            .into_iter()
            .filter(|(k, _)| NOT_COPIED.contains(&k.as_str()))
            .collect();
        for (k, v) in &target.annotations {
            if !NOT_COPIED.contains(&k.as_str()) {
                annotations.insert(k.clone(), v.clone());
            }
        }
        object["metadata"]["annotations"] = Value::Object(annotations);
        self.write(object, "kubectl", None, None)
    }

    // ---- API server

    /// One write: defaults, managedFields, the webhook calls, persistence, the controller.
    fn write(
        &mut self,
        mut object: Value,
        manager: &str,
        applied: Option<&Value>,
        options: Option<&str>,
    ) -> Write {
        let old = self.deployment.clone();
        object["apiVersion"] = json!("apps/v1");
        object["kind"] = json!("Deployment");
        object["metadata"]["namespace"] = json!(self.namespace);
        default_deployment(&mut object);
        match &old {
            None => {
                // A CREATE has no uid, resourceVersion or generation yet.
                for key in ["uid", "resourceVersion", "generation", "managedFields"] {
                    remove_path(&mut object, &["metadata", key]);
                }
            }
            Some(old) => {
                for key in ["uid", "generation", "creationTimestamp", "resourceVersion"] {
                    object["metadata"][key] = old["metadata"][key].clone();
                }
                object["status"] = old["status"].clone();
            }
        }
        object["metadata"]["managedFields"] = managed_fields(old.as_ref(), manager, applied);
        let mut result = Write {
            sent: true,
            request_object: Some(object.clone()),
            ..Write::default()
        };
        if self.webhook {
            let (patch, warnings) =
                self.call(Endpoint::Mutate, &object, old.as_ref(), manager, options);
            if !patch.is_empty() {
                let ops: json_patch::Patch =
                    serde_json::from_value(Value::Array(patch.clone())).expect("a JSON Patch");
                json_patch::patch(&mut object, &ops).expect("the patch applies");
                // The API server reinvokes the webhook after a later mutation; our own output
                // must then be left alone (reinvocationPolicy: IfNeeded).
                let (again, _) =
                    self.call(Endpoint::Mutate, &object, old.as_ref(), manager, options);
                assert!(
                    again.is_empty(),
                    "reinvoked on its own output, the webhook patched again: {again:?}"
                );
            }
            self.call(Endpoint::Validate, &object, old.as_ref(), manager, options);
            result.patch = patch;
            result.warnings = warnings;
        }
        self.store_object(object, false);
        result
    }

    /// Sends one AdmissionReview through `admission::review`, as the API server would; panics
    /// when the webhook denies (every sequence here is an everyday workflow).
    fn call(
        &mut self,
        endpoint: Endpoint,
        object: &Value,
        old: Option<&Value>,
        manager: &str,
        options: Option<&str>,
    ) -> (Vec<Value>, Vec<String>) {
        self.uid_counter += 1;
        let operation = if old.is_some() { "UPDATE" } else { "CREATE" };
        let mut options_value = json!({"apiVersion": "meta.k8s.io/v1"});
        if let Some(kind) = options {
            options_value["kind"] = json!(kind);
            options_value["fieldManager"] = json!(manager);
        } else {
            options_value["kind"] = json!("UpdateOptions");
        }
        let gvk = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
        let gvr = json!({"group": "apps", "version": "v1", "resource": "deployments"});
        let body = json!({
            "kind": "AdmissionReview",
            "apiVersion": "admission.k8s.io/v1",
            "request": {
                "uid": format!("00000000-0000-0000-0000-{:012}", self.uid_counter),
                "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
                "name": object["metadata"]["name"],
                "namespace": self.namespace,
                "operation": operation,
                "userInfo": {"username": "admin", "groups": ["system:masters", "system:authenticated"]},
                "object": object,
                "oldObject": old.cloned().unwrap_or(Value::Null),
                "dryRun": false,
                "options": options_value,
            }
        });
        let ctx = ReviewContext {
            policies: &self.policies,
            view: &self.store,
            own_namespace: Some("rollout-guard"),
            // No break-glass grant is in play: the clock does not matter.
            now: std::time::SystemTime::UNIX_EPOCH,
        };
        let reviewed =
            review(endpoint, &serde_json::to_vec(&body).unwrap(), &ctx).expect("a review");
        let answer: Value = serde_json::from_slice(&reviewed.body).unwrap();
        let response = &answer["response"];
        assert_eq!(
            response["allowed"],
            true,
            "{} {operation} denied: {}",
            endpoint.as_str(),
            response["status"]
        );
        let patch = response["patch"]
            .as_str()
            .map(|b64| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap();
                serde_json::from_slice::<Vec<Value>>(&bytes).unwrap()
            })
            .unwrap_or_default();
        let warnings = response["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(str::to_owned))
            .collect();
        (patch, warnings)
    }

    /// Persists the object (generation, resourceVersion) and runs the controller.
    fn store_object(&mut self, mut object: Value, subresource: bool) {
        let old = self.deployment.clone();
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        match &old {
            None => {
                object["metadata"]["uid"] = json!("0b7c4b8e-3f1d-4d55-9a51-3c1f0e2d7a11");
                object["metadata"]["generation"] = json!(1);
                object["metadata"]["creationTimestamp"] = json!("2026-11-30T03:28:34Z");
            }
            Some(old) => {
                let spec_or_annotations = old["spec"] != object["spec"]
                    || old["metadata"]["annotations"] != object["metadata"]["annotations"];
                let generation = old["metadata"]["generation"].as_u64().unwrap_or(1);
                object["metadata"]["generation"] =
                    json!(generation + u64::from(spec_or_annotations || subresource));
            }
        }
        self.deployment = Some(object);
        self.sync();
        let _ = self.store.apply_object(self.deployment.as_ref().unwrap());
    }

    // ---- Deployment controller

    fn sync(&mut self) {
        let mut deployment = self.live();
        let template = without_hash(&deployment["spec"]["template"]);
        let annotations: Map<String, Value> = deployment["metadata"]["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let newest = self
            .replica_sets
            .iter()
            .map(|rs| rs.revision)
            .max()
            .unwrap_or(0);
        let paused = deployment["spec"]["paused"] == true;
        let current = self
            .replica_sets
            .iter()
            .position(|rs| rs.template == template);
        let revision = match current {
            Some(at) => {
                let rs = &mut self.replica_sets[at];
                if rs.revision != newest && !paused {
                    rs.revision = newest + 1;
                }
                if !paused || rs.revision == newest {
                    rs.annotations = annotations;
                }
                Some(rs.revision)
            }
            None if paused => None,
            None => {
                let name = format!("web-{}", self.replica_sets.len() + 1);
                self.replica_sets.push(ReplicaSet {
                    revision: newest + 1,
                    template: template.clone(),
                    annotations,
                    name,
                });
                Some(newest + 1)
            }
        };
        // Status as the controller reports it: pods on the stored template or not.
        let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1);
        let on_template = current.is_some() || revision.is_some();
        deployment["status"] = json!({
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": if on_template { replicas } else { 0 },
        });
        if let Some(revision) = revision {
            set_annotation(&mut deployment, REVISION, &revision.to_string());
        }
        self.deployment = Some(deployment);
        for rs in self.replica_sets.clone() {
            let _ = self.store.apply_object(&self.replica_set_object(&rs));
        }
    }

    /// The ReplicaSet as the API would list it (for the store, when it keeps ReplicaSets).
    fn replica_set_object(&self, rs: &ReplicaSet) -> Value {
        let mut template = rs.template.clone();
        template["metadata"]["labels"][POD_TEMPLATE_HASH] =
            json!(rs.name.trim_start_matches("web-"));
        let mut annotations = rs.annotations.clone();
        annotations.insert(REVISION.to_owned(), json!(rs.revision.to_string()));
        let deployment = self.live();
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs.name,
                "namespace": self.namespace,
                "uid": format!("rs-{}", rs.name),
                "labels": template["metadata"]["labels"],
                "annotations": annotations,
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "name": deployment["metadata"]["name"],
                    "uid": deployment["metadata"]["uid"],
                    "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": {
                "replicas": 0,
                "selector": deployment["spec"]["selector"],
                "template": template,
            },
            "status": {"replicas": 0, "observedGeneration": 1},
        })
    }

    /// Revision numbers of the ReplicaSets, oldest first, with each one's image.
    pub fn history(&self) -> Vec<(u64, String, Option<String>)> {
        let mut out: Vec<_> = self
            .replica_sets
            .iter()
            .map(|rs| {
                (
                    rs.revision,
                    rs.template["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    rs.annotations
                        .get(CHANGE_CAUSE)
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                )
            })
            .collect();
        out.sort();
        out
    }
}

// ---- object helpers

pub fn annotation(object: &Value, key: &str) -> Option<String> {
    object["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_owned)
}

fn set_annotation(object: &mut Value, key: &str, value: &str) {
    let metadata = object["metadata"].as_object_mut().expect("metadata");
    let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
    if annotations.is_null() {
        *annotations = json!({});
    }
    annotations[key] = json!(value);
}

fn remove_path(object: &mut Value, path: &[&str]) {
    let (last, parents) = path.split_last().unwrap();
    let mut at = object;
    for key in parents {
        match at.get_mut(*key) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.remove(*last);
    }
}

fn container_mut<'a>(object: &'a mut Value, name: &str) -> &'a mut Value {
    object["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == name)
        .expect("the container exists")
}

fn without_hash(template: &Value) -> Value {
    let mut template = template.clone();
    remove_path(&mut template, &["metadata", "labels", POD_TEMPLATE_HASH]);
    template
}

/// Equal as the client compares (metadata the server owns left out).
fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        for key in ["managedFields", "resourceVersion", "generation"] {
            remove_path(&mut v, &["metadata", key]);
        }
        remove_path(&mut v, &["status"]);
        v
    };
    strip(a) == strip(b)
}

/// The key a list item merges by: `name` (containers, env, volumes), `containerPort` (ports).
fn merge_key(item: &Value) -> Option<Value> {
    item.get("name")
        .or_else(|| item.get("containerPort"))
        .cloned()
}

fn keyed(list: &[Value]) -> bool {
    !list.is_empty() && list.iter().all(|i| i.is_object() && merge_key(i).is_some())
}

/// The three-way merge of client-side apply (and Helm 3): start from `live`; what `manifest`
/// says wins; what `last` had and `manifest` no longer has is removed; everything else (API
/// defaults, the webhook's and other writers' additions) stays.
pub fn merge3(last: &Value, manifest: &Value, live: &Value) -> Value {
    match (manifest, live) {
        (Value::Object(m), Value::Object(l)) => {
            let mut out = l.clone();
            if let Value::Object(last_map) = last {
                for key in last_map.keys() {
                    if !m.contains_key(key) {
                        out.remove(key);
                    }
                }
            }
            for (key, value) in m {
                let merged = merge3(
                    last.get(key).unwrap_or(&Value::Null),
                    value,
                    l.get(key).unwrap_or(&Value::Null),
                );
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(m), Value::Array(l))
            if keyed(m) && l.iter().all(|i| merge_key(i).is_some()) =>
        {
            let last_items = last.as_array().cloned().unwrap_or_default();
            let find = |list: &[Value], key: &Value| {
                list.iter()
                    .find(|i| merge_key(i).as_ref() == Some(key))
                    .cloned()
            };
            let mut out: Vec<Value> = Vec::new();
            for item in m {
                let key = merge_key(item).unwrap();
                let live_item = find(l, &key).unwrap_or(Value::Null);
                let last_item = find(&last_items, &key).unwrap_or(Value::Null);
                out.push(merge3(&last_item, item, &live_item));
            }
            // Items someone else added stay; items the manifest dropped go.
            for item in l {
                let key = merge_key(item).unwrap();
                if find(m, &key).is_none() && find(&last_items, &key).is_none() {
                    out.push(item.clone());
                }
            }
            Value::Array(out)
        }
        _ => manifest.clone(),
    }
}

/// Server-side apply: sets every field of the applied configuration.
fn overlay(object: &mut Value, config: &Value) {
    match (object, config) {
        (Value::Object(o), Value::Object(c)) => {
            for (key, value) in c {
                match o.get_mut(key) {
                    Some(existing) if existing.is_object() || existing.is_array() => {
                        overlay(existing, value)
                    }
                    _ => {
                        o.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(o), Value::Array(c))
            if keyed(c) && o.iter().all(|i| merge_key(i).is_some()) =>
        {
            for item in c {
                let key = merge_key(item);
                match o.iter_mut().find(|i| merge_key(i) == key) {
                    Some(existing) => overlay(existing, item),
                    None => o.push(item.clone()),
                }
            }
        }
        (object, config) => *object = config.clone(),
    }
}

/// Server-side apply: fields the manager applied before and no longer applies are removed.
fn remove_unowned(previous: &Value, config: &Value, object: &mut Value) {
    match (previous, object) {
        (Value::Object(p), Value::Object(o)) => {
            for (key, before) in p {
                match config.get(key) {
                    None => {
                        o.remove(key);
                    }
                    Some(now) => {
                        if let Some(existing) = o.get_mut(key) {
                            remove_unowned(before, now, existing);
                        }
                    }
                }
            }
        }
        (Value::Array(p), Value::Array(o)) if keyed(p) => {
            let now = config.as_array().cloned().unwrap_or_default();
            for before in p {
                let key = merge_key(before);
                match now.iter().find(|i| merge_key(i) == key) {
                    None => o.retain(|i| merge_key(i) != key),
                    Some(now_item) => {
                        if let Some(existing) = o.iter_mut().find(|i| merge_key(i) == key) {
                            remove_unowned(before, now_item, existing);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// `fieldsV1` of an applied configuration, as managedFields list it.
/// Identity fields (`apiVersion`, `kind`, `metadata.name`, `metadata.namespace`) are not listed;
/// atomic maps (`spec.selector`) are one field, as the Deployment schema marks them.
pub fn fields_v1(config: &Value) -> Value {
    fields_at(config, &[])
}

fn fields_at(config: &Value, path: &[&str]) -> Value {
    match config {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let identity = match path {
                    [] => matches!(key.as_str(), "apiVersion" | "kind"),
                    ["metadata"] => matches!(key.as_str(), "name" | "namespace"),
                    _ => false,
                };
                if identity {
                    continue;
                }
                let atomic = path == ["spec"] && key == "selector";
                let mut below = path.to_vec();
                below.push(key);
                let fields = if atomic {
                    json!({})
                } else {
                    fields_at(value, &below)
                };
                out.insert(format!("f:{key}"), fields);
            }
            Value::Object(out)
        }
        Value::Array(items) if keyed(items) => {
            let mut out = Map::new();
            for item in items {
                let key = if let Some(name) = item.get("name") {
                    json!({"name": name})
                } else {
                    json!({"containerPort": item["containerPort"], "protocol": item.get("protocol").cloned().unwrap_or(json!("TCP"))})
                };
                let mut fields = fields_at(item, &["item"]);
                fields[".".to_owned()] = json!({});
                out.insert(
                    format!("k:{}", serde_json::to_string(&key).unwrap()),
                    fields,
                );
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

fn managed_fields(old: Option<&Value>, manager: &str, applied: Option<&Value>) -> Value {
    let operation = if applied.is_some() { "Apply" } else { "Update" };
    let mut entries: Vec<Value> = old
        .and_then(|o| o["metadata"]["managedFields"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !(e["manager"] == manager && e["operation"] == operation))
        .collect();
    // An Apply entry lists exactly the applied configuration; an Update entry's fields are
    // not read by the webhook (they include defaults), so they are left empty here.
    let fields = applied.map_or_else(|| json!({}), fields_v1);
    entries.push(json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": "apps/v1",
        "time": "2026-11-30T03:28:34Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }));
    Value::Array(entries)
}

/// The API server's defaults for an `apps/v1` Deployment, as every mutating request in the
/// traces shows them (Kubernetes 1.20; the same on 1.28+ for these fields).
pub fn default_deployment(object: &mut Value) {
    let spec = &mut object["spec"];
    if spec.get("replicas").is_none() {
        spec["replicas"] = json!(1);
    }
    if spec.get("revisionHistoryLimit").is_none() {
        spec["revisionHistoryLimit"] = json!(10);
    }
    if spec.get("progressDeadlineSeconds").is_none() {
        spec["progressDeadlineSeconds"] = json!(600);
    }
    if spec["strategy"].get("type").is_none() {
        spec["strategy"]["type"] = json!("RollingUpdate");
    }
    if spec["strategy"]["type"] == "RollingUpdate" {
        let rolling = &mut spec["strategy"]["rollingUpdate"];
        if rolling.get("maxUnavailable").is_none() {
            rolling["maxUnavailable"] = json!("25%");
        }
        if rolling.get("maxSurge").is_none() {
            rolling["maxSurge"] = json!("25%");
        }
    }
    let template = &mut spec["template"];
    if template["metadata"].get("creationTimestamp").is_none() {
        template["metadata"]["creationTimestamp"] = Value::Null;
    }
    let pod = &mut template["spec"];
    for (key, value) in [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("securityContext", json!({})),
        ("schedulerName", json!("default-scheduler")),
    ] {
        if pod.get(key).is_none() {
            pod[key] = value;
        }
    }
    for container in pod["containers"].as_array_mut().into_iter().flatten() {
        let image = container["image"].as_str().unwrap_or_default().to_owned();
        let tag = image
            .rsplit_once(':')
            .map(|(_, t)| t)
            .filter(|t| !t.contains('/'));
        let pull = if tag.is_none_or(|t| t == "latest") && !image.contains('@') {
            "Always"
        } else {
            "IfNotPresent"
        };
        for (key, value) in [
            ("resources", json!({})),
            ("terminationMessagePath", json!("/dev/termination-log")),
            ("terminationMessagePolicy", json!("File")),
            ("imagePullPolicy", json!(pull)),
        ] {
            if container.get(key).is_none() {
                container[key] = value;
            }
        }
        for port in container["ports"].as_array_mut().into_iter().flatten() {
            if port.get("protocol").is_none() {
                port["protocol"] = json!("TCP");
            }
        }
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            let Some(probe) = container.get_mut(probe) else {
                continue;
            };
            for (key, value) in [
                ("timeoutSeconds", 1),
                ("periodSeconds", 10),
                ("successThreshold", 1),
                ("failureThreshold", 3),
            ] {
                if probe.get(key).is_none() {
                    probe[key] = json!(value);
                }
            }
            if let Some(get) = probe.get_mut("httpGet") {
                if get.get("scheme").is_none() {
                    get["scheme"] = json!("HTTP");
                }
            }
        }
    }
}
