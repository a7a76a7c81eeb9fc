//! Fuzz target `centrifugo_protobuf`: the invariants live in `corecast::fuzzing::check_centrifugo_protobuf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corecast::fuzzing::check_centrifugo_protobuf(data));
