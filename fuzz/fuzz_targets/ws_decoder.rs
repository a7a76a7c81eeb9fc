//! Fuzz target `ws_decoder`: the invariants live in `corecast::fuzzing::check_ws_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corecast::fuzzing::check_ws_decoder(data));
