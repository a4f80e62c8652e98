//! Intent: which fields of an incoming object a person or a tool chose, and which the API server
//! (or an earlier webhook answer) filled in.
//!
//! The API server defaults an object before any webhook sees it, so a Deployment arrives with
//! `maxUnavailable: 25%`, `revisionHistoryLimit: 10` and so on whether or not anyone wrote them.
//! Rules that fill values must not fight values someone chose (a GitOps tool re-asserts them on
//! the next apply, which is drift at best and a rollout nobody asked for at worst), so they ask
//! here first. Sources, strongest first, as the traces in `../shared/traces/apiserver-1.20` show
//! them:
//!
//! 1. `managedFields` entries with `operation: Apply` (server-side apply: kubectl `--server-side`,
//!    Flux's `kustomize-controller`, Helm 4). Their `fieldsV1` lists exactly the fields of the
//!    applied configuration, nothing the API server defaulted and nothing a webhook added (on
//!    1.20 webhook additions are owned by no one; from 1.27-ish they are owned by the request's
//!    manager, but under an `Update` entry, never the `Apply` one). `Update` entries are *not* a
//!    source: an Update manager owns every field the write set, defaults included (the
//!    `kubectl-create/Update` entry of a CREATE lists `progressDeadlineSeconds`).
//! 2. The `kubectl.kubernetes.io/last-applied-configuration` annotation (client-side
//!    `kubectl apply`, Argo CD's default). It holds the manifest as written and stays on the
//!    object for every later write by any client.
//! 3. On UPDATE, the old object: a field this request leaves unchanged was not chosen by this
//!    request. (On 1.20 the oldObject of most UPDATEs has no managedFields, so only the new
//!    object's entries are read.)
//! 4. On CREATE with none of these (`kubectl create`, Helm 3), a value equal to the API-server
//!    default counts as defaulted: the two cannot be told apart.
//!
//! Pure: reads the typed objects, never serialises them; the last-applied configuration is
//! parsed at most once per request, however many rules ask (the request's [`Context`] keeps it
//! in an [`IntentCache`]: it is as large as the object, and parsing it was a fifth of a
//! Deployment review's CPU when each rule did it again).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::Operation;
use kube::Resource;
use std::borrow::Cow;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::policy::engine::Context;

/// The annotation client-side `kubectl apply` (and Argo CD) keep the applied manifest in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What one field's value is, as far as the request tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// A person or tool wrote this value: it is in the applied configuration, or this request
    /// changed it to something other than the API default (or, on a CREATE with no applied
    /// configuration, it differs from the default). Never rewrite it silently.
    Chosen,
    /// The API server (or nobody) put it there: not in the applied configuration, or equal to
    /// the API default where nothing says otherwise. Free to fill.
    Defaulted,
    /// UPDATE: the request leaves the value as stored (or leaves it absent, as stored) and no
    /// applied configuration names it. Nobody chose it *in this request*; touching it would
    /// change what the request did not.
    Unchanged,
    /// The object does not have the field (and, on UPDATE, the stored object had it: the
    /// request dropped it, as `kubectl replace` with a manifest that omits it does).
    Absent,
}

impl Choice {
    /// True for a value someone wrote.
    pub fn is_chosen(self) -> bool {
        self == Choice::Chosen
    }

    /// True when a rule may fill the field: absent, or holding a default nobody chose.
    pub fn is_fillable(self) -> bool {
        matches!(self, Choice::Defaulted | Choice::Absent)
    }
}

/// Where the intent of a request was read from (for messages and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `managedFields` entries with `operation: Apply`, by manager.
    Apply(Vec<String>),
    /// The last-applied-configuration annotation.
    LastApplied,
    /// Nothing declared: only the old object (UPDATE) or the API defaults (CREATE).
    Defaults,
}

/// The applied configuration, in whichever form the request carries it.
#[derive(Debug)]
enum Declared<'a> {
    /// `fieldsV1` sets of the Apply entries (borrowed from the object).
    Apply {
        managers: Vec<String>,
        sets: Vec<&'a Value>,
    },
    /// The last-applied manifest (borrowed from the annotation), or one read ahead.
    LastApplied(Manifest<'a>),
    /// The shape a [`ReadAhead`] holds, for an annotation with its text.
    ReadAhead(&'a ShapeOf<'a>),
    /// No applied configuration.
    Nothing,
}

