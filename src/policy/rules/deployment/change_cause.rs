//! `changeCause`: a `kubernetes.io/change-cause` that says what changed and who asked.
//!
//! The Deployment controller copies this annotation onto the ReplicaSet a rollout creates, and
//! `kubectl rollout history` prints it per revision. Only template changes make revisions, so
//! only they get a cause: scale, status and metadata-only writes leave it alone.
//!
//! Whose cause is it? A cause someone wrote is theirs and is never rewritten: one in the applied
//! configuration (the last-applied annotation, or a server-side apply's `Apply` managedFields
//! entry), one this request sets or changes (`kubectl annotate`, a merge patch, the copy
//! `kubectl rollout undo` takes from the old ReplicaSet), or one that does not read like ours.
//! Only a cause in our own format (the policy's `format`, with a change description only this
//! rule writes) that no applied configuration declares is ours to refresh. Rewriting a manifest's
//! static cause would be undone by the next apply (client-side apply's three-way merge and
//! server-side apply's ownership both re-assert it), after the controller had already copied our
//! text onto the new ReplicaSet: so a user cause the template change leaves behind only warns.
//!
//! A paused Deployment collects template changes until `kubectl rollout resume`; the revision
//! the resume creates gets the cause as it stands then. So while changes are pending (the
//! stored template is not the newest ReplicaSet's, or, when the store has no ReplicaSets of
//! it, the controller reports none of its pods on the stored template), our cause names every
//! change since the last rollout, not only the latest.
//!
//! Deterministic on purpose (no time, no randomness): the API server may call the webhook again
//! with our own output. Then the object carries the cause we wrote, which differs from the stored
//! object's, so it counts as "supplied in this request" and is kept: no second patch.
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::core::admission::Operation;
use serde_json::json;

use crate::policy::config::ChangeCauseRule;
use crate::policy::engine::Context;
use crate::policy::finding::{EvalError, Finding, Fix, Severity};
use crate::policy::objects::TemplateDigest;
use crate::policy::patch::Edit;
use crate::policy::rules::deployment::template;

/// The rule's key under `rules`.
pub const RULE: &str = "changeCause";

/// The annotation `kubectl rollout history` shows.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// Argo CD's annotation tracking method: `<app>:<group>/<kind>:<namespace>/<name>`.
const ARGOCD_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
/// Argo CD's label tracking method (also set by many Helm charts, so trusted only when Argo CD
/// itself makes the request).
const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
const FLUX_KUSTOMIZATION_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
const FLUX_KUSTOMIZATION_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";
const FLUX_HELMRELEASE_NAME: &str = "helm.toolkit.fluxcd.io/name";
const FLUX_HELMRELEASE_NAMESPACE: &str = "helm.toolkit.fluxcd.io/namespace";
const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";
/// `<chart>-<version>`: the closest thing to a revision any of these tools stamps on objects.
/// Argo CD and Flux do not record the Git revision on applied objects (Flux declined to, see
/// fluxcd/kustomize-controller#837), so none is invented here.
const HELM_CHART_LABEL: &str = "helm.sh/chart";

fn annotation<'a>(deployment: &'a Deployment, key: &str) -> Option<&'a str> {
    deployment
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn label<'a>(deployment: &'a Deployment, key: &str) -> Option<&'a str> {
    deployment
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The GitOps application (and revision, where the object carries one) that manages the object,
/// as ` (argocd app shop)` etc., or empty.
pub fn gitops_source(deployment: &Deployment, username: &str) -> String {
    let requested_by_argocd = username.contains("argocd");
    if let Some(app) = annotation(deployment, ARGOCD_TRACKING_ID)
        .and_then(|id| id.split(':').next())
        .filter(|app| !app.is_empty())
    {
        return format!(" (argocd app {app})");
    }
    if let Some(name) = label(deployment, FLUX_KUSTOMIZATION_NAME) {
        let namespace = label(deployment, FLUX_KUSTOMIZATION_NAMESPACE).unwrap_or("?");
        return format!(" (flux kustomization {namespace}/{name})");
    }
    if let Some(name) = label(deployment, FLUX_HELMRELEASE_NAME) {
        let namespace = label(deployment, FLUX_HELMRELEASE_NAMESPACE).unwrap_or("?");
        let chart = label(deployment, HELM_CHART_LABEL)
            .map(|c| format!(", chart {c}"))
            .unwrap_or_default();
        return format!(" (flux helmrelease {namespace}/{name}{chart})");
    }
    if let Some(release) = annotation(deployment, HELM_RELEASE_NAME).filter(|r| !r.is_empty()) {
        let chart = label(deployment, HELM_CHART_LABEL)
            .map(|c| format!(", chart {c}"))
            .unwrap_or_default();
        return format!(" (helm release {release}{chart})");
    }
    if requested_by_argocd {
        if let Some(app) = label(deployment, INSTANCE_LABEL) {
            return format!(" (argocd app {app})");
        }
    }
    String::new()
}

