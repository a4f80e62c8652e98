//! Real client sequences replayed through the webhook's own review path
//! (`rollout_guard::admission::review`, as `tests/fixtures.rs` and `tests/trace_decisions.rs`
//! use it), with rollouts counted the way the Deployment controller counts them: a new
//! ReplicaSet exactly when the pod template differs from every existing one, ignoring
//! `pod-template-hash` (the simulator is in `client_sequences/sim.rs`).
//!
//! Each sequence runs twice: once with no webhook registered, which gives the ReplicaSets the
//! user's own template changes cause, and once with rollout-guard's default policies. The
//! webhook must not add a single one, and a second apply of the same manifest must change
//! nothing (no patch, no ReplicaSet). The expected counts are also written out per sequence, so
//! a simulator that stopped making ReplicaSets could not pass.
//!
//! Where the simulator overlaps the recorded traces (`../shared/traces/apiserver-1.20`: the
//! defaults of a created Deployment, the request a client-side re-apply sends, the request of a
//! server-side apply), `simulator_matches_the_traces` compares them; it says plainly when the
//! traces are absent and it skips.

#[path = "client_sequences/sim.rs"]
mod sim;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sim::{Cluster, Write, CHANGE_CAUSE};

const VERSION: &str = "app.kubernetes.io/version";

/// The manifest the traces use (`web.yaml`), with `image`.
fn web(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "app",
                    "image": image,
                    "ports": [{"containerPort": 80}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                }]},
            },
        },
    })
}

/// The manifest with a version label written on the Deployment and its template (issue 9 #1).
fn web_labelled(image: &str, version: &str) -> Value {
    let mut manifest = web(image);
    manifest["metadata"]["labels"][VERSION] = json!(version);
    manifest["spec"]["template"]["metadata"]["labels"][VERSION] = json!(version);
    manifest
}

/// The manifest with rolling-update values written out, equal to the API defaults (issue 9 #3).
fn web_explicit_strategy(image: &str) -> Value {
    let mut manifest = web(image);
    manifest["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}});
    manifest["spec"]["progressDeadlineSeconds"] = json!(600);
    manifest["spec"]["revisionHistoryLimit"] = json!(10);
    manifest
}

/// The manifest with a static change-cause (issue 9 #5).
fn web_with_cause(image: &str, cause: &str) -> Value {
    let mut manifest = web(image);
    manifest["metadata"]["annotations"] = json!({CHANGE_CAUSE: cause});
    manifest
}

/// `helm template` of the traces' tiny chart: helm-create labels with the version from
/// `appVersion` (1.25.3), whatever `image.tag` says.
fn chart(tag: &str) -> Value {
    let labels = json!({
        "app.kubernetes.io/instance": "web",
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/name": "tiny",
        "app.kubernetes.io/version": "1.25.3",
        "helm.sh/chart": "tiny-0.1.0",
    });
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "labels": labels,
            "annotations": {"meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": "shop"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": "web", "app.kubernetes.io/name": "tiny"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "app",
                    "image": format!("nginx:{tag}"),
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                }]},
            },
        },
    })
}

/// A step that must change nothing: nothing sent, or sent and left alone, and no ReplicaSet.
fn assert_changes_nothing(cluster: &Cluster, write: &Write, before: usize, what: &str) {
    assert!(
        write.patch.is_empty(),
        "{what}: the webhook patched an unchanged apply: {:?} (warnings {:?})",
        write.patch,
        write.warnings
    );
    assert_eq!(
        cluster.replica_sets.len(),
        before,
        "{what}: a ReplicaSet appeared: {:?}",
        cluster.history()
    );
}

/// A write that leaves the pod spec alone (metadata-only, scale, pause): no patch under /spec.
fn assert_no_spec_patch(write: &Write, what: &str) {
    let spec_ops: Vec<&Value> = write
        .patch
        .iter()
        .filter(|op| op["path"].as_str().is_some_and(|p| p.starts_with("/spec")))
        .collect();
    assert!(spec_ops.is_empty(), "{what}: spec patched: {spec_ops:?}");
}

