//! Leader election for the live audit with a `coordination.k8s.io/v1` Lease: one replica at a
//! time lists the cluster and writes reports, so two replicas never fight over the same report
//! objects and the API server is listed once per period, not once per pod.
//!
//! The protocol is client-go's `leaderelection` package with a `LeaseLock`:
//! - a lease nobody holds (absent, or `holderIdentity` empty after a release) is taken at once;
//! - a lease held by another replica is taken only once its record (holder, renew time,
//!   resourceVersion) has not changed for `leaseDurationSeconds` **of our own clock**, counted
//!   from when we first saw that record. Comparing the holder's `renewTime` with our wall clock
//!   would hand the lease over early (or never) when the two nodes' clocks disagree; the local
//!   observation only needs both clocks to run at the same rate;
//! - every write is an update carrying the resourceVersion we read (optimistic concurrency):
//!   when two replicas race, the API server accepts one and answers the other 409 Conflict, which
//!   is not an error but a lost race, tried again after the retry period;
//! - the holder renews every retry period and steps down when it has not managed to renew for
//!   the renew deadline (shorter than the lease duration, so it stops before anyone else may
//!   take over);
//! - on shutdown the holder releases the lease (empty holder, 1 s duration), so the other
//!   replica takes over on its next retry instead of waiting out the lease.
//!
//! RBAC: `get`, `create` and `update` on `leases` (coordination.k8s.io) in the lease's
//! namespace (the chart's Role, only when the audit is enabled).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// Timing and identity of the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// Namespace of the Lease (the release namespace).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// Who we are in `holderIdentity` (the pod name: unique among replicas, and what an operator
    /// looks for in `kubectl get lease`).
    pub identity: String,
    /// How long a lease holds without renewal (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How long the holder keeps leading while renewals fail before it steps down.
    pub renew_deadline: Duration,
    /// How often a candidate tries to acquire and the holder renews.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// client-go's defaults (15 s / 10 s / 2 s), as kube-controller-manager uses them.
    pub fn new(namespace: String, name: String, identity: String) -> Self {
        Self {
            namespace,
            name,
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// The timing must leave the holder time to step down before anyone else may take over:
    /// retry period < renew deadline < lease duration.
    pub fn validate(&self) -> Result<(), LeaseError> {
        if self.identity.is_empty() {
            return Err(LeaseError::Settings(
                "the holder identity is empty (set POD_NAME or --audit-identity)".into(),
            ));
        }
        if self.lease_duration.as_secs() < 1 || self.lease_duration.as_secs() > i32::MAX as u64 {
            return Err(LeaseError::Settings(format!(
                "the lease duration must be at least 1 s, not {:?}",
                self.lease_duration
            )));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(LeaseError::Settings(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?}), or a \
                 holder that cannot renew would still lead after another replica took over",
                self.renew_deadline, self.lease_duration
            )));
        }
        if self.retry_period >= self.renew_deadline || self.retry_period.is_zero() {
            return Err(LeaseError::Settings(format!(
                "the retry period ({:?}) must be above zero and shorter than the renew deadline \
                 ({:?}), or one failed renewal would end the leadership",
                self.retry_period, self.renew_deadline
            )));
        }
        Ok(())
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// Why an election step could not be taken (the API server could not be asked).
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Settings that cannot work.
    #[error("lease settings: {0}")]
    Settings(String),
    /// The API server refused or failed a call (other than a lost race).
    #[error("lease {namespace}/{name}: {source}")]
    Api {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// The client error.
        source: kube::Error,
    },
}

/// What one election step found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the lease (just acquired or renewed).
    Leading,
    /// Another replica holds a lease that has not expired.
    Following {
        /// Its `holderIdentity`.
        holder: String,
    },
    /// Another replica wrote the lease between our read and our write (HTTP 409): we lost the
    /// race and try again after the retry period.
    Conflict,
}

/// The lease record as last seen, and when (our clock) it was first seen that way.
#[derive(Debug, Clone)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    resource_version: Option<String>,
    since: Instant,
}

/// One replica's side of the election.
pub struct LeaseElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    observed: Option<Observed>,
}

