//! Table tests over the shapes of the real requests in `../shared/traces/apiserver-1.20`
//! (managedFields and last-applied copied from `kubectl-apply-server-side.json`,
//! `kubectl-apply-manifest-has-version-label.json`, `kubectl-create.json` and `helm3.json`).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use super::*;

/// A Deployment as the mutating webhook sees it after API defaulting (kubectl-create.json).
fn defaulted(extra_meta: Value) -> Value {
    let mut object = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "tr", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "app", "image": "nginx:1.25.3",
                    "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "timeoutSeconds": 1},
                }]},
            },
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
    });
    merge(&mut object["metadata"], extra_meta);
    object
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn deployment(value: Value) -> Deployment {
    serde_json::from_value(value).expect("deployment")
}

/// The `kubectl/Apply` entry of kubectl-apply-server-side.json (manifest without strategy).
fn ssa_entry(manager: &str, with_version_label: bool) -> Value {
    let labels = if with_version_label {
        json!({"f:app": {}, "f:app.kubernetes.io/version": {}})
    } else {
        json!({"f:app": {}})
    };
    json!({"manager": manager, "operation": "Apply", "apiVersion": "apps/v1",
           "fieldsType": "FieldsV1", "fieldsV1": {
        "f:metadata": {"f:labels": labels.clone()},
        "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
            "f:metadata": {"f:labels": labels},
            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                ".": {}, "f:image": {}, "f:name": {},
                "f:readinessProbe": {"f:httpGet": {"f:path": {}, "f:port": {}}}}}}}}}})
}

/// An Update entry as kubectl-create / helm 3 send it: it lists the defaults too.
fn update_entry(manager: &str) -> Value {
    json!({"manager": manager, "operation": "Update", "apiVersion": "apps/v1",
           "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {
        "f:progressDeadlineSeconds": {}, "f:revisionHistoryLimit": {},
        "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}}}}})
}

fn last_applied(manifest: Value) -> Value {
    json!({"annotations": {LAST_APPLIED: manifest.to_string()}})
}

const MAX_UNAVAILABLE: &[&str] = &["spec", "strategy", "rollingUpdate", "maxUnavailable"];
const HISTORY: &[&str] = &["spec", "revisionHistoryLimit"];
const VERSION_LABEL: &[&str] = &["metadata", "labels", "app.kubernetes.io/version"];
const PROBE: &[&str] = &[
    "spec",
    "template",
    "spec",
    "containers",
    "name=app",
    "readinessProbe",
];

fn max_unavailable(d: &Deployment) -> Option<&IntOrString> {
    d.spec
        .as_ref()?
        .strategy
        .as_ref()?
        .rolling_update
        .as_ref()?
        .max_unavailable
        .as_ref()
}

fn history(d: &Deployment) -> Option<&i32> {
    d.spec.as_ref()?.revision_history_limit.as_ref()
}

fn version_label(d: &Deployment) -> Option<&str> {
    d.metadata
        .labels
        .as_ref()?
        .get("app.kubernetes.io/version")
        .map(String::as_str)
}

fn choose_unavailable(intent: &Intent<'_, Deployment>) -> Choice {
    intent.chose(
        MAX_UNAVAILABLE,
        max_unavailable,
        Some(&IntOrString::String("25%".into())),
    )
}

fn choose_history(intent: &Intent<'_, Deployment>) -> Choice {
    intent.chose(HISTORY, history, Some(&10))
}

#[test]
fn create_without_applied_configuration_reads_defaults() {
    // kubectl-create.json / helm3.json: only Update entries, which list the defaults too.
    let mut object = defaulted(json!({"managedFields": [update_entry("kubectl-create")]}));
    let create = deployment(object.clone());
    let intent = Intent::new(Operation::Create, Some(&create), None);
    assert_eq!(intent.source(), Source::Defaults);
    assert_eq!(intent.declares(MAX_UNAVAILABLE), None);
    assert_eq!(choose_unavailable(&intent), Choice::Defaulted);
    assert_eq!(choose_history(&intent), Choice::Defaulted);

    object["spec"]["revisionHistoryLimit"] = json!(3);
    object["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = json!(25);
    let chosen = deployment(object);
    let intent = Intent::new(Operation::Create, Some(&chosen), None);
    assert_eq!(choose_history(&intent), Choice::Chosen);
    // The int 25 is not the API default (the string "25%").
    assert_eq!(choose_unavailable(&intent), Choice::Chosen);
}

#[test]
fn client_side_apply_declares_what_the_manifest_wrote() {
    // kubectl-apply-manifest-has-version-label.json: the manifest carries the version label and
    // no strategy; a Git manifest that writes `revisionHistoryLimit: 10` explicitly chose it.
    let manifest = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"annotations": {}, "labels": {"app": "web", "app.kubernetes.io/version": "1.25.3"},
                     "name": "web", "namespace": "tr"},
        "spec": {"replicas": 2, "revisionHistoryLimit": 10,
                 "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"image": "nginx:1.25.3", "name": "app",
                                  "readinessProbe": {"httpGet": {"path": "/", "port": 80}}}]}}}});
    let mut object = defaulted(last_applied(manifest));
    object["metadata"]["labels"]["app.kubernetes.io/version"] = json!("1.25.3");
    let create = deployment(object);
    let intent = Intent::new(Operation::Create, Some(&create), None);
    assert_eq!(intent.source(), Source::LastApplied);
    assert_eq!(choose_unavailable(&intent), Choice::Defaulted);
    assert_eq!(
        choose_history(&intent),
        Choice::Chosen,
        "10 written in Git is a choice"
    );
    assert_eq!(
        intent.chose(VERSION_LABEL, version_label, None),
        Choice::Chosen
    );
    assert_eq!(intent.declares(PROBE), Some(true));
    assert_eq!(
        intent.declares(&[
            "spec",
            "template",
            "spec",
            "containers",
            "name=other",
            "image"
        ]),
        Some(false)
    );
}