/// One sequence: the steps, and how many ReplicaSets the user's own template changes make.
struct Sequence {
    name: &'static str,
    expected_replica_sets: usize,
    run: fn(&mut Cluster),
}

fn csa_apply_and_reapply(c: &mut Cluster) {
    c.client_side_apply(&web("nginx:1.25.3"), "kubectl-client-side-apply");
    let before = c.replica_sets.len();
    let again = c.client_side_apply(&web("nginx:1.25.3"), "kubectl-client-side-apply");
    assert_changes_nothing(c, &again, before, "unchanged client-side re-apply");
    assert!(
        !again.sent || !c.webhook,
        "an unchanged client-side apply sends nothing"
    );
}

fn csa_image_change_then_reapply(c: &mut Cluster) {
    c.client_side_apply(
        &web_labelled("nginx:1.25.3", "1.25.3"),
        "kubectl-client-side-apply",
    );
    // The image bumped in Git, the label forgotten.
    c.client_side_apply(
        &web_labelled("nginx:1.25.4", "1.25.3"),
        "kubectl-client-side-apply",
    );
    let before = c.replica_sets.len();
    let again = c.client_side_apply(
        &web_labelled("nginx:1.25.4", "1.25.3"),
        "kubectl-client-side-apply",
    );
    assert_changes_nothing(c, &again, before, "re-apply of the Git manifest");
    // Git reverted: back to revision 1's template, its ReplicaSet reused.
    c.client_side_apply(
        &web_labelled("nginx:1.25.3", "1.25.3"),
        "kubectl-client-side-apply",
    );
}

fn csa_static_cause(c: &mut Cluster) {
    let cause = "release 2026.11 (ticket OPS-7)";
    c.client_side_apply(
        &web_with_cause("nginx:1.25.3", cause),
        "kubectl-client-side-apply",
    );
    let bump = c.client_side_apply(
        &web_with_cause("nginx:1.25.4", cause),
        "kubectl-client-side-apply",
    );
    if c.webhook {
        assert!(
            bump.patch.iter().all(|op| !op["path"]
                .as_str()
                .unwrap_or_default()
                .contains("change-cause")),
            "the manifest's cause was rewritten: {:?}",
            bump.patch
        );
        assert!(
            bump.warnings
                .iter()
                .any(|w| w.contains("changeCause.repeated")),
            "no warning that history repeats the cause: {:?}",
            bump.warnings
        );
    }
    let before = c.replica_sets.len();
    let again = c.client_side_apply(
        &web_with_cause("nginx:1.25.4", cause),
        "kubectl-client-side-apply",
    );
    assert_changes_nothing(
        c,
        &again,
        before,
        "re-apply of a manifest with a static cause",
    );
    assert!(
        !again.sent,
        "the re-apply had to restore the cause: history disagreed with the object"
    );
}

fn csa_explicit_strategy(c: &mut Cluster) {
    c.client_side_apply(
        &web_explicit_strategy("nginx:1.25.3"),
        "kubectl-client-side-apply",
    );
    let before = c.replica_sets.len();
    let again = c.client_side_apply(
        &web_explicit_strategy("nginx:1.25.3"),
        "kubectl-client-side-apply",
    );
    assert_changes_nothing(c, &again, before, "re-apply of values written in Git");
    assert!(
        !again.sent || !c.webhook,
        "the re-apply had to restore values the webhook rewrote"
    );
}

fn argocd_style(c: &mut Cluster) {
    c.client_side_apply(&web("nginx:1.25.3"), "argocd-controller");
    c.client_side_apply(&web("nginx:1.25.4"), "argocd-controller");
    let before = c.replica_sets.len();
    let again = c.client_side_apply(&web("nginx:1.25.4"), "argocd-controller");
    assert_changes_nothing(c, &again, before, "Argo CD self-heal of an unchanged app");
}

