//! cargo-fuzz entry point; the body is [`migrun_fuzz::value_decoding`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| migrun_fuzz::value_decoding(data));