/// The applied configuration of one request, read on first use and shared by every rule that
/// asks (kept in the rule [`Context`]).
#[derive(Default)]
pub struct IntentCache<'a>(
    std::cell::OnceCell<Declared<'a>>,
    Option<&'a (dyn ShapeSource + 'a)>,
);

impl<'a> IntentCache<'a> {
    /// A cache that takes the last-applied configuration from `read_ahead` when the object's
    /// annotation is its text.
    pub fn with_read_ahead(read_ahead: Option<&'a (dyn ShapeSource + 'a)>) -> Self {
        Self(std::cell::OnceCell::new(), read_ahead)
    }
}

impl std::fmt::Debug for IntentCache<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("IntentCache")
            .field(&self.0)
            .field(&self.1.is_some())
            .finish()
    }
}

/// Where a review may find a last-applied configuration already read ([`ReadAhead`]); a trait
/// object so that the read-ahead (lazily filled, so invariant in its lifetime) can be lent to
/// reviews whose own borrows are shorter.
pub trait ShapeSource {
    /// The shape read from `text`, when this source holds that text (`Some(None)`: it does, and
    /// the text is no manifest).
    #[doc(hidden)]
    fn shape_for(&self, text: &str) -> Option<Option<&ShapeOf<'_>>>;
}

/// The shape of a last-applied configuration (opaque outside this module).
#[derive(Debug)]
pub struct ShapeOf<'a>(Manifest<'a>);

/// A last-applied configuration read once for several reviews of one object: `check`, the
/// evaluation API and the audit review each object at mutate and again, patched, at validate,
/// with the annotation unchanged. Its parse (the annotation is as large as the object) was a
/// tenth of the audit's evaluation time when each review did it. Read on first use.
#[derive(Debug)]
pub struct ReadAhead<'t> {
    text: &'t str,
    shape: std::cell::OnceCell<Option<ShapeOf<'t>>>,
}

impl<'t> ReadAhead<'t> {
    /// For an annotation with this text.
    pub fn new(text: &'t str) -> Self {
        Self {
            text,
            shape: std::cell::OnceCell::new(),
        }
    }
}

impl ShapeSource for ReadAhead<'_> {
    fn shape_for(&self, text: &str) -> Option<Option<&ShapeOf<'_>>> {
        (self.text == text).then(|| {
            self.shape
                .get_or_init(|| Manifest::read(self.text).map(ShapeOf))
                .as_ref()
        })
    }
}

/// The declared configuration an [`Intent`] reads: the request's shared one, or its own.
#[derive(Debug)]
enum DeclaredRef<'a> {
    Shared(&'a Declared<'a>),
    Own(Declared<'a>),
}

impl<'a> DeclaredRef<'a> {
    fn get(&self) -> &Declared<'a> {
        match self {
            DeclaredRef::Shared(declared) => declared,
            DeclaredRef::Own(declared) => declared,
        }
    }
}

/// A field path: member names, and `name=<value>` for the item of a list whose `name` is
/// `<value>` (containers, ports by name). Label and annotation keys never contain `=`, and field
/// names never do, so the form is unambiguous. Example:
/// `["spec", "template", "spec", "containers", "name=web", "readinessProbe"]`.
pub type FieldPath<'p> = [&'p str];

/// The intent of one request: which fields its object declares, and the objects to compare.
#[derive(Debug)]
pub struct Intent<'a, K> {
    operation: Operation,
    object: Option<&'a K>,
    old_object: Option<&'a K>,
    declared: DeclaredRef<'a>,
}

impl<'a, K: Resource> Intent<'a, K> {
    /// The intent of the request a rule is evaluating; its applied configuration is read once
    /// per request (the context's [`IntentCache`]).
    pub fn of(ctx: &'a Context<'_, K>) -> Self {
        let object = ctx.object;
        let declared = ctx
            .intent
            .0
            .get_or_init(|| object.map_or(Declared::Nothing, |o| declared(o.meta(), ctx.intent.1)));
        Self::with(
            ctx.operation.clone(),
            ctx.object,
            ctx.old_object,
            DeclaredRef::Shared(declared),
        )
    }

