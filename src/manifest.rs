//! Reading manifests: files or directories of multi-document YAML or JSON, each document tagged
//! with the file and line it starts on so every error and verdict can point at it.

use std::path::{Path, PathBuf};

use serde_json::value::RawValue;
use serde_json::Value;

use crate::policy::yaml::{first_content_line, shift_message_lines, split_documents};

/// One document of a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file it came from.
    pub file: PathBuf,
    /// 1-based line where the document starts.
    pub line: usize,
    /// The document as JSON.
    pub value: Value,
}

impl Document {
    /// A top-level string field (`apiVersion`, `kind`), when the document has it as a string.
    pub fn text(&self, field: &str) -> Option<&str> {
        self.value.get(field).and_then(Value::as_str)
    }

    /// A string field of `metadata` (`name`, `namespace`, `uid`), when it is one.
    pub fn metadata_text(&self, field: &str) -> Option<&str> {
        self.value
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
    }

    /// `file:line`, for messages.
    pub fn location(&self) -> String {
        location(&self.file, self.line)
    }
}

/// `file:line`, as findings and reports locate a document.
pub fn location(file: &Path, line: usize) -> String {
    format!("{}:{}", file.display(), line)
}

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The path could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A document is not valid YAML/JSON.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// What the parser said.
        message: String,
    },
}

impl ManifestError {
    /// The file (or path) that could not be read.
    pub fn file(&self) -> &Path {
        match self {
            ManifestError::Io { path, .. } | ManifestError::Parse { path, .. } => path,
        }
    }

    /// The 1-based line, when the problem is in a document (not for a path that cannot be read).
    pub fn line(&self) -> Option<usize> {
        match self {
            ManifestError::Io { .. } => None,
            ManifestError::Parse { line, .. } => Some(*line),
        }
    }

    /// What went wrong, without the location.
    pub fn message(&self) -> String {
        match self {
            ManifestError::Io { source, .. } => source.to_string(),
            ManifestError::Parse { message, .. } => message.clone(),
        }
    }
}

/// The documents that could be read, and what could not.
#[derive(Debug, Default)]
pub struct ReadReport {
    /// Every readable document, in file order.
    pub documents: Vec<Document>,
    /// Paths that could not be read and documents that are not YAML/JSON, with file and line.
    pub unreadable: Vec<ManifestError>,
}

/// Reads every document under `paths` that can be read, and reports the rest: a path that
/// cannot be read skips that path, a document that is not YAML skips that document (the other
/// documents of its file are read). What `check` evaluates: one broken file must not hide the
/// verdicts of the others.
pub fn read_paths_lenient(paths: &[PathBuf]) -> ReadReport {
    let (texts, unreadable) = read_texts_lenient(paths);
    let mut report = ReadReport {
        documents: Vec::new(),
        unreadable,
    };
    for (file, text) in texts {
        let (documents, errors) = parse_text_lenient(&file, &text);
        report.documents.extend(documents);
        report.unreadable.extend(errors);
    }
    report
}

/// The text of every manifest file under `paths` that can be read (directories walked as
/// [`read_paths_lenient`] walks them), and the paths that cannot. For readers that parse the
/// text themselves (`test` reports fields by line).
pub fn read_texts_lenient(paths: &[PathBuf]) -> (Vec<(PathBuf, String)>, Vec<ManifestError>) {
    let mut unreadable = Vec::new();
    let mut found = Vec::new();
    for path in paths {
        collect_files_lenient(path, &mut found, &mut unreadable);
    }
    let mut texts = Vec::new();
    for file in found {
        match std::fs::read_to_string(&file) {
            Ok(text) => texts.push((file, text)),
            Err(source) => unreadable.push(ManifestError::Io { path: file, source }),
        }
    }
    (texts, unreadable)
}