fn ssa(c: &mut Cluster, manager: &str, manifest: fn(&str) -> Value) {
    c.server_side_apply(&manifest("1.25.3"), manager);
    let before = c.replica_sets.len();
    let again = c.server_side_apply(&manifest("1.25.3"), manager);
    assert!(again.sent, "every server-side apply reaches the webhook");
    assert_changes_nothing(c, &again, before, "unchanged server-side apply");
    c.server_side_apply(&manifest("1.25.4"), manager);
    let before = c.replica_sets.len();
    let again = c.server_side_apply(&manifest("1.25.4"), manager);
    assert_changes_nothing(
        c,
        &again,
        before,
        "unchanged server-side apply after the image change",
    );
}

fn plain(tag: &str) -> Value {
    web(&format!("nginx:{tag}"))
}

fn labelled(tag: &str) -> Value {
    web_labelled(&format!("nginx:{tag}"), "1.25.3")
}

fn ssa_kubectl(c: &mut Cluster) {
    ssa(c, "kubectl", plain);
}

fn ssa_kubectl_labelled(c: &mut Cluster) {
    ssa(c, "kubectl", labelled);
}

fn ssa_flux(c: &mut Cluster) {
    ssa(c, "kustomize-controller", plain);
}

fn ssa_flux_labelled(c: &mut Cluster) {
    ssa(c, "kustomize-controller", labelled);
}

fn ssa_argocd(c: &mut Cluster) {
    ssa(c, "argocd-controller", plain);
}

fn helm3(c: &mut Cluster) {
    c.helm3_upgrade(&chart("1.25.3"));
    c.helm3_upgrade(&chart("1.25.4"));
    let before = c.replica_sets.len();
    let again = c.helm3_upgrade(&chart("1.25.4"));
    assert_changes_nothing(c, &again, before, "helm upgrade with no change");
}

fn helm4(c: &mut Cluster) {
    c.server_side_apply(&chart("1.25.3"), "helm");
    c.server_side_apply(&chart("1.25.4"), "helm");
    let before = c.replica_sets.len();
    let again = c.server_side_apply(&chart("1.25.4"), "helm");
    assert_changes_nothing(c, &again, before, "helm 4 upgrade with no change");
}

fn pause_set_image_set_env_resume(c: &mut Cluster) {
    c.create(&web("nginx:1.25.3"));
    let pause = c.set_paused(true);
    assert_no_spec_patch(&pause, "pause");
    c.set_image("app", "nginx:1.26.0");
    c.set_env("app", "LOG_LEVEL", "debug");
    let resume = c.set_paused(false);
    assert_no_spec_patch(&resume, "resume");
    if c.webhook {
        let history = c.history();
        let (_, _, cause) = history.last().expect("a revision");
        let cause = cause.clone().unwrap_or_default();
        assert!(
            cause.contains("nginx:1.26.0") && cause.contains("env"),
            "the resumed revision's cause must name the image and the env change: {cause:?}"
        );
    }
}

fn undo_to_pre_webhook_revision(c: &mut Cluster) {
    let webhook = c.webhook;
    // Revision 1 is created while the webhook is not registered.
    c.webhook = false;
    c.create(&web("nginx:1.25.3"));
    c.webhook = webhook;
    c.annotate("team", "shop");
    c.set_image("app", "nginx:1.25.4");
    c.undo(Some(1));
}

fn annotate_pre_webhook(c: &mut Cluster) {
    let webhook = c.webhook;
    c.webhook = false;
    c.create(&web("nginx:1.25.3"));
    c.webhook = webhook;
    // The first write the webhook sees is metadata-only: it must not lower
    // revisionHistoryLimit (the controller would delete rollback ReplicaSets) or touch the spec.
    let annotate = c.annotate("team", "shop");
    assert_no_spec_patch(
        &annotate,
        "annotate of a Deployment created before the webhook",
    );
}

fn undo_and_undo_back(c: &mut Cluster) {
    c.create(&web("nginx:1.25.3"));
    c.set_image("app", "nginx:1.25.4");
    c.undo(None);
    c.undo(Some(2));
}

fn scale(c: &mut Cluster) {
    c.create(&web("nginx:1.25.3"));
    c.scale_subresource(3);
    let patch = c.patch_replicas(5);
    assert!(
        patch.patch.is_empty(),
        "a replicas-only patch was mutated: {:?}",
        patch.patch
    );
}