#[test]
fn server_side_apply_declares_exactly_the_applied_fields() {
    // kubectl-apply-server-side.json: `kubectl/Apply` lists neither the strategy nor the
    // defaults; the controller's status entry is an Update and is not read.
    let object = defaulted(json!({"managedFields": [
        ssa_entry("kubectl", false), update_entry("kube-controller-manager")]}));
    let create = deployment(object);
    let intent = Intent::new(Operation::Create, Some(&create), None);
    assert_eq!(intent.source(), Source::Apply(vec!["kubectl".to_owned()]));
    assert_eq!(choose_unavailable(&intent), Choice::Defaulted);
    assert_eq!(choose_history(&intent), Choice::Defaulted);
    assert_eq!(intent.declares(PROBE), Some(true));
    assert_eq!(
        intent.declares(&[
            "spec",
            "template",
            "spec",
            "containers",
            "name=app",
            "image"
        ]),
        Some(true)
    );
    // `f:selector: {}` is atomic: it owns everything below it.
    assert_eq!(
        intent.declares(&["spec", "selector", "matchLabels", "app"]),
        Some(true)
    );
    assert_eq!(intent.declares(VERSION_LABEL), Some(false));
}

#[test]
fn several_appliers_are_united() {
    // Flux's kustomize-controller and a person's kubectl --server-side on the same object.
    let object = defaulted(json!({"managedFields": [
        ssa_entry("kustomize-controller", false), ssa_entry("kubectl", true)]}));
    let create = deployment(object);
    let intent = Intent::new(Operation::Create, Some(&create), None);
    assert_eq!(intent.declares(VERSION_LABEL), Some(true));
    assert_eq!(
        intent.source(),
        Source::Apply(vec![
            "kustomize-controller".to_owned(),
            "kubectl".to_owned()
        ])
    );
}

#[test]
fn apply_entries_win_over_last_applied() {
    // An object once applied client-side and now server-side keeps the old annotation.
    let manifest = json!({"spec": {"revisionHistoryLimit": 10}});
    let mut meta = last_applied(manifest);
    merge(
        &mut meta,
        json!({"managedFields": [ssa_entry("kubectl", false)]}),
    );
    let create = deployment(defaulted(meta));
    let intent = Intent::new(Operation::Create, Some(&create), None);
    assert_eq!(choose_history(&intent), Choice::Defaulted);
}

