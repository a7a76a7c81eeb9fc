//! Fuzz target `forwarded`: the invariants live in `corecast::fuzzing::check_forwarded`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corecast::fuzzing::check_forwarded(data));