/// The annotation client-side `kubectl apply` (and Argo CD) keep the applied manifest in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// How every change description this rule writes begins. With the policy's format around it,
/// this is what tells our causes from a person's ("hotfix CVE-1 (ticket OPS-7)").
const OWN_CHANGE_PREFIXES: &[&str] = &[
    "created",
    "image ",
    "images ",
    "container ",
    "env changed",
    "resources changed",
    "rollout restart",
    "pod template changed",
];

/// Parts of a description that list the containers or fields they concern.
const LISTED_LEADS: &[&str] = &["env changed", "resources changed", "pod template changed"];

/// Joins the parts of a change description.
const PART_SEPARATOR: &str = "; ";

/// The placeholders `format` knows.
const PLACEHOLDERS: &[&str] = &["change", "user", "source"];

/// One part of a change description.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// `image CONTAINER: FROM → TO`.
    Image {
        container: String,
        from: String,
        to: String,
    },
    /// `LEAD (item, item)`: env, resources, other template fields.
    Listed {
        lead: &'static str,
        items: Vec<String>,
    },
    /// Anything else, as written (`rollout restart`, `container x added`).
    Text(String),
}

impl Part {
    /// Reads one part back from a description we wrote (also in its shortened forms).
    fn parse(text: &str) -> Part {
        if let Some((container, rest)) = text
            .strip_prefix("image ")
            .and_then(|rest| rest.split_once(" → "))
        {
            let (container, from) = container.split_once(": ").unwrap_or((container, ""));
            return Part::Image {
                container: container.to_owned(),
                from: from.to_owned(),
                to: rest.to_owned(),
            };
        }
        for lead in LISTED_LEADS {
            if let Some(items) = text
                .strip_prefix(lead)
                .and_then(|rest| rest.strip_prefix(" ("))
                .and_then(|rest| rest.strip_suffix(')'))
            {
                return Part::Listed {
                    lead,
                    items: items.split(", ").map(str::to_owned).collect(),
                };
            }
        }
        Part::Text(text.to_owned())
    }

    /// The part at a level of detail: 0 in full, 1 without the images replaced, 2 with the new
    /// image as its last path segment (the tag and digest stay: they are the point).
    fn show(&self, level: u8) -> String {
        match self {
            Part::Image {
                container,
                from,
                to,
            } => match level {
                0 if !from.is_empty() => format!("image {container}: {from} → {to}"),
                0 | 1 => format!("image {container} → {to}"),
                _ => format!("image {container} → {}", short_image(to)),
            },
            Part::Listed { lead, items } => format!("{lead} ({})", items.join(", ")),
            Part::Text(text) => text.clone(),
        }
    }
}

/// `registry.example.com/shop/web:1.4.3` → `web:1.4.3` (digests keep their algorithm and the
/// first 12 hex digits, as `docker images` shows them).
fn short_image(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match digest {
        Some(digest) => {
            let short: String = digest.chars().take("sha256:".len() + 12).collect();
            format!("{last}@{short}")
        }
        None => last.to_owned(),
    }
}