/// [`collect_files`] that reports an unreadable path or directory and goes on with the rest.
fn collect_files_lenient(path: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<ManifestError>) {
    let io = |source| ManifestError::Io {
        path: path.to_owned(),
        source,
    };
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(source) => return errors.push(io(source)),
    };
    if !metadata.is_dir() {
        files.push(path.to_owned());
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(source) => return errors.push(io(source)),
    };
    let mut entries: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    for entry in entries {
        if is_hidden(&entry) {
            continue;
        }
        if entry.is_dir() {
            collect_files_lenient(&entry, files, errors);
        } else if is_manifest_file(&entry) {
            files.push(entry);
        }
    }
}

fn is_hidden(entry: &Path) -> bool {
    entry
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn is_manifest_file(entry: &Path) -> bool {
    entry
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e))
}

/// Extensions read when a directory is given.
const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Reads every document under `paths` (directories recursively, in name order so output is
/// stable). `List` kinds (`kind: List`, `DeploymentList`, ...) are flattened into their items.
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<Document>, ManifestError> {
    let mut documents = Vec::new();
    for file in files(paths)? {
        let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Io {
            path: file.clone(),
            source,
        })?;
        documents.extend(parse_text(&file, &text)?);
    }
    Ok(documents)
}

/// The manifest files under `paths`, in the order [`read_paths`] reads them.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ManifestError> {
    let mut files = Vec::new();
    for path in paths {
        collect_files(path, &mut files)?;
    }
    Ok(files)
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let io = |source| ManifestError::Io {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    if !metadata.is_dir() {
        files.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    for entry in entries {
        if is_hidden(&entry) {
            continue;
        }
        if entry.is_dir() {
            collect_files(&entry, files)?;
        } else if is_manifest_file(&entry) {
            files.push(entry);
        }
    }
    Ok(())
}

/// Splits YAML text into documents at `---` lines, remembering where each starts. JSON is YAML,
/// so a `.json` file is one document (or a List).
pub fn parse_text(file: &Path, text: &str) -> Result<Vec<Document>, ManifestError> {
    let (documents, mut errors) = parse_text_lenient(file, text);
    if errors.is_empty() {
        Ok(documents)
    } else {
        Err(errors.swap_remove(0))
    }
}

/// [`parse_text`] for work that shares the CPU with something more urgent (the audit beside
/// admission reviews): a JSON List (what `kubectl get -o json` writes, a hundred objects and
/// half a megabyte) is read one item at a time, `between` running before each, so the caller
/// can pause between objects instead of only between files. Anything else is read by
/// [`parse_text`]. The documents are the same as [`parse_text`]'s.
pub fn parse_text_pausing(
    file: &Path,
    text: &str,
    mut between: impl FnMut(),
) -> Result<Vec<Document>, ManifestError> {
    let Some(items) = json_list_items(text) else {
        return parse_text(file, text);
    };
    let line = first_content_line(1, text);
    let mut documents = Vec::with_capacity(items.len());
    for item in items {
        between();
        // A RawValue is valid JSON, so this reads; were it not to, the whole file is read
        // again the ordinary way and fails there with its own message.
        let Ok(value) = serde_json::from_str::<Value>(item.get()) else {
            return parse_text(file, text);
        };
        flatten_lists(file, line, value, &mut documents);
    }
    Ok(documents)
}

/// The items of a text that is exactly one JSON List object (its `kind` ends in `List`, its
/// `items` is an array), each still unread; `None` for anything else.
fn json_list_items(text: &str) -> Option<Vec<&RawValue>> {
    #[derive(serde::Deserialize)]
    struct JsonList<'a> {
        #[serde(borrow, default)]
        kind: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        items: Option<Vec<&'a RawValue>>,
    }
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let list: JsonList = serde_json::from_str(text).ok()?;
    let is_list = list.kind.is_some_and(|kind| kind.ends_with("List"));
    if is_list {
        list.items
    } else {
        None
    }
}

