//! Table-driven AdmissionReview fixtures: every file under `tests/fixtures/<kind>/` is one case.
//!
//! A case gives the request parts (operation, object, oldObject, userInfo, ...), optionally a
//! policy, and what must come back (allowed, warnings, patch, patched object, audit annotations).
//! The runner builds a full AdmissionReview, answers it with `rollout_guard::admission::review`
//! (the webhook's one path), applies the returned base64 JSON Patch with the `json-patch` crate,
//! checks the expectations and, for every mutate case, runs mutate again on the patched object
//! with the same oldObject and requires an empty patch (the API server reinvokes webhooks).
//! Every produced patch is written to `target/patch-cases/` for the independent Python check
//! (`tests/checks/verify_patches.py`).
//!
//! Case format (YAML or JSON; files and directories whose names start with `_` are not cases):
//!
//! ```yaml
//! description: what the case shows
//! endpoint: mutate            # or validate; default mutate
//! operation: CREATE           # CREATE | UPDATE | DELETE | CONNECT
//! namespace: shop             # default: the object's metadata.namespace
//! subResource: scale          # optional
//! dryRun: true                # optional
//! userInfo: {username: alice}
//! now: 2026-06-01T00:00:00Z  # optional: the clock of the review (break-glass expiry); default now
//! policy: {...}               # optional RolloutPolicy (apiVersion/kind/metadata may be left out);
//!                             # default: the embedded policies/default.yaml
//! objects: []                 # cluster state for cross-object rules (see `cluster_view`);
//!                             #   each a full object or {base: NAME, merge, set} as `object`
//! synced: false               # optional: the store has not listed Deployments yet
//! notSynced: [Service]        # optional: the store has not listed these kinds yet
//! rule: blueGreen             # optional: compare only this rule's warnings (others may fire)
//! object: {...}               # a full object, or {base: NAME, merge: {...}, set: {POINTER: VALUE}}
//! oldObject: {...}            #   built from `_bases/NAME.yaml` in the case's directory
//! expect:
//!   allowed: true
//!   code: 403                 # status code when not allowed (default 403)
//!   message: [substr, ...]    # substrings of the denial message
//!   warnings: [substr, ...]   # exactly this many warnings, each containing its substring
//!   warningsContain: [...]    # instead of `warnings`: each substring in some warning, count free
//!   patch: [...]              # the exact JSON Patch (`[]` = no patch)
//!   patched: {...}            # a subset the patched object must contain
//!   absent: [POINTER, ...]    # JSON pointers that must not exist in the patched object
//!   audit: {findings: ...}    # audit annotations that must be present with these values
//!   auditAbsent: [KEY, ...]   # audit annotations that must not be present
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rollout_guard::admission::{review, ReviewContext};
use rollout_guard::policy::load::embedded_default;
use rollout_guard::policy::{ClusterView, Endpoint, PolicySet, RolloutPolicy};
use rollout_guard::store::{Store, StoredKind};
use serde_json::{json, Value};

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn patch_cases_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("patch-cases")
}

/// Every case file, sorted, as (kind directory, file).
fn case_files() -> Vec<(String, PathBuf)> {
    let mut cases = Vec::new();
    let mut kinds: Vec<PathBuf> = fs::read_dir(fixtures_root())
        .expect("tests/fixtures exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.is_dir())
        .collect();
    kinds.sort();
    for kind_dir in kinds {
        let kind = kind_dir.file_name().unwrap().to_string_lossy().into_owned();
        if kind.starts_with('_') {
            continue;
        }
        let mut files: Vec<PathBuf> = fs::read_dir(&kind_dir)
            .expect("readable kind directory")
            .map(|e| e.expect("readable entry").path())
            .filter(|p| {
                p.is_file()
                    && !p.file_name().unwrap().to_string_lossy().starts_with('_')
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("yaml" | "yml" | "json")
                    )
            })
            .collect();
        files.sort();
        cases.extend(files.into_iter().map(|f| (kind.clone(), f)));
    }
    cases
}

fn read_value(path: &Path) -> Result<Value, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    if path.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))
    } else {
        serde_yaml::from_str(&text).map_err(|e| format!("invalid YAML: {e}"))
    }
}

/// Builds an object: taken as is, or from a base file with a merge patch and pointer sets.
fn build_object(spec: &Value, kind_dir: &Path) -> Result<Value, String> {
    let Some(base) = spec.get("base").and_then(Value::as_str) else {
        return Ok(spec.clone());
    };
    let mut object = read_value(&kind_dir.join("_bases").join(format!("{base}.yaml")))
        .map_err(|e| format!("base {base}: {e}"))?;
    if let Some(merge) = spec.get("merge") {
        json_patch::merge(&mut object, merge);
    }
    if let Some(sets) = spec.get("set").and_then(Value::as_object) {
        for (pointer, value) in sets {
            set_pointer(&mut object, pointer, value.clone())
                .map_err(|e| format!("set {pointer}: {e}"))?;
        }
    }
    Ok(object)
}

