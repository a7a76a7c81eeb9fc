//! Fuzz target `config_file`: the invariants live in `corecast::fuzzing::check_config_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corecast::fuzzing::check_config_file(data));
