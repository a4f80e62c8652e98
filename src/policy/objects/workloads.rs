//! What the store keeps of the workloads other than Deployments that run pods a Service may
//! select (StatefulSets, DaemonSets, Argo Rollouts) and of the pods no such workload runs.
//!
//! A Service routes to pods, not to Deployments: the blue/green rule asks "can anything in this
//! namespace run a pod with these labels, and how many of those pods are available", and the
//! answer must count every controller that stamps pods from a template, plus the pods nobody
//! stamps from a template the store knows (bare pods, Jobs, operators' pods).

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::{key_of, Labels, ObjectKey};

/// The pod-running kinds kept as [`WorkloadInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// argoproj.io/v1alpha1 Rollout (Argo Rollouts; a CRD that may be absent).
    Rollout,
}

impl WorkloadKind {
    /// Every kind, in a stable order (also the order of the store's per-kind indexes).
    pub const ALL: [WorkloadKind; 3] = [
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::Rollout,
    ];

    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Rollout => "Rollout",
        }
    }

    /// Position in [`WorkloadKind::ALL`].
    pub fn index(self) -> usize {
        match self {
            WorkloadKind::StatefulSet => 0,
            WorkloadKind::DaemonSet => 1,
            WorkloadKind::Rollout => 2,
        }
    }

    /// Labels the controller puts on every pod besides the template's. A Service may select on
    /// them (a per-pod Service of a StatefulSet selects `statefulset.kubernetes.io/pod-name`;
    /// Argo Rollouts adds `rollouts-pod-template-hash` to the active and preview Services), so
    /// matching a selector against the template must not require them.
    pub fn controller_label_keys(self) -> &'static [&'static str] {
        match self {
            WorkloadKind::StatefulSet => &[
                "controller-revision-hash",
                STATEFUL_SET_POD_NAME,
                "apps.kubernetes.io/pod-index",
            ],
            WorkloadKind::DaemonSet => &["controller-revision-hash", "pod-template-generation"],
            WorkloadKind::Rollout => &[ROLLOUTS_POD_TEMPLATE_HASH],
        }
    }
}

/// The label a StatefulSet puts on each pod: the pod's name, `<statefulset>-<ordinal>`.
pub const STATEFUL_SET_POD_NAME: &str = "statefulset.kubernetes.io/pod-name";

/// The label Argo Rollouts puts on a Rollout's pods and ReplicaSets, and writes into the
/// selector of the Services it manages (`DefaultRolloutUniqueLabelKey`).
pub const ROLLOUTS_POD_TEMPLATE_HASH: &str = "rollouts-pod-template-hash";

/// The annotation Argo Rollouts sets on a Service whose selector it manages (its value names the
/// Rollout): the controller switches that Service itself, after its own availability checks.
pub const ROLLOUTS_MANAGED_BY: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";

/// What the store keeps of a StatefulSet, DaemonSet or Argo Rollout: the labels its pods get and
/// how many of them are wanted and available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadInfo {
    /// Which kind.
    pub kind: WorkloadKind,
    /// Namespace and name.
    pub key: ObjectKey,
    /// `spec.template.metadata.labels` (empty for a Rollout whose template comes from a
    /// Deployment through `workloadRef`).
    pub template_labels: Labels,
    /// Pods wanted: `spec.replicas` (default 1), for a DaemonSet `status.desiredNumberScheduled`.
    pub desired: i32,
    /// Pods available: `status.availableReplicas` (a StatefulSet on a server without it:
    /// `readyReplicas`), for a DaemonSet `status.numberAvailable`.
    pub available: i32,
    /// Pods running the current template: `status.updatedReplicas`, for a DaemonSet
    /// `status.updatedNumberScheduled`.
    pub updated: i32,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `status.observedGeneration` (Argo Rollouts writes it as a string).
    pub observed_generation: Option<i64>,
    /// A Rollout's `spec.workloadRef` to a Deployment in its namespace: the Deployment's pod
    /// template is the Rollout's (Argo Rollouts' migration path; the Deployment is scaled down).
    pub template_from: Option<Box<str>>,
}