impl LeaseElector {
    /// An elector for `settings.namespace/settings.name`.
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Result<Self, LeaseError> {
        settings.validate()?;
        Ok(Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    fn api_error(&self, source: kube::Error) -> LeaseError {
        LeaseError::Api {
            namespace: self.settings.namespace.clone(),
            name: self.settings.name.clone(),
            source,
        }
    }

    /// One step: read the lease, then create, renew or take it over when we may.
    pub async fn try_acquire_or_renew(&mut self) -> Result<Attempt, LeaseError> {
        let now = Instant::now();
        let current = match self.api.get_opt(&self.settings.name).await {
            Ok(current) => current,
            Err(error) => return Err(self.api_error(error)),
        };
        let Some(current) = current else {
            return self.create().await;
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        self.observe(&current, holder.clone(), now);

        match holder {
            Some(holder) if holder == self.settings.identity => {
                self.write(current, spec, WriteKind::Renew).await
            }
            None => self.write(current, spec, WriteKind::Acquire).await,
            Some(holder) => {
                // The holder's own duration decides when its lease ends, not ours.
                let duration = spec
                    .lease_duration_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .map_or(self.settings.lease_duration, Duration::from_secs);
                let unchanged_for = self
                    .observed
                    .as_ref()
                    .map_or(Duration::ZERO, |o| now.saturating_duration_since(o.since));
                if unchanged_for >= duration {
                    tracing::info!(
                        lease = %self.settings.name,
                        previous = %holder,
                        unchanged_seconds = unchanged_for.as_secs(),
                        "audit lease expired; taking over"
                    );
                    self.write(current, spec, WriteKind::Acquire).await
                } else {
                    Ok(Attempt::Following { holder })
                }
            }
        }
    }

    /// Remembers the record; the clock restarts whenever the record changed.
    fn observe(&mut self, lease: &Lease, holder: Option<String>, now: Instant) {
        let renew_time = lease.spec.as_ref().and_then(|s| s.renew_time.clone());
        let resource_version = lease.metadata.resource_version.clone();
        let same = self.observed.as_ref().is_some_and(|o| {
            o.holder == holder
                && o.renew_time == renew_time
                && o.resource_version == resource_version
        });
        if !same {
            self.observed = Some(Observed {
                holder,
                renew_time,
                resource_version,
                since: now,
            });
        }
    }

    async fn create(&mut self) -> Result<Attempt, LeaseError> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.settings.name.clone()),
                namespace: Some(self.settings.namespace.clone()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "rollout-guard".to_owned(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.settings.identity.clone()),
                lease_duration_seconds: Some(self.settings.duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Leading),
            // Another replica created it first (AlreadyExists is a 409 too).
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
            Err(error) => Err(self.api_error(error)),
        }
    }

    async fn write(
        &mut self,
        mut lease: Lease,
        mut spec: LeaseSpec,
        kind: WriteKind,
    ) -> Result<Attempt, LeaseError> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        match kind {
            WriteKind::Renew => {
                spec.renew_time = Some(now);
                spec.lease_duration_seconds = Some(self.settings.duration_seconds());
            }
            WriteKind::Acquire => {
                spec.holder_identity = Some(self.settings.identity.clone());
                spec.lease_duration_seconds = Some(self.settings.duration_seconds());
                spec.acquire_time = Some(now.clone());
                spec.renew_time = Some(now);
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            WriteKind::Release => {
                // client-go's release: no holder, a one-second lease, so whoever looks next
                // takes it at once.
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
                spec.acquire_time = Some(now.clone());
                spec.renew_time = Some(now);
            }
        }
        lease.spec = Some(spec);
        // `replace` sends the resourceVersion we read: a write in between makes it a 409.
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(match kind {
                WriteKind::Release => Attempt::Following {
                    holder: String::new(),
                },
                _ => Attempt::Leading,
            }),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
            Err(error) => Err(self.api_error(error)),
        }
    }

