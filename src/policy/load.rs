//! Parsing and validating policy sources (pure: text in, `PolicySet` or every error out).
//!
//! Every problem is reported at once, each with file, line and field path, so an operator fixes
//! a broken ConfigMap in one edit instead of one error per reload:
//!
//! 1. Each source is split into YAML documents; a syntax error is reported with serde_yaml's
//!    location (shifted to the document's first line in the file).
//! 2. A document whose `apiVersion`/`kind` is not ours is reported once and skipped (a stray
//!    Deployment in the directory should not produce fifty "unknown field" errors).
//! 3. The document is deserialised with `serde_path_to_error`, which names the failing field.
//!    serde stops at the first error, so the offending field is removed and deserialisation
//!    retried until it succeeds: every type error, unknown field and bad enum value is found,
//!    and the fields that were fine still reach semantic validation.
//! 4. Semantic validation runs on the typed policy (value ranges, cross-field constraints, check
//!    names, opt-out rules, unique names across the directory).
//!
//! serde_yaml's `Value` carries no positions, so lines of fields come from [`LineIndex`], a small
//! scanner of block-style YAML that maps field paths to the line of their key. Policy files are
//! hand-written block YAML, where this is exact; inside flow collections (`{a: 1}`) it falls back
//! to the line of the nearest enclosing key it knows, which is still the right neighbourhood.

use std::collections::HashMap;
use std::fmt;

use crate::policy::config::{
    IntOrPercent, Mode, RolloutPolicy, RuleSettings, Rules, API_VERSION, KIND,
};
use crate::policy::rules::deployment::{
    change_cause, rollback, rolling_update, siblings, version_label,
};
use crate::policy::rules::ingress::canary;
use crate::policy::rules::{httproute, service};
use crate::policy::set::PolicySet;
use crate::policy::yaml::{shift_message_lines, split_documents};

/// One policy file's name and text.
#[derive(Debug, Clone)]
pub struct Source {
    /// File name (for messages).
    pub name: String,
    /// Its text.
    pub text: String,
}

/// One problem in the policy sources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// File name (empty for problems of the whole directory).
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// Field path, e.g. `spec.rules.rollingUpdate.mode` (empty for a whole document).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// `file:line: field: message`, leaving out the parts that are unknown.
impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.line) {
            (true, _) => {}
            (false, 0) => write!(f, "{}: ", self.file)?,
            (false, line) => write!(f, "{}:{line}: ", self.file)?,
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found, so an edit can be fixed in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} policy error(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct PolicyErrors(pub Vec<PolicyError>);

/// The policy compiled into the binary: the repository's `policies/default.yaml`.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../policies/default.yaml");

/// The embedded default as a set. It is validated by a test, so failing here is a build bug.
pub fn embedded_default() -> PolicySet {
    parse_sources(&[Source {
        name: "embedded:default.yaml".to_owned(),
        text: EMBEDDED_DEFAULT.to_owned(),
    }])
    .unwrap_or_else(|_| PolicySet::new(Vec::new(), "invalid-embedded-default".to_owned()))
}

// ---------------------------------------------------------------------------------------------
// The rule catalog: what the loader knows about each rule section.
// ---------------------------------------------------------------------------------------------

/// What the loader knows about one rule: its checks, whether it can patch, its settings and its
/// parameter validation. A new rule adds one line to [`RULE_CATALOG`].
pub struct RuleInfo {
    /// The rule's key under `spec.rules` (the same name the engine, metrics and audit use).
    pub name: &'static str,
    /// Check names usable as keys of the rule's `checks` (the `check` of its findings).
    pub checks: &'static [&'static str],
    /// Whether the rule can fix what it finds with a patch. Rules that only judge other
    /// objects (cross-object rules) cannot, so `mode: mutate` on them is a configuration error.
    pub can_mutate: bool,
    /// The rule's section in a policy.
    pub settings: fn(&Rules) -> &dyn RuleSettings,
    /// Checks of the rule's own parameters; paths are relative to the rule's section.
    pub validate: fn(&Rules, &mut Problems),
}

/// Checks of the `versionLabel` rule.
pub const VERSION_LABEL_CHECKS: &[&str] = &["missing", "stale", "mismatch", "untagged"];
/// Checks of the `changeCause` rule.
pub const CHANGE_CAUSE_CHECKS: &[&str] = &["missing", "repeated"];
/// Checks of the `rollingUpdate` rule.
pub const ROLLING_UPDATE_CHECKS: &[&str] = &[
    "maxUnavailable",
    "maxSurge",
    "minReadySeconds",
    "progressDeadlineSeconds",
    "revisionHistoryLimit",
    "allPodsDown",
    "readinessProbe",
    "recreateStrategy",
];

