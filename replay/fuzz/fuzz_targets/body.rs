//! Arbitrary bodies under arbitrary stacks of content-codings, with a small cap: decoding
//! returns or reports the cap, and never allocates past it.
#![no_main]
use spliff_replay::body::{ContentCoding, DecodeOptions, decode_content};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [selector, rest @ ..] = data else { return };
    let all = [ContentCoding::Gzip, ContentCoding::Deflate, ContentCoding::Brotli, ContentCoding::Zstd];
    let codings: Vec<ContentCoding> = (0..(selector >> 6))
        .map(|i| all[usize::from((selector >> (2 * i)) & 3)].clone())
        .collect();
    let options = DecodeOptions { max_decoded_len: 1 << 20 };
    if let Ok(out) = decode_content(&codings, rest, &options) {
        assert!(out.len() as u64 <= options.max_decoded_len.max(rest.len() as u64));
    }
});
