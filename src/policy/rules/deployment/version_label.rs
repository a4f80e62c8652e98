//! `versionLabel`: the version label (default `app.kubernetes.io/version`) from the image tag.
//!
//! Set on `metadata.labels` and `spec.template.metadata.labels`, never on `spec.selector`
//! (immutable in apps/v1, and a selector that names a version would orphan the old pods).
//! A template label change rolls out new pods, so on UPDATE template labels are only touched when
//! the request already changes the template: adding a label to an untouched template (a new
//! policy key, an object created before the webhook) would restart every pod for nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::core::admission::Operation;
use serde_json::json;

use crate::policy::config::VersionLabelRule;
use crate::policy::engine::Context;
use crate::policy::finding::{EvalError, Finding, Fix, Severity};
use crate::policy::patch::Edit;
use crate::policy::rules::deployment::{image, template};

/// The rule's key under `rules`.
pub const RULE: &str = "versionLabel";

/// Where a label lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Deployment,
    PodTemplate,
}

impl Place {
    fn path(self, key: &str) -> Vec<String> {
        let prefix: &[&str] = match self {
            Place::Deployment => &["metadata", "labels"],
            Place::PodTemplate => &["spec", "template", "metadata", "labels"],
        };
        prefix
            .iter()
            .map(|s| (*s).to_owned())
            .chain([key.to_owned()])
            .collect()
    }

    fn describe(self) -> &'static str {
        match self {
            Place::Deployment => "the Deployment",
            Place::PodTemplate => "the pod template",
        }
    }

    fn labels(self, deployment: &Deployment) -> Option<&BTreeMap<String, String>> {
        match self {
            Place::Deployment => deployment.metadata.labels.as_ref(),
            Place::PodTemplate => deployment
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref()),
        }
    }
}

/// Edits and the places they touch, for one check.
#[derive(Default)]
struct Pending {
    edits: Vec<Edit>,
    places: Vec<String>,
}

impl Pending {
    fn push(&mut self, place: Place, key: &str, found: Option<&str>, version: &str) {
        self.edits.push(Edit::set(place.path(key), json!(version)));
        self.places.push(match found {
            Some(value) => format!("{key}={value} on {}", place.describe()),
            None => format!("{key} on {}", place.describe()),
        });
    }
}

/// The version the policy's container carries, or `Err(image)` when its image has none.
fn version_of(deployment: &Deployment, rule: &VersionLabelRule) -> Option<Result<String, String>> {
    let container = template::chosen_container(deployment, rule.container.name.as_deref())?;
    let image = container.image.as_deref().unwrap_or("");
    Some(
        image::version(image, usize::from(rule.digest_chars))
            .ok_or_else(|| format!("{image:?} of container {}", container.name)),
    )
}

fn chosen_image<'a>(deployment: &'a Deployment, rule: &VersionLabelRule) -> Option<&'a str> {
    template::chosen_container(deployment, rule.container.name.as_deref())
        .and_then(|c| c.image.as_deref())
}

/// Evaluates the rule.
pub fn evaluate(ctx: &Context<'_, Deployment>) -> Result<Vec<Finding>, EvalError> {
    let rule = &ctx.rules().version_label;
    let Some(deployment) = ctx.object else {
        return Ok(Vec::new());
    };
    if !matches!(ctx.operation, Operation::Create | Operation::Update) {
        return Ok(Vec::new());
    }
    // No containers: the API server rejects the object anyway; nothing to derive.
    let Some(derived) = version_of(deployment, rule) else {
        return Ok(Vec::new());
    };
    let version = match derived {
        Ok(version) => version,
        Err(image) => {
            return Ok(vec![Finding::new(
                RULE,
                "untagged",
                Severity::Warn,
                format!(
                    "image {image} has neither tag nor digest, so the version label cannot be \
                     derived and every pull may run different code; pin a tag (or digest)"
                ),
            )]);
        }
    };

    let old = ctx
        .old_object
        .filter(|_| ctx.operation == Operation::Update);
    let old_version = old.and_then(|o| version_of(o, rule)).and_then(Result::ok);
    let image_changed =
        old.is_some_and(|o| chosen_image(o, rule) != chosen_image(deployment, rule));
    let template_in_play = old.is_none_or(|o| template::template_changed(deployment, o));

    let (mut missing, mut stale, mut mismatch) =
        (Pending::default(), Pending::default(), Pending::default());
    for place in [Place::Deployment, Place::PodTemplate] {
        if place == Place::PodTemplate && !template_in_play {
            continue;
        }
        let labels = place.labels(deployment);
        for key in &rule.label_keys {
            match labels.and_then(|l| l.get(key)).map(String::as_str) {
                None => missing.push(place, key, None, &version),
                Some(current) if current == version => {}
                Some(current) => {
                    // Still the old image's version after the image changed: nobody chose it,
                    // it was simply not updated with the image.
                    let is_stale = image_changed && old_version.as_deref() == Some(current);
                    if is_stale {
                        stale.push(place, key, Some(current), &version);
                    } else if rule.follow_image {
                        mismatch.push(place, key, Some(current), &version);
                    }
                    // Otherwise a value the user set on purpose: kept.
                }
            }
        }
    }

    let source = chosen_image(deployment, rule).unwrap_or("");
    let mut findings = Vec::new();
    if !missing.edits.is_empty() {
        findings.push(
            Finding::new(
                RULE,
                "missing",
                Severity::Warn,
                format!(
                    "version label missing ({}); set it to {version:?} from image {source}",
                    missing.places.join(", ")
                ),
            )
            .with_fix(Fix::Routine(missing.edits)),
        );
    }
    if !stale.edits.is_empty() {
        let refresh = rule.refresh_stale || rule.follow_image;
        let message = format!(
            "version label still names the old image's version ({}) after the image changed to \
             {source}; it should be {version:?}",
            stale.places.join(", ")
        );
        let finding = Finding::new(RULE, "stale", Severity::Warn, message);
        findings.push(if refresh {
            finding.with_fix(Fix::Routine(stale.edits))
        } else {
            finding
        });
    }
    if !mismatch.edits.is_empty() {
        findings.push(
            Finding::new(
                RULE,
                "mismatch",
                Severity::Deny,
                format!(
                    "version label differs from image {source} ({}); the policy makes the label \
                     follow the image, so it must be {version:?} (or left out)",
                    mismatch.places.join(", ")
                ),
            )
            .with_fix(Fix::Override(mismatch.edits)),
        );
    }
    Ok(findings)
}