/// Sets (or with a `null` value removes) the member a JSON pointer names; parents must exist.
fn set_pointer(object: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    let (parent, leaf) = pointer.rsplit_once('/').ok_or("not a pointer")?;
    let leaf = leaf.replace("~1", "/").replace("~0", "~");
    let parent = object.pointer_mut(parent).ok_or("parent missing")?;
    match parent {
        Value::Object(map) if value.is_null() => {
            map.remove(&leaf);
        }
        Value::Object(map) => {
            map.insert(leaf, value);
        }
        Value::Array(items) => {
            let index: usize = leaf.parse().map_err(|_| "bad index")?;
            if value.is_null() {
                items.remove(index);
            } else if index == items.len() {
                items.push(value);
            } else {
                *items.get_mut(index).ok_or("index out of range")? = value;
            }
        }
        _ => return Err("parent is not a container".into()),
    }
    Ok(())
}

fn policy_set(case: &Value) -> Result<PolicySet, String> {
    let Some(policy) = case.get("policy") else {
        return Ok(embedded_default());
    };
    let mut policy = policy.clone();
    let map = policy.as_object_mut().ok_or("policy is not a map")?;
    map.entry("apiVersion")
        .or_insert(json!(rollout_guard::policy::config::API_VERSION));
    map.entry("kind")
        .or_insert(json!(rollout_guard::policy::config::KIND));
    map.entry("metadata").or_insert(json!({"name": "fixture"}));
    map.entry("spec").or_insert(json!({}));
    let policy: RolloutPolicy =
        serde_json::from_value(policy).map_err(|e| format!("policy: {e}"))?;
    Ok(PolicySet::new(vec![policy], "fixture".to_owned()))
}

/// The cluster state a case runs against: the case's `objects:` stored through the same
/// `Store::apply_object` the watchers and `serve --objects` use. An object the store cannot read
/// fails the case, so no test silently runs without the state it asked for.
/// `synced: false` keeps the store waiting for Deployments (the cluster state is not synced yet);
/// `notSynced: [KIND, ...]` for the kinds named. Objects may be built from a base like `object`
/// (a ReplicaSet from the Deployment it was made from).
fn cluster_view(case: &Value, kind_dir: &Path) -> Result<Box<dyn ClusterView>, String> {
    let mut pending = Vec::new();
    if case.get("synced") == Some(&json!(false)) {
        pending.push(StoredKind::Deployment);
    }
    for name in strings(case.get("notSynced")) {
        let kind = StoredKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| format!("notSynced: {name} is not a stored kind"))?;
        pending.push(kind);
    }
    let store = Store::expecting(&pending);
    for object in case
        .get("objects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let object = build_object(object, kind_dir).map_err(|e| format!("objects: {e}"))?;
        store
            .apply_object(&object)
            .map_err(|e| format!("objects: {e}"))?;
    }
    Ok(Box::new(store))
}

struct Request<'a> {
    case: &'a Value,
    name: &'a str,
    endpoint: Endpoint,
    object: Option<Value>,
    old_object: Option<Value>,
}

