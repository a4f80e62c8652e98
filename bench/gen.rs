//! Generates the benchmark's inputs (run by bench/run.sh):
//!
//! ```text
//! bench-gen bodies  OUT_DIR            AdmissionReview bodies, one file each
//! bench-gen objects OUT_DIR PER_KIND   cluster state for `serve --objects`: PER_KIND Ingresses,
//!                                      Services, Deployments, HTTPRoutes and Gateways (+ an
//!                                      IngressClass and the Gateway the HTTPRoutes attach to),
//!                                      and the other workloads at the counts a cluster of that
//!                                      size has: PER_KIND/10 StatefulSets and Argo Rollouts,
//!                                      PER_KIND/100 DaemonSets, PER_KIND/5 pods no templated
//!                                      workload runs (Jobs', operators', bare), and 4
//!                                      ReplicaSets per Deployment (the revisions a cluster
//!                                      keeps under `revisionHistoryLimit`)
//! ```
//!
//! Objects are numbered; object `i` lives in namespace `team-{i % 50}` and serves host
//! `app-{i}.example.com` through Service `web-{i}-v1` and Deployment `web-{i}-v1`. The bodies
//! refer to object 7, which exists in every state (PER_KIND ≥ 8), so the same request does the
//! same lookups against 100 objects or 100k and only the index size changes.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

const TARGET: usize = 7;

fn namespace(i: usize) -> String {
    format!("team-{}", i % 50)
}

fn write_json(path: &Path, value: &Value) {
    let text = serde_json::to_vec(value).unwrap_or_default();
    if let Err(error) = std::fs::write(path, text) {
        eprintln!("cannot write {}: {error}", path.display());
        std::process::exit(1);
    }
}

/// A Deployment as an API server hands it over after `kubectl apply`: defaulted, with the
/// last-applied-configuration annotation and managedFields (which is what makes real ones big).
fn deployment(i: usize, image_tag: &str, replicas: i64) -> Value {
    let ns = namespace(i);
    let name = format!("web-{i}-v1");
    let env: Vec<Value> = (0..40)
        .map(|n| json!({"name": format!("FEATURE_FLAG_{n:02}"), "value": format!("value-{n}-{}", "x".repeat(n % 7))}))
        .collect();
    let container = |cname: &str, image: String, port: i64| {
        json!({
            "name": cname,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
            "env": env,
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": port, "scheme": "HTTP"},
                "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"},
                "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}, {"name": "tmp", "mountPath": "/tmp"}],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        })
    };
    let spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": format!("web-{i}"), "version": "v1"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
        "template": {
            "metadata": {"labels": {"app": format!("web-{i}"), "version": "v1", "team": ns}},
            "spec": {
                "containers": [
                    container("web", format!("registry.example.com/shop/web:{image_tag}"), 8080),
                    container("sidecar", "registry.example.com/platform/envoy:1.30.2".to_owned(), 9901),
                ],
                "volumes": [{"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}},
                            {"name": "tmp", "emptyDir": {}}],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "securityContext": {"runAsNonRoot": true},
                "schedulerName": "default-scheduler",
            },
        },
    });
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns}, "spec": spec});
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": format!("00000000-0000-0000-0000-{i:012}"),
            "resourceVersion": "123456",
            "generation": 4,
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {"app": format!("web-{i}"), "version": "v1", "app.kubernetes.io/version": "1.4.2"},
            "annotations": {
                "deployment.kubernetes.io/revision": "4",
                "kubectl.kubernetes.io/last-applied-configuration": applied.to_string(),
            },
            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                "apiVersion": "apps/v1", "time": "2024-05-01T10:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}}}],
        },
        "spec": spec,
        "status": {"observedGeneration": 4, "replicas": replicas, "updatedReplicas": replicas,
                   "readyReplicas": replicas, "availableReplicas": replicas},
    })
}

/// Revisions kept per Deployment (`revisionHistoryLimit` is 10 by default; most Deployments
/// have had a few rollouts).
const REPLICA_SETS_PER_DEPLOYMENT: usize = 4;