    /// The intent of a request with these parts (`old_object` is only read on UPDATE).
    pub fn new(operation: Operation, object: Option<&'a K>, old_object: Option<&'a K>) -> Self {
        let declared = object.map_or(Declared::Nothing, |o| declared(o.meta(), None));
        Self::with(operation, object, old_object, DeclaredRef::Own(declared))
    }

    fn with(
        operation: Operation,
        object: Option<&'a K>,
        old_object: Option<&'a K>,
        declared: DeclaredRef<'a>,
    ) -> Self {
        let old_object = old_object.filter(|_| operation == Operation::Update);
        Self {
            operation,
            object,
            old_object,
            declared,
        }
    }

    /// Where the applied configuration came from.
    pub fn source(&self) -> Source {
        match self.declared.get() {
            Declared::Apply { managers, .. } => Source::Apply(managers.clone()),
            Declared::LastApplied(_) | Declared::ReadAhead(_) => Source::LastApplied,
            Declared::Nothing => Source::Defaults,
        }
    }

    /// Whether the applied configuration names `path`: `Some(true)` or `Some(false)` when the
    /// request carries one (Apply entries or last-applied), `None` when it carries none.
    pub fn declares(&self, path: &FieldPath<'_>) -> Option<bool> {
        match self.declared.get() {
            Declared::Apply { sets, .. } => Some(sets.iter().any(|set| fields_v1_has(set, path))),
            Declared::LastApplied(manifest) => Some(manifest.has(path)),
            Declared::ReadAhead(manifest) => Some(manifest.0.has(path)),
            Declared::Nothing => None,
        }
    }

    /// Whether any managedFields entry (Apply or Update) owns `path`; `None` when the object has
    /// no managedFields at all (an offline manifest). On the API servers of the traces a field a
    /// mutating webhook added is owned by nobody, while every field a client wrote is owned by
    /// its manager, so `Some(false)` for a present field marks a webhook's addition.
    pub fn owned(&self, path: &FieldPath<'_>) -> Option<bool> {
        let entries = self.object?.meta().managed_fields.as_ref()?;
        if entries.is_empty() {
            return None;
        }
        Some(entries.iter().any(|entry| {
            entry
                .fields_v1
                .as_ref()
                .is_some_and(|fields| fields_v1_has(&fields.0, path))
        }))
    }

    /// True on an UPDATE (there is an old object to compare with).
    pub fn is_update(&self) -> bool {
        self.old_object.is_some()
    }

    /// Who chose the value at `path`. `read` reads the field from a typed object; `default` is
    /// the API server's default for it (`None` when it has none, so a present value on a CREATE
    /// with no applied configuration counts as chosen).
    pub fn chose<T: PartialEq + ?Sized>(
        &self,
        path: &FieldPath<'_>,
        read: impl Fn(&K) -> Option<&T>,
        default: Option<&T>,
    ) -> Choice {
        let Some(value) = self.object.and_then(&read) else {
            // Absent before and after: the request did not touch it (a pause, an annotation).
            let absent_before = self.old_object.is_some_and(|old| read(old).is_none());
            return if absent_before {
                Choice::Unchanged
            } else {
                Choice::Absent
            };
        };
        let declared = self.declares(path);
        if declared == Some(true) {
            return Choice::Chosen;
        }
        let is_default = default.is_some_and(|d| d == value);
        match self.old_object {
            Some(old) => {
                if read(old) == Some(value) {
                    Choice::Unchanged
                } else if is_default {
                    // A declarative client that no longer sends the field (kubectl replace with
                    // the manifest, a merge patch of the list): the API server defaulted it again.
                    Choice::Defaulted
                } else {
                    // This request wrote it (kubectl patch, set, edit, an Update manager).
                    Choice::Chosen
                }
            }
            None => match declared {
                // Not in the applied configuration: the API server (or a webhook) put it there.
                Some(false) => Choice::Defaulted,
                _ if is_default => Choice::Defaulted,
                _ => Choice::Chosen,
            },
        }
    }

