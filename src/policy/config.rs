//! The policy file format: `RolloutPolicy` documents under `policies/`.
//!
//! These types are the single source of truth for the format: the loader parses into them,
//! `schemars` derives the shipped JSON Schema from them, and the rules read them. Every field
//! carries a doc comment because that comment becomes the schema's description in editors.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only `apiVersion` this build understands.
pub const API_VERSION: &str = "rollout-guard.io/v1alpha1";
/// The only `kind` of document in the policy directory.
pub const KIND: &str = "RolloutPolicy";

/// One policy document. Several may live in the directory; for each object the policy with the
/// highest `spec.priority` whose `match` selects the object's namespace governs it (ties broken by
/// name), so a team file can override the cluster default for its namespaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutPolicy {
    /// Must be `rollout-guard.io/v1alpha1`.
    #[schemars(extend("const" = API_VERSION))]
    pub api_version: String,
    /// Must be `RolloutPolicy`.
    #[schemars(extend("const" = KIND))]
    pub kind: String,
    /// Name (unique across the directory) and free-form annotations.
    pub metadata: PolicyMetadata,
    /// What the policy selects and which rules it applies.
    pub spec: PolicySpec,
}

/// Identifies a policy in messages, metrics and audit annotations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyMetadata {
    /// Unique name of the policy; shown in audit annotations as the policy that decided.
    /// A DNS subdomain: lowercase letters, digits, '-' and '.'.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Free-form notes (owner, ticket, ...). Not interpreted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The body of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    /// Higher wins when several policies select a namespace. Default 0.
    #[serde(default)]
    pub priority: i32,
    /// Which namespaces this policy governs.
    #[serde(default)]
    pub r#match: NamespaceMatch,
    /// Whether, and for which rules, an object may opt out with an annotation.
    #[serde(default)]
    pub opt_out: OptOut,
    /// Break-glass grants: the people (users, groups, service accounts) who may bypass named
    /// rules' denials with the override annotation
    /// (`rollout-guard.io/override: "<rule>[,<rule>...]: <reason>"`), and where. Only the
    /// people a grant names are honoured; every bypass, and every override that is not
    /// honoured, is recorded (warning, audit annotations, metric, log line). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub break_glass: Vec<BreakGlassGrant>,
    /// The rules and their settings. A rule left out runs with its defaults.
    #[serde(default)]
    pub rules: Rules,
}

/// Namespace selection by names and globs (`*` any run of characters, `?` one character).
/// `kube-system` and the webhook's own namespace are never governed, whatever this says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceMatch {
    /// Namespaces (names or globs) the policy applies to. Default: all (`["*"]`).
    #[serde(default = "default_namespaces")]
    #[schemars(inner(regex(pattern = r"^[a-z0-9*?-]+$")))]
    pub namespaces: Vec<String>,
    /// Namespaces (names or globs) excluded even when `namespaces` selects them.
    /// Default: `kube-system`, `kube-public`, `kube-node-lease`.
    #[serde(default = "default_excluded_namespaces")]
    #[schemars(inner(regex(pattern = r"^[a-z0-9*?-]+$")))]
    pub exclude_namespaces: Vec<String>,
}

impl Default for NamespaceMatch {
    fn default() -> Self {
        Self {
            namespaces: default_namespaces(),
            exclude_namespaces: default_excluded_namespaces(),
        }
    }
}

fn default_namespaces() -> Vec<String> {
    vec!["*".to_owned()]
}