fn admission_review(req: &Request<'_>) -> Value {
    let case = req.case;
    let sample = req
        .object
        .as_ref()
        .or(req.old_object.as_ref())
        .cloned()
        .unwrap_or(Value::Null);
    let api_version = sample
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = sample.get("kind").and_then(Value::as_str).unwrap_or("");
    let namespace = case
        .get("namespace")
        .cloned()
        .or_else(|| sample.pointer("/metadata/namespace").cloned())
        .unwrap_or(json!("default"));
    let name = sample
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(json!(""));
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let resource = json!({"group": group, "version": version,
        "resource": format!("{}s", kind.to_lowercase())});
    let mut request = json!({
        "uid": format!("fixture-{}", req.name),
        "kind": gvk,
        "resource": resource,
        "requestKind": gvk,
        "requestResource": resource,
        "name": name,
        "namespace": namespace,
        "operation": case.get("operation").cloned().unwrap_or(json!("CREATE")),
        "userInfo": case.get("userInfo").cloned().unwrap_or(json!({"username": "fixture-user"})),
        "object": req.object.clone().unwrap_or(Value::Null),
        "oldObject": req.old_object.clone().unwrap_or(Value::Null),
        "dryRun": case.get("dryRun").cloned().unwrap_or(json!(false)),
    });
    if let Some(sub) = case.get("subResource") {
        request["subResource"] = sub.clone();
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

struct Answer {
    response: Value,
    patch: Vec<Value>,
}

fn answer(
    req: &Request<'_>,
    policies: &PolicySet,
    view: &dyn ClusterView,
) -> Result<Answer, String> {
    let body = serde_json::to_vec(&admission_review(req)).map_err(|e| e.to_string())?;
    let ctx = ReviewContext {
        policies,
        view,
        own_namespace: Some("rollout-guard"),
        now: clock(req.case)?,
    };
    let reviewed = review(req.endpoint, &body, &ctx).map_err(|e| format!("review failed: {e}"))?;
    let out: Value = serde_json::from_slice(&reviewed.body).map_err(|e| e.to_string())?;
    let response = out.get("response").cloned().ok_or("no response")?;
    if response.get("uid") != Some(&json!(format!("fixture-{}", req.name))) {
        return Err(format!("uid not echoed: {response}"));
    }
    let patch = match response.get("patch").and_then(Value::as_str) {
        None => Vec::new(),
        Some(encoded) => {
            if response.get("patchType") != Some(&json!("JSONPatch")) {
                return Err("patch without patchType JSONPatch".into());
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("patch is not base64: {e}"))?;
            let ops: Vec<Value> = serde_json::from_slice(&bytes)
                .map_err(|e| format!("patch is not a JSON array: {e}"))?;
            if ops.is_empty() {
                return Err("empty patch sent (omit it instead)".into());
            }
            ops
        }
    };
    Ok(Answer { response, patch })
}

/// The case's `now:` (RFC 3339), else the real clock, as the webhook reviews.
fn clock(case: &Value) -> Result<std::time::SystemTime, String> {
    match case.get("now").and_then(Value::as_str) {
        None => Ok(std::time::SystemTime::now()),
        Some(text) => text
            .parse::<k8s_openapi::jiff::Timestamp>()
            .map(std::time::SystemTime::from)
            .map_err(|e| format!("now: {e}")),
    }
}

fn apply(object: &Value, ops: &[Value]) -> Result<Value, String> {
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops.to_vec())).map_err(|e| format!("patch: {e}"))?;
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).map_err(|e| format!("patch does not apply: {e}"))?;
    Ok(patched)
}

