//! cargo fuzz entry point; the target's logic is `fuzz/targets/admission_review.rs`, shared with the
//! CI replay test (`tests/fuzz_replay.rs`).
#![no_main]

#[path = "../targets/admission_review.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::admission_review(data));