/// The parts describing a template change.
fn parts_of(diff: &template::TemplateDiff) -> Vec<Part> {
    let mut parts: Vec<Part> = diff
        .images
        .iter()
        .map(|i| Part::parse(&format!("image {i}")))
        .collect();
    parts.extend(
        diff.added
            .iter()
            .map(|c| Part::Text(format!("container {c} added"))),
    );
    parts.extend(
        diff.removed
            .iter()
            .map(|c| Part::Text(format!("container {c} removed"))),
    );
    let listed = [
        ("env changed", diff.env.clone()),
        ("resources changed", diff.resources.clone()),
        ("pod template changed", diff.other.iter().cloned().collect()),
    ];
    for (lead, items) in listed {
        if !items.is_empty() {
            parts.push(Part::Listed { lead, items });
        }
    }
    if diff.restart {
        parts.push(Part::Text("rollout restart".to_owned()));
    }
    parts
}

/// The changes since the last rollout: `earlier` (what our cause already said) then `later`.
/// An image changed twice counts once, from the first old image to the last new one (and not
/// at all when it is back where it started); lists are joined; repeated texts kept once.
fn merge_parts(earlier: Vec<Part>, later: Vec<Part>) -> Vec<Part> {
    let mut merged = earlier;
    for part in later {
        let same = merged.iter().position(|have| match (have, &part) {
            (Part::Image { container: a, .. }, Part::Image { container: b, .. }) => a == b,
            (Part::Listed { lead: a, .. }, Part::Listed { lead: b, .. }) => a == b,
            (a, b) => a == b,
        });
        match (same, part) {
            (None, part) => merged.push(part),
            (Some(at), Part::Image { to, .. }) => {
                if let Part::Image { from, to: have, .. } = &mut merged[at] {
                    if *from == to {
                        merged.remove(at);
                    } else {
                        *have = to;
                    }
                }
            }
            (Some(at), Part::Listed { items, .. }) => {
                if let Part::Listed { items: have, .. } = &mut merged[at] {
                    for item in items {
                        if !have.contains(&item) {
                            have.push(item);
                        }
                    }
                }
            }
            (Some(_), Part::Text(_)) => {}
        }
    }
    merged
}

fn describe(parts: &[Part], level: u8) -> String {
    let mut shown: Vec<String> = Vec::new();
    let mut folded = false;
    if level >= 4 {
        // Last before a cut: only the new images, as `web:1.5.0`.
        let images: Vec<String> = parts
            .iter()
            .filter_map(|part| match part {
                Part::Image { to, .. } => Some(short_image(to)),
                _ => None,
            })
            .collect();
        if !images.is_empty() {
            shown.push(format!("images {}", images.join(", ")));
        }
        if images.len() < parts.len() {
            shown.push("…".to_owned());
        }
        return shown.join(PART_SEPARATOR);
    }
    for part in parts {
        if level >= 3 && !matches!(part, Part::Image { .. }) {
            // Least telling first to go: what else changed, once the images alone fill the line.
            folded = true;
            continue;
        }
        shown.push(part.show(level));
    }
    if folded {
        shown.push("…".to_owned());
    }
    shown.join(PART_SEPARATOR)
}

/// Fills the policy's format in one pass (a placeholder inside a substituted value stays as
/// written) and flattens it to one line.
fn fill(format: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let replaced = after.find('}').and_then(|close| {
            let name = &after[1..close];
            values.get(name).map(|value| (value, close))
        });
        match replaced {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    one_line(&out)
}

fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    flat.trim().to_owned()
}

/// Cuts `text` to `max_length` characters in its middle with `…`: the start (what changed
/// first) and the end (who, from where) both stay.
fn cut_middle(text: &str, max_length: usize) -> String {
    let max_length = max_length.max(1);
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= max_length {
        return text.to_owned();
    }
    let keep = max_length - 1;
    let head = keep / 2;
    let tail = keep - head;
    let mut cut: String = chars[..head].iter().collect();
    cut.push('…');
    cut.extend(&chars[chars.len() - tail..]);
    cut
}

/// Fills the policy's format, flattens it to one line and cuts it in the middle to
/// `max_length` characters.
pub fn render(format: &str, values: &BTreeMap<&str, String>, max_length: usize) -> String {
    cut_middle(&fill(format, values), max_length)
}