fn replace_with_live_object(c: &mut Cluster) {
    c.create(&web("nginx:1.25.3"));
    let live = c.deployment.clone().expect("created");
    let replace = c.replace(&live);
    assert!(
        replace.patch.is_empty(),
        "a no-op replace was mutated: {:?}",
        replace.patch
    );
}

fn annotate(c: &mut Cluster) {
    c.create(&web("nginx:1.25.3"));
    let annotate = c.annotate("team", "shop");
    assert!(
        annotate.patch.is_empty(),
        "an annotation was mutated: {:?}",
        annotate.patch
    );
}

const SEQUENCES: &[Sequence] = &[
    Sequence {
        name: "client-side apply, unchanged re-apply",
        expected_replica_sets: 1,
        run: csa_apply_and_reapply,
    },
    Sequence {
        name: "client-side apply: image change, re-apply of the Git manifest, Git revert",
        expected_replica_sets: 2,
        run: csa_image_change_then_reapply,
    },
    Sequence {
        name: "client-side apply of a manifest with a static change-cause",
        expected_replica_sets: 2,
        run: csa_static_cause,
    },
    Sequence {
        name: "client-side apply of rolling-update values written in Git",
        expected_replica_sets: 1,
        run: csa_explicit_strategy,
    },
    Sequence {
        name: "Argo CD-style client-side apply",
        expected_replica_sets: 2,
        run: argocd_style,
    },
    Sequence {
        name: "server-side apply (kubectl)",
        expected_replica_sets: 2,
        run: ssa_kubectl,
    },
    Sequence {
        name: "server-side apply (kubectl) of a manifest with a version label",
        expected_replica_sets: 2,
        run: ssa_kubectl_labelled,
    },
    Sequence {
        name: "Flux-style server-side apply",
        expected_replica_sets: 2,
        run: ssa_flux,
    },
    Sequence {
        name: "Flux-style server-side apply of a manifest with a version label",
        expected_replica_sets: 2,
        run: ssa_flux_labelled,
    },
    Sequence {
        name: "Argo CD-style server-side apply",
        expected_replica_sets: 2,
        run: ssa_argocd,
    },
    Sequence {
        name: "helm 3 install, upgrade, upgrade with no change",
        expected_replica_sets: 2,
        run: helm3,
    },
    Sequence {
        name: "helm 4 install, upgrade, upgrade with no change",
        expected_replica_sets: 2,
        run: helm4,
    },
    Sequence {
        name: "pause, set image, set env, resume",
        expected_replica_sets: 2,
        run: pause_set_image_set_env_resume,
    },
    Sequence {
        name: "undo to a revision created before the webhook",
        expected_replica_sets: 2,
        run: undo_to_pre_webhook_revision,
    },
    Sequence {
        name: "undo and undo back",
        expected_replica_sets: 2,
        run: undo_and_undo_back,
    },
    Sequence {
        name: "scale",
        expected_replica_sets: 1,
        run: scale,
    },
    Sequence {
        name: "replace with the live object",
        expected_replica_sets: 1,
        run: replace_with_live_object,
    },
    Sequence {
        name: "annotate",
        expected_replica_sets: 1,
        run: annotate,
    },
    Sequence {
        name: "annotate a Deployment created before the webhook",
        expected_replica_sets: 1,
        run: annotate_pre_webhook,
    },
];

fn run(sequence: &Sequence) -> Result<(), String> {
    let outcome = std::panic::catch_unwind(|| {
        let mut baseline = Cluster::new(false);
        (sequence.run)(&mut baseline);
        let mut guarded = Cluster::new(true);
        (sequence.run)(&mut guarded);
        (
            baseline.replica_sets.len(),
            guarded.replica_sets.len(),
            guarded.history(),
        )
    });
    let (baseline, guarded, history) = outcome.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })?;
    if baseline != sequence.expected_replica_sets {
        return Err(format!(
            "the simulator made {baseline} ReplicaSet(s) without the webhook, expected {}",
            sequence.expected_replica_sets
        ));
    }
    if guarded != baseline {
        return Err(format!(
            "{guarded} ReplicaSet(s) with the webhook, {baseline} from the user's own changes: {history:?}"
        ));
    }
    Ok(())
}

