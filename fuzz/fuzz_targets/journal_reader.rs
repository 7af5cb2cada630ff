//! cargo-fuzz entry point; the body is [`migrun_fuzz::journal_reader`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| migrun_fuzz::journal_reader(data));