impl WorkloadInfo {
    /// Reads a StatefulSet. `namespace` is used when the object carries none.
    pub fn from_stateful_set(set: &StatefulSet, namespace: &str) -> Self {
        let spec = set.spec.as_ref();
        let status = set.status.as_ref();
        Self {
            kind: WorkloadKind::StatefulSet,
            key: key_of(&set.metadata, namespace),
            template_labels: spec
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref())
                .map(Labels::from)
                .unwrap_or_default(),
            desired: spec.and_then(|s| s.replicas).unwrap_or(1),
            available: status
                .and_then(|s| s.available_replicas.or(s.ready_replicas))
                .unwrap_or(0),
            updated: status.and_then(|s| s.updated_replicas).unwrap_or(0),
            generation: set.metadata.generation,
            observed_generation: status.and_then(|s| s.observed_generation),
            template_from: None,
        }
    }

    /// Reads a DaemonSet.
    pub fn from_daemon_set(set: &DaemonSet, namespace: &str) -> Self {
        let status = set.status.as_ref();
        Self {
            kind: WorkloadKind::DaemonSet,
            key: key_of(&set.metadata, namespace),
            template_labels: set
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref())
                .map(Labels::from)
                .unwrap_or_default(),
            desired: status.map_or(0, |s| s.desired_number_scheduled),
            available: status.and_then(|s| s.number_available).unwrap_or(0),
            updated: status.and_then(|s| s.updated_number_scheduled).unwrap_or(0),
            generation: set.metadata.generation,
            observed_generation: status.and_then(|s| s.observed_generation),
            template_from: None,
        }
    }

    /// Reads an Argo Rollout (`argoproj.io/v1alpha1`) from JSON: there is no typed struct for a
    /// CRD, and only these fields are read, so a newer Rollout version with more fields still
    /// reads.
    pub fn from_rollout(rollout: &Value, namespace: &str) -> Self {
        let meta = &rollout["metadata"];
        let spec = &rollout["spec"];
        let status = &rollout["status"];
        let count = |v: &Value| v.as_i64().and_then(|n| i32::try_from(n).ok());
        let template_from = spec["workloadRef"]
            .as_object()
            .filter(|r| r.get("kind").and_then(Value::as_str) == Some("Deployment"))
            .and_then(|r| r.get("name").and_then(Value::as_str))
            .map(Box::from);
        Self {
            kind: WorkloadKind::Rollout,
            key: ObjectKey::new(
                meta["namespace"].as_str().unwrap_or(namespace),
                meta["name"].as_str().unwrap_or_default(),
            ),
            template_labels: string_map(&spec["template"]["metadata"]["labels"]),
            desired: count(&spec["replicas"]).unwrap_or(1),
            available: count(&status["availableReplicas"]).unwrap_or(0),
            updated: count(&status["updatedReplicas"]).unwrap_or(0),
            generation: meta["generation"].as_i64(),
            observed_generation: status["observedGeneration"]
                .as_i64()
                .or_else(|| status["observedGeneration"].as_str()?.parse().ok()),
            template_from,
        }
    }

    /// Whether the controller has seen the latest spec.
    pub fn observed(&self) -> bool {
        match (self.generation, self.observed_generation) {
            (Some(generation), Some(observed)) => observed >= generation,
            (None, _) => true,
            (Some(_), None) => false,
        }
    }

    /// Whether pods labelled by `selector`'s requirements can come from this workload: every
    /// pair is in the template, except the labels the controller adds itself, which only need a
    /// value the controller could give (a StatefulSet pod name must be one of its pods').
    pub fn can_run(&self, selector: &Labels) -> bool {
        let added = self.kind.controller_label_keys();
        selector.iter().all(|(key, value)| {
            if self.template_labels.get(key) == Some(value) {
                return true;
            }
            if !added.contains(&key) || self.template_labels.contains_key(key) {
                return false;
            }
            match key {
                STATEFUL_SET_POD_NAME => self.ordinal_of(value).is_some(),
                "apps.kubernetes.io/pod-index" => value
                    .parse::<i32>()
                    .is_ok_and(|n| (0..self.desired).contains(&n)),
                _ => true,
            }
        })
    }

    /// The ordinal of `pod` among a StatefulSet's pods (`<name>-<n>`, `n` below the replicas).
    pub fn ordinal_of(&self, pod: &str) -> Option<i32> {
        let ordinal: i32 = pod
            .strip_prefix(&*self.key.name)?
            .strip_prefix('-')?
            .parse()
            .ok()?;
        (0..self.desired).contains(&ordinal).then_some(ordinal)
    }
}