/// The cause for `parts`, within `max_length`: shortened in the description first (old images,
/// registries, the non-image parts, then all but the new images' last path segments), so the
/// new tags and who asked stay; only a line that is still too long is cut in its middle.
fn render_cause(
    format: &str,
    parts: &[Part],
    user: &str,
    source: &str,
    max_length: usize,
) -> String {
    let values = |change: String| {
        BTreeMap::from([
            ("change", change),
            ("user", user.to_owned()),
            ("source", source.to_owned()),
        ])
    };
    for level in 0..=4 {
        let line = fill(format, &values(describe(parts, level)));
        if line.chars().count() <= max_length {
            return line;
        }
    }
    let change = describe(parts, 4);
    // What the rest of the line takes (measured with the change in place: `fill` trims).
    let whole = fill(format, &values(change.clone())).chars().count();
    let fixed = whole.saturating_sub(change.chars().count());
    let budget = max_length.saturating_sub(fixed);
    if budget >= 2 {
        let line = fill(format, &values(cut_middle(&change, budget)));
        if line.chars().count() <= max_length {
            return line;
        }
    }
    render(format, &values(change), max_length)
}

/// A cause in the policy's format, read back: the parts its placeholders matched.
struct OwnFormat {
    pattern: Option<regex::Regex>,
}

/// The parts of a cause in our format.
struct ParsedCause {
    change: Option<String>,
    user: Option<String>,
}

impl OwnFormat {
    fn new(format: &str) -> Self {
        let format = one_line(format);
        let mut pattern = String::from("^");
        let mut rest = format.as_str();
        while let Some(open) = rest.find('{') {
            pattern.push_str(&regex::escape(&rest[..open]));
            let after = &rest[open..];
            let known = after
                .find('}')
                .map(|close| (&after[1..close], close))
                .filter(|(name, _)| PLACEHOLDERS.contains(name));
            match known {
                Some((name, close)) => {
                    pattern.push_str(match name {
                        "change" => "(?P<change>.+?)",
                        "user" => "(?P<user>.+?)",
                        _ => r"(?: \((?:argocd app|flux kustomization|flux helmrelease|helm release) [^)]*\))?",
                    });
                    rest = &after[close + 1..];
                }
                None => {
                    pattern.push_str(r"\{");
                    rest = &after[1..];
                }
            }
        }
        pattern.push_str(&regex::escape(rest));
        pattern.push('$');
        // A pattern from a valid format always compiles; a failure only means no cause is ours.
        Self {
            pattern: regex::Regex::new(&pattern).ok(),
        }
    }

    fn parse(&self, cause: &str) -> Option<ParsedCause> {
        let captures = self.pattern.as_ref()?.captures(cause)?;
        let group = |name: &str| captures.name(name).map(|m| m.as_str().to_owned());
        let change = group("change");
        if let Some(change) = &change {
            if !OWN_CHANGE_PREFIXES.iter().any(|p| change.starts_with(p)) {
                return None;
            }
        }
        Some(ParsedCause {
            change,
            user: group("user"),
        })
    }
}

/// The format every cause was written in before a policy chose its own.
const DEFAULT_FORMAT: &str = "{change} by {user}{source}";

/// `cause` read as ours: in the policy's format, or in the default one (a policy that changes
/// its format still recognises the causes written before the change).
fn own_cause(format: &str, cause: &str) -> Option<ParsedCause> {
    OwnFormat::new(format).parse(cause).or_else(|| {
        (format != DEFAULT_FORMAT)
            .then(|| OwnFormat::new(DEFAULT_FORMAT).parse(cause))
            .flatten()
    })
}

/// Whether the applied configuration (a server-side apply's `Apply` managedFields, or the
/// last-applied annotation) declares the change-cause: then a person wrote it in a manifest,
/// whatever it looks like. On 1.20 fields a webhook adds are owned by no manager, and later
/// servers give them to the request's `Update` entry, never to an `Apply` one.
fn declared_in_applied_configuration(deployment: &Deployment) -> bool {
    let by_apply = deployment
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.operation.as_deref() == Some("Apply"))
        .filter_map(|entry| entry.fields_v1.as_ref())
        .any(|fields| {
            fields.0["f:metadata"]["f:annotations"]
                .get(format!("f:{CHANGE_CAUSE}"))
                .is_some()
        });
    by_apply
        || annotation(deployment, LAST_APPLIED)
            .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
            .is_some_and(|applied| applied["metadata"]["annotations"][CHANGE_CAUSE].is_string())
}

