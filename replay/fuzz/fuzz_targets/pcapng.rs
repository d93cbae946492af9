//! Arbitrary traces through the pcapng output: segment planning, port assignment, windows.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spliff_replay_fuzz::pcapng(data);
});
