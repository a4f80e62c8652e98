//! Building RFC 6902 JSON Patches from the edits rules ask for.
//!
//! Rules describe *what* the object should hold (`Edit::Set` at a path of plain keys); this
//! module turns that into operations that apply to the object exactly as the API server sent it:
//! keys are escaped per RFC 6901 (`/` → `~1`, `~` → `~0`), a missing map is added before a key
//! is added into it (an `add` into a missing parent fails), a value already equal produces no
//! operation (so mutating our own output yields an empty patch), and paths under a Deployment's
//! immutable `spec.selector` are refused outright.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// An object as a review carries it: the JSON text the API server sent (the webhook), or a value
/// already parsed (`check`, the evaluation API and the audit hold their objects parsed; writing
/// one back out as text only for the engine to read it again was a fifth of the audit's
/// evaluation time).
#[derive(Debug, Clone, Copy)]
pub enum ObjectJson<'a> {
    /// The JSON as sent.
    Sent(&'a RawValue),
    /// A parsed value.
    Parsed(&'a Value),
}

impl<'a> ObjectJson<'a> {
    /// Whether the object is JSON `null` (the API server sends `null` for an absent object).
    pub fn is_null(self) -> bool {
        match self {
            ObjectJson::Sent(raw) => raw.get() == "null",
            ObjectJson::Parsed(value) => value.is_null(),
        }
    }

    /// Reads the object as `T`. Both sources give the same result for the same JSON: a parsed
    /// value has no duplicate keys left and keeps numbers as JSON numbers.
    pub fn read<T: serde::de::DeserializeOwned>(self) -> Result<T, serde_json::Error> {
        match self {
            ObjectJson::Sent(raw) => serde_json::from_str(raw.get()),
            ObjectJson::Parsed(value) => T::deserialize(value),
        }
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for ObjectJson<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(deserializer).map(ObjectJson::Sent)
    }
}

/// A change a rule wants, as a path of unescaped keys (array indexes as decimal strings).
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Make the value at `path` equal `value`, creating missing parent maps.
    Set { path: Vec<String>, value: Value },
    /// Remove the value at `path` if present.
    Remove { path: Vec<String> },
}

impl Edit {
    /// `Edit::Set` from string-ish path segments.
    pub fn set<I, S>(path: I, value: Value) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Edit::Set {
            path: path.into_iter().map(Into::into).collect(),
            value,
        }
    }

    /// `Edit::Remove` from string-ish path segments.
    pub fn remove<I, S>(path: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Edit::Remove {
            path: path.into_iter().map(Into::into).collect(),
        }
    }

    /// The path this edit touches.
    pub fn path(&self) -> &[String] {
        match self {
            Edit::Set { path, .. } | Edit::Remove { path } => path,
        }
    }
}

/// One RFC 6902 operation, serialised as the API server expects.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    /// Add a member or replace it when present (we only emit it for absent ones).
    Add { path: String, value: Value },
    /// Replace an existing member.
    Replace { path: String, value: Value },
    /// Remove an existing member.
    Remove { path: String },
}

/// Why an edit could not be turned into an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The edit targets a field that must never be patched.
    #[error("refusing to patch {0}: the field is immutable")]
    Immutable(String),
    /// A parent on the path is not an object (or an index is out of range).
    #[error("cannot patch {0}: a parent on the path is not an object or array element")]
    BadParent(String),
}

/// Escapes one key as an RFC 6901 reference token.
pub fn escape_token(key: &str) -> String {
    if key.contains(['~', '/']) {
        key.replace('~', "~0").replace('/', "~1")
    } else {
        key.to_owned()
    }
}

/// Joins keys into an RFC 6901 pointer.
pub fn pointer(path: &[String]) -> String {
    path.iter().fold(String::new(), |mut acc, key| {
        acc.push('/');
        acc.push_str(&escape_token(key));
        acc
    })
}

/// Paths no rule may ever touch. `spec.selector` of a Deployment is immutable in apps/v1: a patch
/// to it makes the API server reject the whole request.
fn is_forbidden(path: &[String]) -> bool {
    path.len() >= 2 && path[0] == "spec" && path[1] == "selector"
}

