//! The only place AdmissionReview responses are built.
//!
//! kube-core's `AdmissionResponse` serialises `patch` as an array of bytes (kube-rs issue 1781);
//! the API server's contract is a base64 string, so the response is written here by hand.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;

use crate::policy::engine::{Verdict, MAX_WARNING_CHARS};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    api_version: &'a str,
    kind: &'static str,
    response: Response<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Status {
    code: u16,
    message: String,
    reason: &'static str,
}

/// HTTP-like code for a policy denial.
pub const DENIED_CODE: u16 = 403;
/// Code for a readable review whose object cannot be read as its kind.
pub const INVALID_CODE: u16 = 400;

/// The message a user sees for a denial: every reason, each with the rule that gave it.
pub fn denial_message(kind: &str, verdict: &Verdict) -> String {
    let reasons: Vec<String> = verdict
        .denials
        .iter()
        .map(|d| format!("[{}] {}", d.source, d.message))
        .collect();
    format!("rollout-guard denied this {kind}: {}", reasons.join("; "))
}

/// Serialises the answer to one review.
pub fn build(api_version: &str, uid: &str, kind: &str, verdict: &Verdict) -> Vec<u8> {
    let status = (!verdict.allowed()).then(|| Status {
        code: DENIED_CODE,
        message: denial_message(kind, verdict),
        reason: "Forbidden",
    });
    let patch = (verdict.allowed() && !verdict.patch.is_empty()).then(|| {
        // Serialising plain enums of strings and JSON values cannot fail.
        let json = serde_json::to_vec(&verdict.patch).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    });
    let mut audit = BTreeMap::new();
    if let Some(policy) = &verdict.policy {
        audit.insert("policy", policy.clone());
    }
    if !verdict.rules_run.is_empty() {
        audit.insert("rules", verdict.rules_run.join(","));
    }
    if !verdict.fired.is_empty() {
        audit.insert(
            "findings",
            verdict.fired.iter().cloned().collect::<Vec<_>>().join(","),
        );
    }
    if !verdict.skipped.is_empty() {
        audit.insert("skipped-rules", verdict.skipped.join(","));
    }
    // Report-only findings change nothing in the response: this is where they are recorded.
    let would_patch: std::collections::BTreeSet<String> = verdict
        .findings
        .iter()
        .filter(|f| f.outcome == crate::policy::engine::FindingOutcome::WouldPatch)
        .map(|f| f.source())
        .collect();
    if !would_patch.is_empty() {
        audit.insert(
            "report-only",
            would_patch.into_iter().collect::<Vec<_>>().join(","),
        );
    }
    if let Some(reason) = &verdict.exempt {
        audit.insert("exempt", reason.clone());
    }
    if let Some(cleanup) = verdict.cleanup {
        audit.insert("cleanup", cleanup.to_owned());
    }
    record_break_glass(&mut audit, verdict);
    let envelope = Envelope {
        api_version,
        kind: "AdmissionReview",
        response: Response {
            uid,
            allowed: verdict.allowed(),
            status,
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            warnings: &verdict.warnings,
            audit_annotations: audit,
        },
    };
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// Break-glass overrides in the audit annotations, which the API server writes into its audit
/// log at every level (warnings only reach the client): what was bypassed, by whom, under which
/// grant and why, and what was asked for and refused (`rule.check=reason`).
fn record_break_glass(audit: &mut BTreeMap<&'static str, String>, verdict: &Verdict) {
    use crate::policy::break_glass::Outcome;
    let Some(first) = verdict.break_glass.first() else {
        return;
    };
    let join = |items: Vec<String>| {
        let mut items = items;
        items.dedup();
        items.join(",")
    };
    let bypassed: Vec<String> = verdict
        .break_glass
        .iter()
        .filter(|o| o.bypassed())
        .map(|o| o.source.clone())
        .collect();
    let grants: Vec<String> = verdict
        .break_glass
        .iter()
        .filter_map(|o| match &o.outcome {
            Outcome::Bypassed { grant } => Some(grant.clone()),
            Outcome::Refused(_) => None,
        })
        .collect();
    let refused: Vec<String> = verdict
        .break_glass
        .iter()
        .filter_map(|o| match &o.outcome {
            Outcome::Refused(refusal) => Some(format!("{}={}", o.source, refusal.code())),
            Outcome::Bypassed { .. } => None,
        })
        .collect();
    audit.insert("break-glass-user", first.user.clone());
    if !first.reason.is_empty() {
        audit.insert("break-glass-reason", first.reason.clone());
    }
    if !bypassed.is_empty() {
        audit.insert("break-glass", join(bypassed));
        let mut grants = grants;
        grants.sort();
        audit.insert("break-glass-grant", join(grants));
    }
    if !refused.is_empty() {
        audit.insert("break-glass-refused", join(refused));
    }
}

/// The answer to a review that was readable but whose object was not (uid echoed, denied with
/// 400 so the caller sees why).
pub fn invalid(api_version: &str, uid: &str, message: &str) -> Vec<u8> {
    let envelope = Envelope {
        api_version,
        kind: "AdmissionReview",
        response: Response {
            uid,
            allowed: false,
            status: Some(Status {
                code: INVALID_CODE,
                message: message.chars().take(4 * MAX_WARNING_CHARS).collect(),
                reason: "BadRequest",
            }),
            patch_type: None,
            patch: None,
            warnings: &[],
            audit_annotations: BTreeMap::new(),
        },
    };
    serde_json::to_vec(&envelope).unwrap_or_default()
}