fn default_excluded_namespaces() -> Vec<String> {
    ["kube-system", "kube-public", "kube-node-lease"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Per-object opt-out. The object names the rules it skips in the annotation, comma separated
/// (or `*` for all it may skip); only rules listed in `allowedRules` can be skipped. Every skip
/// is recorded in the response's audit annotations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OptOut {
    /// The annotation read on the object. Default `rollout-guard.io/skip-rules`.
    #[serde(default = "default_opt_out_annotation")]
    pub annotation: String,
    /// Rules (by their key under `rules`, e.g. `rollingUpdate`) an object may skip. Default: none.
    #[serde(default)]
    pub allowed_rules: Vec<String>,
}

impl Default for OptOut {
    fn default() -> Self {
        Self {
            annotation: default_opt_out_annotation(),
            allowed_rules: Vec::new(),
        }
    }
}

fn default_opt_out_annotation() -> String {
    "rollout-guard.io/skip-rules".to_owned()
}

/// One break-glass grant: who may bypass which rules' denials, where, and until when. A request
/// is let through only when every one of its denials is covered by a grant that names the
/// requester, selects the namespace and the object, has not expired, and the object's override
/// annotation names the rule (with a reason when `requireReason`). Break-glass never changes
/// patches: what the mutating rules fill in is still filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BreakGlassGrant {
    /// Names the grant in warnings, audit annotations and log lines (unique in the policy).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Rules (`ingressCanary`) or single checks (`ingressCanary.mainRemoved`) whose denials the
    /// grant may bypass; `rule.error` is the rule failing closed (`onError: deny`).
    #[schemars(length(min = 1))]
    pub rules: Vec<String>,
    /// Usernames as the API server authenticates them (`userInfo.username`), exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Groups (`userInfo.groups`), exactly. Groups every requester has
    /// (`system:authenticated`, ...) are refused: they would let anyone bypass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Service accounts as `namespace/name` (the username
    /// `system:serviceaccount:namespace:name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(
        pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$"
    )))]
    pub service_accounts: Vec<String>,
    /// Namespaces where the grant holds (within those the policy governs). Default: all of
    /// them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<BreakGlassNamespaces>,
    /// Only objects whose labels (on DELETE, the stored object's) this selects. Default: every
    /// object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<LabelSelectorSpec>,
    /// Whether the override must give a reason after the rules (`rule: reason`). Default true.
    #[serde(default = "yes")]
    pub require_reason: bool,
    /// When the grant stops being honoured (RFC 3339, e.g. `2026-12-31T00:00:00Z`). Default:
    /// never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub expires: Option<String>,
}

/// The namespaces a break-glass grant holds in: by name (or glob) and/or by the Namespace's
/// labels. Both given: both must hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BreakGlassNamespaces {
    /// Namespace names or globs (`*`, `?`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^[a-z0-9*?-]+$")))]
    pub names: Vec<String>,
    /// Labels the Namespace must have (`kubernetes.io/metadata.name` is always there).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements on the Namespace's labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelRequirement>,
}

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`, both must hold).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorSpec {
    /// Labels the object must have, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelRequirement>,
}

/// One `matchExpressions` requirement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelRequirement {
    /// The label key.
    pub key: String,
    /// How the label's value is compared with `values`.
    pub operator: LabelOperator,
    /// Values for `In` and `NotIn` (at least one); none for `Exists` and `DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A `matchExpressions` operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LabelOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// What a rule does with what it finds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// The rule does not run.
    Off,
    /// Findings become warnings; nothing is changed or denied.
    Warn,
    /// Findings with a fix are fixed by the patch (with a warning when a user's choice is
    /// rewritten); findings without one are warnings.
    Mutate,
    /// As `mutate`, but fixes are only recorded, never applied: each shows as a `would-patch`
    /// finding with the patch it would make (in `check`, `POST /v1/evaluate`, the audit reports
    /// and the `report-only` audit annotation), and the object is admitted unchanged without a
    /// warning for it. Findings without a fix are warnings, as in `mutate`. How a team rolls a
    /// new mutation out safely: watch what it would change, then switch to `mutate`.
    ReportOnly,
    /// Values the user did not choose are still filled in; findings that would harm a rollout
    /// deny the request with an explanation.
    Enforce,
}

/// What a rule does when it cannot evaluate (cluster state not synced yet, unreadable input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FailureMode {
    /// Allow, with a warning saying why the rule could not decide (fail open). Default.
    #[default]
    Allow,
    /// Deny, saying why the rule could not decide (fail closed).
    Deny,
}

