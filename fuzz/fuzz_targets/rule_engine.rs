//! cargo fuzz entry point; the target's logic and its `Case` are `fuzz/targets/rule_engine.rs`,
//! shared with the CI replay test (`tests/fuzz_replay.rs`).
#![no_main]

#[path = "../targets/rule_engine.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|case: target::Case| target::rule_engine(case));
