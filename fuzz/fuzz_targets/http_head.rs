//! Fuzz target `http_head`: the invariants live in `corecast::fuzzing::check_http_head`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corecast::fuzzing::check_http_head(data));
