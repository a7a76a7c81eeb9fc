//! Fuzz target `inflate`: the invariants live in `corecast::fuzzing::check_inflate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corecast::fuzzing::check_inflate(data));