/// ReplicaSet `n`: revision `n % 4 + 1` of Deployment `web-{n / 4}-v1`, as the controller makes
/// it (the Deployment's full template with that revision's image and `pod-template-hash`;
/// the last revision is the Deployment's current image and runs its replicas).
fn replica_set(n: usize) -> Value {
    let i = n / REPLICA_SETS_PER_DEPLOYMENT;
    let revision = n % REPLICA_SETS_PER_DEPLOYMENT + 1;
    let current = revision == REPLICA_SETS_PER_DEPLOYMENT;
    let tag = if current {
        "1.4.2".to_owned()
    } else {
        format!("1.3.{revision}")
    };
    let replicas = if current { 4 } else { 0 };
    let owner = deployment(i, &tag, replicas);
    let hash = format!(
        "{:08x}{revision}",
        i.wrapping_mul(2_654_435_761) & 0xffff_ffff
    );
    let mut template = owner["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    let mut selector = owner["spec"]["selector"].clone();
    selector["matchLabels"]["pod-template-hash"] = json!(hash);
    let name = format!("web-{i}-v1-{hash}");
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": name, "namespace": namespace(i), "generation": 1,
            "uid": format!("00000000-0000-0000-0002-{n:012}"),
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": template["metadata"]["labels"],
            "annotations": {"deployment.kubernetes.io/revision": revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": "4",
                "deployment.kubernetes.io/max-replicas": "5"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                "name": format!("web-{i}-v1"), "uid": format!("00000000-0000-0000-0000-{i:012}"),
                "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                "apiVersion": "apps/v1", "time": "2024-05-01T10:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": {"f:replicas": {}, "f:availableReplicas": {}}}}],
        },
        "spec": {"replicas": replicas, "selector": selector, "template": template},
        "status": {"replicas": replicas, "fullyLabeledReplicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas, "observedGeneration": 1},
    })
}

/// A pod template as real workloads carry it (two containers, probes, volumes): what the
/// watchers parse and the store must not keep.
fn pod_template(i: usize, labels: Value) -> Value {
    json!({
        "metadata": {"labels": labels, "annotations": {"prometheus.io/scrape": "true"}},
        "spec": {
            "containers": [{
                "name": "app", "image": format!("registry.example.com/shop/app-{i}:3.2.1"),
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": (0..20).map(|n| json!({"name": format!("SETTING_{n}"), "value": format!("v{n}")})).collect::<Vec<_>>(),
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
        },
    })
}

fn stateful_set(i: usize) -> Value {
    let app = format!("db-{i}");
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": app, "namespace": namespace(i), "generation": 2,
            "labels": {"app": app}, "creationTimestamp": "2024-05-01T10:00:00Z"},
        "spec": {
            "replicas": 3, "serviceName": app, "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": app}},
            "template": pod_template(i, json!({"app": app, "version": "v1"})),
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}],
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        },
        "status": {"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "availableReplicas": 3,
            "currentReplicas": 3, "updatedReplicas": 3, "currentRevision": format!("{app}-5d8f7c9b6"),
            "updateRevision": format!("{app}-5d8f7c9b6")},
    })
}

fn daemon_set(i: usize) -> Value {
    let app = format!("agent-{i}");
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": app, "namespace": namespace(i), "generation": 1, "labels": {"app": app}},
        "spec": {"selector": {"matchLabels": {"app": app}},
            "template": pod_template(i, json!({"app": app})),
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}},
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 120, "currentNumberScheduled": 120,
            "numberMisscheduled": 0, "numberReady": 120, "numberAvailable": 120, "updatedNumberScheduled": 120},
    })
}

fn rollout(i: usize) -> Value {
    let app = format!("front-{i}");
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": app, "namespace": namespace(i), "generation": 5},
        "spec": {"replicas": 4, "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app": app}},
            "template": pod_template(i, json!({"app": app})),
            "strategy": {"blueGreen": {"activeService": app, "previewService": format!("{app}-preview"),
                "autoPromotionEnabled": false}}},
        "status": {"observedGeneration": "5", "replicas": 4, "updatedReplicas": 4, "readyReplicas": 4,
            "availableReplicas": 4, "phase": "Healthy", "stableRS": "6b7c9d5f8",
            "blueGreen": {"activeSelector": "6b7c9d5f8", "previewSelector": "6b7c9d5f8"}},
    })
}

