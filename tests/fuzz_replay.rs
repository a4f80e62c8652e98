//! The fuzz targets' checks, run in CI without libFuzzer.
//!
//! `fuzz/targets/*.rs` hold each target's logic as a plain function (the cargo-fuzz binaries in
//! `fuzz/fuzz_targets/` only wrap them), so the properties asserted here are the fuzzer's own:
//! no panic, every answer echoes the uid, every patch applies, no patch touches `/spec/selector`.
//! An instrumented fuzzing run is too slow for the gate; instead every target gets, in debug
//! and in seconds:
//!
//! - the committed regression corpus `fuzz/regressions/<target>/` (crashes found before, and a
//!   few hand-picked edge inputs), read exactly as `cargo fuzz run <target> <file>` reads them;
//! - seeds built from the repository's own fixtures (`tests/fixtures/**`, `policies/`,
//!   `examples/`), the same inputs `fuzz/run.sh` starts its corpora from;
//! - a bounded, deterministic mutation run: a fixed-seed PRNG flips, deletes, duplicates, splices
//!   and truncates the seeds' bytes, or edits nodes of the parsed seed (edge values, nodes of
//!   another seed, removals) and writes it back; `rule_engine` gets `Case`s built by `arbitrary`
//!   from pseudo-random bytes. `FUZZ_REPLAY_ITERATIONS` and `FUZZ_REPLAY_SEED` widen or move
//!   the search.
//!
//! A failing input (a panic, or a hang: one input running past `HANG_LIMIT`) is saved under
//! `target/tmp/fuzz-replay-failures/<target>/` so it can be reproduced with cargo fuzz and
//! committed to `fuzz/regressions/` (see fuzz/README.md).

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use rollout_guard::policy::config::{API_VERSION, KIND};
use serde_json::{json, Value};

#[path = "../fuzz/targets/admission_review.rs"]
mod admission_review;
#[path = "../fuzz/targets/policy_loader.rs"]
mod policy_loader;
#[path = "../fuzz/targets/rule_engine.rs"]
mod rule_engine;

/// Inputs per mutation test by default: 1–3 s each in a debug build on two cores.
const DEFAULT_ITERATIONS: u64 = 20_000;
/// Fixed so that CI runs the same inputs every time and a failure reproduces.
const DEFAULT_SEED: u64 = 0x5eed_f022_2026;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The mutation runs' PRNG seed and length: fixed unless the environment widens them.
fn run_settings() -> (u64, u64) {
    (
        env_u64("FUZZ_REPLAY_SEED", DEFAULT_SEED),
        env_u64("FUZZ_REPLAY_ITERATIONS", DEFAULT_ITERATIONS),
    )
}

/// The rule_engine target's input decoding, as libfuzzer-sys does it for a typed
/// `fuzz_target!`, so a crash file from `fuzz/artifacts/rule_engine/` replays the same `Case`.
fn rule_engine_bytes(data: &[u8]) {
    if data.len() < rule_engine::Case::size_hint(0).0 {
        return;
    }
    if let Ok(case) = rule_engine::Case::arbitrary_take_rest(Unstructured::new(data)) {
        rule_engine::rule_engine(case);
    }
}

/// A target as the raw bytes the fuzzer hands it.
struct Target {
    name: &'static str,
    run: fn(&[u8]),
}

const ADMISSION_REVIEW: Target = Target {
    name: "admission_review",
    run: admission_review::admission_review,
};
const POLICY_LOADER: Target = Target {
    name: "policy_loader",
    run: policy_loader::policy_loader,
};
const RULE_ENGINE: Target = Target {
    name: "rule_engine",
    run: rule_engine_bytes,
};

/// How long one input may run before it counts as a hang (the serde_yaml multi-document loop
/// was one). Inputs take micro- to milliseconds; this only turns an endless loop into a failure
/// that names and saves its input instead of a CI job that never ends. Nothing is asserted about
/// speed.
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// The input each test thread is running, for the hang watchdog.
struct Running {
    target: &'static str,
    what: String,
    input: Vec<u8>,
    since: Instant,
}