/// Every rule a policy can configure, in `spec.rules` order.
pub const RULE_CATALOG: &[RuleInfo] = &[
    RuleInfo {
        name: version_label::RULE,
        checks: VERSION_LABEL_CHECKS,
        can_mutate: true,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.version_label },
        validate: validate_version_label,
    },
    RuleInfo {
        name: change_cause::RULE,
        checks: CHANGE_CAUSE_CHECKS,
        can_mutate: true,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.change_cause },
        validate: validate_change_cause,
    },
    RuleInfo {
        name: rolling_update::RULE,
        checks: ROLLING_UPDATE_CHECKS,
        can_mutate: true,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.rolling_update },
        validate: validate_rolling_update,
    },
    RuleInfo {
        name: canary::RULE,
        checks: canary::CHECKS,
        can_mutate: false,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.ingress_canary },
        validate: validate_ingress_canary,
    },
    RuleInfo {
        name: httproute::RULE,
        checks: httproute::CHECKS,
        can_mutate: false,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.http_route },
        validate: |_, _| {},
    },
    RuleInfo {
        name: service::RULE,
        checks: service::CHECKS,
        can_mutate: false,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.blue_green },
        validate: |rules, problems| {
            validate_label_keys(
                &rules.blue_green.version_label_keys,
                "versionLabelKeys",
                problems,
            );
            check_int_or_percent(problems, "minAvailable", &rules.blue_green.min_available);
        },
    },
    RuleInfo {
        name: siblings::RULE,
        checks: siblings::CHECKS,
        can_mutate: false,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.deployment_siblings },
        validate: |rules, problems| {
            let rule = &rules.deployment_siblings;
            validate_label_keys(&rule.app_label_keys, "appLabelKeys", problems);
            validate_label_keys(&rule.version_label_keys, "versionLabelKeys", problems);
        },
    },
    RuleInfo {
        name: rollback::RULE,
        checks: rollback::CHECKS,
        can_mutate: true,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.rollback },
        validate: |_, _| {},
    },
];

/// The catalog entry of a rule.
pub fn rule_info(name: &str) -> Option<&'static RuleInfo> {
    RULE_CATALOG.iter().find(|rule| rule.name == name)
}

