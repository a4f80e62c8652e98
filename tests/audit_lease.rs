//! Leader election for the live audit against a fake API server (tests/common/fake_api.rs)
//! that keeps the Lease with resourceVersions and answers stale updates 409: the first
//! replica takes a free lease, the second follows, a release hands over at once, an abandoned
//! lease is taken over only after it went unrenewed for its duration, and a write between a
//! replica's read and its update makes that replica lose the race instead of both leading.
//! Durations are short and explicit; waits are on conditions, never on elapsed time.

#[path = "common/fake_api.rs"]
mod fake_api;

use std::sync::Arc;
use std::time::Duration;

use fake_api::FakeApi;
use rollout_guard::audit::lease::{run, Attempt, LeaseElector, LeaseSettings};
use serde_json::json;
use tokio::sync::{oneshot, watch};

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/guard/leases/rollout-guard-audit";

fn settings(identity: &str) -> LeaseSettings {
    LeaseSettings {
        lease_duration: Duration::from_secs(1),
        renew_deadline: Duration::from_millis(600),
        retry_period: Duration::from_millis(50),
        ..LeaseSettings::new(
            "guard".into(),
            "rollout-guard-audit".into(),
            identity.into(),
        )
    }
}

fn lease(api: &FakeApi) -> serde_json::Value {
    api.get(
        "coordination.k8s.io/v1",
        "leases",
        "guard",
        "rollout-guard-audit",
    )
    .expect("the lease exists")
}

fn holder(api: &FakeApi) -> Option<String> {
    lease(api)["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_owned)
}

/// Polls until `condition` holds. The bound only keeps a broken build from hanging CI; nothing
/// is asserted about how long it took.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..1500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn first_replica_creates_the_lease_second_follows_and_release_hands_over() {
    let api = FakeApi::new();
    let client = api.start().await;
    let mut a = LeaseElector::new(client.clone(), settings("pod-a")).unwrap();
    let mut b = LeaseElector::new(client.clone(), settings("pod-b")).unwrap();

    assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Leading);
    let created = lease(&api);
    assert_eq!(created["spec"]["holderIdentity"], "pod-a");
    assert_eq!(created["spec"]["leaseDurationSeconds"], 1);
    assert_eq!(created["spec"]["leaseTransitions"], 0);

    assert_eq!(
        b.try_acquire_or_renew().await.unwrap(),
        Attempt::Following {
            holder: "pod-a".into()
        }
    );
    // The holder renews: a new renewTime and resourceVersion, the same holder.
    assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Leading);
    let renewed = lease(&api);
    assert_ne!(
        renewed["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    assert_eq!(renewed["spec"]["holderIdentity"], "pod-a");

    // A releases: the holder is cleared and B takes the lease on its very next step.
    assert!(a.release().await.unwrap());
    assert_eq!(holder(&api), None);
    assert_eq!(lease(&api)["spec"]["leaseDurationSeconds"], 1);
    assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Leading);
    let taken = lease(&api);
    assert_eq!(taken["spec"]["holderIdentity"], "pod-b");
    assert_eq!(taken["spec"]["leaseTransitions"], 1);
    // A releasing again does not touch B's lease.
    assert!(!a.release().await.unwrap());
    assert_eq!(holder(&api).as_deref(), Some("pod-b"));
    assert_eq!(
        a.try_acquire_or_renew().await.unwrap(),
        Attempt::Following {
            holder: "pod-b".into()
        }
    );
}

/// A holder that stopped renewing (crashed, partitioned) keeps its lease until the record has
/// stood unchanged for the lease duration as the other replica observes it; then it is taken
/// over.
#[tokio::test]
async fn an_unrenewed_lease_is_taken_over_only_after_its_duration() {
    let api = FakeApi::new();
    // Held by a pod that is gone, renewed "just now" by its own clock.
    api.insert(
        "leases",
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"namespace": "guard", "name": "rollout-guard-audit"},
            "spec": {"holderIdentity": "pod-gone", "leaseDurationSeconds": 1,
                "renewTime": "2026-01-01T00:00:00.000000Z", "leaseTransitions": 3}}),
    );
    let client = api.start().await;
    let mut b = LeaseElector::new(client, settings("pod-b")).unwrap();

    // The first observation starts the clock: B follows, however old renewTime looks (its
    // wall clock is not the holder's).
    assert_eq!(
        b.try_acquire_or_renew().await.unwrap(),
        Attempt::Following {
            holder: "pod-gone".into()
        }
    );
    let mut steps = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        steps += 1;
        match b.try_acquire_or_renew().await.unwrap() {
            Attempt::Leading => break,
            Attempt::Following { holder } => assert_eq!(holder, "pod-gone"),
            Attempt::Conflict => panic!("nobody else writes the lease"),
        }
        assert!(steps < 400, "never took the expired lease over");
    }
    assert!(steps > 1, "took over a lease at its first observation");
    let taken = lease(&api);
    assert_eq!(taken["spec"]["holderIdentity"], "pod-b");
    assert_eq!(taken["spec"]["leaseTransitions"], 4);
}