/// True when `actual` contains everything `expected` has (maps recursively; other values equal).
fn contains(actual: &Value, expected: &Value, at: &str, errors: &mut Vec<String>) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (key, value) in e {
                let here = format!("{at}/{key}");
                match a.get(key) {
                    Some(found) => contains(found, value, &here, errors),
                    None => errors.push(format!("patched object lacks {here}")),
                }
            }
        }
        _ if actual == expected => {}
        _ => errors.push(format!("{at}: expected {expected}, got {actual}")),
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs one case; returns every failed expectation.
fn run_case(kind: &str, path: &Path) -> Result<Vec<String>, String> {
    let case = read_value(path)?;
    let kind_dir = path.parent().ok_or("no parent")?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or("bad file name")?;
    let name = format!("{kind}__{stem}");
    let endpoint = match case.get("endpoint").and_then(Value::as_str) {
        None | Some("mutate") => Endpoint::Mutate,
        Some("validate") => Endpoint::Validate,
        Some(other) => return Err(format!("unknown endpoint {other}")),
    };
    let object = case
        .get("object")
        .map(|o| build_object(o, kind_dir))
        .transpose()?;
    let old_object = case
        .get("oldObject")
        .map(|o| build_object(o, kind_dir))
        .transpose()?;
    let policies = policy_set(&case)?;
    let view = cluster_view(&case, kind_dir)?;
    let expect = case.get("expect").ok_or("no expect")?;
    let mut errors = Vec::new();

    let request = Request {
        case: &case,
        name: &name,
        endpoint,
        object: object.clone(),
        old_object: old_object.clone(),
    };
    let got = answer(&request, &policies, view.as_ref())?;
    let response = &got.response;

    let allowed = response
        .get("allowed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let want_allowed = expect
        .get("allowed")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if allowed != want_allowed {
        errors.push(format!(
            "allowed: expected {want_allowed}, got {allowed} ({response})"
        ));
    }
    if !allowed {
        let code = response
            .pointer("/status/code")
            .cloned()
            .unwrap_or(Value::Null);
        let want_code = expect.get("code").cloned().unwrap_or(json!(403));
        if code != want_code {
            errors.push(format!("status code: expected {want_code}, got {code}"));
        }
    }
    let message = response
        .pointer("/status/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    for needle in strings(expect.get("message")) {
        if !message.contains(&needle) {
            errors.push(format!("message lacks {needle:?}: {message:?}"));
        }
    }
    let mut warnings = strings(response.get("warnings"));
    if let Some(rule) = case.get("rule").and_then(Value::as_str) {
        let prefix = format!("rollout-guard {rule}.");
        warnings.retain(|w| w.starts_with(&prefix));
    }
    let count_free = expect.get("warningsContain").is_some();
    let want_warnings = strings(expect.get("warningsContain").or(expect.get("warnings")));
    if !count_free && warnings.len() != want_warnings.len() {
        errors.push(format!(
            "expected {} warning(s), got {}: {warnings:#?}",
            want_warnings.len(),
            warnings.len()
        ));
    }
    for needle in &want_warnings {
        if !warnings.iter().any(|w| w.contains(needle.as_str())) {
            errors.push(format!("no warning contains {needle:?}: {warnings:#?}"));
        }
    }
    for warning in &warnings {
        if warning.chars().count() > 240 || warning.contains('\n') {
            errors.push(format!("warning too long or multi-line: {warning:?}"));
        }
    }
    if let Some(want_patch) = expect.get("patch") {
        if &Value::Array(got.patch.clone()) != want_patch {
            errors.push(format!(
                "patch: expected {want_patch}, got {}",
                Value::Array(got.patch.clone())
            ));
        }
    }
    let audit = response
        .get("auditAnnotations")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(want) = expect.get("audit").and_then(Value::as_object) {
        for (key, value) in want {
            if audit.get(key) != Some(value) {
                errors.push(format!(
                    "audit {key}: expected {value}, got {}",
                    audit.get(key).unwrap_or(&Value::Null)
                ));
            }
        }
    }
    for key in strings(expect.get("auditAbsent")) {
        if audit.get(&key).is_some() {
            errors.push(format!("audit {key} should be absent: {audit}"));
        }
    }

    let patched = match (&object, got.patch.is_empty()) {
        (Some(object), false) => match apply(object, &got.patch) {
            Ok(patched) => Some(patched),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        (object, true) => object.clone(),
        (None, false) => {
            errors.push("patch for a request without object".into());
            None
        }
    };
    if let Some(patched) = &patched {
        if let Some(want) = expect.get("patched") {
            contains(patched, want, "", &mut errors);
        }
        for pointer in strings(expect.get("absent")) {
            if patched.pointer(&pointer).is_some() {
                errors.push(format!("patched object should not have {pointer}"));
            }
        }
    } else if expect.get("patched").is_some() {
        errors.push("expected a patched object but there is none".into());
    }

    if !got.patch.is_empty() {
        let dir = patch_cases_dir();
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let record = json!({
            "object": object,
            "patch": got.patch,
            "expectedObject": patched,
        });
        fs::write(
            dir.join(format!("fixture__{name}.json")),
            serde_json::to_vec_pretty(&record).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    }

    // Reinvocation: the API server may call mutate again with our own output.
    if endpoint == Endpoint::Mutate && allowed {
        if let Some(patched) = patched {
            let again = Request {
                case: &case,
                name: &name,
                endpoint,
                object: Some(patched),
                old_object,
            };
            let second = answer(&again, &policies, view.as_ref())?;
            if !second.patch.is_empty() {
                errors.push(format!(
                    "not idempotent: mutate on its own output patched again: {}",
                    Value::Array(second.patch)
                ));
            }
        }
    }
    Ok(errors)
}

/// Cases each kind directory must hold at least.
const MINIMUM_CASES: &[(&str, usize)] = &[
    ("deployment", 60),
    ("ingress", 12),
    ("httproute", 40),
    ("service", 24),
    ("deployment-siblings", 6),
    ("break-glass", 8),
];

#[test]
fn admission_fixtures() {
    let cases = case_files();
    // A broken directory walk must not let the suite pass vacuously.
    for (kind, minimum) in MINIMUM_CASES {
        let found = cases.iter().filter(|(k, _)| k == kind).count();
        assert!(
            found >= *minimum,
            "tests/fixtures/{kind}: {found} case(s), expected at least {minimum}"
        );
    }
    // Stale records from renamed cases would be checked forever: start clean.
    if let Ok(entries) = fs::read_dir(patch_cases_dir()) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("fixture__") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    let mut failures = Vec::new();
    for (kind, path) in &cases {
        let shown = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(path)
            .display()
            .to_string();
        match run_case(kind, path) {
            Ok(errors) if errors.is_empty() => {}
            Ok(errors) => failures.push(format!("{shown}:\n  - {}", errors.join("\n  - "))),
            Err(error) => failures.push(format!("{shown}: case cannot run: {error}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixture case(s) failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{} fixture case(s) passed", cases.len());
}

#[test]
fn subset_matching_can_fail() {
    let mut errors = Vec::new();
    contains(
        &json!({"a": {"b": 1}}),
        &json!({"a": {"b": 2}}),
        "",
        &mut errors,
    );
    contains(&json!({"a": {}}), &json!({"a": {"c": 1}}), "", &mut errors);
    assert_eq!(errors.len(), 2);
}