    /// True when the request is a CREATE.
    pub fn is_create(&self) -> bool {
        self.operation == Operation::Create
    }
}

fn declared<'a>(
    meta: &'a ObjectMeta,
    read_ahead: Option<&'a (dyn ShapeSource + 'a)>,
) -> Declared<'a> {
    let mut managers = Vec::new();
    let mut sets = Vec::new();
    for entry in meta.managed_fields.iter().flatten() {
        if entry.operation.as_deref() != Some("Apply") {
            continue;
        }
        if let Some(fields) = &entry.fields_v1 {
            sets.push(&fields.0);
            managers.push(entry.manager.clone().unwrap_or_default());
        }
    }
    if !sets.is_empty() {
        return Declared::Apply { managers, sets };
    }
    let Some(text) = meta.annotations.as_ref().and_then(|a| a.get(LAST_APPLIED)) else {
        return Declared::Nothing;
    };
    if let Some(read) = read_ahead.and_then(|r| r.shape_for(text)) {
        return read.map_or(Declared::Nothing, Declared::ReadAhead);
    }
    Manifest::read(text).map_or(Declared::Nothing, Declared::LastApplied)
}

/// Members whose values no rule asks into: a pod's lists of environment variables, mounts,
/// volumes and arguments, most of a manifest's text. The first shape read of a manifest leaves
/// them out ([`Shape::Skipped`]); a question that reaches one reads the whole manifest.
const SKIPPED_MEMBERS: &[&str] = &[
    "args",
    "command",
    "env",
    "envFrom",
    "tolerations",
    "volumeMounts",
    "volumes",
];

/// A last-applied manifest: its text, its shape without the [`SKIPPED_MEMBERS`], and the whole
/// shape, read only when a question reaches a skipped member.
#[derive(Debug)]
pub(crate) struct Manifest<'a> {
    text: &'a str,
    pruned: Shape<'a>,
    /// Owned (read rarely): a borrowed one would make the manifest invariant in `'a`, and a
    /// read-ahead manifest is lent to reviews whose borrows are shorter.
    whole: std::cell::OnceCell<Option<Shape<'static>>>,
}

impl<'a> Manifest<'a> {
    /// The manifest of a last-applied annotation. An unreadable annotation is no declaration
    /// (`None`): the caller falls back to the old object and defaults rather than treating every
    /// field as undeclared (which would make everything fillable).
    fn read(text: &'a str) -> Option<Self> {
        let pruned = read_shape(text, SKIPPED_MEMBERS)?;
        Some(Self {
            text,
            pruned,
            whole: std::cell::OnceCell::new(),
        })
    }

    /// Whether the manifest has a non-null value at `path`.
    fn has(&self, path: &FieldPath<'_>) -> bool {
        manifest_has(&self.pruned, path).unwrap_or_else(|| {
            self.whole
                .get_or_init(|| read_shape(self.text, &[]).map(Shape::into_owned))
                .as_ref()
                .and_then(|whole| manifest_has(whole, path))
                .unwrap_or(false)
        })
    }
}

/// The shape of a manifest's text, without the values of `skipped` members; `None` unless the
/// text is a JSON object.
fn read_shape<'a>(text: &'a str, skipped: &'static [&'static str]) -> Option<Shape<'a>> {
    let mut reader = serde_json::Deserializer::from_str(text);
    let shape = ShapeSeed { skipped }.deserialize(&mut reader).ok()?;
    reader.end().ok()?;
    matches!(shape, Shape::Object(_)).then_some(shape)
}

/// Splits `name=<value>` list-item steps.
fn list_item(step: &str) -> Option<&str> {
    step.strip_prefix("name=")
}