/// Per-check mode overrides: the key is a check name (listed in each rule's docs), the value the
/// mode for that one check.
pub type CheckModes = BTreeMap<String, Mode>;

/// Settings every rule has, read through one trait so the engine applies modes in one place.
pub trait RuleSettings {
    /// The rule's mode.
    fn mode(&self) -> Mode;
    /// Per-check overrides of the mode.
    fn checks(&self) -> &CheckModes;
    /// What happens when the rule cannot evaluate.
    fn on_error(&self) -> FailureMode;

    /// The mode for one check: its override, or the rule's mode.
    fn mode_for(&self, check: &str) -> Mode {
        if self.mode() == Mode::Off {
            return Mode::Off;
        }
        self.checks().get(check).copied().unwrap_or(self.mode())
    }
}

macro_rules! rule_settings {
    ($($ty:ty),* $(,)?) => {$(
        impl RuleSettings for $ty {
            fn mode(&self) -> Mode { self.mode }
            fn checks(&self) -> &CheckModes { &self.checks }
            fn on_error(&self) -> FailureMode { self.on_error }
        }
    )*};
}

/// The rules, one section each. Keys are the rule names used in `checks`, `optOut.allowedRules`,
/// messages, metrics and audit annotations.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rules {
    /// Deployments: version label from the image tag.
    #[serde(default)]
    pub version_label: VersionLabelRule,
    /// Deployments: `kubernetes.io/change-cause` that says what changed and who asked.
    #[serde(default)]
    pub change_cause: ChangeCauseRule,
    /// Deployments: rolling-update settings, probes and the Recreate strategy.
    #[serde(default)]
    pub rolling_update: RollingUpdateRule,
    /// Ingresses served by ingress-nginx: canary annotations and the main Ingresses they need.
    #[serde(default)]
    pub ingress_canary: IngressCanaryRule,
    /// Gateway API HTTPRoutes: weighted splits, backend references and A/B matches.
    #[serde(default)]
    pub http_route: HttpRouteRule,
    /// Services: blue/green selector switches must point at a version that runs.
    #[serde(default)]
    pub blue_green: BlueGreenRule,
    /// Deployments: label-based canaries (two Deployments behind one Service) must not fight
    /// over pods and must be reachable.
    #[serde(default)]
    pub deployment_siblings: DeploymentSiblingsRule,
    /// Deployments: an UPDATE whose pod template equals one of the Deployment's ReplicaSets (a
    /// rollback) reaches the controller with that template unchanged, so it reuses the
    /// ReplicaSet instead of rolling out a new one.
    #[serde(default)]
    pub rollback: RollbackRule,
}

/// Which container's image gives the version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerChoice {
    /// Name of the container; when absent (or not found) the first container is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Version label rule. Checks: `missing` (no label yet), `stale` (label no longer matches the
/// image after an image change), `mismatch` (a user-set value differs from the image),
/// `untagged` (the image has neither tag nor digest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionLabelRule {
    /// Mode of the rule. Default `mutate`.
    #[serde(default = "mode_mutate")]
    pub mode: Mode,
    /// Per-check mode overrides.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: CheckModes,
    /// On evaluation errors. Default `allow`.
    #[serde(default)]
    pub on_error: FailureMode,
    /// Label keys to set, on the Deployment and on its pod template (never on the selector).
    /// Default `[app.kubernetes.io/version]`; add e.g. `version` for blue/green Services.
    #[serde(default = "default_version_label_keys")]
    pub label_keys: Vec<String>,
    /// The container whose image tag is the version. Default: the first container.
    #[serde(default)]
    pub container: ContainerChoice,
    /// When true the label always follows the image, replacing a value the user set.
    /// When false (default) a user's value is kept.
    #[serde(default)]
    pub follow_image: bool,
    /// When true (default), a label that still carries the old image's version after the image
    /// changed is refreshed, even when `followImage` is false.
    #[serde(default = "yes")]
    pub refresh_stale: bool,
    /// Hex characters of a digest kept when the image is pinned by digest only
    /// (`sha256-<first N>`). Default 12.
    #[serde(default = "default_digest_chars")]
    #[schemars(range(min = 7, max = 64))]
    pub digest_chars: u8,
}

