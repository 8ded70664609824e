#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluicegate::fuzzing::anthropic_stream(data));