/// [`parse_text`] that keeps the documents that parse and reports each one that does not (the
/// documents of a file are separated by `---` lines, so one bad document does not make the next
/// one unreadable).
pub fn parse_text_lenient(file: &Path, text: &str) -> (Vec<Document>, Vec<ManifestError>) {
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    // A JSON file (what `kubectl get -o json` and generators write) is one document; serde_json
    // reads it several times faster than the YAML parser does. Anything that is not exactly one
    // JSON value (YAML, several documents, a syntax error) takes the YAML path, so its errors
    // read the same whatever the file's extension.
    if text.trim_start().starts_with(['{', '[']) {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            if !value.is_null() {
                flatten_lists(file, first_content_line(1, text), value, &mut documents);
            }
            return (documents, errors);
        }
    }
    let line_count = text.lines().count().max(1);
    for (start_line, chunk) in split_documents(text) {
        let value: Value = match serde_yaml::from_str::<Value>(&chunk) {
            Ok(value) => value,
            Err(error) => {
                // An error at the end of the input is reported one past the last line.
                let line = error
                    .location()
                    .map_or(start_line, |l| start_line + l.line() - 1)
                    .min(line_count);
                errors.push(ManifestError::Parse {
                    path: file.to_owned(),
                    line,
                    message: shift_message_lines(&error.to_string(), start_line),
                });
                continue;
            }
        };
        if value.is_null() {
            continue; // an empty document (comments only, or a trailing `---`)
        }
        let line = first_content_line(start_line, &chunk);
        flatten_lists(file, line, value, &mut documents);
    }
    (documents, errors)
}

