//! Fuzz target `deflate_offer`: the invariants live in `corecast::fuzzing::check_deflate_offer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corecast::fuzzing::check_deflate_offer(data));
