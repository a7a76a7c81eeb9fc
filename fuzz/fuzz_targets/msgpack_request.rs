//! Fuzz target `msgpack_request`: the invariants live in `corecast::fuzzing::check_msgpack_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corecast::fuzzing::check_msgpack_request(data));