/// Whether the stored Deployment holds template changes no rollout has picked up yet: it is
/// paused and its template is not the one its newest ReplicaSet runs. The store's ReplicaSets
/// answer that when it has the Deployment's; otherwise the controller's status does (see
/// [`status_says_pending`]).
fn changes_pending(ctx: &Context<'_, Deployment>, old: &Deployment) -> bool {
    let Some(spec) = old.spec.as_ref().filter(|s| s.paused == Some(true)) else {
        return false;
    };
    let name = old.metadata.name.as_deref().unwrap_or(ctx.name);
    let sets = ctx.view.replica_sets_of(ctx.namespace, name);
    match sets.iter().max_by_key(|set| set.revision) {
        Some(newest) => TemplateDigest::of(&spec.template) != newest.template,
        None => status_says_pending(old),
    }
}

/// The controller's word on a paused Deployment: having seen its latest generation, it reports
/// that none of its pods run the stored template. (A Deployment scaled to zero, or whose status
/// lags, cannot tell: then the cause describes the latest change only, as for an unpaused one.)
fn status_says_pending(old: &Deployment) -> bool {
    let paused = old.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let Some(status) = old.status.as_ref() else {
        return false;
    };
    let observed = status.observed_generation.is_some()
        && status.observed_generation == old.metadata.generation;
    paused && observed && status.updated_replicas.unwrap_or(0) < status.replicas.unwrap_or(0)
}

/// What the rule does with this request's cause.
#[derive(Debug, PartialEq)]
enum Decision {
    /// Write this cause (ours to write: there is none, or the one there is ours).
    Write(String),
    /// The template changes but a cause someone wrote does not: keep it, say so.
    Repeated { cause: String, declared: bool },
}

fn describe_create(deployment: &Deployment) -> Vec<Part> {
    let images: Vec<String> = template::containers(deployment)
        .iter()
        .map(|c| format!("{}: {}", c.name, c.image.as_deref().unwrap_or("?")))
        .collect();
    let text = if images.is_empty() {
        "created".to_owned()
    } else {
        format!("created ({})", images.join(", "))
    };
    vec![Part::Text(text)]
}

/// What this request's cause should be, or `None` when the rule leaves it alone.
fn decide_cause(ctx: &Context<'_, Deployment>, rule: &ChangeCauseRule) -> Option<Decision> {
    let deployment = ctx.object?;
    let current = annotation(deployment, CHANGE_CAUSE).filter(|c| !c.trim().is_empty());
    let user = ctx
        .user
        .username
        .as_deref()
        .filter(|u| !u.is_empty())
        .unwrap_or("unknown user");
    let mut users = user.to_owned();
    let parts = match ctx.operation {
        Operation::Create => {
            if current.is_some() {
                return None;
            }
            describe_create(deployment)
        }
        Operation::Update => {
            let old = ctx.old_object?;
            let diff = template::diff(old, deployment, &ctx.rules().version_label.label_keys);
            if diff.is_empty() {
                // Scale-only, status-only or metadata-only: not a new revision.
                return None;
            }
            // Supplied in this request (`kubectl annotate`, a merge patch, the copy `kubectl
            // rollout undo` takes from the old ReplicaSet, or our own earlier output).
            if current.is_some() && current != annotation(old, CHANGE_CAUSE) {
                return None;
            }
            let mut parts = parts_of(&diff);
            if let Some(cause) = current {
                let declared = declared_in_applied_configuration(deployment);
                let own = own_cause(&rule.format, cause).filter(|_| !declared);
                let Some(own) = own else {
                    return Some(Decision::Repeated {
                        cause: cause.to_owned(),
                        declared,
                    });
                };
                if changes_pending(ctx, old) {
                    let earlier = own
                        .change
                        .as_deref()
                        .map(|change| change.split(PART_SEPARATOR).map(Part::parse).collect())
                        .unwrap_or_default();
                    parts = merge_parts(earlier, parts);
                    if let Some(earlier_users) =
                        own.user.filter(|u| u.split(", ").all(|u| u != user))
                    {
                        users = format!("{earlier_users}, {user}");
                    }
                }
            }
            parts
        }
        _ => return None,
    };
    let source = gitops_source(deployment, user);
    let cause = render_cause(
        &rule.format,
        &parts,
        &users,
        &source,
        usize::from(rule.max_length),
    );
    (current != Some(cause.as_str())).then_some(Decision::Write(cause))
}

