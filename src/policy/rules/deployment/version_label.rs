//! `versionLabel`: the version label (default `app.kubernetes.io/version`) from the image tag.
//!
//! Set on `metadata.labels` and `spec.template.metadata.labels`, never on `spec.selector`
//! (immutable in apps/v1, and a selector that names a version would orphan the old pods), and
//! never on a template label whose key the selector uses: the API server refuses a template its
//! own selector does not match, so such a patch would block the image update.
//!
//! Fill, never fight: a label is added where it is missing, and refreshed only when its value is
//! rollout-guard's own (see [`is_ours`]). A value a person or tool wrote is never rewritten: a
//! declarative client would write it back on the next apply, changing the pod template again
//! (a rollout with the same image, every pod restarted). When it disagrees with the image, the
//! rule warns and names both; `followImage: true` opts in to rewriting it anyway.
//!
//! A template label change rolls out new pods, so on UPDATE template labels are only touched
//! when the request already changes the template: adding a label to an untouched template (a new
//! policy key, an object created before the webhook) would restart every pod for nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::core::admission::Operation;
use serde_json::json;

use crate::policy::config::VersionLabelRule;
use crate::policy::engine::Context;
use crate::policy::finding::{EvalError, Finding, Fix, Severity};
use crate::policy::intent::Intent;
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
    fn prefix(self) -> &'static [&'static str] {
        match self {
            Place::Deployment => &["metadata", "labels"],
            Place::PodTemplate => &["spec", "template", "metadata", "labels"],
        }
    }

    fn path(self, key: &str) -> Vec<String> {
        self.prefix()
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

    fn value<'d>(self, deployment: &'d Deployment, key: &str) -> Option<&'d str> {
        self.labels(deployment)
            .and_then(|l| l.get(key))
            .map(String::as_str)
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
        self.note(place, key, found);
    }

    fn note(&mut self, place: Place, key: &str, found: Option<&str>) {
        self.places.push(match found {
            Some(value) => format!("{key}={value} on {}", place.describe()),
            None => format!("{key} on {}", place.describe()),
        });
    }
}

/// What the image of the policy's container says about the version.
enum Derived {
    /// A version label value.
    Version(String),
    /// The image has neither tag nor digest.
    Untagged(String),
    /// The tag names no version (`latest`, `alpine`, `stable`, `main`, ...).
    NotAVersion { image: String, tag: String },
}

fn derive(deployment: &Deployment, rule: &VersionLabelRule) -> Option<Derived> {
    let container = template::chosen_container(deployment, rule.container.name.as_deref())?;
    let image_ref = container.image.as_deref().unwrap_or("");
    let described = format!("{image_ref:?} of container {}", container.name);
    let parsed = image::parse(image_ref);
    if parsed.digest.is_none() {
        if let Some(tag) = parsed
            .tag
            .filter(|t| !image::is_version_tag(t, &rule.non_version_tags))
        {
            return Some(Derived::NotAVersion {
                image: described,
                tag: tag.to_owned(),
            });
        }
    }
    Some(
        match image::version(image_ref, usize::from(rule.digest_chars)) {
            Some(version) => Derived::Version(version),
            None => Derived::Untagged(described),
        },
    )
}

fn old_version(old: &Deployment, rule: &VersionLabelRule) -> Option<String> {
    match derive(old, rule)? {
        Derived::Version(v) => Some(v),
        _ => None,
    }
}

fn chosen_image<'a>(deployment: &'a Deployment, rule: &VersionLabelRule) -> Option<&'a str> {
    template::chosen_container(deployment, rule.container.name.as_deref())
        .and_then(|c| c.image.as_deref())
}

/// The label keys `spec.selector` uses (matchLabels and matchExpressions).
fn selector_keys(deployment: &Deployment) -> Vec<&str> {
    let Some(selector) = deployment.spec.as_ref().map(|s| &s.selector) else {
        return Vec::new();
    };
    let labels = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str());
    let expressions = selector
        .match_expressions
        .iter()
        .flatten()
        .map(|e| e.key.as_str());
    labels.chain(expressions).collect()
}

