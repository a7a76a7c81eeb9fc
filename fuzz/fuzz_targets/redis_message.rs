//! Fuzz target `redis_message`: the invariants live in `corecast::fuzzing::check_redis_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corecast::fuzzing::check_redis_message(data));
