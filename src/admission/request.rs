//! Decoding an AdmissionReview without losing the uid.
//!
//! The review is decoded with the object left raw: a typed decode of a whole review would fail on
//! an object of an unexpected kind and we would not even know which uid to answer. Objects are
//! parsed into typed k8s-openapi structs only after dispatching on the request's kind.

use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::admission::Operation;
use serde::Deserialize;

pub use crate::policy::patch::ObjectJson;

/// Why a body is not an AdmissionReview we can answer. The HTTP edge turns these into 400s.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, truncated, too deeply nested, or fields of the wrong type.
    #[error("body is not a valid AdmissionReview: {0}")]
    Malformed(#[from] serde_json::Error),
    /// JSON, but another kind of document.
    #[error("expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got {api_version:?} {kind:?}")]
    WrongType {
        /// What the body said.
        api_version: String,
        /// What the body said.
        kind: String,
    },
    /// An AdmissionReview without a request (or without a uid to answer).
    #[error("AdmissionReview has no request (or the request has no uid)")]
    NoRequest,
}

/// `group`/`version`/`kind` as the API server writes it in a request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Gvk {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// The parts of an AdmissionReview we read, with the objects left as raw JSON.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(borrow, default)]
    request: Option<Request<'a>>,
}

/// One admission request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a> {
    /// Echoed in the response so the API server can match it.
    pub uid: String,
    /// The kind of the object as converted for us (matchPolicy Equivalent).
    pub kind: Gvk,
    /// The subresource (`scale`, `status`), if any.
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// Name of the object; empty on CREATE with generateName.
    #[serde(default)]
    pub name: String,
    /// Namespace of the object.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The operation.
    pub operation: Operation,
    /// Who asked.
    #[serde(default)]
    pub user_info: UserInfo,
    /// The object as it would be stored (absent on DELETE).
    #[serde(borrow, default)]
    pub object: Option<ObjectJson<'a>>,
    /// The stored object (UPDATE and DELETE).
    #[serde(borrow, default)]
    pub old_object: Option<ObjectJson<'a>>,
    /// Whether nothing will be persisted.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// A decoded review: its apiVersion (echoed back) and its request.
#[derive(Debug)]
pub struct Review<'a> {
    /// `admission.k8s.io/v1` (or `v1beta1`, answered in kind).
    pub api_version: String,
    /// The request.
    pub request: Request<'a>,
}

/// Decodes a body. Borrowing keeps the objects as slices of the body until a rule needs them.
pub fn decode(body: &[u8]) -> Result<Review<'_>, DecodeError> {
    let envelope: Envelope<'_> = serde_json::from_slice(body)?;
    let known_version = matches!(
        envelope.api_version.as_str(),
        "admission.k8s.io/v1" | "admission.k8s.io/v1beta1"
    );
    if !known_version || envelope.kind != "AdmissionReview" {
        return Err(DecodeError::WrongType {
            api_version: envelope.api_version,
            kind: envelope.kind,
        });
    }
    let request = envelope.request.ok_or(DecodeError::NoRequest)?;
    if request.uid.is_empty() {
        return Err(DecodeError::NoRequest);
    }
    Ok(Review {
        api_version: envelope.api_version,
        request,
    })
}

/// The object's name for logs: `request.name`, or on DELETE `oldObject.metadata.name` when the
/// name is empty, as in the namespace controller's deletecollections.
pub fn object_name(request: &Request<'_>) -> String {
    #[derive(Deserialize)]
    struct Named {
        #[serde(default)]
        metadata: Metadata,
    }
    #[derive(Deserialize, Default)]
    struct Metadata {
        #[serde(default)]
        name: String,
    }
    if !request.name.is_empty() {
        return request.name.clone();
    }
    request
        .old_object
        .filter(|_| request.operation == Operation::Delete)
        .and_then(|old| old.read::<Named>().ok())
        .map(|named| named.metadata.name)
        .unwrap_or_default()
}

/// The operation as the API server spells it.
pub fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}