fn running() -> &'static Mutex<HashMap<ThreadId, Running>> {
    static RUNNING: OnceLock<Mutex<HashMap<ThreadId, Running>>> = OnceLock::new();
    RUNNING.get_or_init(|| {
        // One watchdog for the whole test binary: a hung input cannot be interrupted, so it is
        // saved, reported, and the process ends.
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_secs(1));
            let guard = running().lock().unwrap_or_else(|e| e.into_inner());
            if let Some(hung) = guard.values().find(|r| r.since.elapsed() > HANG_LIMIT) {
                let saved = save_failure(hung.target, &hung.input);
                // Straight to stderr: the test harness captures `eprintln!` of test threads (and
                // of threads they spawn) and would drop it when the process exits here.
                let _ = writeln!(
                    std::io::stderr(),
                    "{} ran {}s on {} without finishing (a hang); the input is saved as {}\n\
                     reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none {} {}",
                    hung.target,
                    HANG_LIMIT.as_secs(),
                    hung.what,
                    saved.display(),
                    hung.target,
                    saved.display()
                );
                std::process::exit(101);
            }
        });
        Mutex::new(HashMap::new())
    })
}

/// Saves a failing input under `target/tmp/fuzz-replay-failures/<target>/`.
fn save_failure(target: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-replay-failures")
        .join(target);
    let path = dir.join(format!("crash-{:016x}", fnv1a(input)));
    // Best effort: the failure is reported whether or not the file was written.
    let _ = fs::create_dir_all(&dir).and_then(|()| fs::write(&path, input));
    path
}

impl Target {
    /// Runs one input; if it panics (or hangs: see `HANG_LIMIT`), saves it and fails naming
    /// `what` (where it came from).
    fn check(&self, what: &dyn std::fmt::Display, input: &[u8]) {
        let thread = std::thread::current().id();
        let lock = || running().lock().unwrap_or_else(|e| e.into_inner());
        lock().insert(
            thread,
            Running {
                target: self.name,
                what: what.to_string(),
                input: input.to_vec(),
                since: Instant::now(),
            },
        );
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.run)(input)));
        lock().remove(&thread);
        if outcome.is_err() {
            let saved = save_failure(self.name, input);
            panic!(
                "{} panicked on {what} (panic message above); the input is saved as {}\n\
                 reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none {} {}",
                self.name,
                saved.display(),
                self.name,
                saved.display()
            );
        }
    }

    /// The committed regression inputs for this target, as (path, bytes), sorted by name.
    fn regressions(&self) -> Vec<(String, Vec<u8>)> {
        let dir = repo().join("fuzz/regressions").join(self.name);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("readable entry").path())
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                (path.display().to_string(), data)
            })
            .collect()
    }

    /// The regression inputs' bytes, to seed a mutation run with.
    fn regression_inputs(&self) -> impl Iterator<Item = Vec<u8>> {
        self.regressions().into_iter().map(|(_, data)| data)
    }

    /// Mutates `seeds` (and the regression inputs, so past crashes are mutated too) and
    /// replays every mutant. Half the mutants are byte edits, half are edits of the parsed
    /// document written back in `format`: byte edits mostly break the syntax (about nine JSON
    /// mutants in ten fail to parse) and alone would test little beyond the parser.
    fn mutate(&self, mut seeds: Vec<Vec<u8>>, format: Format) {
        seeds.extend(self.regression_inputs());
        let (seed, iterations) = run_settings();
        let parsed: Vec<Option<Vec<Value>>> = seeds.iter().map(|s| format.parse(s)).collect();
        let mut rng = Rng::new(seed);
        for iteration in 0..iterations {
            let index = rng.below(seeds.len());
            let donor = rng.below(seeds.len());
            let input = match (&parsed[index], &parsed[donor], rng.below(2)) {
                (Some(documents), Some(donors), 0) if !documents.is_empty() => {
                    let mut documents = documents.clone();
                    let at = rng.below(documents.len());
                    let donor = donors.get(rng.below(donors.len().max(1)));
                    mutate_value(&mut documents[at], donor.unwrap_or(&Value::Null), &mut rng);
                    format.write(&documents)
                }
                _ => mutated(&seeds[index], &seeds[donor], &mut rng),
            };
            let what = format!("mutation {iteration} (FUZZ_REPLAY_SEED={seed})");
            self.check(&what, &input);
        }
    }
}

