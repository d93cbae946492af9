//! Arbitrary frames after a valid client preface: the HTTP/2 framer, HPACK and stream state.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spliff_replay_fuzz::run(data, b"h2", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
});
