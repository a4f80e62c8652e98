//! DELETEs that are the system cleaning up: never blocked, by any rule.
//!
//! A validating webhook that denies a DELETE the cluster itself makes does not stop the cleanup,
//! it wedges it:
//! - The namespace controller deletes everything in a Terminating namespace, resource by
//!   resource, in name order, with one worker per namespace and a backoff that grows to minutes.
//!   A denied DELETE keeps the namespace in Terminating until someone removes the object the
//!   rule protected by hand (recorded against a real API server in
//!   `traces/apiserver-1.20/namespace-delete-main-and-canary-ingress.json`: 26 denied DELETEs of
//!   the main Ingress `web`, because its canary `web-canary` sorts after it and was never reached).
//! - The garbage collector deletes dependents whose owner is gone; a denial leaves an orphan the
//!   owner's controller no longer manages.
//!
//! Both run in kube-controller-manager. With `--use-service-account-credentials` (kubeadm, kind,
//! managed clusters) each controller has its own service account in kube-system; without it they
//! all act as `system:kube-controller-manager`. The namespace controller's requests are
//! deletecollections, so `request.name` is empty and the name is only in `oldObject`.
//!
//! A namespace known (from the store) to be Terminating is cleanup whoever sends the DELETE:
//! everything in it is going away, and a rule that blocks one object there only keeps the
//! namespace from finishing.
//!
//! Uninstalls (Helm, Argo CD, Flux pruning) are made by ordinary users and service accounts, so
//! they are not recognised here; the rules that judge a DELETE read the release markers of the
//! objects involved instead (see `ingressCanary.mainRemoved`).

use kube::core::admission::Operation;

use crate::policy::engine::{warning_text, Verdict};
use crate::policy::view::ClusterView;

/// The namespace controller's service account.
pub const NAMESPACE_CONTROLLER: &str = "system:serviceaccount:kube-system:namespace-controller";
/// The garbage collector's service account.
pub const GARBAGE_COLLECTOR: &str = "system:serviceaccount:kube-system:generic-garbage-collector";
/// kube-controller-manager's own user, used by every controller when it runs without
/// `--use-service-account-credentials`.
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";

/// Why a DELETE is cleanup by the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemCleanup {
    /// Sent by the namespace controller.
    NamespaceController,
    /// Sent by the garbage collector.
    GarbageCollector,
    /// Sent by kube-controller-manager under its own name (namespace controller or garbage
    /// collector, which cannot be told apart then).
    ControllerManager,
    /// The object's namespace is being deleted.
    NamespaceTerminating,
}

impl SystemCleanup {
    /// The low-cardinality name recorded in the audit annotation `cleanup`.
    pub fn as_str(self) -> &'static str {
        match self {
            SystemCleanup::NamespaceController => "namespace-controller",
            SystemCleanup::GarbageCollector => "garbage-collector",
            SystemCleanup::ControllerManager => "kube-controller-manager",
            SystemCleanup::NamespaceTerminating => "namespace-terminating",
        }
    }

    fn who(self) -> &'static str {
        match self {
            SystemCleanup::NamespaceController => "namespace controller cleanup",
            SystemCleanup::GarbageCollector => "garbage collector cleanup",
            SystemCleanup::ControllerManager => "kube-controller-manager cleanup",
            SystemCleanup::NamespaceTerminating => "namespace terminating",
        }
    }
}

/// Whether a request is a DELETE the system makes while cleaning up. Only DELETEs qualify: a
/// controller's CREATE or UPDATE is judged like anyone's.
pub fn system_cleanup(
    operation: &Operation,
    username: &str,
    namespace: &str,
    view: &dyn ClusterView,
) -> Option<SystemCleanup> {
    if *operation != Operation::Delete {
        return None;
    }
    match username {
        NAMESPACE_CONTROLLER => Some(SystemCleanup::NamespaceController),
        GARBAGE_COLLECTOR => Some(SystemCleanup::GarbageCollector),
        CONTROLLER_MANAGER => Some(SystemCleanup::ControllerManager),
        _ if !namespace.is_empty() && view.namespace_terminating(namespace) => {
            Some(SystemCleanup::NamespaceTerminating)
        }
        _ => None,
    }
}

/// Lets a cleanup DELETE through: every denial becomes a warning that says what the rule would
/// have said, and the verdict records why (audit annotation `cleanup`). The findings stay in
/// `fired`, so the audit log still shows what was found.
pub fn allow(verdict: &mut Verdict, cleanup: SystemCleanup) {
    verdict.cleanup = Some(cleanup.as_str());
    for denial in std::mem::take(&mut verdict.denials) {
        verdict.warnings.push(warning_text(
            &denial.source,
            &format!(
                "allowed ({}, never blocked): {}",
                cleanup.who(),
                denial.message
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::engine::Denial;
    use crate::testing::store_of;
    use serde_json::json;

    #[test]
    fn only_system_deletes_are_cleanup() {
        let view = store_of(&[
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "gone", "deletionTimestamp": "2026-01-01T00:00:00Z"},
                "status": {"phase": "Terminating"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        ]);
        let cases = [
            (
                Operation::Delete,
                NAMESPACE_CONTROLLER,
                "shop",
                Some(SystemCleanup::NamespaceController),
            ),
            (
                Operation::Delete,
                GARBAGE_COLLECTOR,
                "shop",
                Some(SystemCleanup::GarbageCollector),
            ),
            (
                Operation::Delete,
                CONTROLLER_MANAGER,
                "shop",
                Some(SystemCleanup::ControllerManager),
            ),
            (
                Operation::Delete,
                "alice",
                "gone",
                Some(SystemCleanup::NamespaceTerminating),
            ),
            (Operation::Delete, "alice", "shop", None),
            (Operation::Delete, "alice", "unknown", None),
            // A controller's writes are judged like anyone's.
            (Operation::Update, NAMESPACE_CONTROLLER, "gone", None),
            (Operation::Create, GARBAGE_COLLECTOR, "shop", None),
            // Another service account that merely looks similar.
            (
                Operation::Delete,
                "system:serviceaccount:team:namespace-controller",
                "shop",
                None,
            ),
        ];
        for (operation, user, namespace, expected) in cases {
            assert_eq!(
                system_cleanup(&operation, user, namespace, &view),
                expected,
                "{operation:?} by {user} in {namespace}"
            );
        }
    }

    #[test]
    fn denials_become_warnings_that_keep_the_reason() {
        let mut verdict = Verdict {
            denials: vec![Denial {
                source: "ingressCanary.mainRemoved".into(),
                message: "deleting this main Ingress leaves canary shop/web-canary".into(),
            }],
            ..Verdict::default()
        };
        allow(&mut verdict, SystemCleanup::NamespaceController);
        assert!(verdict.allowed());
        assert_eq!(verdict.cleanup, Some("namespace-controller"));
        assert_eq!(verdict.warnings.len(), 1);
        assert!(verdict.warnings[0]
            .starts_with("rollout-guard ingressCanary.mainRemoved: allowed (namespace controller"));
        assert!(verdict.warnings[0].contains("shop/web-canary"));
    }
}