/// Another replica's write lands between our read and our update: the API server answers 409
/// and we do not lead; the next step sees the new holder.
#[tokio::test]
async fn a_write_between_read_and_update_loses_the_race_with_409() {
    let api = FakeApi::new();
    api.insert(
        "leases",
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"namespace": "guard", "name": "rollout-guard-audit"},
            "spec": {"leaseDurationSeconds": 1}}),
    );
    let client = api.start().await;
    let mut b = LeaseElector::new(client, settings("pod-b")).unwrap();
    api.after_next_get(LEASES, |objects| {
        objects.put(
            "leases",
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"namespace": "guard", "name": "rollout-guard-audit"},
                "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 1}}),
        );
    });
    assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Conflict);
    assert_eq!(holder(&api).as_deref(), Some("pod-a"));
    let puts = api
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path == LEASES)
        .count();
    assert_eq!(puts, 1, "one update, refused");
    assert_eq!(
        b.try_acquire_or_renew().await.unwrap(),
        Attempt::Following {
            holder: "pod-a".into()
        }
    );
}

/// Two replicas running the election loop: exactly one leads at any time it is looked at; when
/// the leader shuts down it stops leading, releases, and the other takes over.
#[tokio::test]
async fn two_replicas_hand_over_on_shutdown() {
    let api = FakeApi::new();
    let client = api.start().await;

    let (a_leading_tx, a_leading) = watch::channel(false);
    let (a_stop, a_stopped) = oneshot::channel::<()>();
    let a = tokio::spawn(run(
        LeaseElector::new(client.clone(), settings("pod-a")).unwrap(),
        a_leading_tx,
        async move {
            let _ = a_stopped.await;
        },
    ));
    eventually("pod-a leads", || *a_leading.borrow()).await;

    let (b_leading_tx, b_leading) = watch::channel(false);
    let (b_stop, b_stopped) = oneshot::channel::<()>();
    let b = tokio::spawn(run(
        LeaseElector::new(client.clone(), settings("pod-b")).unwrap(),
        b_leading_tx,
        async move {
            let _ = b_stopped.await;
        },
    ));
    // B has looked at the lease a few times and follows.
    let b_has_looked = {
        let api = Arc::clone(&api);
        move || {
            api.requests()
                .iter()
                .filter(|r| r.method == "GET" && r.path == LEASES)
                .count()
                >= 6
        }
    };
    eventually("pod-b looked at the lease", b_has_looked).await;
    assert!(*a_leading.borrow());
    assert!(!*b_leading.borrow(), "two leaders");
    assert_eq!(holder(&api).as_deref(), Some("pod-a"));

    // SIGTERM on A: it stops leading and releases; B takes over.
    a_stop.send(()).unwrap();
    a.await.unwrap();
    assert!(!*a_leading.borrow());
    eventually("pod-b leads", || *b_leading.borrow()).await;
    assert_eq!(holder(&api).as_deref(), Some("pod-b"));

    b_stop.send(()).unwrap();
    b.await.unwrap();
    assert_eq!(holder(&api), None, "released on shutdown");
}

/// A leader that cannot reach the API server steps down once its renew deadline has passed,
/// before the lease could have been taken by anyone else.
#[tokio::test]
async fn a_leader_that_cannot_renew_steps_down() {
    let api = FakeApi::new();
    let client = api.start().await;
    let (leading_tx, leading) = watch::channel(false);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(
        LeaseElector::new(client, settings("pod-a")).unwrap(),
        leading_tx,
        async move {
            let _ = stopped.await;
        },
    ));
    eventually("pod-a leads", || *leading.borrow()).await;
    api.fail("/apis/coordination.k8s.io", 500);
    eventually("pod-a stepped down", || !*leading.borrow()).await;
    api.heal();
    eventually("pod-a leads again", || *leading.borrow()).await;
    stop.send(()).unwrap();
    task.await.unwrap();
}