#[test]
fn update_compares_with_the_old_object() {
    // Helm 3 / kubectl patch: no applied configuration, oldObject without managedFields (1.20).
    let mut stored = defaulted(json!({}));
    stored["spec"]["revisionHistoryLimit"] = json!(5);
    stored["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = json!(0);
    let old = deployment(stored.clone());

    // Metadata-only write (annotate, pause): everything unchanged.
    let mut annotated = stored.clone();
    annotated["metadata"]["annotations"] = json!({"team": "shop"});
    let new = deployment(annotated);
    let intent = Intent::new(Operation::Update, Some(&new), Some(&old));
    assert_eq!(choose_history(&intent), Choice::Unchanged);
    assert_eq!(choose_unavailable(&intent), Choice::Unchanged);

    // kubectl replace with the manifest: the strategy is gone and defaulted again.
    let mut replaced = stored.clone();
    replaced["spec"]["revisionHistoryLimit"] = json!(10);
    replaced["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = json!("25%");
    let new = deployment(replaced);
    let intent = Intent::new(Operation::Update, Some(&new), Some(&old));
    assert_eq!(choose_history(&intent), Choice::Defaulted);
    assert_eq!(choose_unavailable(&intent), Choice::Defaulted);

    // kubectl patch writes a value: chosen by this request.
    let mut patched = stored;
    patched["spec"]["revisionHistoryLimit"] = json!(3);
    let new = deployment(patched);
    let intent = Intent::new(Operation::Update, Some(&new), Some(&old));
    assert_eq!(choose_history(&intent), Choice::Chosen);
}

#[test]
fn declared_and_unchanged_is_still_chosen() {
    // The Git manifest keeps `revisionHistoryLimit: 10`; a later apply changes only the image.
    let manifest = json!({"spec": {"revisionHistoryLimit": 10}});
    let object = defaulted(last_applied(manifest));
    let old = deployment(object.clone());
    let new = deployment(object);
    let intent = Intent::new(Operation::Update, Some(&new), Some(&old));
    assert_eq!(choose_history(&intent), Choice::Chosen);
    // Not in the manifest, not changed: untouched by this request.
    assert_eq!(choose_unavailable(&intent), Choice::Unchanged);
}

#[test]
fn absent_fields_and_bad_annotations() {
    let mut object = defaulted(json!({"annotations": {LAST_APPLIED: "{not json"}}));
    object["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("revisionHistoryLimit");
    let create = deployment(object);
    let intent = Intent::new(Operation::Create, Some(&create), None);
    assert_eq!(choose_history(&intent), Choice::Absent);
    // An unreadable annotation declares nothing: the defaults decide, as with no annotation.
    assert_eq!(intent.source(), Source::Defaults);
    assert_eq!(choose_unavailable(&intent), Choice::Defaulted);
    assert!(Choice::Absent.is_fillable() && Choice::Defaulted.is_fillable());
    assert!(!Choice::Unchanged.is_fillable() && !Choice::Chosen.is_fillable());
}

#[test]
fn absent_before_and_after_is_unchanged() {
    let mut stored = defaulted(json!({}));
    stored["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("revisionHistoryLimit");
    let old = deployment(stored.clone());
    let new = deployment(stored);
    let intent = Intent::new(Operation::Update, Some(&new), Some(&old));
    assert_eq!(choose_history(&intent), Choice::Unchanged);
    // Dropped by this request: absent, so fillable again.
    let old = deployment(defaulted(json!({})));
    let intent = Intent::new(Operation::Update, Some(&new), Some(&old));
    assert_eq!(choose_history(&intent), Choice::Absent);
}

#[test]
fn old_object_is_ignored_on_create() {
    let object = deployment(defaulted(json!({})));
    let mut other = defaulted(json!({}));
    other["spec"]["revisionHistoryLimit"] = json!(3);
    let other = deployment(other);
    let intent = Intent::new(Operation::Create, Some(&object), Some(&other));
    assert!(!intent.is_update());
    assert_eq!(choose_history(&intent), Choice::Defaulted);
}

/// The real requests: no manifest in the traces writes a strategy or a history limit, so every
/// CREATE must read them as defaulted (whatever the client: kubectl create, client-side and
/// server-side apply, Flux- and Argo CD-style managers, Helm 3 and 4), and every UPDATE that
/// leaves them as stored must read them as unchanged.
#[test]
fn real_trace_requests() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces/apiserver-1.20");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "SKIPPED real_trace_requests: {} is not present",
            dir.display()
        );
        return;
    };
    let mut seen = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let trace: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read trace"))
                .expect("trace");
        for exchange in trace["exchanges"].as_array().into_iter().flatten() {
            let request = &exchange["request"]["request"];
            let is_deployment = request["kind"]["kind"] == "Deployment";
            let has_subresource = request["subResource"]
                .as_str()
                .is_some_and(|s| !s.is_empty());
            if !is_deployment
                || has_subresource
                || !exchange["path"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("/mutate")
            {
                continue;
            }
            let operation = match request["operation"].as_str() {
                Some("CREATE") => Operation::Create,
                Some("UPDATE") => Operation::Update,
                _ => continue,
            };
            let object = deployment(request["object"].clone());
            let old =
                (operation == Operation::Update).then(|| deployment(request["oldObject"].clone()));
            let intent = Intent::new(operation.clone(), Some(&object), old.as_ref());
            let at = format!("{} seq {}", path.display(), exchange["seq"]);
            if operation == Operation::Create {
                assert_eq!(choose_unavailable(&intent), Choice::Defaulted, "{at}");
                assert_eq!(choose_history(&intent), Choice::Defaulted, "{at}");
            } else if old.as_ref().and_then(history) == history(&object) {
                assert_eq!(choose_history(&intent), Choice::Unchanged, "{at}");
            }
            seen += 1;
        }
    }
    assert!(
        seen > 50,
        "expected the Deployment requests of the traces, saw {seen}"
    );
}

#[test]
fn last_applied_is_read_for_its_shape_escapes_and_nulls_included() {
    // Written by hand, not by serde_json: `\/` and `\u0041` escapes (owned, not borrowed, when
    // read), a null (written as nothing), an item whose name is escaped.
    let text = r#"{"metadata": {"labels": {"app.kubernetes.io\/version": "1.0"}},
        "spec": {"minReadySeconds": null, "revisionHistoryLimit": 3,
                 "template": {"spec": {"containers": [
                     {"name": "\u0041pp", "readinessProbe": {"tcpSocket": {"port": 80}}},
                     {"name": "side", "image": "x"}]}}}}"#;
    let create = deployment(defaulted(json!({"annotations": {LAST_APPLIED: text}})));
    let intent = Intent::new(Operation::Create, Some(&create), None);
    assert_eq!(intent.source(), Source::LastApplied);
    let has = |path: &[&str]| intent.declares(path);
    assert_eq!(
        has(&["metadata", "labels", "app.kubernetes.io/version"]),
        Some(true)
    );
    assert_eq!(
        has(&["spec", "minReadySeconds"]),
        Some(false),
        "null is not written"
    );
    assert_eq!(has(&["spec", "revisionHistoryLimit"]), Some(true));
    let probe = |name| {
        [
            "spec",
            "template",
            "spec",
            "containers",
            name,
            "readinessProbe",
        ]
    };
    assert_eq!(has(&probe("name=App")), Some(true));
    assert_eq!(has(&probe("name=side")), Some(false));
    assert_eq!(
        has(&[
            "spec",
            "template",
            "spec",
            "containers",
            "name=side",
            "image"
        ]),
        Some(true)
    );
    assert_eq!(
        has(&["spec", "template", "spec", "containers", "image"]),
        Some(false),
        "a list has no members"
    );
    assert_eq!(
        has(&["spec", "revisionHistoryLimit", "deeper"]),
        Some(false),
        "a number has no members"
    );
}