/// A Job's pod: the kind of pod the store keeps (no templated workload runs it).
fn job_pod(i: usize) -> Value {
    let job = format!("report-{i}");
    let mut pod = pod_template(
        i,
        json!({"app": "report", "job-name": job, "batch.kubernetes.io/job-name": job}),
    );
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["metadata"]["name"] = json!(format!("{job}-x7k2p"));
    pod["metadata"]["namespace"] = json!(namespace(i));
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": job,
        "uid": format!("00000000-0000-0000-0001-{i:012}"), "controller": true, "blockOwnerDeletion": true}]);
    pod["spec"]["restartPolicy"] = json!("Never");
    pod["spec"]["nodeName"] = json!(format!("node-{}", i % 120));
    pod["status"] = json!({"phase": "Running", "podIP": "10.1.2.3", "startTime": "2024-05-01T10:00:00Z",
        "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
            {"type": "ContainersReady", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "app:3.2.1",
            "imageID": "registry.example.com/shop/app@sha256:0123456789abcdef", "started": true,
            "state": {"running": {"startedAt": "2024-05-01T10:00:05Z"}}}]});
    pod
}

fn service(i: usize, version: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": format!("web-{i}-v1"), "namespace": namespace(i), "labels": {"app": format!("web-{i}")}},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": format!("web-{i}"), "version": version},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    })
}

fn ingress(i: usize, name: &str, service: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace(i), "annotations": annotations,
                     "creationTimestamp": "2024-05-01T10:00:00Z"},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"host": format!("app-{i}.example.com"), "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}],
        },
    })
}

fn http_route(i: usize, weights: (i64, i64)) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": format!("web-{i}"), "namespace": namespace(i)},
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "gateways"}],
            "hostnames": [format!("app-{i}.example.com")],
            "rules": [{"backendRefs": [
                {"name": format!("web-{i}-v1"), "port": 80, "weight": weights.0},
                {"name": format!("web-{i}-v2"), "port": 80, "weight": weights.1}]}],
        },
    })
}

/// A team's Gateway: an HTTP and an HTTPS listener for its host, the HTTPS one taking routes
/// from namespaces by label (what the store keeps of a listener, selector included).
fn gateway(i: usize) -> Value {
    let host = format!("app-{i}.example.com");
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": format!("gw-{i}"), "namespace": namespace(i),
                     "creationTimestamp": "2024-05-01T10:00:00Z"},
        "spec": {
            "gatewayClassName": "example",
            "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP", "hostname": host,
                 "allowedRoutes": {"namespaces": {"from": "Same"}}},
                {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": host,
                 "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": format!("app-{i}-tls")}]},
                 "allowedRoutes": {"namespaces": {"from": "Selector",
                    "selector": {"matchLabels": {"team": namespace(i)}}}}},
            ],
        },
    })
}

fn review(uid: &str, operation: &str, object: &Value, old_object: Option<&Value>) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or_default();
    let resource = format!("{}s", kind.to_lowercase());
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller",
                         "uid": "1b9f3c55-7d5e-4a44-a1f5-2f0e1e2a9c01",
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:argocd", "system:authenticated"]},
            "object": object,
            "oldObject": old_object.cloned().unwrap_or(Value::Null),
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": if operation == "CREATE" { "CreateOptions" } else { "UpdateOptions" }},
        },
    })
}