    /// Gives the lease up if we hold it, so another replica can take over at once. A lease held
    /// by someone else (or absent) is left alone.
    pub async fn release(&mut self) -> Result<bool, LeaseError> {
        let current = match self.api.get_opt(&self.settings.name).await {
            Ok(Some(current)) => current,
            Ok(None) => return Ok(false),
            Err(error) => return Err(self.api_error(error)),
        };
        let spec = current.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(false);
        }
        match self.write(current, spec, WriteKind::Release).await? {
            Attempt::Conflict => Ok(false),
            _ => Ok(true),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    Renew,
    Acquire,
    Release,
}

/// Runs the election until `shutdown` resolves: `leading` is true while we hold the lease.
/// On shutdown, `leading` turns false first (so the audit stops writing) and the lease is
/// released. Returns once released (or the release failed, logged).
pub async fn run(
    mut elector: LeaseElector,
    leading: watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let settings = elector.settings().clone();
    let mut last_renewed: Option<Instant> = None;
    let mut last_follow: Option<String> = None;
    tokio::pin!(shutdown);
    loop {
        // A call that hangs must not keep a holder leading past its deadline.
        let attempt =
            tokio::time::timeout(settings.renew_deadline, elector.try_acquire_or_renew()).await;
        let is_leading = *leading.borrow();
        match attempt {
            Ok(Ok(Attempt::Leading)) => {
                last_renewed = Some(Instant::now());
                last_follow = None;
                if !is_leading {
                    tracing::info!(
                        lease = %settings.name,
                        identity = %settings.identity,
                        "audit lease acquired; this replica runs the audit"
                    );
                    leading.send_replace(true);
                }
            }
            Ok(Ok(Attempt::Following { holder })) => {
                if is_leading {
                    tracing::warn!(lease = %settings.name, %holder, "audit lease lost to another replica");
                    leading.send_replace(false);
                } else if last_follow.as_deref() != Some(holder.as_str()) {
                    tracing::info!(lease = %settings.name, %holder, "audit runs on another replica");
                }
                last_follow = Some(holder);
            }
            Ok(Ok(Attempt::Conflict)) => {
                // A lost race. The holder that lost one renewal keeps leading until its
                // deadline: the next read tells whether someone else took over.
                tracing::debug!(lease = %settings.name, "lease write conflicted; retrying");
                step_down_if_overdue(&leading, last_renewed, &settings, "renewals conflicted");
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "audit lease step failed");
                step_down_if_overdue(&leading, last_renewed, &settings, "renewals failed");
            }
            Err(_) => {
                tracing::warn!(lease = %settings.name, "audit lease call timed out");
                step_down_if_overdue(&leading, last_renewed, &settings, "renewals timed out");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.retry_period) => {}
            _ = &mut shutdown => break,
        }
    }
    let was_leading = leading.send_replace(false);
    if was_leading {
        match tokio::time::timeout(settings.renew_deadline, elector.release()).await {
            Ok(Ok(true)) => tracing::info!(lease = %settings.name, "audit lease released"),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot release the audit lease; it expires by itself")
            }
            Err(_) => {
                tracing::warn!(lease = %settings.name, "releasing the audit lease timed out; it expires by itself")
            }
        }
    }
}

fn step_down_if_overdue(
    leading: &watch::Sender<bool>,
    last_renewed: Option<Instant>,
    settings: &LeaseSettings,
    why: &str,
) {
    let overdue = last_renewed.is_none_or(|at| at.elapsed() >= settings.renew_deadline);
    if *leading.borrow() && overdue {
        tracing::warn!(
            lease = %settings.name,
            deadline_seconds = settings.renew_deadline.as_secs_f64(),
            "{why} for the renew deadline; stepping down so no two replicas audit at once"
        );
        leading.send_replace(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LeaseSettings {
        LeaseSettings::new("guard".into(), "audit".into(), "pod-a".into())
    }

    #[test]
    fn defaults_are_valid() {
        settings().validate().unwrap();
    }

    #[test]
    fn timing_that_could_overlap_two_leaders_is_refused() {
        let mut s = settings();
        s.renew_deadline = s.lease_duration;
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("renew deadline"));
        let mut s = settings();
        s.retry_period = s.renew_deadline;
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("retry period"));
        let mut s = settings();
        s.retry_period = Duration::ZERO;
        assert!(s.validate().is_err());
        let mut s = settings();
        s.identity.clear();
        assert!(s.validate().unwrap_err().to_string().contains("identity"));
        let mut s = settings();
        s.lease_duration = Duration::from_millis(500);
        assert!(s.validate().is_err());
    }
}
