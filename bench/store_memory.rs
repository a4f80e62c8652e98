//! Live heap of the store, per kind (run by bench/run.sh; a figure printer, not a test):
//!
//! ```text
//! bench-store-memory OBJECTS_DIR
//! ```
//!
//! Loads the manifests of `OBJECTS_DIR` the way `serve --objects` does, one kind at a time
//! (files are grouped by the kind in their name, as `bench-gen objects` writes them), and
//! prints the bytes the allocator still holds for the store after each kind: the store's own
//! size, without allocator slack, thread stacks or the binary. RSS (bench/run.sh) adds those.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicIsize, Ordering};

use rollout_guard::policy::view::ClusterView as _;
use rollout_guard::store;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            ["VmHWM", "VmRSS", "RssAnon"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: bench-store-memory OBJECTS_DIR");
        std::process::exit(2);
    };
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(error) => {
            eprintln!("bench-store-memory: {}: {error}", dir.display());
            std::process::exit(1);
        }
    };
    files.sort();
    let kind_of = |path: &PathBuf| {
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        name.split('-').next().unwrap_or_default().to_owned()
    };
    let mut kinds: Vec<String> = files.iter().map(kind_of).collect();
    kinds.dedup();

    let empty = live();
    // Each kind's objects stay in their own store: the index keeps one set of maps per kind, so
    // this is what one store holding them all would use.
    let mut stores = Vec::new();
    let mut before = live();
    let mut total_objects = 0usize;
    for kind in kinds {
        let group: Vec<PathBuf> = files
            .iter()
            .filter(|f| kind_of(f) == kind)
            .cloned()
            .collect();
        let (loaded, warnings) = match store::offline_from_paths(&group) {
            Ok(loaded) => loaded,
            Err(error) => {
                eprintln!("bench-store-memory: {error}");
                std::process::exit(1);
            }
        };
        if let Some(first) = warnings.first() {
            eprintln!(
                "bench-store-memory: {} warnings, first: {first}",
                warnings.len()
            );
        }
        let c = loaded.counts();
        let objects = c.deployments
            + c.services
            + c.ingresses
            + c.ingress_classes
            + c.http_routes
            + c.reference_grants
            + c.gateways
            + c.namespaces
            + c.stateful_sets
            + c.daemon_sets
            + c.rollouts
            + c.pods
            + c.replica_sets;
        stores.push(loaded);
        total_objects += objects;
        let now = live();
        if objects >= 100 {
            println!(
                "store {kind}: {objects} objects, {:.1} MiB, {:.0} bytes per object",
                mib(now - before),
                (now - before) as f64 / objects.max(1) as f64
            );
        } else {
            // A few objects are within the noise of what loading itself leaves or frees.
            println!("store {kind}: {objects} objects (too few to size)");
        }
        before = now;
    }
    let total = live() - empty;
    println!(
        "store total: {total_objects} objects, {:.1} MiB live heap, {:.0} bytes per object",
        mib(total),
        total as f64 / total_objects.max(1) as f64
    );
    println!("process after load: {}", rss());
    drop(stores);
}
