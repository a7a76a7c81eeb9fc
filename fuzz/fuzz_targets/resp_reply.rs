//! Fuzz target `resp_reply`: the invariants live in `corecast::fuzzing::check_resp_reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corecast::fuzzing::check_resp_reply(data));