impl Default for VersionLabelRule {
    fn default() -> Self {
        Self {
            mode: Mode::Mutate,
            checks: CheckModes::new(),
            on_error: FailureMode::Allow,
            label_keys: default_version_label_keys(),
            container: ContainerChoice::default(),
            follow_image: false,
            refresh_stale: true,
            digest_chars: default_digest_chars(),
        }
    }
}

fn default_version_label_keys() -> Vec<String> {
    vec!["app.kubernetes.io/version".to_owned()]
}

fn default_digest_chars() -> u8 {
    12
}

/// Change-cause rule. Checks: `missing` (template changed and no cause given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeCauseRule {
    /// Mode of the rule. Default `mutate`.
    #[serde(default = "mode_mutate")]
    pub mode: Mode,
    /// Per-check mode overrides.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: CheckModes,
    /// On evaluation errors. Default `allow`.
    #[serde(default)]
    pub on_error: FailureMode,
    /// Template of the generated cause. Placeholders: `{change}` (what changed), `{user}`
    /// (requesting user), `{source}` (GitOps application and revision, with a leading
    /// space, or empty). Default `{change} by {user}{source}`.
    #[serde(default = "default_change_cause_format")]
    pub format: String,
    /// Longest cause written, in characters; longer ones are cut with `…`. Default 256.
    #[serde(default = "default_change_cause_max")]
    #[schemars(range(min = 20, max = 1024))]
    pub max_length: u16,
}

impl Default for ChangeCauseRule {
    fn default() -> Self {
        Self {
            mode: Mode::Mutate,
            checks: CheckModes::new(),
            on_error: FailureMode::Allow,
            format: default_change_cause_format(),
            max_length: default_change_cause_max(),
        }
    }
}

fn default_change_cause_format() -> String {
    "{change} by {user}{source}".to_owned()
}

fn default_change_cause_max() -> u16 {
    256
}

/// An int-or-percent value as Kubernetes writes it: `1` or `"25%"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IntOrPercent {
    /// An absolute number of pods.
    Int(i32),
    /// A percentage of replicas, written `"N%"`.
    Percent(#[schemars(regex(pattern = r"^[0-9]+%$"))] String),
}

/// Rolling-update safety rule. Checks: `maxUnavailable`, `maxSurge`, `minReadySeconds`,
/// `progressDeadlineSeconds`, `revisionHistoryLimit`, `allPodsDown` (the effective
/// maxUnavailable takes every pod down at once), `readinessProbe` (a container without one),
/// `recreateStrategy` (Recreate in a namespace listed in `recreateNamespaces`).
///
/// The API server defaults these fields before webhooks see the object, so a field holding the
/// exact Kubernetes default is treated as "not chosen" and set to the target here; a value the
/// user chose that is less safe than the target is handled by the mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdateRule {
    /// Mode of the rule. Default `mutate`.
    #[serde(default = "mode_mutate")]
    pub mode: Mode,
    /// Per-check mode overrides (e.g. `readinessProbe: enforce`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: CheckModes,
    /// On evaluation errors. Default `allow`.
    #[serde(default)]
    pub on_error: FailureMode,
    /// Target maxUnavailable, written where the Deployment has the default (25%). Default 0.
    #[serde(default = "default_max_unavailable")]
    pub max_unavailable: IntOrPercent,
    /// Least safe maxUnavailable a user may choose (compared as effective pods against
    /// replicas). Default `25%`.
    #[serde(default = "default_max_unavailable_limit")]
    pub max_unavailable_limit: IntOrPercent,
    /// Target maxSurge, written where the Deployment has the default (25%). Default `25%`.
    #[serde(default = "default_max_surge")]
    pub max_surge: IntOrPercent,
    /// Target minReadySeconds, written where the Deployment has 0; a smaller non-zero value is
    /// less safe. Default 5.
    #[serde(default = "default_min_ready_seconds")]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: i32,
    /// Target progressDeadlineSeconds, written where the Deployment has the default (600); a
    /// larger value is less safe (a stuck rollout is noticed later). Default 300.
    #[serde(default = "default_progress_deadline_seconds")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: i32,
    /// Target revisionHistoryLimit, written where the Deployment has the default (10). Default 5.
    #[serde(default = "default_revision_history_limit")]
    #[schemars(range(min = 0))]
    pub revision_history_limit: i32,
    /// Smallest revisionHistoryLimit a user may choose; below it `kubectl rollout undo` has
    /// nothing to go back to. Default 2.
    #[serde(default = "default_min_revision_history_limit")]
    #[schemars(range(min = 0))]
    pub min_revision_history_limit: i32,
    /// Namespaces (names or globs) where the Recreate strategy is reported by the
    /// `recreateStrategy` check (it takes every pod down). Default: none.
    #[serde(default)]
    #[schemars(inner(regex(pattern = r"^[a-z0-9*?-]+$")))]
    pub recreate_namespaces: Vec<String>,
}

