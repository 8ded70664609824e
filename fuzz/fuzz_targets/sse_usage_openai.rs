#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluicegate::fuzzing::sse_usage_openai(data));