#[test]
fn questions_into_the_lists_first_left_unread_get_the_answers_of_the_whole_manifest() {
    // `env`, `volumeMounts`, `args` ... are skipped by the first read (no rule asks into
    // them); a question that reaches one reads the whole manifest, with or without a
    // read-ahead.
    let manifest = json!({"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": "nginx:1.25.3",
            "env": [{"name": "MODE", "value": "blue"}], "args": [],
            "readinessProbe": {"httpGet": {"port": 80}}}],
        "volumes": null}}}});
    let object = deployment(defaulted(last_applied(manifest)));
    let text = object.metadata.annotations.as_ref().expect("annotations")[LAST_APPLIED].clone();
    let read_ahead = ReadAhead::new(&text);
    let container = |rest: &[&'static str]| {
        let mut path = vec!["spec", "template", "spec", "containers", "name=app"];
        path.extend_from_slice(rest);
        path
    };
    let cases: [(Vec<&str>, bool); 8] = [
        (container(&["env"]), true),
        (container(&["env", "name=MODE"]), true),
        (container(&["env", "name=MODE", "value"]), true),
        (container(&["env", "name=OTHER"]), false),
        (container(&["args"]), true),
        (container(&["volumeMounts"]), false),
        (vec!["spec", "template", "spec", "volumes"], false),
        (container(&["readinessProbe", "httpGet", "port"]), true),
    ];
    for source in [None, Some(&read_ahead as &dyn ShapeSource)] {
        let context_free = Intent::new(Operation::Create, Some(&object), None);
        let cache = IntentCache::with_read_ahead(source);
        let read = cache.0.get_or_init(|| declared(object.meta(), cache.1));
        let shared = Intent::with(
            Operation::Create,
            Some(&object),
            None,
            DeclaredRef::Shared(read),
        );
        for (path, expected) in &cases {
            assert_eq!(context_free.declares(path), Some(*expected), "{path:?}");
            assert_eq!(
                shared.declares(path),
                Some(*expected),
                "{path:?} (read ahead: {})",
                source.is_some()
            );
        }
    }
}