impl Default for RollingUpdateRule {
    fn default() -> Self {
        Self {
            mode: Mode::Mutate,
            checks: CheckModes::new(),
            on_error: FailureMode::Allow,
            max_unavailable: default_max_unavailable(),
            max_unavailable_limit: default_max_unavailable_limit(),
            max_surge: default_max_surge(),
            min_ready_seconds: default_min_ready_seconds(),
            progress_deadline_seconds: default_progress_deadline_seconds(),
            revision_history_limit: default_revision_history_limit(),
            min_revision_history_limit: default_min_revision_history_limit(),
            recreate_namespaces: Vec::new(),
        }
    }
}

fn default_max_unavailable() -> IntOrPercent {
    IntOrPercent::Int(0)
}
fn default_max_unavailable_limit() -> IntOrPercent {
    IntOrPercent::Percent("25%".to_owned())
}
fn default_max_surge() -> IntOrPercent {
    IntOrPercent::Percent("25%".to_owned())
}
fn default_min_ready_seconds() -> i32 {
    5
}
fn default_progress_deadline_seconds() -> i32 {
    300
}
fn default_revision_history_limit() -> i32 {
    5
}
fn default_min_revision_history_limit() -> i32 {
    2
}

/// ingress-nginx canary rule (`nginx.ingress.kubernetes.io/canary*` annotations). It reads
/// annotations the way ingress-nginx does and looks up the main Ingresses, other canaries and
/// Services in the cluster state. It never patches. It denies only what cannot work whatever
/// the other objects do: its own annotations ingress-nginx rejects or misreads, a canary that
/// attaches to another namespace's main without the policy's leave, and the DELETE of a main
/// that leaves a canary of its namespace (not of the same release) without one. A finding
/// another object's next write can settle (a canary applied before its main, a Service not
/// created yet, another canary on the location) warns, on CREATE and UPDATE alike.
///
/// Checks: `canaryValue` (the `canary` value is not a Go boolean, so the Ingress is not a
/// canary), `notEnabled` (canary-* annotations on an Ingress that is not a canary),
/// `duplicateMain` (`canary: "false"` on a second main for a location, which ingress-nginx's
/// own overlap check lets through), `unknownAnnotation` (a misspelled `canary-*` key),
/// `weight` (`canary-weight` that is not a base-10 integer, negative, or at least the total),
/// `weightTotal` (`canary-weight-total` that is not an integer or below 100), `header` (header
/// value/pattern without `canary-by-header`, values ingress-nginx rejects, a header name that
/// cannot be one, patterns that do not compile), `cookie` (cookie names ingress-nginx rejects),
/// `noRouting` (a canary with neither weight, header nor cookie), `defaultBackend` (a canary
/// with only `spec.defaultBackend`, which only splits the catch-all server), `missingMain` (no
/// main Ingress with the same class, host, path and pathType), `crossNamespace` (the main is in
/// another namespace), `duplicateCanary` (another canary already serves the host/path),
/// `sameService` (the canary routes to the main's own Service), `mainBackendElsewhere` (the
/// canary's Service is a main backend elsewhere, judged when either Ingress is written),
/// `sharedMainService` (the main's Service also serves other host/paths, which the canary
/// splits too), `sessionAffinity` (cookie affinity on the main keeps sticky clients off the
/// canary), `ignoredAnnotations` (annotations ingress-nginx ignores on a canary),
/// `backendService` (a backend Service or port that does not exist), `mainRemoved` (DELETE or
/// UPDATE of a main Ingress a canary depends on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressCanaryRule {
    /// Mode of the rule. Default `enforce` (nothing here can be patched; each finding's
    /// severity decides between deny and warning, and `checks` can lower a check to `warn`).
    #[serde(default = "mode_enforce")]
    pub mode: Mode,
    /// Per-check mode overrides (e.g. `mainRemoved: warn`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: CheckModes,
    /// On evaluation errors (cluster state not synced yet). Default `allow`.
    #[serde(default)]
    pub on_error: FailureMode,
    /// Ingress class names served by an ingress-nginx compatible controller when no
    /// IngressClass object says otherwise. Default `[nginx]`.
    #[serde(default = "default_nginx_class_names")]
    pub class_names: Vec<String>,
    /// `spec.controller` values of IngressClasses whose Ingresses are judged with ingress-nginx's
    /// canary semantics. Default `[k8s.io/ingress-nginx]`, which Traefik's
    /// `kubernetesIngressNGINX` provider also claims by default; add
    /// `higress.io/higress-controller` for Higress.
    #[serde(default = "default_nginx_controllers")]
    pub controllers: Vec<String>,
    /// Pairs of namespaces where a canary may attach to a main Ingress in another namespace.
    /// ingress-nginx merges canaries across namespaces, so without an entry a canary whose main
    /// is in another namespace is denied (`crossNamespace`). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cross_namespace: Vec<CrossNamespaceCanaries>,
}