/// How a target's seeds are written, for structure-aware mutation.
#[derive(Clone, Copy)]
enum Format {
    /// One JSON document (an AdmissionReview).
    Json,
    /// A stream of YAML documents (a policy file).
    Yaml,
}

impl Format {
    fn parse(self, data: &[u8]) -> Option<Vec<Value>> {
        match self {
            Format::Json => serde_json::from_slice(data).ok().map(|value| vec![value]),
            Format::Yaml => std::str::from_utf8(data).ok().map(documents),
        }
    }

    fn write(self, documents: &[Value]) -> Vec<u8> {
        let text = match self {
            Format::Json => documents.iter().map(Value::to_string).collect(),
            Format::Yaml => documents
                .iter()
                .map(|d| serde_yaml::to_string(d).expect("a JSON value serializes as YAML"))
                .collect::<Vec<_>>()
                .join("---\n"),
        };
        text.into_bytes()
    }
}

/// Values that sit at the edges of what the parsers and rules accept.
fn edge_value(rng: &mut Rng) -> Value {
    let values = [
        json!(null),
        json!(true),
        json!(-1),
        json!(0),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e300),
        json!(0.5),
        json!(""),
        json!("-50%"),
        json!("150%"),
        json!("1e3"),
        json!("enforce"),
        json!("a/b~c"),
        json!({}),
        json!([]),
        json!([null]),
    ];
    values[rng.below(values.len())].clone()
}

/// The JSON pointers of every node below `value` (not the root itself).
fn pointers(value: &Value, prefix: &str, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, child)| (key.replace('~', "~0").replace('/', "~1"), child))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, c)| (i.to_string(), c))
            .collect(),
        _ => return,
    };
    for (token, child) in children {
        let pointer = format!("{prefix}/{token}");
        pointers(child, &pointer, out);
        out.push(pointer);
    }
}

