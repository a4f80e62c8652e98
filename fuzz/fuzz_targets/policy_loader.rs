//! cargo fuzz entry point; the target's logic is `fuzz/targets/policy_loader.rs`, shared with the
//! CI replay test (`tests/fuzz_replay.rs`).
#![no_main]

#[path = "../targets/policy_loader.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::policy_loader(data));