impl Default for IngressCanaryRule {
    fn default() -> Self {
        Self {
            mode: Mode::Enforce,
            checks: CheckModes::new(),
            on_error: FailureMode::Allow,
            class_names: default_nginx_class_names(),
            controllers: default_nginx_controllers(),
            cross_namespace: Vec::new(),
        }
    }
}

impl IngressCanaryRule {
    /// Whether a canary in `canary_namespace` may attach to a main in `main_namespace`.
    pub fn allows_cross_namespace(&self, canary_namespace: &str, main_namespace: &str) -> bool {
        canary_namespace == main_namespace
            || self.cross_namespace.iter().any(|pair| {
                crate::policy::glob::any_match(&pair.canary_namespaces, canary_namespace)
                    && crate::policy::glob::any_match(&pair.main_namespaces, main_namespace)
            })
    }
}

/// Namespaces whose canary Ingresses may split the traffic of main Ingresses in other
/// namespaces (for example a release team's namespace that runs canaries for product teams).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrossNamespaceCanaries {
    /// Namespaces (names or globs) the canary Ingresses are in.
    #[schemars(length(min = 1), inner(regex(pattern = r"^[a-z0-9*?-]+$")))]
    pub canary_namespaces: Vec<String>,
    /// Namespaces (names or globs) of the main Ingresses they may attach to.
    #[schemars(length(min = 1), inner(regex(pattern = r"^[a-z0-9*?-]+$")))]
    pub main_namespaces: Vec<String>,
}

