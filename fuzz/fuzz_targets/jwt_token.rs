//! Fuzz target `jwt_token`: the invariants live in `corecast::fuzzing::check_jwt_token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corecast::fuzzing::check_jwt_token(data));