/// Whether a `fieldsV1` set (`{"f:spec": {"f:replicas": {}}}`, list items as
/// `k:{"name":"web"}`) contains `path` (a prefix counts: `f:selector: {}` owns the whole
/// selector as an atomic field).
fn fields_v1_has(set: &Value, path: &FieldPath<'_>) -> bool {
    let mut node = set;
    for step in path {
        let Some(members) = node.as_object() else {
            return false;
        };
        // An atomic field (`f:selector: {}`) owns everything below it.
        if members.is_empty() {
            return true;
        }
        let next = match list_item(step) {
            Some(name) => members.iter().find_map(|(key, child)| {
                let item = key.strip_prefix("k:")?;
                let keys: Value = serde_json::from_str(item).ok()?;
                (keys.get("name").and_then(Value::as_str) == Some(name)).then_some(child)
            }),
            None => members.get(&format!("f:{step}")),
        };
        match next {
            Some(child) => node = child,
            None => return false,
        }
    }
    true
}

/// Whether a manifest (the last-applied configuration) has a non-null value at `path`; `None`
/// when the answer lies in a member that was not read ([`Shape::Skipped`]).
fn manifest_has(manifest: &Shape<'_>, path: &FieldPath<'_>) -> Option<bool> {
    let mut node = manifest;
    for step in path {
        let next = match (list_item(step), node) {
            (_, Shape::Skipped) => return None,
            (Some(name), Shape::Array(items)) => {
                items.iter().find(|item| item.name() == Some(name))
            }
            (None, Shape::Object(members)) => members
                .iter()
                .find(|(key, _)| key == step)
                .map(|(_, child)| child),
            _ => None,
        };
        match next {
            Some(child) => node = child,
            None => return Some(false),
        }
    }
    match node {
        Shape::Skipped => None,
        node => Some(!matches!(node, Shape::Null)),
    }
}

/// A manifest read only for which fields it has: members, list items by `name`, and no values
/// but strings, borrowed from the annotation where they need no unescaping. A rule only asks
/// whether a field was written; read as a `serde_json::Value`, kubectl's annotation cost a
/// B-tree node and several strings per env entry, on every Deployment request.
#[derive(Debug)]
enum Shape<'a> {
    Null,
    /// A string (the `name` of a list item is one).
    Str(Cow<'a, str>),
    /// A number or a boolean.
    Scalar,
    Object(Vec<(Cow<'a, str>, Shape<'a>)>),
    Array(Vec<Shape<'a>>),
    /// A member whose value was not read (see [`SKIPPED_MEMBERS`]).
    Skipped,
}

impl Shape<'_> {
    fn into_owned(self) -> Shape<'static> {
        match self {
            Shape::Null => Shape::Null,
            Shape::Str(text) => Shape::Str(Cow::Owned(text.into_owned())),
            Shape::Scalar => Shape::Scalar,
            Shape::Object(members) => Shape::Object(
                members
                    .into_iter()
                    .map(|(key, value)| (Cow::Owned(key.into_owned()), value.into_owned()))
                    .collect(),
            ),
            Shape::Array(items) => Shape::Array(items.into_iter().map(Shape::into_owned).collect()),
            Shape::Skipped => Shape::Skipped,
        }
    }

    /// The `name` member of an object, when it is a string.
    fn name(&self) -> Option<&str> {
        let Shape::Object(members) = self else {
            return None;
        };
        members.iter().find_map(|(key, value)| match value {
            Shape::Str(name) if key == "name" => Some(name.as_ref()),
            _ => None,
        })
    }
}

/// Reads a [`Shape`], leaving out the values of the `skipped` members.
#[derive(Clone, Copy)]
struct ShapeSeed {
    skipped: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for ShapeSeed {
    type Value = Shape<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(ShapeVisitor(self))
    }
}

struct ShapeVisitor(ShapeSeed);

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Shape::Scalar)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Shape::Scalar)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Shape::Scalar)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Shape::Scalar)
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Shape::Str(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Shape::Str(Cow::Owned(text.to_owned())))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Shape::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Shape::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self.0)? {
            items.push(item);
        }
        Ok(Shape::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = if self.0.skipped.contains(&key.as_ref()) {
                map.next_value::<serde::de::IgnoredAny>()?;
                Shape::Skipped
            } else {
                map.next_value_seed(self.0)?
            };
            members.push((key, value));
        }
        Ok(Shape::Object(members))
    }
}

/// A member name, borrowed unless it has escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_owned()))
    }
}

#[cfg(test)]
mod tests;
