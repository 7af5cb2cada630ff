//! cargo-fuzz entry point; the body is [`migrun_fuzz::config_parser`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| migrun_fuzz::config_parser(data));