/// The object as the edits so far leave it, expanded only along the paths they walked: the rest
/// stays the text the API server sent, never parsed. Parsing a whole Deployment into a `Value`
/// (managedFields, the last-applied configuration) cost more than the few members the rules
/// patch.
#[derive(Debug)]
enum Node<'a> {
    /// Not looked into: the JSON as sent.
    Raw(&'a RawValue),
    /// Not looked into: a member of an object that came parsed (borrowed, not copied).
    Parsed(&'a Value),
    /// An object whose members have been listed.
    Object(BTreeMap<String, Node<'a>>),
    /// An array whose items have been listed.
    Array(Vec<Node<'a>>),
    /// A scalar read from the text, or a value an edit wrote.
    Value(Value),
}

impl<'a> Node<'a> {
    /// Lists the members or items of an object or array, so a path can walk into it, and those
    /// of the members named by `along`, one after the other, in a single pass over the text:
    /// walking `metadata`, then `annotations` one level at a time read the (often huge)
    /// last-applied configuration once per level. Other members stay raw. Scalars stay as they
    /// are (the caller reports a bad parent).
    fn expand(&mut self, along: &[String]) -> Result<(), serde_json::Error> {
        let expanded = match self {
            Node::Raw(raw) => {
                let mut reader = serde_json::Deserializer::from_str(raw.get());
                let node = Expand { along }.deserialize(&mut reader)?;
                reader.end()?;
                node
            }
            Node::Parsed(Value::Object(map)) => Node::Object(
                map.iter()
                    .map(|(key, member)| (key.clone(), Node::Parsed(member)))
                    .collect(),
            ),
            Node::Parsed(Value::Array(items)) => {
                Node::Array(items.iter().map(Node::Parsed).collect())
            }
            Node::Value(Value::Object(map)) => Node::Object(
                std::mem::take(map)
                    .into_iter()
                    .map(|(key, member)| (key, Node::Value(member)))
                    .collect(),
            ),
            Node::Value(Value::Array(items)) => {
                Node::Array(std::mem::take(items).into_iter().map(Node::Value).collect())
            }
            Node::Object(_) | Node::Array(_) | Node::Value(_) | Node::Parsed(_) => return Ok(()),
        };
        *self = expanded;
        Ok(())
    }

    /// Whether the member is JSON `null` (which Kubernetes reads as absent).
    fn is_null(&self) -> bool {
        match self {
            Node::Raw(raw) => raw.get() == "null",
            Node::Value(value) => value.is_null(),
            Node::Parsed(value) => value.is_null(),
            Node::Object(_) | Node::Array(_) => false,
        }
    }

    /// The value this node holds, parsed (used to compare a leaf with the value an edit wants).
    fn to_value(&self) -> Result<Value, serde_json::Error> {
        Ok(match self {
            Node::Raw(raw) => serde_json::from_str(raw.get())?,
            Node::Value(value) => value.clone(),
            Node::Parsed(value) => (*value).clone(),
            Node::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(key, member)| Ok((key.clone(), member.to_value()?)))
                    .collect::<Result<Map<String, Value>, serde_json::Error>>()?,
            ),
            Node::Array(items) => Value::Array(
                items
                    .iter()
                    .map(Node::to_value)
                    .collect::<Result<Vec<Value>, serde_json::Error>>()?,
            ),
        })
    }
}

/// Reads one JSON value into a [`Node`]: an object or array has its members listed (raw), and
/// the member named by the first key of `along` is read the same way with the rest of `along`.
struct Expand<'p> {
    along: &'p [String],
}