#[test]
fn no_sequence_makes_a_replica_set_the_user_did_not_cause() {
    let failed: Vec<String> = SEQUENCES
        .iter()
        .filter_map(|s| run(s).err().map(|e| format!("{}: {e}", s.name)))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} sequence(s) failed:\n{}",
        failed.len(),
        SEQUENCES.len(),
        failed.join("\n")
    );
}

// ---- the simulator against the traces

fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces/apiserver-1.20")
}

fn trace(name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(traces_dir().join(name)).ok()?;
    serde_json::from_str(&text).ok()
}

fn manifest(trace: &Value, file: &str) -> Value {
    let text = trace["files"][file].as_str().expect("the manifest");
    serde_yaml::from_str(text).expect("YAML")
}

/// The mutating requests for Deployments, in order.
fn mutating_requests(trace: &Value) -> Vec<&Value> {
    trace["exchanges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["path"].as_str().is_some_and(|p| p.starts_with("/mutate")))
        .map(|e| &e["request"]["request"])
        .filter(|r| r["kind"]["kind"] == "Deployment")
        .collect()
}

#[test]
fn simulator_matches_the_traces() {
    let Some(create) = trace("kubectl-create.json") else {
        eprintln!(
            "SKIPPED: {} is absent; the simulator is not cross-checked against recorded requests",
            traces_dir().display()
        );
        return;
    };
    // The API server's defaults: the simulator's create of web.yaml sends what 1.20 sent.
    let mut cluster = Cluster::new(false);
    let sent = cluster.create(&manifest(&create, "web.yaml"));
    let recorded = mutating_requests(&create)[0];
    let ours = sent.request_object.expect("sent");
    assert_eq!(
        ours["spec"], recorded["object"]["spec"],
        "defaults differ from kubectl-create.json"
    );
    assert_eq!(
        ours["metadata"]["labels"],
        recorded["object"]["metadata"]["labels"]
    );

    // Client-side apply: the image change sends the trace's request, the re-apply nothing.
    let csa = trace("kubectl-apply-client-side.json").expect("the trace set is complete");
    let requests = mutating_requests(&csa);
    let mut cluster = Cluster::new(false);
    cluster.namespace = csa["namespace"].as_str().unwrap_or_default().to_owned();
    cluster.client_side_apply(&manifest(&csa, "web.yaml"), "kubectl-client-side-apply");
    let again = cluster.client_side_apply(&manifest(&csa, "web.yaml"), "kubectl-client-side-apply");
    assert!(
        !again.sent,
        "kubectl-apply-client-side.json: an unchanged re-apply sends nothing"
    );
    // Replay the image change against the live object the trace recorded.
    cluster.deployment = Some(requests[1]["oldObject"].clone());
    let bump =
        cluster.client_side_apply(&manifest(&csa, "web-v2.yaml"), "kubectl-client-side-apply");
    let ours = bump.request_object.expect("sent");
    let theirs = &requests[1]["object"];
    assert_eq!(
        ours["spec"], theirs["spec"],
        "client-side apply's merge differs from the trace"
    );
    for key in ["labels", "annotations"] {
        assert_eq!(
            ours["metadata"][key], theirs["metadata"][key],
            "metadata.{key}"
        );
    }

    // Server-side apply: the Apply entry lists the applied configuration as the trace does.
    let ssa = trace("kubectl-apply-server-side.json").expect("the trace set is complete");
    let recorded = mutating_requests(&ssa)[0];
    let mut cluster = Cluster::new(false);
    let sent = cluster.server_side_apply(&manifest(&ssa, "web.yaml"), "kubectl");
    let ours = sent.request_object.expect("sent");
    let entry = |object: &Value| {
        object["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["manager"] == "kubectl" && e["operation"] == "Apply")
            .map(|e| e["fieldsV1"].clone())
            .expect("an Apply entry")
    };
    assert_eq!(
        entry(&ours),
        entry(&recorded["object"]),
        "fieldsV1 of the Apply entry"
    );
    assert_eq!(
        ours["spec"], recorded["object"]["spec"],
        "server-side apply's object"
    );
}
