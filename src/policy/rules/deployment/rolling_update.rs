//! TODO(deployment rules): not implemented yet.

use k8s_openapi::api::apps::v1::Deployment;

use crate::policy::engine::Context;
use crate::policy::finding::{EvalError, Finding};

/// The rule's key under `rules`.
pub const RULE: &str = "rollingUpdate";

/// Evaluates the rule.
pub fn evaluate(_ctx: &Context<'_, Deployment>) -> Result<Vec<Finding>, EvalError> {
    Ok(Vec::new())
}