/// Evaluates the rule.
pub fn evaluate(ctx: &Context<'_, Deployment>) -> Result<Vec<Finding>, EvalError> {
    let rule = &ctx.rules().change_cause;
    let finding = match decide_cause(ctx, rule) {
        None => return Ok(Vec::new()),
        Some(Decision::Write(cause)) => {
            let message = format!("no change-cause given for this rollout; would record {cause:?}");
            Finding::new(RULE, "missing", Severity::Warn, message).with_fix(Fix::Routine(vec![
                Edit::set(["metadata", "annotations", CHANGE_CAUSE], json!(cause)),
            ]))
        }
        Some(Decision::Repeated { cause, declared }) => {
            let whose = if declared {
                "it is in the applied manifest"
            } else {
                "it was not written by rollout-guard"
            };
            let message = format!(
                "{CHANGE_CAUSE} kept ({whose}): the pod template changes but the cause does \
                 not, so the new revision's history repeats it; update it, or leave it out of \
                 the manifest to have each rollout described: {cause:?}"
            );
            Finding::new(RULE, "repeated", Severity::Warn, message)
        }
    };
    Ok(vec![finding])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_bounded_line() {
        let values = BTreeMap::from([
            ("change", "image web: a → b".to_owned()),
            ("user", "alice\n{change}".to_owned()),
            ("source", String::new()),
        ]);
        let cases = [
            (
                "{change} by {user}{source}",
                256,
                "image web: a → b by alice {change}",
            ),
            // Cut in the middle: the start of the change and the end of the line both stay.
            ("{change} by {user}", 10, "imag…ange}"),
            ("{unknown} {change}", 256, "{unknown} image web: a → b"),
            ("{", 256, "{"),
        ];
        for (format, max, expected) in cases {
            assert_eq!(render(format, &values, max), expected, "{format}");
            assert!(render(format, &values, max).chars().count() <= max);
        }
    }

    #[test]
    fn names_gitops_sources() {
        let with = |labels: serde_json::Value, annotations: serde_json::Value| -> Deployment {
            serde_json::from_value(json!({
                "metadata": {"name": "web", "labels": labels, "annotations": annotations}
            }))
            .expect("deployment")
        };
        let argo_sa = "system:serviceaccount:argocd:argocd-application-controller";
        let cases = [
            (
                with(
                    json!({}),
                    json!({ARGOCD_TRACKING_ID: "shop:apps/Deployment:prod/web"}),
                ),
                "alice",
                " (argocd app shop)",
            ),
            (
                with(json!({INSTANCE_LABEL: "shop"}), json!({})),
                argo_sa,
                " (argocd app shop)",
            ),
            // The instance label alone is set by many charts: not Argo CD's unless Argo CD asks.
            (
                with(json!({INSTANCE_LABEL: "shop"}), json!({})),
                "alice",
                "",
            ),
            (
                with(
                    json!({FLUX_KUSTOMIZATION_NAME: "apps", FLUX_KUSTOMIZATION_NAMESPACE: "flux-system"}),
                    json!({}),
                ),
                "system:serviceaccount:flux-system:kustomize-controller",
                " (flux kustomization flux-system/apps)",
            ),
            (
                with(
                    json!({FLUX_HELMRELEASE_NAME: "web", FLUX_HELMRELEASE_NAMESPACE: "prod", HELM_CHART_LABEL: "web-1.2.3"}),
                    json!({HELM_RELEASE_NAME: "web"}),
                ),
                "system:serviceaccount:flux-system:helm-controller",
                " (flux helmrelease prod/web, chart web-1.2.3)",
            ),
            (
                with(
                    json!({HELM_CHART_LABEL: "web-1.2.3"}),
                    json!({HELM_RELEASE_NAME: "web"}),
                ),
                "bob",
                " (helm release web, chart web-1.2.3)",
            ),
            (with(json!({}), json!({})), "bob", ""),
        ];
        for (deployment, user, expected) in cases {
            assert_eq!(gitops_source(&deployment, user), expected, "{user}");
        }
    }

    fn image(container: &str, from: &str, to: &str) -> Part {
        Part::Image {
            container: container.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
        }
    }

    #[test]
    fn tells_own_causes_from_written_ones() {
        let default = OwnFormat::new("{change} by {user}{source}");
        let custom = OwnFormat::new("{user}: {change} [rollout-guard]");
        let cases = [
            (
                &default,
                "image app: nginx:1.25.3 → nginx:1.26.0 by admin",
                true,
            ),
            (&default, "created (app: nginx:1.25.3) by admin", true),
            (
                &default,
                "env changed (app) by alice (argocd app shop)",
                true,
            ),
            (&default, "image app → web:1.5.0; … by alice", true),
            // A person's words, even with " by " in them.
            (&default, "hotfix CVE-1 (ticket OPS-7)", false),
            (&default, "deploy v2 by alice", false),
            (&default, "", false),
            (&custom, "alice: image web: a → b [rollout-guard]", true),
            (&custom, "image web: a → b by alice", false),
        ];
        for (format, cause, own) in cases {
            assert_eq!(format.parse(cause).is_some(), own, "{cause:?}");
        }
        let parsed = default
            .parse("image app: a → b; env changed (app) by alice (helm release web)")
            .expect("own");
        assert_eq!(
            parsed.change.as_deref(),
            Some("image app: a → b; env changed (app)")
        );
        assert_eq!(parsed.user.as_deref(), Some("alice"));
    }

    #[test]
    fn parts_read_back_what_they_show() {
        let parts = [
            image("app", "nginx:1.25.3", "nginx:1.26.0"),
            image("app", "", "nginx:1.26.0"),
            Part::Listed {
                lead: "env changed",
                items: vec!["app".into(), "side".into()],
            },
            Part::Text("rollout restart".into()),
        ];
        for part in parts {
            assert_eq!(Part::parse(&part.show(0)), part);
        }
    }

    #[test]
    fn merges_the_changes_since_the_last_rollout() {
        let env = |items: &[&str]| Part::Listed {
            lead: "env changed",
            items: items.iter().map(|i| i.to_string()).collect(),
        };
        let cases = [
            // Pause, set image, set env: the revision names both.
            (
                vec![image("app", "a:1", "a:2")],
                vec![env(&["app"])],
                vec![image("app", "a:1", "a:2"), env(&["app"])],
            ),
            // The same image changed twice: from the first old one to the last new one.
            (
                vec![image("app", "a:1", "a:2")],
                vec![image("app", "a:2", "a:3")],
                vec![image("app", "a:1", "a:3")],
            ),
            // Changed and changed back: nothing left to say about that image.
            (
                vec![image("app", "a:1", "a:2"), env(&["app"])],
                vec![image("app", "a:2", "a:1")],
                vec![env(&["app"])],
            ),
            (
                vec![env(&["app"]), Part::Text("rollout restart".into())],
                vec![env(&["side"]), Part::Text("rollout restart".into())],
                vec![env(&["app", "side"]), Part::Text("rollout restart".into())],
            ),
        ];
        for (earlier, later, expected) in cases {
            assert_eq!(
                merge_parts(earlier.clone(), later.clone()),
                expected,
                "{earlier:?} + {later:?}"
            );
        }
    }

    #[test]
    fn shortens_keeping_new_tags_and_who() {
        let registry = "registry.example.com/platform/team";
        let parts: Vec<Part> = ["api", "worker", "sidecar"]
            .iter()
            .map(|c| {
                image(
                    c,
                    &format!("{registry}/{c}:1.4.2"),
                    &format!("{registry}/{c}:1.5.0"),
                )
            })
            .chain([Part::Listed {
                lead: "env changed",
                items: vec!["api".into(), "worker".into()],
            }])
            .collect();
        let user = "system:serviceaccount:argocd:argocd-application-controller";
        let source = " (argocd app shop)";
        for max in [256, 200, 160, 130] {
            let cause = render_cause("{change} by {user}{source}", &parts, user, source, max);
            assert!(cause.chars().count() <= max, "{max}: {cause}");
            assert!(
                cause.ends_with(&format!("by {user}{source}")),
                "{max}: {cause}"
            );
            for c in ["api", "worker", "sidecar"] {
                assert!(cause.contains(&format!("{c}:1.5.0")), "{max}: {cause}");
            }
        }
        // Room for less than the new images: the description is cut, never who asked.
        let cut = render_cause("{change} by {user}{source}", &parts, user, source, 100);
        assert_eq!(cut.chars().count(), 100, "{cut}");
        assert!(cut.ends_with(&format!("by {user}{source}")), "{cut}");
        // Fits: in full.
        let full = render_cause("{change} by {user}", &parts[..1], "alice", "", 256);
        assert_eq!(
            full,
            format!("image api: {registry}/api:1.4.2 → {registry}/api:1.5.0 by alice")
        );
        // Too short for anything but a cut: still within bounds, still ends with who.
        let tiny = render_cause("{change} by {user}", &parts, "alice", "", 20);
        assert_eq!(tiny.chars().count(), 20, "{tiny}");
        assert!(tiny.ends_with("by alice"), "{tiny}");
    }

    #[test]
    fn reads_the_applied_configuration() {
        let with = |metadata: serde_json::Value| -> Deployment {
            serde_json::from_value(json!({ "metadata": metadata })).expect("deployment")
        };
        let cause_fields =
            json!({"f:metadata": {"f:annotations": {"f:kubernetes.io/change-cause": {}}}});
        let cases = [
            (json!({"name": "web"}), false),
            (
                json!({"managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": cause_fields}]}),
                true,
            ),
            // An Update manager owns whatever its write set, our own patch included.
            (
                json!({"managedFields": [{"manager": "kubectl-set", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": cause_fields}]}),
                false,
            ),
            (
                json!({"annotations": {LAST_APPLIED: r#"{"metadata":{"annotations":{"kubernetes.io/change-cause":"v2"}}}"#}}),
                true,
            ),
            (
                json!({"annotations": {LAST_APPLIED: r#"{"metadata":{"name":"web"}}"#}}),
                false,
            ),
            (json!({"annotations": {LAST_APPLIED: "not json"}}), false),
        ];
        for (metadata, declared) in cases {
            assert_eq!(
                declared_in_applied_configuration(&with(metadata.clone())),
                declared,
                "{metadata}"
            );
        }
    }

    #[test]
    fn pending_changes_come_from_the_controllers_status() {
        let with = |paused: bool, generation: i64, status: serde_json::Value| -> Deployment {
            serde_json::from_value(json!({
                "metadata": {"name": "web", "generation": generation},
                "spec": {"paused": paused, "selector": {}, "template": {}},
                "status": status,
            }))
            .expect("deployment")
        };
        let cases = [
            // Just paused: every pod runs the stored template.
            (
                with(
                    true,
                    2,
                    json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2}),
                ),
                false,
            ),
            // Paused after a template change: none does.
            (
                with(true, 3, json!({"observedGeneration": 3, "replicas": 2})),
                true,
            ),
            // Not paused: the change rolled out at once.
            (
                with(false, 3, json!({"observedGeneration": 3, "replicas": 2})),
                false,
            ),
            // The controller has not seen the latest generation: cannot tell.
            (
                with(true, 4, json!({"observedGeneration": 3, "replicas": 2})),
                false,
            ),
        ];
        for (deployment, pending) in cases {
            assert_eq!(
                status_says_pending(&deployment),
                pending,
                "{:?}",
                deployment.status
            );
        }
    }
}
