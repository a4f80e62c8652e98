//! The policy directory reloader: valid edits take effect, invalid ones keep the last good set,
//! the kubelet's `..data` symlink swap is seen, a vanished directory changes nothing.

use std::fs;
use std::path::Path;
use std::time::Duration;

use rollout_guard::policy::load::embedded_default;

mod common;
use common::TempDir;
use rollout_guard::reload::{
    read_policy_dir, reload_once, watch_policy_dir, ActivePolicies, ReloadError,
};

/// A fresh directory under the system temp dir, removed on drop.
fn policy(name: &str, priority: i32) -> String {
    format!(
        "apiVersion: rollout-guard.io/v1alpha1\nkind: RolloutPolicy\nmetadata:\n  name: {name}\nspec:\n  priority: {priority}\n"
    )
}

fn names(active: &ActivePolicies) -> Vec<String> {
    active
        .current()
        .policies()
        .iter()
        .map(|p| p.metadata.name.clone())
        .collect()
}

#[test]
fn valid_edit_takes_effect_and_invalid_edit_keeps_the_last_good_set() {
    let dir = TempDir::new("edit");
    fs::write(dir.0.join("a.yaml"), policy("first", 0)).unwrap();
    let active = ActivePolicies::new(embedded_default());

    assert!(
        reload_once(&dir.0, &active).unwrap(),
        "first load activates"
    );
    assert_eq!(names(&active), ["first"]);
    assert!(
        !reload_once(&dir.0, &active).unwrap(),
        "unchanged: no reload"
    );
    let good_digest = active.status().active_digest;

    // A broken edit: rejected, recorded, the last good set stays.
    fs::write(dir.0.join("a.yaml"), "apiVersion: rollout-guard.io/v1alpha1\nkind: RolloutPolicy\nmetadata:\n  name: first\nspec:\n  rules:\n    rollingUpdate:\n      mode: enforced\n").unwrap();
    let error = reload_once(&dir.0, &active).unwrap_err();
    assert!(matches!(error, ReloadError::Invalid(_)), "{error}");
    let status = active.status();
    assert_eq!(names(&active), ["first"]);
    assert_eq!(status.active_digest, good_digest);
    assert_eq!(status.reloads_failed, 1);
    let last_error = status.last_error.unwrap();
    assert!(
        last_error
            .contains("a.yaml:8: spec.rules.rollingUpdate.mode: unknown variant \"enforced\""),
        "{last_error}"
    );
    // The same bad content is not rejected (nor counted) again on every poll.
    assert!(!reload_once(&dir.0, &active).unwrap());
    assert_eq!(active.status().reloads_failed, 1);

    // Fixed, plus a second file: both active.
    fs::write(dir.0.join("a.yaml"), policy("first", 0)).unwrap();
    fs::write(dir.0.join("b.yml"), policy("second", 5)).unwrap();
    assert!(reload_once(&dir.0, &active).unwrap());
    let status = active.status();
    assert_eq!(names(&active), ["second", "first"]);
    assert_eq!(status.last_error, None);
    assert_eq!(status.reloads_ok, 2);
    assert_ne!(status.active_digest, good_digest);
}

#[test]
fn a_vanished_directory_keeps_the_last_good_set() {
    let dir = TempDir::new("vanish");
    fs::write(dir.0.join("a.yaml"), policy("kept", 0)).unwrap();
    let active = ActivePolicies::new(embedded_default());
    reload_once(&dir.0, &active).unwrap();

    fs::remove_dir_all(&dir.0).unwrap();
    let error = reload_once(&dir.0, &active).unwrap_err();
    assert!(matches!(error, ReloadError::Read { .. }), "{error}");
    assert_eq!(names(&active), ["kept"]);
    assert!(active
        .status()
        .last_error
        .unwrap()
        .contains("cannot read policy directory"));
    assert!(!reload_once(&dir.0, &active).unwrap(), "reported once");
    assert_eq!(active.status().reloads_failed, 1);

    // Back with the same content: healthy again without a reload.
    fs::create_dir_all(&dir.0).unwrap();
    fs::write(dir.0.join("a.yaml"), policy("kept", 0)).unwrap();
    assert!(!reload_once(&dir.0, &active).unwrap());
    assert_eq!(active.status().last_error, None);
    assert_eq!(active.status().reloads_ok, 1);
}