// ---------------------------------------------------------------------------------------------
// Field paths and problems.
// ---------------------------------------------------------------------------------------------

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A field path such as `spec.rules.rollingUpdate.maxSurge` or `spec.match.namespaces[2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// A path of keys.
    pub fn keys(keys: &[&str]) -> Self {
        Self(keys.iter().map(|k| Segment::Key((*k).to_owned())).collect())
    }

    /// This path with a key appended.
    pub fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    /// This path with an index appended.
    pub fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Problems found in one document, each with the path of the field at fault.
#[derive(Debug, Default)]
pub struct Problems {
    base: FieldPath,
    found: Vec<(FieldPath, String)>,
}

impl Problems {
    /// Records a problem at `path` (relative to the current base).
    pub fn add(&mut self, path: &[&str], message: impl Into<String>) {
        let mut full = self.base.clone();
        full.0
            .extend(path.iter().map(|k| Segment::Key((*k).to_owned())));
        self.found.push((full, message.into()));
    }

    /// Records a problem at an element of a list field.
    pub fn add_item(&mut self, field: &str, index: usize, message: impl Into<String>) {
        let full = self.base.key(field).index(index);
        self.found.push((full, message.into()));
    }

    fn with_base<R>(&mut self, base: FieldPath, f: impl FnOnce(&mut Self) -> R) -> R {
        let saved = std::mem::replace(&mut self.base, base);
        let result = f(self);
        self.base = saved;
        result
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing.
// ---------------------------------------------------------------------------------------------

/// Parses and validates all sources into one set, or reports every error.
pub fn parse_sources(sources: &[Source]) -> Result<PolicySet, PolicyErrors> {
    let mut policies: Vec<RolloutPolicy> = Vec::new();
    let mut errors = Vec::new();
    // Name → where it was first defined, for the uniqueness check across files.
    let mut names: HashMap<String, (String, usize)> = HashMap::new();
    let mut documents_seen = 0usize;

    for source in sources {
        for (first_line, text) in split_documents(&source.text) {
            let at = |line: usize, field: String, message: String| PolicyError {
                file: source.name.clone(),
                line,
                field,
                message,
            };
            let value: serde_yaml::Value = match serde_yaml::from_str(&text) {
                Ok(value) => value,
                Err(error) => {
                    let line = error
                        .location()
                        .map_or(first_line, |l| first_line + l.line() - 1);
                    let message = yaml_syntax_message(&error.to_string(), first_line);
                    errors.push(at(line, String::new(), message));
                    continue;
                }
            };
            if value.is_null() {
                continue; // comments only, or a trailing `---`
            }
            documents_seen += 1;
            let index = LineIndex::build(&text, first_line);
            let mut found = Vec::new();
            let mut report = |path: &FieldPath, message: String| {
                found.push(at(index.line_of(path), path.to_string(), message));
            };

            let Some(policy) = deserialize_document(value, &mut report) else {
                errors.extend(in_line_order(found));
                continue;
            };
            let mut problems = Problems::default();
            validate_policy(&policy, &mut problems);
            for (path, message) in &problems.found {
                report(path, message.clone());
            }
            let name_path = FieldPath::keys(&["metadata", "name"]);
            let name_line = index.line_of(&name_path);
            match names.get(&policy.metadata.name) {
                Some((file, line)) => report(
                    &name_path,
                    format!(
                        "duplicate policy name {:?} (also defined at {file}:{line}); names must be unique across the directory",
                        policy.metadata.name
                    ),
                ),
                None => {
                    names.insert(
                        policy.metadata.name.clone(),
                        (source.name.clone(), name_line),
                    );
                }
            }
            errors.extend(in_line_order(found));
            policies.push(policy);
        }
    }
    if documents_seen == 0 && errors.is_empty() {
        errors.push(PolicyError {
            file: String::new(),
            line: 0,
            field: String::new(),
            message: format!(
                "no policy documents: expected *.yaml or *.yml files holding {KIND} documents (apiVersion {API_VERSION})"
            ),
        });
    }
    if errors.is_empty() {
        Ok(PolicySet::new(policies, digest(sources)))
    } else {
        Err(PolicyErrors(errors))
    }
}

/// serde deserialises fields in its own order; report a document's problems top to bottom.
fn in_line_order(mut found: Vec<PolicyError>) -> Vec<PolicyError> {
    found.sort_by_key(|error| error.line);
    found
}

/// A YAML syntax error of a document starting at `first_line`, its lines those of the file.
pub fn yaml_syntax_message(message: &str, first_line: usize) -> String {
    format!("invalid YAML: {}", shift_message_lines(message, first_line))
}

/// Most serde errors one document may need removed before it deserialises; beyond that the
/// document is hopeless and the first errors are enough to go on.
const MAX_REPAIRS: usize = 64;

/// Deserialises one document, reporting every structural problem (see the module docs).
/// Returns the policy with the offending fields left at their defaults, or `None` when the
/// document cannot be read at all (not a mapping, not ours, a required field missing).
fn deserialize_document(
    value: serde_yaml::Value,
    report: &mut impl FnMut(&FieldPath, String),
) -> Option<RolloutPolicy> {
    let value = document_of_kind(value, API_VERSION, KIND, report)?;
    deserialize_reporting(value, report)
}

/// The document with its YAML merge keys applied, when it is a mapping with this `apiVersion`
/// and `kind`; otherwise reports why not (one error for a document that is not ours, not one per
/// foreign field) and returns `None`.
pub fn document_of_kind(
    mut value: serde_yaml::Value,
    api_version: &str,
    kind: &str,
    report: &mut impl FnMut(&FieldPath, String),
) -> Option<serde_yaml::Value> {
    // YAML merge keys (`<<: *base`) are how people share sections between documents.
    if value.apply_merge().is_err() {
        report(
            &FieldPath::default(),
            "invalid YAML merge key (`<<` must hold a mapping or a list of mappings)".to_owned(),
        );
        return None;
    }
    let Some(mapping) = value.as_mapping() else {
        report(
            &FieldPath::default(),
            format!(
                "expected a {kind} document (a mapping), got {}",
                yaml_type(&value)
            ),
        );
        return None;
    };
    let mut foreign = false;
    for (field, expected) in [("apiVersion", api_version), ("kind", kind)] {
        match mapping.get(field) {
            Some(serde_yaml::Value::String(actual)) if actual == expected => {}
            Some(other) => {
                foreign = true;
                report(
                    &FieldPath::keys(&[field]),
                    format!("must be {expected:?}, got {}", yaml_scalar(other)),
                );
            }
            None => {
                foreign = true;
                report(
                    &FieldPath::keys(&[field]),
                    format!("required field is missing (must be {expected:?})"),
                );
            }
        }
    }
    (!foreign).then_some(value)
}

/// Deserialises a document as `T`, reporting every type error, unknown field and bad enum
/// value at its field path (serde stops at the first: the offending field is removed and the
/// rest retried, see the module docs). Returns the value with the offending fields left at
/// their defaults, or `None` when a required field is missing or nothing more can be removed.
/// The policy loader and the `PolicyTest` loader both read their documents this way.
pub fn deserialize_reporting<T: serde::de::DeserializeOwned>(
    mut value: serde_yaml::Value,
    report: &mut impl FnMut(&FieldPath, String),
) -> Option<T> {
    // What was removed: a required field found missing there was already reported.
    let mut removed: Vec<FieldPath> = Vec::new();
    for _ in 0..MAX_REPAIRS {
        let error = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(document) => return Some(document),
            Err(error) => error,
        };
        let mut path = convert_path(error.path());
        let raw = error.inner().to_string();
        if let Some(field) = quoted_after(&raw, "unknown field `") {
            // Point at the field itself (serde_path_to_error usually already does).
            if path.0.last() != Some(&Segment::Key(field.clone())) {
                path.0.push(Segment::Key(field));
            }
            report(&path, tidy_serde_message(&raw));
        } else if let Some(field) = quoted_after(&raw, "missing field `") {
            path.0.push(Segment::Key(field));
            if !removed.contains(&path) {
                report(&path, "required field is missing".to_owned());
            }
            return None;
        } else {
            report(&path, tidy_serde_message(&raw));
        }
        // Remove what failed (a whole list when one of its items did, so later indexes of the
        // same list are not reported shifted) and try again.
        let mut removal = path.clone();
        while matches!(removal.0.last(), Some(Segment::Index(_))) {
            removal.0.pop();
        }
        if removal.0.is_empty() || !remove_at(&mut value, &removal.0) {
            return None;
        }
        removed.push(removal);
    }
    None
}

