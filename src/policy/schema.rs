//! The JSON Schema of the policy format, generated from the config types in `config.rs`.
//!
//! Shipped at `schema/rolloutpolicy.schema.json` (a test fails when it is stale) and printed by
//! `rollout-guard policy schema`. Draft-07 because it is the draft every editor integration
//! (yaml-language-server in VS Code, JetBrains IDEs) understands fully.

use schemars::generate::SchemaSettings;

use crate::policy::config::RolloutPolicy;

/// Where the schema is checked in, relative to the repository root; policy files point their
/// `yaml-language-server` modeline at it.
pub const SCHEMA_PATH: &str = "schema/rolloutpolicy.schema.json";

/// The command that regenerates the checked-in schema.
pub const REGENERATE_COMMAND: &str =
    "cargo run -- policy schema > schema/rolloutpolicy.schema.json";

/// The schema as JSON.
pub fn policy_schema() -> serde_json::Value {
    let schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<RolloutPolicy>();
    schema.to_value()
}

/// The schema as the checked-in file holds it: pretty-printed, with a final newline.
pub fn policy_schema_json() -> String {
    let mut text = serde_json::to_string_pretty(&policy_schema()).unwrap_or_default();
    text.push('\n');
    text
}