/// A JSON object of strings as `Labels` (other values are dropped, as the API server would
/// have refused them).
fn string_map(value: &Value) -> Labels {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
        .collect()
}

/// Kinds whose pods the store already counts through a pod template (their own, or their
/// owner's): a pod controlled by one of them is not kept as a [`PodInfo`].
pub const TEMPLATED_POD_OWNERS: &[(&str, &str)] = &[
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
];

/// What the store keeps of a pod that no workload the store knows runs: a bare pod, or one a Job
/// or an operator created. Only its labels and readiness: a Service's endpoints are exactly the
/// ready pods its selector matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace and name.
    pub key: ObjectKey,
    /// `metadata.labels`.
    pub labels: Labels,
    /// The `Ready` condition is `True` and the pod is not being deleted (the endpoints
    /// controller drops terminating pods from the ready addresses).
    pub ready: bool,
}

impl PodInfo {
    /// Reads a pod, or `None` when a kind in [`TEMPLATED_POD_OWNERS`] controls it (its
    /// workload is counted instead: storing each of those pods is what would make a 100k-pod
    /// cluster fill the store).
    pub fn from_pod(pod: &Pod, namespace: &str) -> Option<Self> {
        let controlled_by_template = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .filter(|owner| owner.controller == Some(true))
            .any(|owner| {
                let group = owner
                    .api_version
                    .rsplit_once('/')
                    .map_or("", |(group, _)| group);
                TEMPLATED_POD_OWNERS.contains(&(group, owner.kind.as_str()))
            });
        if controlled_by_template {
            return None;
        }
        let ready = pod.metadata.deletion_timestamp.is_none()
            && pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
        Some(Self {
            key: key_of(&pod.metadata, namespace),
            labels: pod
                .metadata
                .labels
                .as_ref()
                .map(Labels::from)
                .unwrap_or_default(),
            ready,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stateful_set(replicas: i32) -> WorkloadInfo {
        let set: StatefulSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"namespace": "shop", "name": "db", "generation": 2},
            "spec": {"replicas": replicas, "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db", "version": "v1"}},
                    "spec": {"containers": []}}},
            "status": {"replicas": replicas, "readyReplicas": 2, "updatedReplicas": 1,
                "observedGeneration": 2}
        }))
        .unwrap();
        WorkloadInfo::from_stateful_set(&set, "ignored")
    }

    #[test]
    fn stateful_set_reading_falls_back_to_ready_replicas() {
        let info = stateful_set(3);
        assert_eq!(info.key, ObjectKey::new("shop", "db"));
        assert_eq!((info.desired, info.available, info.updated), (3, 2, 1));
        assert!(info.observed());
    }

    /// Per-pod Services of a StatefulSet select the pod-name label the controller adds; only
    /// names of pods the StatefulSet runs can match.
    #[test]
    fn controller_labels_match_only_values_the_controller_gives() {
        let info = stateful_set(3);
        let selects = |pairs: &[(&str, &str)]| info.can_run(&pairs.iter().copied().collect());
        assert!(selects(&[("app", "db")]));
        assert!(selects(&[("app", "db"), (STATEFUL_SET_POD_NAME, "db-2")]));
        assert!(!selects(&[("app", "db"), (STATEFUL_SET_POD_NAME, "db-3")]));
        assert!(!selects(&[(STATEFUL_SET_POD_NAME, "other-0")]));
        assert!(selects(&[("apps.kubernetes.io/pod-index", "0")]));
        assert!(selects(&[("controller-revision-hash", "db-7f9c")]));
        assert!(!selects(&[("app", "db"), ("version", "v2")]));
        assert!(!selects(&[("rollouts-pod-template-hash", "abc")]));
    }

    #[test]
    fn daemon_sets_want_what_the_scheduler_placed() {
        let set: DaemonSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"namespace": "mon", "name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": []}}},
            "status": {"desiredNumberScheduled": 5, "currentNumberScheduled": 5,
                "numberMisscheduled": 0, "numberReady": 4, "numberAvailable": 4,
                "updatedNumberScheduled": 5}
        }))
        .unwrap();
        let info = WorkloadInfo::from_daemon_set(&set, "");
        assert_eq!((info.desired, info.available, info.updated), (5, 4, 5));
        assert!(info.can_run(&Labels::from([("pod-template-generation", "3")])));
    }

    #[test]
    fn rollouts_read_string_generations_and_workload_refs() {
        let info = WorkloadInfo::from_rollout(
            &json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"namespace": "shop", "name": "web", "generation": 4},
                "spec": {"replicas": 5, "workloadRef": {"apiVersion": "apps/v1",
                    "kind": "Deployment", "name": "web"}},
                "status": {"observedGeneration": "4", "availableReplicas": 5,
                    "updatedReplicas": 5}}),
            "",
        );
        assert_eq!(info.key, ObjectKey::new("shop", "web"));
        assert_eq!(info.template_from.as_deref(), Some("web"));
        assert!(info.template_labels.is_empty());
        assert!(info.observed());
        assert_eq!((info.desired, info.available), (5, 5));
        let templated = WorkloadInfo::from_rollout(
            &json!({"metadata": {"name": "demo"},
                "spec": {"template": {"metadata": {"labels": {"app": "demo", "n": 1}}}}}),
            "default",
        );
        assert_eq!(templated.key, ObjectKey::new("default", "demo"));
        assert_eq!(templated.desired, 1, "spec.replicas defaults to 1");
        assert_eq!(templated.template_labels, Labels::from([("app", "demo")]));
        assert!(templated.can_run(&Labels::from([
            ("app", "demo"),
            (ROLLOUTS_POD_TEMPLATE_HASH, "6b7c9d")
        ])));
    }

    #[test]
    fn pods_of_templated_owners_are_not_kept_and_readiness_is_the_condition() {
        let pod = |owner: Value, ready: &str, deleting: bool| -> Pod {
            let mut value = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"namespace": "shop", "name": "p", "labels": {"app": "web"},
                    "ownerReferences": owner},
                "spec": {"containers": []},
                "status": {"conditions": [{"type": "Ready", "status": ready}]}});
            if deleting {
                value["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
            }
            serde_json::from_value(value).unwrap()
        };
        let owner = |api: &str, kind: &str, controller: bool| {
            json!([{"apiVersion": api, "kind": kind, "name": "x", "uid": "u",
                "controller": controller}])
        };
        assert!(PodInfo::from_pod(
            &pod(owner("apps/v1", "ReplicaSet", true), "True", false),
            ""
        )
        .is_none());
        assert!(
            PodInfo::from_pod(&pod(owner("apps/v1", "DaemonSet", true), "True", false), "")
                .is_none()
        );
        let job = PodInfo::from_pod(&pod(owner("batch/v1", "Job", true), "True", false), "")
            .expect("a Job's pods are kept");
        assert!(job.ready);
        assert_eq!(job.labels, Labels::from([("app", "web")]));
        let not_controller = PodInfo::from_pod(
            &pod(owner("apps/v1", "ReplicaSet", false), "False", false),
            "",
        )
        .expect("kept: no controller");
        assert!(!not_controller.ready);
        let terminating = PodInfo::from_pod(&pod(json!([]), "True", true), "").unwrap();
        assert!(!terminating.ready);
    }
}