fn convert_path(path: &serde_path_to_error::Path) -> FieldPath {
    use serde_path_to_error::Segment as S;
    FieldPath(
        path.iter()
            .filter_map(|segment| match segment {
                S::Seq { index } => Some(Segment::Index(*index)),
                S::Map { key } => Some(Segment::Key(key.clone())),
                S::Enum { .. } | S::Unknown => None,
            })
            .collect(),
    )
}

/// The text between `prefix` and the next backtick.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let start = message.find(prefix)? + prefix.len();
    let end = message[start..].find('`')?;
    Some(message[start..start + end].to_owned())
}

/// serde's messages quote with backticks (`unknown variant `enforced`, expected one of `off`,
/// ...`); rewrite to `unknown variant "enforced", expected one of off, warn, ...`.
fn tidy_serde_message(message: &str) -> String {
    if message.contains("untagged enum IntOrPercent") {
        return "expected a number of pods (an integer) or a percentage string like \"25%\""
            .to_owned();
    }
    let (head, tail) = match message.find(", expected") {
        Some(cut) => message.split_at(cut),
        None => (message, ""),
    };
    let head = if head.starts_with("unknown variant") || head.starts_with("unknown field") {
        head.replace('`', "\"")
    } else {
        head.replace('`', "")
    };
    format!("{head}{}", tail.replace('`', ""))
}

fn remove_at(value: &mut serde_yaml::Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = value;
    for segment in parents {
        let next = match segment {
            Segment::Key(key) => current.get_mut(key.as_str()),
            Segment::Index(index) => current.get_mut(*index),
        };
        match next {
            Some(next) => current = next,
            None => return false,
        }
    }
    match (last, current) {
        (Segment::Key(key), serde_yaml::Value::Mapping(map)) => map.remove(key.as_str()).is_some(),
        (Segment::Index(index), serde_yaml::Value::Sequence(items)) if *index < items.len() => {
            items.remove(*index);
            true
        }
        _ => false,
    }
}