/// Blue/green Service rule. Checks: `switchToUnavailable` (an UPDATE changes the value of a
/// version label in `spec.selector` and fewer than `minAvailable` of the pods the new selector
/// selects are available; denied when no pod is available, or when the switch lowers the
/// Service's available pods and is not a switch back to the selector it had before; otherwise a
/// warning), `selectsNothing` (a new or changed selector matches no pod template of a
/// Deployment, StatefulSet, DaemonSet or Argo Rollout and no pod; a warning only, since Helm
/// creates Services before their workloads), `podTemplateHash` (the selector uses
/// `pod-template-hash`, which changes with every rollout). Services without a selector
/// (ExternalName, manually managed endpoints) are not checked, nor selector changes of Argo
/// Rollouts' own `rollouts-pod-template-hash` (the Rollouts controller switches those Services).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlueGreenRule {
    /// Mode of the rule. Default `enforce`: a switch to a version nobody runs drops traffic, and
    /// there is nothing to patch (the right selector is the user's choice).
    #[serde(default = "mode_enforce")]
    pub mode: Mode,
    /// Per-check mode overrides.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: CheckModes,
    /// When the cluster state is not synced yet. Default `allow` (with a warning); `deny` fails
    /// closed.
    #[serde(default)]
    pub on_error: FailureMode,
    /// Selector keys that carry the version (a change of their value is a blue/green switch).
    /// Default `[app.kubernetes.io/version, version]`.
    #[serde(default = "default_sibling_version_keys")]
    pub version_label_keys: Vec<String>,
    /// Pods that must be available among those the new selector selects (a number, or a
    /// percentage of the desired pods, rounded up as a PodDisruptionBudget's `minAvailable`;
    /// at least one). Default `75%`: 9 of 10 pass, a rollout still starting its pods does not.
    #[serde(default = "default_min_available")]
    pub min_available: IntOrPercent,
}

impl Default for BlueGreenRule {
    fn default() -> Self {
        Self {
            mode: Mode::Enforce,
            checks: CheckModes::new(),
            on_error: FailureMode::Allow,
            version_label_keys: default_sibling_version_keys(),
            min_available: default_min_available(),
        }
    }
}

fn default_min_available() -> IntOrPercent {
    IntOrPercent::Percent("75%".to_owned())
}

fn default_nginx_class_names() -> Vec<String> {
    vec!["nginx".to_owned()]
}

fn default_nginx_controllers() -> Vec<String> {
    vec!["k8s.io/ingress-nginx".to_owned()]
}

/// Gateway API HTTPRoute rule (`gateway.networking.k8s.io` v1/v1beta1). It never patches, and
/// denies only what the route says by itself; what a Service, ReferenceGrant or Gateway of the
/// same apply can fix is a warning.
///
/// Checks: `weightRange` (a weight outside 0..=1000000), `noTraffic` (every weight 0: deny; no
/// weighted backend resolves yet: warn), `noBackends` (a rule without backendRefs and no filter
/// that answers: the gateway answers 500), `implicitWeight` (a weight of 1, the default for an
/// omitted weight, next to larger weights), `portRequired` (a Service backendRef without a
/// port), `invalidBackend` (a Service or port that does not exist, or a kind the checker cannot
/// resolve: 500 for its share), `crossNamespace` (a Gateway route's backend in another
/// namespace without a ReferenceGrant; mesh routes need none), `duplicateBackend` (the same
/// Service and port twice in one split), `neverMatches` (header, query or path matches that can
/// never match), `regexDialect` (a regular expression RE2-based gateways reject), `cookieMatch`
/// (an Exact match on the whole `Cookie` header), `ignoredMatch` (a repeated header or query
/// name, ignored after the first), `notAttached` (a parentRef no listener of the Gateway takes,
/// or a mesh parent Service that does not exist), `shadowedMatch` (another route attached to a
/// common listener serves the same hostname with an identical match and different backends:
/// the older route takes those requests; deny when the route written is the newer one and the
/// older is in its namespace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteRule {
    /// Mode of the rule. Default `enforce` (nothing here can be patched; each finding's
    /// severity decides between deny and warning, and `checks` can lower a check to `warn`).
    #[serde(default = "mode_enforce")]
    pub mode: Mode,
    /// Per-check mode overrides (e.g. `invalidBackend: off`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: CheckModes,
    /// On evaluation errors (cluster state not synced yet). Default `allow`.
    #[serde(default)]
    pub on_error: FailureMode,
}