impl<'de> DeserializeSeed<'de> for Expand<'_> {
    type Value = Node<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Expand<'_> {
    type Value = Node<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut members = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let member = match self.along.split_first() {
                Some((next, rest)) if *next == key => {
                    map.next_value_seed(Expand { along: rest })?
                }
                _ => Node::Raw(map.next_value::<&'de RawValue>()?),
            };
            // A repeated key: the last one counts, as when parsing into a `Value`.
            members.insert(key, member);
        }
        Ok(Node::Object(members))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        // Parsed as the builder parses an index when it walks the path.
        let wanted = self
            .along
            .split_first()
            .and_then(|(next, rest)| Some((next.parse::<usize>().ok()?, rest)));
        let mut items = Vec::new();
        loop {
            let item = match wanted {
                Some((index, rest)) if index == items.len() => {
                    seq.next_element_seed(Expand { along: rest })?
                }
                _ => seq.next_element::<&'de RawValue>()?.map(Node::Raw),
            };
            match item {
                Some(item) => items.push(item),
                None => return Ok(Node::Array(items)),
            }
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node<'de>, E> {
        Ok(Node::Value(Value::Null))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Node<'de>, E> {
        Ok(Node::Value(Value::Bool(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Node<'de>, E> {
        Ok(Node::Value(Value::from(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Node<'de>, E> {
        Ok(Node::Value(Value::from(value)))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Node<'de>, E> {
        Ok(Node::Value(Value::from(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Node<'de>, E> {
        Ok(Node::Value(Value::String(value.to_owned())))
    }
}

/// Accumulates edits against a working copy of the object, so later edits see the maps earlier
/// ones created and the resulting patch applies in order to the original.
#[derive(Debug)]
pub struct PatchBuilder<'a> {
    working: Node<'a>,
    ops: Vec<PatchOp>,
}

impl<'a> PatchBuilder<'a> {
    /// Starts from the object exactly as the API server sent it (or as it was parsed).
    pub fn new(original: ObjectJson<'a>) -> Self {
        Self {
            working: match original {
                ObjectJson::Sent(raw) => Node::Raw(raw),
                ObjectJson::Parsed(value) => Node::Parsed(value),
            },
            ops: Vec::new(),
        }
    }

    /// Applies one edit, appending the operations it needs (none when already satisfied).
    pub fn apply(&mut self, edit: &Edit) -> Result<(), PatchError> {
        let path = edit.path();
        if is_forbidden(path) {
            return Err(PatchError::Immutable(pointer(path)));
        }
        if path.is_empty() {
            return Err(PatchError::BadParent(String::new()));
        }
        let (leaf, parents) = path
            .split_last()
            .ok_or(PatchError::BadParent(String::new()))?;
        let mut node = &mut self.working;
        for (depth, key) in parents.iter().enumerate() {
            let here = pointer(&path[..=depth]);
            node.expand(&parents[depth..])
                .map_err(|_| PatchError::BadParent(here.clone()))?;
            node = match node {
                Node::Object(map) => {
                    if map.get(key).is_none_or(Node::is_null) {
                        if matches!(edit, Edit::Remove { .. }) {
                            return Ok(());
                        }
                        // A null member reads as absent to Kubernetes; `add` replaces it.
                        self.ops.push(PatchOp::Add {
                            path: here.clone(),
                            value: Value::Object(Map::new()),
                        });
                        map.insert(key.clone(), Node::Object(BTreeMap::new()));
                    }
                    map.get_mut(key).ok_or(PatchError::BadParent(here))?
                }
                Node::Array(items) => {
                    let index: usize = key
                        .parse()
                        .map_err(|_| PatchError::BadParent(here.clone()))?;
                    items.get_mut(index).ok_or(PatchError::BadParent(here))?
                }
                Node::Raw(_) | Node::Value(_) | Node::Parsed(_) => {
                    return Err(PatchError::BadParent(here))
                }
            };
        }
        let full = pointer(path);
        if node.expand(&[]).is_err() {
            return Err(PatchError::BadParent(full));
        }
        let Node::Object(map) = node else {
            return Err(PatchError::BadParent(full));
        };
        match edit {
            Edit::Set { value, .. } => {
                let current = match map.get(leaf) {
                    Some(current) if !current.is_null() => Some(
                        current
                            .to_value()
                            .map_err(|_| PatchError::BadParent(full.clone()))?,
                    ),
                    _ => None,
                };
                match current {
                    Some(current) if current == *value => {}
                    Some(_) => {
                        self.ops.push(PatchOp::Replace {
                            path: full,
                            value: value.clone(),
                        });
                        map.insert(leaf.clone(), Node::Value(value.clone()));
                    }
                    None => {
                        self.ops.push(PatchOp::Add {
                            path: full,
                            value: value.clone(),
                        });
                        map.insert(leaf.clone(), Node::Value(value.clone()));
                    }
                }
            }
            Edit::Remove { .. } => {
                if map.remove(leaf).is_some() {
                    self.ops.push(PatchOp::Remove { path: full });
                }
            }
        }
        Ok(())
    }

    /// The operations so far.
    pub fn ops(&self) -> &[PatchOp] {
        &self.ops
    }

    /// The operations, in the order they apply.
    pub fn finish(self) -> Vec<PatchOp> {
        self.ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(original: Value, edits: &[Edit]) -> Vec<PatchOp> {
        let raw = serde_json::value::to_raw_value(&original).expect("raw");
        let from_text = build_from(ObjectJson::Sent(&raw), edits);
        // The audit and `check` start from the parsed object: the same edits give the same patch.
        let from_value = build_from(ObjectJson::Parsed(&original), edits);
        assert_eq!(
            from_text, from_value,
            "patch from text vs from a parsed value"
        );
        from_text
    }

    fn build_from(original: ObjectJson<'_>, edits: &[Edit]) -> Vec<PatchOp> {
        let mut builder = PatchBuilder::new(original);
        for edit in edits {
            builder.apply(edit).expect("edit applies");
        }
        builder.finish()
    }

    #[test]
    fn escapes_slash_and_tilde() {
        assert_eq!(
            escape_token("app.kubernetes.io/version"),
            "app.kubernetes.io~1version"
        );
        assert_eq!(escape_token("a~b/c"), "a~0b~1c");
        assert_eq!(
            pointer(&[
                "metadata".into(),
                "labels".into(),
                "app.kubernetes.io/version".into()
            ]),
            "/metadata/labels/app.kubernetes.io~1version"
        );
    }

    #[test]
    fn adds_missing_parent_map_once() {
        let ops = build(
            json!({"metadata": {"name": "x"}}),
            &[
                Edit::set(["metadata", "labels", "a/b"], json!("1")),
                Edit::set(["metadata", "labels", "c"], json!("2")),
            ],
        );
        assert_eq!(
            serde_json::to_value(&ops).unwrap(),
            json!([
                {"op": "add", "path": "/metadata/labels", "value": {}},
                {"op": "add", "path": "/metadata/labels/a~1b", "value": "1"},
                {"op": "add", "path": "/metadata/labels/c", "value": "2"},
            ])
        );
    }

    #[test]
    fn equal_value_is_no_op_and_different_is_replace() {
        let original = json!({"spec": {"minReadySeconds": 5, "revisionHistoryLimit": 10}});
        let ops = build(
            original,
            &[
                Edit::set(["spec", "minReadySeconds"], json!(5)),
                Edit::set(["spec", "revisionHistoryLimit"], json!(5)),
            ],
        );
        assert_eq!(
            ops,
            vec![PatchOp::Replace {
                path: "/spec/revisionHistoryLimit".into(),
                value: json!(5)
            }]
        );
    }

    #[test]
    fn selector_is_never_patched() {
        let raw = serde_json::value::to_raw_value(&json!({"spec": {"selector": {}}})).expect("raw");
        let mut builder = PatchBuilder::new(ObjectJson::Sent(&raw));
        let err = builder
            .apply(&Edit::set(
                ["spec", "selector", "matchLabels", "v"],
                json!("1"),
            ))
            .unwrap_err();
        assert!(matches!(err, PatchError::Immutable(_)));
        assert!(builder.ops().is_empty());
    }

    #[test]
    fn walks_into_arrays_by_index() {
        let ops = build(
            json!({"spec": {"containers": [{"name": "a"}]}}),
            &[Edit::set(
                ["spec", "containers", "0", "image"],
                json!("nginx:1"),
            )],
        );
        assert_eq!(
            ops,
            vec![PatchOp::Add {
                path: "/spec/containers/0/image".into(),
                value: json!("nginx:1")
            }]
        );
    }

    #[test]
    fn later_edits_walk_into_what_earlier_ones_wrote() {
        let ops = build(
            json!({"metadata": {"annotations": null}, "spec": {"strategy": {"type": "Recreate"}}}),
            &[
                Edit::set(
                    ["spec", "strategy"],
                    json!({"rollingUpdate": {"maxSurge": 1}}),
                ),
                Edit::set(["spec", "strategy", "rollingUpdate", "maxSurge"], json!(1)),
                Edit::set(
                    ["spec", "strategy", "rollingUpdate", "maxUnavailable"],
                    json!(0),
                ),
                Edit::set(["metadata", "annotations", "a"], json!("1")),
                Edit::remove(["metadata", "labels", "x"]),
                Edit::remove(["spec", "strategy", "type"]),
            ],
        );
        assert_eq!(
            serde_json::to_value(&ops).unwrap(),
            json!([
                {"op": "replace", "path": "/spec/strategy", "value": {"rollingUpdate": {"maxSurge": 1}}},
                {"op": "add", "path": "/spec/strategy/rollingUpdate/maxUnavailable", "value": 0},
                {"op": "add", "path": "/metadata/annotations", "value": {}},
                {"op": "add", "path": "/metadata/annotations/a", "value": "1"},
            ])
        );
    }

    #[test]
    fn scalars_are_no_parents() {
        let raw = serde_json::value::to_raw_value(&json!({"spec": {"replicas": 3}})).expect("raw");
        let mut builder = PatchBuilder::new(ObjectJson::Sent(&raw));
        let err = builder
            .apply(&Edit::set(["spec", "replicas", "x"], json!(1)))
            .unwrap_err();
        assert!(matches!(err, PatchError::BadParent(_)));
        assert!(builder.ops().is_empty());
    }
}
