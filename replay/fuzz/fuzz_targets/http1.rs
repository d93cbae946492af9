//! Arbitrary bytes as both directions of an HTTP/1 connection.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spliff_replay_fuzz::run(data, b"http/1.1", b"");
});