#[test]
fn a_read_ahead_answers_only_for_the_text_it_holds_and_as_a_parse_would() {
    let manifest = json!({"spec": {"revisionHistoryLimit": 10,
        "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.25.3"}]}}}});
    let object = deployment(defaulted(last_applied(manifest)));
    let text = object.metadata.annotations.as_ref().expect("annotations")[LAST_APPLIED].clone();
    let same = ReadAhead::new(&text);
    let other_text = json!({"spec": {}}).to_string();
    let other = ReadAhead::new(&other_text);
    let broken = ReadAhead::new("{not json");

    let read = |source: Option<&dyn ShapeSource>| {
        let declared = declared(&object.metadata, source);
        let kind = match &declared {
            Declared::ReadAhead(_) => "read ahead",
            Declared::LastApplied(_) => "parsed",
            Declared::Apply { .. } => "apply",
            Declared::Nothing => "nothing",
        };
        let intent = Intent::with(
            Operation::Create,
            Some(&object),
            None,
            DeclaredRef::Own(declared),
        );
        let image: &[&str] = &[
            "spec",
            "template",
            "spec",
            "containers",
            "name=app",
            "image",
        ];
        let paths = [HISTORY, &["spec", "progressDeadlineSeconds"], image, PROBE];
        let answers: Vec<Option<bool>> = paths.iter().map(|p| intent.declares(p)).collect();
        (kind, answers)
    };
    let (kind, parsed) = read(None);
    assert_eq!(kind, "parsed");
    assert_eq!(parsed, [Some(true), Some(false), Some(true), Some(false)]);
    assert_eq!(read(Some(&same)), ("read ahead", parsed.clone()));
    // Another object's annotation (or one the patch changed) is parsed, never borrowed.
    assert_eq!(read(Some(&other)), ("parsed", parsed));
    // An unreadable read-ahead only counts for its own text.
    let unreadable = deployment(defaulted(
        json!({"annotations": {LAST_APPLIED: "{not json"}}),
    ));
    assert!(matches!(
        declared(&unreadable.metadata, Some(&broken)),
        Declared::Nothing
    ));
}
