//! Fuzz target `centrifugo_json`: the invariants live in `corecast::fuzzing::check_centrifugo_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corecast::fuzzing::check_centrifugo_json(data));