/// Whether the label value at `place`/`key` is rollout-guard's own, so refreshing it fights
/// nobody. Read from the request, strongest evidence first:
///
/// 1. The applied configuration (server-side apply's Apply entries, the last-applied annotation)
///    names the label: the user's.
/// 2. The object has managedFields and no entry owns the label: ours. On the API servers the
///    traces come from, fields a mutating webhook adds are owned by no manager (the
///    `kubectl-create/Update` entry lists `f:app` but not the version label rollout-guard
///    added), while a label a client wrote (a Helm chart, `kubectl label`) is owned by it.
/// 3. An UPDATE that carries the value unchanged, with an applied configuration that does not
///    name it, and the value is the version rollout-guard derives from the old image: ours (a
///    newer API server may attribute the webhook's addition to the request's manager).
/// 4. No managedFields at all (offline manifests, `check`): the same comparison with the old
///    object.
///
/// Anything else (a Helm 3 chart's label, a `kubectl label`) is the user's: kept and warned.
fn is_ours(
    intent: &Intent<'_, Deployment>,
    place: Place,
    key: &str,
    current: &str,
    old: Option<&Deployment>,
    old_version: Option<&str>,
) -> bool {
    let mut path: Vec<&str> = place.prefix().to_vec();
    path.push(key);
    if intent.declares(&path) == Some(true) {
        return false;
    }
    let carried_from_old =
        old.is_some_and(|o| place.value(o, key) == Some(current)) && old_version == Some(current);
    match intent.owned(&path) {
        Some(false) => true,
        Some(true) => intent.declares(&path) == Some(false) && carried_from_old,
        None => carried_from_old,
    }
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
    let intent = Intent::of(ctx);
    let old = ctx.old_object.filter(|_| intent.is_update());
    let template_in_play = old.is_none_or(|o| template::template_changed(deployment, o));
    // No containers: the API server rejects the object anyway; nothing to derive.
    let Some(derived) = derive(deployment, rule) else {
        return Ok(Vec::new());
    };
    let version = match derived {
        Derived::Version(version) => version,
        Derived::Untagged(image) => {
            if !template_in_play {
                return Ok(Vec::new());
            }
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
        Derived::NotAVersion { image, tag } => {
            if !template_in_play {
                return Ok(Vec::new());
            }
            // The label is neither added nor refreshed: a label naming `latest` says nothing
            // about what runs, and the next push to the tag would make it lie.
            return Ok(vec![Finding::new(
                RULE,
                "notAVersion",
                Severity::Warn,
                format!(
                    "image {image} has tag {tag:?}, which names no version (it moves with every \
                     push), so the version label is left as it is; pin a version tag (or digest)"
                ),
            )]);
        }
    };

    let old_version = old.and_then(|o| old_version(o, rule));
    let selector = selector_keys(deployment);
    let (mut missing, mut stale, mut mismatch, mut in_selector) = (
        Pending::default(),
        Pending::default(),
        Pending::default(),
        Pending::default(),
    );
    for place in [Place::Deployment, Place::PodTemplate] {
        if place == Place::PodTemplate && !template_in_play {
            continue;
        }
        for key in &rule.label_keys {
            let current = place.value(deployment, key);
            if current == Some(version.as_str()) {
                continue;
            }
            if place == Place::PodTemplate && selector.contains(&key.as_str()) {
                // The selector must keep matching the template: never changed. Said only when
                // the request writes the template (a new version) and the value disagrees.
                if current.is_some() {
                    in_selector.note(place, key, current);
                }
                continue;
            }
            match current {
                None => missing.push(place, key, None, &version),
                Some(current) => {
                    if is_ours(&intent, place, key, current, old, old_version.as_deref()) {
                        stale.push(place, key, Some(current), &version);
                    } else if rule.follow_image {
                        mismatch.push(place, key, Some(current), &version);
                    } else if template_in_play {
                        mismatch.note(place, key, Some(current));
                    }
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
            "version label rollout-guard set earlier still names the old image's version ({}) \
             after the image changed to {source}; it should be {version:?}",
            stale.places.join(", ")
        );
        let finding = Finding::new(RULE, "stale", Severity::Warn, message);
        findings.push(if refresh {
            finding.with_fix(Fix::Routine(stale.edits))
        } else {
            finding
        });
    }
    if !mismatch.places.is_empty() {
        let finding = if rule.follow_image {
            Finding::new(
                RULE,
                "mismatch",
                Severity::Deny,
                format!(
                    "version label differs from image {source} ({}); the policy makes the label \
                     follow the image (followImage), so it must be {version:?} (or left out)",
                    mismatch.places.join(", ")
                ),
            )
            .with_fix(Fix::Override(mismatch.edits))
        } else {
            Finding::new(
                RULE,
                "mismatch",
                Severity::Warn,
                format!(
                    "version label {} was written by you but image {source} is version \
                     {version:?}; kept (rollout-guard does not rewrite labels you chose): update \
                     the label where it is written, or leave it out to have it derived",
                    mismatch.places.join(", ")
                ),
            )
        };
        findings.push(finding);
    }
    if !in_selector.places.is_empty() {
        findings.push(Finding::new(
            RULE,
            "selectorLabel",
            Severity::Warn,
            format!(
                "version label {} is part of spec.selector, so it cannot follow image {source} \
                 ({version:?}): the selector is immutable and must match the template; left \
                 unchanged. Keep version labels out of the selector",
                in_selector.places.join(", ")
            ),
        ));
    }
    Ok(findings)
}
