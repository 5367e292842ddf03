#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gikev2_fuzz::wire_message(data));