/// One to three edits of random nodes: an edge value, a node of `donor`, a removal, or a byte
/// mutation of a string.
fn mutate_value(value: &mut Value, donor: &Value, rng: &mut Rng) {
    for _ in 0..1 + rng.below(3) {
        let mut targets = Vec::new();
        pointers(value, "", &mut targets);
        let Some(pointer) = targets.get(rng.below(targets.len().max(1))).cloned() else {
            *value = edge_value(rng);
            return;
        };
        let replacement = match rng.below(4) {
            0 => edge_value(rng),
            1 => {
                let mut donated = Vec::new();
                pointers(donor, "", &mut donated);
                match donated.get(rng.below(donated.len().max(1))) {
                    Some(at) => donor.pointer(at).cloned().unwrap_or(Value::Null),
                    None => donor.clone(),
                }
            }
            2 => {
                let (parent, token) = pointer.rsplit_once('/').expect("a pointer has a '/'");
                let token = token.replace("~1", "/").replace("~0", "~");
                match value.pointer_mut(parent) {
                    Some(Value::Object(map)) => {
                        map.remove(&token);
                    }
                    Some(Value::Array(items)) => {
                        if let Ok(index) = token.parse::<usize>() {
                            items.remove(index);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            _ => match value.pointer(&pointer) {
                Some(Value::String(text)) => {
                    let bytes = mutated(text.as_bytes(), b"", rng);
                    Value::String(String::from_utf8_lossy(&bytes).into_owned())
                }
                _ => edge_value(rng),
            },
        };
        if let Some(node) = value.pointer_mut(&pointer) {
            *node = replacement;
        }
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// xorshift64*: tiny, deterministic and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // xorshift never leaves zero.
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n`; `n` must not be zero.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Fragments that change the meaning of JSON or YAML text (types, numbers out of range,
/// document separators, anchors, tags), so mutants go past the first parse error.
const TOKENS: &[&str] = &[
    "null",
    "true",
    "-1",
    "0",
    "1e999",
    "18446744073709551616",
    "\"\"",
    "\"-50%\"",
    "{}",
    "[]",
    "[",
    "{",
    "\"\\u0000\"",
    "\n---\n",
    "&a ",
    "*a",
    "!!binary ",
    "~",
    ": ",
    ", ",
    "\n- ",
    "\t",
    "ᛒ",
];

/// One to four stacked mutations of `base`; `other` is the splice partner.
fn mutated(base: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = b"\0\xff\"{}[]:,-0\n \\"[rng.below(14)],
            2 => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at..end.max(at));
            }
            3 => {
                let end = (at + 1 + rng.below(64)).min(data.len());
                let copy = data[at..end.max(at)].to_vec();
                let to = rng.below(data.len() + 1);
                data.splice(to..to, copy);
            }
            4 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                data.splice(at..at, token.iter().copied());
            }
            5 => data.truncate(at),
            _ => {
                let from = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

/// The seeds `fuzz/run.sh` starts from, per target.
struct Seeds {
    reviews: Vec<Vec<u8>>,
    policies: Vec<Vec<u8>>,
}

/// Every file below `dir` whose name ends in one of `extensions`, sorted.
fn files_below(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("readable entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The documents of a YAML (or JSON) file; stops at the first error, as the loaders do
/// (serde_yaml repeats a syntax error forever otherwise).
fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(value) => out.push(value),
            Err(_) => break,
        }
    }
    out
}

/// A fixture object: as written, or `{base, merge}` resolved from the case's `_bases/`
/// (`set:` pointers are left out; a seed only has to be close to a real request).
fn fixture_object(spec: &Value, case_dir: &Path) -> Value {
    let Some(base) = spec.get("base").and_then(Value::as_str) else {
        return spec.clone();
    };
    let path = case_dir.join("_bases").join(format!("{base}.yaml"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut object = documents(&text).pop().unwrap_or(Value::Null);
    json_patch::merge(&mut object, spec.get("merge").unwrap_or(&Value::Null));
    object
}

/// The AdmissionReview a request for `object`/`old_object` would arrive as.
fn review(operation: &Value, object: &Value, old_object: &Value, extra: &Value) -> Vec<u8> {
    let subject = if object.is_null() { old_object } else { object };
    let api_version = subject["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let mut request = json!({
        "uid": "seed",
        "kind": {"group": group, "version": version, "kind": subject["kind"]},
        "name": subject["metadata"]["name"],
        "namespace": subject["metadata"]["namespace"],
        "operation": operation,
        "userInfo": {"username": "seed"},
        "object": object,
        "oldObject": old_object,
    });
    // Only the fields the case sets: a merge-patch null would remove the member instead.
    let extra: serde_json::Map<String, Value> = extra
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    json_patch::merge(&mut request, &Value::Object(extra));
    let review =
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
    serde_json::to_vec(&review).expect("a JSON value serializes")
}

/// A fixture's inline policy completed as the fixture runner completes it, as a policy file.
fn policy_file(policy: &Value) -> Vec<u8> {
    let mut policy = policy.clone();
    if let Some(map) = policy.as_object_mut() {
        map.entry("apiVersion").or_insert(json!(API_VERSION));
        map.entry("kind").or_insert(json!(KIND));
        map.entry("metadata").or_insert(json!({"name": "fixture"}));
    }
    serde_yaml::to_string(&policy)
        .expect("a JSON value serializes as YAML")
        .into_bytes()
}

fn seeds() -> Seeds {
    let mut seeds = Seeds {
        reviews: Vec::new(),
        policies: Vec::new(),
    };
    let fixtures = repo().join("tests/fixtures");
    for path in files_below(&fixtures, &["yaml", "yml", "json"]) {
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if path.starts_with(fixtures.join("policies")) {
            seeds.policies.push(text.into_bytes());
            continue;
        }
        let case_dir = path.parent().expect("a file has a parent");
        for document in documents(&text) {
            let is_case = document.get("object").is_some() || document.get("oldObject").is_some();
            if !is_case {
                // A base or a manifest: the object itself, created.
                seeds.reviews.push(review(
                    &json!("CREATE"),
                    &document,
                    &Value::Null,
                    &json!({}),
                ));
                continue;
            }
            let object = document
                .get("object")
                .map_or(Value::Null, |o| fixture_object(o, case_dir));
            let old_object = document
                .get("oldObject")
                .map_or(Value::Null, |o| fixture_object(o, case_dir));
            let operation = document
                .get("operation")
                .cloned()
                .unwrap_or(json!("CREATE"));
            let extra = json!({
                "namespace": document.get("namespace"),
                "subResource": document.get("subResource"),
                "dryRun": document.get("dryRun"),
                "userInfo": document.get("userInfo"),
            });
            seeds
                .reviews
                .push(review(&operation, &object, &old_object, &extra));
            for stored in document
                .get("objects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let create = review(&json!("CREATE"), stored, &Value::Null, &json!({}));
                seeds.reviews.push(create);
            }
            if let Some(policy) = document.get("policy") {
                seeds.policies.push(policy_file(policy));
            }
        }
    }
    for path in files_below(&repo().join("examples"), &["yaml", "json"]) {
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if path.extension().is_some_and(|e| e == "json") {
            // examples/reviews: AdmissionReviews as sent.
            seeds.reviews.push(text.into_bytes());
            continue;
        }
        for object in documents(&text) {
            let create = review(&json!("CREATE"), &object, &Value::Null, &json!({}));
            seeds.reviews.push(create);
        }
    }
    for path in files_below(&repo().join("policies"), &["yaml"]) {
        seeds
            .policies
            .push(fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    seeds.reviews.sort();
    seeds.reviews.dedup();
    seeds.policies.sort();
    seeds.policies.dedup();
    seeds
}

#[test]
fn regression_corpus_replays() {
    for target in [ADMISSION_REVIEW, POLICY_LOADER, RULE_ENGINE] {
        let inputs = target.regressions();
        assert!(
            !inputs.is_empty(),
            "fuzz/regressions/{} is empty",
            target.name
        );
        for (path, input) in &inputs {
            target.check(path, input);
        }
    }
}

#[test]
fn fixture_seeds_replay() {
    let seeds = seeds();
    // Floors well below today's counts: a seeder that silently finds nothing must fail.
    assert!(
        seeds.reviews.len() >= 100,
        "{} reviews",
        seeds.reviews.len()
    );
    assert!(
        seeds.policies.len() >= 20,
        "{} policies",
        seeds.policies.len()
    );
    for (target, inputs) in [
        (ADMISSION_REVIEW, &seeds.reviews),
        (POLICY_LOADER, &seeds.policies),
    ] {
        for (index, input) in inputs.iter().enumerate() {
            target.check(&format!("fixture seed {index}"), input);
        }
    }
}

#[test]
fn mutated_admission_reviews() {
    ADMISSION_REVIEW.mutate(seeds().reviews, Format::Json);
}

#[test]
fn mutated_policies() {
    POLICY_LOADER.mutate(seeds().policies, Format::Yaml);
}

#[test]
fn generated_rule_engine_cases() {
    let (seed, iterations) = run_settings();
    let mut rng = Rng::new(seed);
    for iteration in 0..iterations {
        // Lengths up to 2 KiB: enough for several objects with long strings, as libFuzzer
        // grows its inputs.
        let len = rng.below(2048);
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            bytes.extend_from_slice(&rng.next().to_le_bytes());
        }
        bytes.truncate(len);
        let what = format!("generated case {iteration} (FUZZ_REPLAY_SEED={seed})");
        RULE_ENGINE.check(&what, &bytes);
    }
}

/// Not a check: writes the seeds and the regression corpus to `$FUZZ_CORPUS/<target>/` for
/// `fuzz/run.sh`, so the fuzzer starts where this test does. Run by run.sh with `--ignored`.
#[test]
#[ignore = "run by fuzz/run.sh to seed its corpora"]
fn export_seeds() {
    let Some(corpus) = std::env::var_os("FUZZ_CORPUS").map(PathBuf::from) else {
        panic!("set FUZZ_CORPUS to the corpus directory");
    };
    let seeds = seeds();
    let sets = [
        (ADMISSION_REVIEW, seeds.reviews),
        (POLICY_LOADER, seeds.policies),
        (RULE_ENGINE, Vec::new()),
    ];
    for (target, mut inputs) in sets {
        inputs.extend(target.regression_inputs());
        let dir = corpus.join(target.name);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for input in &inputs {
            let path = dir.join(format!("seed-{:016x}", fnv1a(input)));
            fs::write(&path, input).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        println!(
            "{}: {} inputs in {}",
            target.name,
            inputs.len(),
            dir.display()
        );
    }
}
