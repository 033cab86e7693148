#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocicache_core::fuzzing::fuzz_oci_json(data));