fn yaml_type(value: &serde_yaml::Value) -> &'static str {
    match value {
        serde_yaml::Value::Null => "null",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

fn yaml_scalar(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::String(text) => format!("{text:?}"),
        serde_yaml::Value::Number(number) => number.to_string(),
        serde_yaml::Value::Bool(flag) => flag.to_string(),
        other => yaml_type(other).to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Lines of fields.
// ---------------------------------------------------------------------------------------------

/// Maps field paths to the line where their key is written, by scanning block-style YAML with
/// indentation (see the module docs for why and for its limits).
#[derive(Debug, Default)]
pub struct LineIndex {
    first_line: usize,
    lines: HashMap<Vec<Segment>, usize>,
}

impl LineIndex {
    /// Indexes one document whose first line is `first_line` of its file.
    pub fn build(text: &str, first_line: usize) -> Self {
        struct Frame {
            indent: usize,
            segment: Segment,
            is_item: bool,
        }
        let mut lines = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut next_item: HashMap<Vec<Segment>, usize> = HashMap::new();
        // Lines indented deeper than this belong to a block scalar (`key: |`).
        let mut block_scalar_of: Option<usize> = None;
        let path_of = |stack: &[Frame]| -> Vec<Segment> {
            stack.iter().map(|frame| frame.segment.clone()).collect()
        };

        for (offset, raw) in text.lines().enumerate() {
            let line = first_line + offset;
            let indent = raw.len() - raw.trim_start_matches(' ').len();
            let mut content = &raw[indent..];
            if let Some(owner) = block_scalar_of {
                if content.trim().is_empty() || indent > owner {
                    continue;
                }
                block_scalar_of = None;
            }
            if content.trim().is_empty() || content.starts_with('#') {
                continue;
            }
            let mut column = indent;
            loop {
                if content == "-" || content.starts_with("- ") {
                    while stack.last().is_some_and(|top| {
                        top.indent > column || (top.indent == column && top.is_item)
                    }) {
                        stack.pop();
                    }
                    let parent = path_of(&stack);
                    let counter = next_item.entry(parent.clone()).or_insert(0);
                    let item = *counter;
                    *counter += 1;
                    let mut path = parent;
                    path.push(Segment::Index(item));
                    lines.entry(path).or_insert(line);
                    stack.push(Frame {
                        indent: column,
                        segment: Segment::Index(item),
                        is_item: true,
                    });
                    let after = &content[1..];
                    let trimmed = after.trim_start_matches(' ');
                    column += 1 + (after.len() - trimmed.len());
                    content = trimmed;
                    if content.is_empty() {
                        break;
                    }
                    continue;
                }
                if let Some((key, value)) = split_key(content) {
                    while stack.last().is_some_and(|top| top.indent >= column) {
                        stack.pop();
                    }
                    stack.push(Frame {
                        indent: column,
                        segment: Segment::Key(key),
                        is_item: false,
                    });
                    lines.entry(path_of(&stack)).or_insert(line);
                    if value.starts_with('|') || value.starts_with('>') {
                        block_scalar_of = Some(column);
                    }
                }
                break;
            }
        }
        Self { first_line, lines }
    }

    /// The line of `path`'s key, or of its nearest ancestor that has one, or the document's
    /// first line.
    pub fn line_of(&self, path: &FieldPath) -> usize {
        (0..=path.0.len())
            .rev()
            .find_map(|len| self.lines.get(&path.0[..len]).copied())
            .unwrap_or(self.first_line)
    }
}

/// `key: value` → `(key, value)` for a block mapping entry; `None` for anything else.
fn split_key(content: &str) -> Option<(String, &str)> {
    let (key, rest) = if let Some(quote @ ('"' | '\'')) = content.chars().next() {
        let end = content[1..].find(quote)? + 1;
        (content[1..end].to_owned(), &content[end + 1..])
    } else {
        if content.starts_with(['{', '[', '&', '*', '!', '|', '>', '?', '%', '@', '`']) {
            return None;
        }
        let cut = content
            .char_indices()
            .find(|&(i, c)| c == ':' && content[i + 1..].chars().next().is_none_or(|n| n == ' '))
            .map(|(i, _)| i)?;
        (content[..cut].trim_end().to_owned(), &content[cut..])
    };
    let value = rest.strip_prefix(':')?;
    if !(value.is_empty() || value.starts_with(' ')) {
        return None;
    }
    Some((key, value.trim_start()))
}

// ---------------------------------------------------------------------------------------------
// Semantic validation.
// ---------------------------------------------------------------------------------------------

fn validate_policy(policy: &RolloutPolicy, problems: &mut Problems) {
    let name = &policy.metadata.name;
    if let Err(why) = check_dns_subdomain(name) {
        problems.add(
            &["metadata", "name"],
            format!("invalid policy name {name:?}: {why}"),
        );
    }
    let spec = &policy.spec;
    problems.with_base(FieldPath::keys(&["spec", "match"]), |problems| {
        validate_globs(problems, "namespaces", &spec.r#match.namespaces);
        validate_globs(
            problems,
            "excludeNamespaces",
            &spec.r#match.exclude_namespaces,
        );
    });

    let opt_out = &spec.opt_out;
    problems.with_base(FieldPath::keys(&["spec", "optOut"]), |problems| {
        if let Err(why) = check_qualified_name(&opt_out.annotation) {
            problems.add(
                &["annotation"],
                format!("invalid annotation key {:?}: {why}", opt_out.annotation),
            );
        }
        for (index, rule) in opt_out.allowed_rules.iter().enumerate() {
            if rule_info(rule).is_none() {
                let hint = if rule == "*" {
                    "list the rules an object may skip by name; `*` is only for the annotation"
                        .to_owned()
                } else {
                    format!("expected one of {}", rule_names().join(", "))
                };
                problems.add_item(
                    "allowedRules",
                    index,
                    format!("unknown rule {rule:?}, {hint}"),
                );
            }
        }
    });

    let grants = FieldPath::keys(&["spec", "breakGlass"]);
    let mut grant_names: HashMap<&str, usize> = HashMap::new();
    for (index, grant) in spec.break_glass.iter().enumerate() {
        let at = grants.index(index);
        for (path, message) in crate::policy::break_glass::grant_problems(grant) {
            let mut full = at.clone();
            full.0.extend(path.0);
            problems.found.push((full, message));
        }
        if let Some(first) = grant_names.insert(grant.name.as_str(), index) {
            problems.found.push((
                at.key("name"),
                format!(
                    "duplicate grant name {:?} (also spec.breakGlass[{first}]); names must be unique in the policy",
                    grant.name
                ),
            ));
        }
    }

    for rule in RULE_CATALOG {
        problems.with_base(FieldPath::keys(&["spec", "rules", rule.name]), |problems| {
            validate_rule_settings(rule, (rule.settings)(&spec.rules), problems);
            (rule.validate)(&spec.rules, problems);
        });
    }
}

fn rule_names() -> Vec<&'static str> {
    RULE_CATALOG.iter().map(|rule| rule.name).collect()
}

/// What every rule section shares: check names and whether `mutate` is possible.
fn validate_rule_settings(rule: &RuleInfo, settings: &dyn RuleSettings, problems: &mut Problems) {
    if patches(settings.mode()) && !rule.can_mutate {
        problems.add(
            &["mode"],
            format!(
                "rule {} cannot change objects, so mode {} is not available; use warn or enforce",
                rule.name,
                mode_name(settings.mode())
            ),
        );
    }
    for (check, mode) in settings.checks() {
        if !rule.checks.contains(&check.as_str()) {
            problems.add(
                &["checks", check],
                format!(
                    "unknown check {check:?} of rule {}, expected one of {}",
                    rule.name,
                    rule.checks.join(", ")
                ),
            );
        } else if patches(*mode) && !rule.can_mutate {
            problems.add(
                &["checks", check],
                format!(
                    "rule {} cannot change objects, so mode {} is not available; use warn or enforce",
                    rule.name,
                    mode_name(*mode)
                ),
            );
        }
    }
}

/// Whether a mode makes (or, report-only, records) patches.
fn patches(mode: Mode) -> bool {
    matches!(mode, Mode::Mutate | Mode::ReportOnly)
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Off => "off",
        Mode::Warn => "warn",
        Mode::Mutate => "mutate",
        Mode::ReportOnly => "reportOnly",
        Mode::Enforce => "enforce",
    }
}

fn validate_version_label(rules: &Rules, problems: &mut Problems) {
    let rule = &rules.version_label;
    validate_label_keys(&rule.label_keys, "labelKeys", problems);
    if rule.container.name.as_deref().is_some_and(str::is_empty) {
        problems.add(
            &["container", "name"],
            "must not be empty; leave it out to use the first container",
        );
    }
    if !(7..=64).contains(&rule.digest_chars) {
        problems.add(
            &["digestChars"],
            format!(
                "must be between 7 and 64 (hex characters of a sha256 digest kept in the label), got {}",
                rule.digest_chars
            ),
        );
    }
}

/// Placeholders the change-cause format may use.
pub const CHANGE_CAUSE_PLACEHOLDERS: &[&str] = &["{change}", "{user}", "{source}"];

/// A non-empty list of valid, distinct label keys.
fn validate_label_keys(keys: &[String], field: &str, problems: &mut Problems) {
    if keys.is_empty() {
        problems.add(&[field], "at least one label key is needed");
    }
    for (index, key) in keys.iter().enumerate() {
        if let Err(why) = check_qualified_name(key) {
            problems.add_item(field, index, format!("invalid label key {key:?}: {why}"));
        } else if keys[..index].contains(key) {
            problems.add_item(field, index, format!("label key {key:?} is listed twice"));
        }
    }
}

fn validate_ingress_canary(rules: &Rules, problems: &mut Problems) {
    let rule = &rules.ingress_canary;
    for (index, class) in rule.class_names.iter().enumerate() {
        if class.trim().is_empty() {
            problems.add_item("classNames", index, "an ingress class name cannot be empty");
        }
    }
    for (index, controller) in rule.controllers.iter().enumerate() {
        if controller.trim().is_empty() {
            problems.add_item(
                "controllers",
                index,
                "a controller name (an IngressClass spec.controller, e.g. k8s.io/ingress-nginx) cannot be empty",
            );
        }
    }
    for (index, pair) in rule.cross_namespace.iter().enumerate() {
        let base = problems.base.key("crossNamespace").index(index);
        problems.with_base(base, |problems| {
            for (field, globs) in [
                ("canaryNamespaces", &pair.canary_namespaces),
                ("mainNamespaces", &pair.main_namespaces),
            ] {
                if globs.is_empty() {
                    problems.add(
                        &[field],
                        "list at least one namespace or glob (an empty list allows nothing)",
                    );
                }
                validate_globs(problems, field, globs);
            }
        });
    }
}

fn validate_change_cause(rules: &Rules, problems: &mut Problems) {
    let rule = &rules.change_cause;
    if rule.format.trim().is_empty() {
        problems.add(
            &["format"],
            "must not be empty (default \"{change} by {user}{source}\")",
        );
    }
    let mut rest = rule.format.as_str();
    while let Some(open) = rest.find(['{', '}']) {
        let tail = &rest[open..];
        if tail.starts_with('}') {
            problems.add(
                &["format"],
                "unbalanced `}`; placeholders are {change}, {user} and {source}",
            );
            break;
        }
        let Some(close) = tail.find('}') else {
            problems.add(
                &["format"],
                "unclosed `{`; placeholders are {change}, {user} and {source}",
            );
            break;
        };
        let placeholder = &tail[..=close];
        if !CHANGE_CAUSE_PLACEHOLDERS.contains(&placeholder) {
            problems.add(
                &["format"],
                format!(
                    "unknown placeholder {placeholder}, expected one of {}",
                    CHANGE_CAUSE_PLACEHOLDERS.join(", ")
                ),
            );
        }
        rest = &tail[close + 1..];
    }
    if !(20..=1024).contains(&rule.max_length) {
        problems.add(
            &["maxLength"],
            format!(
                "must be between 20 and 1024 characters, got {}",
                rule.max_length
            ),
        );
    }
}

fn validate_rolling_update(rules: &Rules, problems: &mut Problems) {
    let rule = &rules.rolling_update;
    let max_unavailable = check_int_or_percent(problems, "maxUnavailable", &rule.max_unavailable);
    check_int_or_percent(problems, "maxUnavailableLimit", &rule.max_unavailable_limit);
    let max_surge = check_int_or_percent(problems, "maxSurge", &rule.max_surge);
    if max_unavailable == Some(0) && max_surge == Some(0) {
        // The API server rejects this combination: the rollout could never make progress.
        problems.add(
            &["maxSurge"],
            "maxSurge and maxUnavailable cannot both be zero (the API server rejects such a Deployment: the rollout could never start a new pod or stop an old one)",
        );
    }
    if rule.min_ready_seconds < 0 {
        problems.add(
            &["minReadySeconds"],
            format!("must be 0 or more, got {}", rule.min_ready_seconds),
        );
    }
    if rule.progress_deadline_seconds <= rule.min_ready_seconds.max(0) {
        problems.add(
            &["progressDeadlineSeconds"],
            format!(
                "must be greater than minReadySeconds ({}), got {} (the API server rejects a Deployment otherwise)",
                rule.min_ready_seconds, rule.progress_deadline_seconds
            ),
        );
    }
    if rule.min_revision_history_limit < 0 {
        problems.add(
            &["minRevisionHistoryLimit"],
            format!("must be 0 or more, got {}", rule.min_revision_history_limit),
        );
    }
    if rule.revision_history_limit < rule.min_revision_history_limit.max(0) {
        problems.add(
            &["revisionHistoryLimit"],
            format!(
                "must be at least minRevisionHistoryLimit ({}), got {} (the target must itself be allowed)",
                rule.min_revision_history_limit, rule.revision_history_limit
            ),
        );
    }
    validate_globs(problems, "recreateNamespaces", &rule.recreate_namespaces);
}

/// Checks an int-or-percent parameter; returns its value when it is an integer or percentage
/// (so callers can compare), `None` when invalid.
fn check_int_or_percent(problems: &mut Problems, field: &str, value: &IntOrPercent) -> Option<i64> {
    match parse_int_or_percent(value) {
        Ok(number) => Some(number),
        Err(why) => {
            problems.add(&[field], why);
            None
        }
    }
}

/// The number an int-or-percent holds (pods, or percent). Kubernetes accepts only `N%` with a
/// base-10 N for strings, and 0..=100 for percentages of maxUnavailable and maxSurge targets here.
pub fn parse_int_or_percent(value: &IntOrPercent) -> Result<i64, String> {
    match value {
        IntOrPercent::Int(number) if *number >= 0 => Ok(i64::from(*number)),
        IntOrPercent::Int(number) => Err(format!("must be 0 or more, got {number}")),
        IntOrPercent::Percent(text) => {
            let digits = text.strip_suffix('%').ok_or_else(|| {
                format!("{text:?} is not a percentage; write an integer (pods) or a string like \"25%\"")
            })?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{text:?} is not a percentage like \"25%\""));
            }
            match digits.parse::<i64>() {
                Ok(percent) if percent <= 100 => Ok(percent),
                _ => Err(format!("{text:?} is more than 100%")),
            }
        }
    }
}