#[test]
fn an_empty_directory_is_rejected() {
    let dir = TempDir::new("empty");
    fs::write(dir.0.join("a.yaml"), policy("kept", 0)).unwrap();
    let active = ActivePolicies::new(embedded_default());
    reload_once(&dir.0, &active).unwrap();
    fs::remove_file(dir.0.join("a.yaml")).unwrap();
    assert!(reload_once(&dir.0, &active).is_err());
    assert_eq!(names(&active), ["kept"]);
    assert!(active
        .status()
        .last_error
        .unwrap()
        .contains("no policy documents"));
}

/// Lays out `files` the way the kubelet mounts a ConfigMap: a timestamped directory holding the
/// files, `..data` pointing at it, and a top-level symlink per key through `..data`. Returns the
/// timestamped directory's name.
#[cfg(unix)]
fn kubelet_write(dir: &Path, generation: u32, files: &[(&str, String)]) -> String {
    use std::os::unix::fs::symlink;
    let stamped = format!("..2026_01_0{generation}_00_00_00.{generation}");
    fs::create_dir_all(dir.join(&stamped)).unwrap();
    for (name, text) in files {
        fs::write(dir.join(&stamped).join(name), text).unwrap();
    }
    // The atomic swap: a new symlink under a temporary name renamed over `..data`.
    symlink(&stamped, dir.join("..data_tmp")).unwrap();
    fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
    stamped
}

#[cfg(unix)]
#[test]
fn kubelet_configmap_symlink_swap_is_followed() {
    let dir = TempDir::new("kubelet");
    let old = kubelet_write(&dir.0, 1, &[("default.yaml", policy("v1", 0))]);
    let sources = read_policy_dir(&dir.0).unwrap();
    assert_eq!(
        sources.len(),
        1,
        "hidden ..data and timestamped dirs are skipped"
    );
    assert!(sources[0].name.ends_with("/default.yaml"));

    let active = ActivePolicies::new(embedded_default());
    assert!(reload_once(&dir.0, &active).unwrap());
    assert_eq!(names(&active), ["v1"]);

    kubelet_write(&dir.0, 2, &[("default.yaml", policy("v2", 0))]);
    fs::remove_dir_all(dir.0.join(old)).unwrap();
    assert!(reload_once(&dir.0, &active).unwrap());
    assert_eq!(names(&active), ["v2"]);
}

#[test]
fn only_top_level_yaml_files_are_read_in_name_order() {
    let dir = TempDir::new("layout");
    fs::write(dir.0.join("b.yml"), policy("b", 0)).unwrap();
    fs::write(dir.0.join("a.yaml"), policy("a", 0)).unwrap();
    fs::write(dir.0.join("README.md"), "# not a policy").unwrap();
    fs::write(dir.0.join(".hidden.yaml"), "broken: [").unwrap();
    fs::create_dir_all(dir.0.join("sub")).unwrap();
    fs::write(dir.0.join("sub/c.yaml"), "broken: [").unwrap();
    let sources = read_policy_dir(&dir.0).unwrap();
    let files: Vec<&str> = sources
        .iter()
        .map(|s| s.name.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(files, ["a.yaml", "b.yml"]);
}

/// The watcher task applies an edit by itself. It polls every 10 ms; the loop below only waits
/// for the outcome (bounded so a broken watcher fails instead of hanging), it asserts no timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_applies_edits_and_survives_bad_ones() {
    let dir = TempDir::new("watch");
    fs::write(dir.0.join("a.yaml"), policy("one", 0)).unwrap();
    let active = ActivePolicies::new(embedded_default());
    let watcher = tokio::spawn(watch_policy_dir(
        dir.0.clone(),
        active.clone(),
        Duration::from_millis(10),
    ));

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..3000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("watcher never got to: {what}");
    }
    until("load one", || names(&active) == ["one"]).await;
    fs::write(dir.0.join("a.yaml"), "kind: [").unwrap();
    // `fs::write` is not atomic: the watcher may first see an empty file, then the broken one,
    // and reject both; what matters is that it rejects and keeps the last good set.
    until("reject the broken edit", || {
        active.status().reloads_failed >= 1
    })
    .await;
    assert_eq!(names(&active), ["one"]);
    fs::write(dir.0.join("a.yaml"), policy("two", 0)).unwrap();
    until("load two", || names(&active) == ["two"]).await;
    watcher.abort();
}