impl Default for HttpRouteRule {
    fn default() -> Self {
        Self {
            mode: Mode::Enforce,
            checks: CheckModes::new(),
            on_error: FailureMode::Allow,
        }
    }
}

/// Label-based canary rule (two Deployments behind one Service). Checks: `selectorOverlap`
/// (another Deployment in the namespace selects this one's pods, or this one selects the
/// other's: both controllers adopt and scale each other's pods), `canaryUnreachable` (a
/// Deployment with the same app label as a sibling but another version is not selected by a
/// Service that selects the sibling, so it never receives that Service's traffic; a warning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSiblingsRule {
    /// Mode of the rule. Default `enforce`: overlapping selectors make two controllers fight
    /// over the same pods, and there is nothing to patch (a selector is immutable).
    #[serde(default = "mode_enforce")]
    pub mode: Mode,
    /// Per-check mode overrides.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: CheckModes,
    /// When the cluster state is not synced yet. Default `allow` (with a warning); `deny` fails
    /// closed.
    #[serde(default)]
    pub on_error: FailureMode,
    /// Pod-template label keys naming the application, first present wins.
    /// Default `[app.kubernetes.io/name, app]`.
    #[serde(default = "default_app_label_keys")]
    pub app_label_keys: Vec<String>,
    /// Pod-template label keys naming the version, first present wins.
    /// Default `[app.kubernetes.io/version, version]`.
    #[serde(default = "default_sibling_version_keys")]
    pub version_label_keys: Vec<String>,
}

impl Default for DeploymentSiblingsRule {
    fn default() -> Self {
        Self {
            mode: Mode::Enforce,
            checks: CheckModes::new(),
            on_error: FailureMode::Allow,
            app_label_keys: default_app_label_keys(),
            version_label_keys: default_sibling_version_keys(),
        }
    }
}

fn default_sibling_version_keys() -> Vec<String> {
    vec!["app.kubernetes.io/version".to_owned(), "version".to_owned()]
}

fn default_app_label_keys() -> Vec<String> {
    vec!["app.kubernetes.io/name".to_owned(), "app".to_owned()]
}

fn mode_enforce() -> Mode {
    Mode::Enforce
}

fn mode_mutate() -> Mode {
    Mode::Mutate
}

fn yes() -> bool {
    true
}

/// Rollback rule. Check: `reusesReplicaSet` (the template of an UPDATE, as sent, equals the
/// template of a ReplicaSet the Deployment controls, ignoring `pod-template-hash`: every other
/// rule's edit of `spec.template` is left out, with a warning naming them; edits elsewhere, such
/// as the Deployment's own labels and change-cause, still apply). It never denies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackRule {
    /// Mode of the rule. Default `mutate`: template edits are left out. `warn` only reports
    /// them (the controller then rolls out a new ReplicaSet); `enforce` is the same as `mutate`.
    #[serde(default = "mode_mutate")]
    pub mode: Mode,
    /// Per-check mode overrides.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: CheckModes,
    /// When the store has not synced ReplicaSets and the template changed. Default `allow` (with
    /// a warning; template edits then apply as without this rule); `deny` fails closed.
    #[serde(default)]
    pub on_error: FailureMode,
}

impl Default for RollbackRule {
    fn default() -> Self {
        Self {
            mode: Mode::Mutate,
            checks: CheckModes::new(),
            on_error: FailureMode::Allow,
        }
    }
}

rule_settings!(
    RollbackRule,
    VersionLabelRule,
    ChangeCauseRule,
    RollingUpdateRule,
    IngressCanaryRule,
    HttpRouteRule,
    BlueGreenRule,
    DeploymentSiblingsRule,
);