fn bodies(out: &Path) {
    let i = TARGET;
    let old = deployment(i, "1.4.2", 4);
    let new = deployment(i, "1.5.0", 4);
    let canary = ingress(
        i,
        &format!("web-{i}-canary"),
        &format!("web-{i}-v2"),
        json!({"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "10"}),
    );
    // Blue/green switch: the Service moves to v2; cross-object lookup of matching Deployments.
    let svc_old = service(i, "v1");
    let svc_new = service(i, "v2");
    let cases = [
        (
            "deployment-update",
            review("b-dep", "UPDATE", &new, Some(&old)),
        ),
        (
            "ingress-canary-create",
            review("b-ing", "CREATE", &canary, None),
        ),
        (
            "httproute-update",
            review(
                "b-rt",
                "UPDATE",
                &http_route(i, (90, 10)),
                Some(&http_route(i, (100, 0))),
            ),
        ),
        (
            "service-update",
            review("b-svc", "UPDATE", &svc_new, Some(&svc_old)),
        ),
    ];
    for (name, body) in cases {
        let path = out.join(format!("{name}.json"));
        write_json(&path, &body);
        let object_bytes = serde_json::to_vec(&body["request"]["object"]).map_or(0, |v| v.len());
        let body_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        println!("{name}: body {body_bytes} bytes (object {object_bytes} bytes)");
    }
}

/// Builds object `i` of one kind.
type MakeObject = dyn Fn(usize) -> Value;

fn objects(out: &Path, per_kind: usize) {
    let list = |items: Vec<Value>| json!({"apiVersion": "v1", "kind": "List", "items": items});
    write_json(
        &out.join("ingressclass.json"),
        &json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                "spec": {"controller": "k8s.io/ingress-nginx"}}),
    );
    // Files of 100 objects: `serve --objects` reads one file at a time, so loading holds little
    // beyond the store itself (as watchers, which get objects one by one, would).
    let chunk = 100;
    let kinds: [(&str, &dyn Fn(usize) -> Value); 5] = [
        ("ingress", &|i| {
            ingress(i, &format!("web-{i}"), &format!("web-{i}-v1"), json!({}))
        }),
        ("service", &|i| service(i, "v1")),
        ("deployment", &|i| deployment(i, "1.4.2", 4)),
        ("httproute", &|i| http_route(i, (100, 0))),
        ("gateway", &gateway),
    ];
    let others: [(&str, usize, &MakeObject); 5] = [
        ("statefulset", per_kind / 10, &stateful_set),
        ("daemonset", (per_kind / 100).max(1), &daemon_set),
        ("rollout", per_kind / 10, &rollout),
        ("pod", per_kind / 5, &job_pod),
        (
            "replicaset",
            per_kind * REPLICA_SETS_PER_DEPLOYMENT,
            &replica_set,
        ),
    ];
    let counted = kinds
        .into_iter()
        .map(|(kind, make)| (kind, per_kind, make))
        .chain(others);
    for (kind, count, make) in counted {
        let mut start = 0;
        while start < count {
            let end = (start + chunk).min(count);
            let items: Vec<Value> = (start..end).map(make).collect();
            write_json(&out.join(format!("{kind}-{start:07}.json")), &list(items));
            start = end;
        }
    }
    // The v2 Service the canary and the split point at, and a fully available v2 Deployment the
    // blue/green switch can go to, for the target object only.
    let mut v2 = deployment(TARGET, "2.0.0", 4);
    v2["metadata"]["name"] = json!(format!("web-{TARGET}-v2"));
    for labels in [
        "/metadata/labels",
        "/spec/selector/matchLabels",
        "/spec/template/metadata/labels",
    ] {
        if let Some(labels) = v2.pointer_mut(labels) {
            labels["version"] = json!("v2");
        }
    }
    write_json(
        &out.join("target-v2.json"),
        &list(vec![
            v2,
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": format!("web-{TARGET}-v2"), "namespace": namespace(TARGET)},
                   "spec": {"selector": {"app": format!("web-{TARGET}"), "version": "v2"},
                            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
            // The shared Gateway every HTTPRoute attaches to: the route request looks up its
            // listeners and the routes on them.
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                   "metadata": {"name": "public", "namespace": "gateways"},
                   "spec": {"gatewayClassName": "example", "listeners": [
                       {"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.example.com",
                        "allowedRoutes": {"namespaces": {"from": "All"}}}]}}),
        ]),
    );
    println!(
        "{per_kind} objects of each of 5 kinds (and the other workloads) in {}",
        out.display()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: bench-gen bodies OUT_DIR | bench-gen objects OUT_DIR PER_KIND");
        std::process::exit(2)
    };
    let out = PathBuf::from(args.get(1).unwrap_or_else(|| usage()));
    if let Err(error) = std::fs::create_dir_all(&out) {
        eprintln!("cannot create {}: {error}", out.display());
        std::process::exit(1);
    }
    match args.first().map(String::as_str) {
        Some("bodies") => bodies(&out),
        Some("objects") => {
            let per_kind = args
                .get(2)
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or_else(|| usage());
            objects(&out, per_kind.max(TARGET + 1));
        }
        _ => usage(),
    }
    let _ = std::io::stdout().flush();
}