fn validate_globs(problems: &mut Problems, field: &str, globs: &[String]) {
    for (index, glob) in globs.iter().enumerate() {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-*?".contains(c);
        if glob.is_empty() {
            problems.add_item(field, index, "empty namespace pattern");
        } else if let Some(bad) = glob.chars().find(|c| !allowed(*c)) {
            problems.add_item(
                field,
                index,
                format!(
                    "invalid namespace pattern {glob:?}: {bad:?} cannot appear in a namespace name; use lowercase letters, digits, '-', and the globs '*' and '?'"
                ),
            );
        }
    }
}

/// A Kubernetes DNS subdomain (RFC 1123): at most 253 characters of dot-separated labels of
/// lowercase alphanumerics and '-', each starting and ending alphanumeric.
fn check_dns_subdomain(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if text.len() > 253 {
        return Err(format!(
            "must be at most 253 characters, has {}",
            text.len()
        ));
    }
    for label in text.split('.') {
        let edges_ok = label
            .bytes()
            .next()
            .zip(label.bytes().last())
            .is_some_and(|(a, z)| a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric());
        let chars_ok = label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !edges_ok || !chars_ok {
            return Err(
                "must consist of lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
                    .to_owned(),
            );
        }
    }
    Ok(())
}

/// A Kubernetes qualified name (label or annotation key): an optional DNS subdomain prefix and
/// `/`, then a name of at most 63 alphanumerics, '-', '_' and '.', starting and ending
/// alphanumeric.
pub fn check_qualified_name(text: &str) -> Result<(), String> {
    let (prefix, name) = match text.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, text),
    };
    if let Some(prefix) = prefix {
        check_dns_subdomain(prefix).map_err(|why| format!("prefix {prefix:?} {why}"))?;
    }
    if name.is_empty() {
        return Err("name part must not be empty".to_owned());
    }
    if name.len() > 63 {
        return Err(format!(
            "name part must be at most 63 characters, has {}",
            name.len()
        ));
    }
    let edges_ok = name
        .bytes()
        .next()
        .zip(name.bytes().last())
        .is_some_and(|(a, z)| a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric());
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !edges_ok || !chars_ok {
        return Err(
            "name part must consist of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
                .to_owned(),
        );
    }
    Ok(())
}

/// A short hex digest of the sources, for metrics, `/readyz` and change detection by the
/// reloader. Only the file name (not its directory) is hashed, so the same files give the same
/// digest whether read from `policies/` or from a ConfigMap mount.
pub fn digest(sources: &[Source]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for source in sources {
        let file_name = source
            .name
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(&source.name);
        hasher.update(file_name.as_bytes());
        hasher.update([0]);
        hasher.update(source.text.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;
