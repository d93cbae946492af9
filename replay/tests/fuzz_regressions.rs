//! Every input the fuzz targets ever found (fixtures/fuzz/*/crashes) and their corpora run
//! through the same code as the targets: each must return, and known findings must be refused
//! the way their fix intends.

use std::path::{Path, PathBuf};

use spliff_replay::body::{BodyError, ContentCoding, DecodeOptions, decode_content};
use spliff_replay::pcapng::{PcapngOptions, PcapngSink};
use spliff_replay::pipeline::{BatchLimits, replay_to};
use spliff_replay::{ConnectionStreams, DirectionStream, Piece, ReplayOptions, reconstruct};

fn files(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/fuzz")
        .join(target);
    let mut out = Vec::new();
    for sub in ["corpus", "crashes"] {
        if let Ok(rd) = std::fs::read_dir(root.join(sub)) {
            out.extend(rd.map(|e| e.expect("entry").path()));
        }
    }
    out.sort();
    out
}

/// The body target's input: a selector byte choosing up to three codings, then the body.
fn body_case(data: &[u8]) -> Option<(Vec<ContentCoding>, &[u8])> {
    let (selector, rest) = data.split_first()?;
    let all = [
        ContentCoding::Gzip,
        ContentCoding::Deflate,
        ContentCoding::Brotli,
        ContentCoding::Zstd,
    ];
    let codings = (0..(selector >> 6))
        .map(|i| all[usize::from((selector >> (2 * i)) & 3)].clone())
        .collect();
    Some((codings, rest))
}

#[test]
fn body_inputs_decode_or_fail_within_the_cap() {
    let options = DecodeOptions {
        max_decoded_len: 1 << 20,
    };
    for f in files("body") {
        let data = std::fs::read(&f).expect("read");
        let Some((codings, body)) = body_case(&data) else {
            continue;
        };
        if let Ok(out) = decode_content(&codings, body, &options) {
            assert!(
                out.len() as u64 <= options.max_decoded_len.max(body.len() as u64),
                "{}",
                f.display()
            );
        }
    }
}

/// Regression: a large-window brotli header made the decoder allocate 256 MiB for six bytes.
#[test]
fn large_window_brotli_is_refused_before_allocating() {
    let body = [0x11, 0x1c, 0x11, 0xde, 0x05, 0x05];
    let err = decode_content(&[ContentCoding::Brotli], &body, &DecodeOptions::default())
        .expect_err("large window refused");
    assert!(matches!(err, BodyError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("large-window"), "{err}");
}

#[test]
fn protocol_inputs_reconstruct_without_panicking() {
    for (target, alpn, prefix) in [
        ("http1", &b"http/1.1"[..], &b""[..]),
        (
            "http2",
            &b"h2"[..],
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
        ),
    ] {
        for f in files(target) {
            let data = std::fs::read(&f).expect("read");
            let [hi, lo, _piece, _flags, rest @ ..] = &data[..] else {
                continue;
            };
            let split = (usize::from(*hi) << 8 | usize::from(*lo)).min(rest.len());
            let mut request = prefix.to_vec();
            request.extend_from_slice(&rest[..split]);
            let piece = |bytes: Vec<u8>| Piece::Data {
                offset: 0,
                ts_ns: 1,
                bytes: bytes.into(),
            };
            let streams = ConnectionStreams {
                alpn: Some(alpn.to_vec()),
                request: DirectionStream::from_pieces([piece(request)]),
                response: DirectionStream::from_pieces([piece(rest[split..].to_vec())]),
                closed: true,
            };
            let _ = reconstruct(&streams, &ReplayOptions::default());
        }
    }
}

/// The pcapng target's inputs are traces: each is written as pcapng whole and lazily, with the
/// same bytes (as the target asserts).
#[test]
fn pcapng_inputs_write_the_same_bytes_whole_and_lazily() {
    let inputs = files("pcapng");
    assert!(
        !inputs.is_empty(),
        "the pcapng corpus is in fixtures/fuzz/pcapng"
    );
    for f in inputs {
        let data = std::fs::read(&f).expect("read");
        let run = |limits: BatchLimits| {
            let mut out = Vec::new();
            let sink = PcapngSink::new(PcapngOptions { max_segment: 64 });
            replay_to(
                &data,
                &ReplayOptions::default(),
                limits,
                &|_| {},
                &sink,
                &mut out,
            )
            .map(|_| out)
            .map_err(|e| e.to_string())
        };
        let whole = run(BatchLimits::default());
        let lazy = run(BatchLimits {
            lazy_bytes: 0,
            lazy_window: 64,
            ..BatchLimits::default()
        });
        assert!(whole == lazy, "{}", f.display());
    }
}