fn flatten_lists(file: &Path, line: usize, value: Value, out: &mut Vec<Document>) {
    let is_list = value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array);
    match value {
        // Taken apart, not cloned: a List of a hundred objects is megabytes.
        Value::Object(mut map) if is_list => {
            if let Some(Value::Array(items)) = map.remove("items") {
                for item in items {
                    flatten_lists(file, line, item, out);
                }
            }
        }
        value => out.push(Document {
            file: file.to_owned(),
            line,
            value,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading a List item by item gives exactly what reading it whole gives, with a pause
    /// before each item; other texts are read whole, without pauses.
    #[test]
    fn pausing_reads_lists_item_by_item_and_gives_the_same_documents() {
        let cases: &[(&str, usize)] = &[
            (
                r#"{"kind": "List", "items": [{"kind": "A"}, {"kind": "B", "n": 1.5e3}]}"#,
                2,
            ),
            // Nested lists are flattened as parse_text does; the pause is per outer item.
            (
                r#"{"kind":"DeploymentList","items":[{"kind":"List","items":[{"kind":"A"},{"kind":"B"}]},{"kind":"C"}]}"#,
                2,
            ),
            // An escaped kind still ends in "List".
            (
                "\n  {\"items\": [{\"kind\": \"A\"}], \"kind\": \"Service\\u004cist\"}",
                1,
            ),
            (r#"{"kind": "List", "items": []}"#, 0),
            (r#"{"kind": "Service", "metadata": {"name": "a"}}"#, 0),
            (r#"{"kind": "List", "items": {"not": "an array"}}"#, 0),
            (r#"{"kind": "List"}"#, 0),
            (r#"{"kind": 7, "items": [{"kind": "A"}]}"#, 0),
            (
                r#"{"kind": "List", "items": [{"kind": "A"}], "kind": "List"}"#,
                0,
            ),
            ("kind: List\nitems:\n- kind: A\n", 0),
            ("[{\"kind\": \"A\"}]", 0),
        ];
        for (text, pauses) in cases {
            let path = Path::new("list.json");
            let mut counted = 0;
            let pausing = parse_text_pausing(path, text, || counted += 1).unwrap();
            assert_eq!(pausing, parse_text(path, text).unwrap(), "{text}");
            assert_eq!(counted, *pauses, "{text}");
        }
        // Not JSON: read (or refused) by the YAML path, as parse_text does (a trailing comma
        // is fine in YAML's flow style; an unclosed list is not).
        for broken in [
            r#"{"kind": "List", "items": [{"kind": "A"},]}"#,
            r#"{"kind": "List", "items": [{"kind": "A"}"#,
        ] {
            let path = Path::new("b.json");
            assert_eq!(
                format!("{:?}", parse_text_pausing(path, broken, || {})),
                format!("{:?}", parse_text(path, broken)),
                "{broken}"
            );
        }
        assert!(parse_text_pausing(Path::new("b.json"), r#"{"items": [1"#, || {}).is_err());
    }

    #[test]
    fn documents_carry_their_start_line() {
        let text = "# header\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n";
        let docs = parse_text(Path::new("x.yaml"), text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].line, 2, "the header comment is skipped");
        assert_eq!(docs[1].line, 7);
        assert_eq!(docs[1].value["metadata"]["name"], "b");
    }

    #[test]
    fn parse_errors_point_at_the_file_line() {
        let text = "a: 1\n---\nkind: x\nbad: [unclosed\n";
        let err = parse_text(Path::new("m.yaml"), text).unwrap_err();
        match err {
            ManifestError::Parse { line, .. } => assert!(line >= 3, "line {line}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn lenient_parsing_keeps_the_documents_around_a_broken_one() {
        let text = "kind: A\n---\nkind: [unclosed\n---\nkind: C\n";
        let (docs, errors) = parse_text_lenient(Path::new("m.yaml"), text);
        let kinds: Vec<&Value> = docs.iter().map(|d| &d.value["kind"]).collect();
        assert_eq!(kinds, ["A", "C"]);
        assert_eq!(errors.len(), 1);
        // The unclosed list starts on line 3; the parser notices at the end of its document.
        assert!(matches!(errors[0].line(), Some(3 | 4)), "{:?}", errors[0]);
        assert_eq!(docs[1].line, 5);
    }

    #[test]
    fn lenient_reading_reports_missing_paths_and_reads_the_rest() {
        let dir = std::env::temp_dir().join(format!("rg-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.yaml");
        std::fs::write(&good, "kind: A\n").unwrap();
        let missing = dir.join("missing.yaml");
        let report = read_paths_lenient(&[missing.clone(), good]);
        assert_eq!(report.documents.len(), 1);
        assert_eq!(report.unreadable.len(), 1);
        assert_eq!(report.unreadable[0].file(), missing.as_path());
        assert_eq!(report.unreadable[0].line(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lists_are_flattened() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[{"kind":"Service"},{"kind":"Deployment"}]}"#;
        let docs = parse_text(Path::new("l.json"), text).unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn text_that_is_not_one_json_value_takes_the_yaml_path() {
        // A YAML flow mapping starts like JSON but is not JSON: read as YAML.
        let docs = parse_text(
            Path::new("f.yaml"),
            "{kind: Service, metadata: {name: a}}\n",
        )
        .unwrap();
        assert_eq!(docs[0].value["metadata"]["name"], "a");
        // Two JSON documents separated by `---` are YAML's two documents, lines kept.
        let text = "{\"kind\": \"Service\"}\n---\n{\"kind\": \"Deployment\"}\n";
        let docs = parse_text(Path::new("two.json"), text).unwrap();
        assert_eq!(docs.iter().map(|d| d.line).collect::<Vec<_>>(), [1, 3]);
        // Broken JSON gets the YAML parser's error, at a line of the file.
        let err = parse_text(
            Path::new("b.json"),
            "{\"kind\": \"Service\",\n \"spec\": [1,\n",
        )
        .unwrap_err();
        match err {
            ManifestError::Parse { line, .. } => assert!((1..=3).contains(&line), "line {line}"),
            other => panic!("unexpected {other:?}"),
        }
        // One JSON value after blank lines: one document, at its first line.
        let docs = parse_text(Path::new("j.json"), "\n\n{\"kind\": \"Service\"}").unwrap();
        assert_eq!((docs.len(), docs[0].line), (1, 3));
    }
}
