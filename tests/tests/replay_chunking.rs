//! The same plaintext cut into records differently must replay to the same bytes: a trace fed
//! whole (as recorded), in TCP-sized records and byte by byte gives identical HAR and text.

use std::path::Path;

use spliff_formats::{CaptureId, Entry, Record, SectionInfo, TlsData, TraceReader, TraceWriter};
use spliff_replay::ReplayOptions;
use spliff_replay::body::DecodeOptions;
use spliff_replay::pipeline::replay;
use spliff_replay::text::TextOptions;

/// Rewrites `trace` with every TLS data record cut into pieces of at most `size` bytes (same
/// timestamp, consecutive stream offsets), everything else unchanged.
fn recut(trace: &[u8], size: usize) -> Vec<u8> {
    let mut capture = None;
    let mut records = Vec::new();
    for e in TraceReader::new(trace) {
        if let Entry::Record(r) = e.expect("fixture reads") {
            capture.get_or_insert(r.capture_id);
            records.push(r);
        }
    }
    let mut w = TraceWriter::new(
        Vec::new(),
        &SectionInfo::default(),
        capture.unwrap_or(CaptureId([0; 16])),
    )
    .expect("vec");
    for r in &records {
        match &r.record {
            Record::TlsData(d) => {
                for (i, piece) in d.payload.chunks(size).enumerate() {
                    let rec = Record::TlsData(TlsData {
                        stream_offset: d.stream_offset + (i * size) as u64,
                        payload: piece,
                        ..d.clone()
                    });
                    w.write(r.ts_ns, &rec).expect("write");
                }
            }
            other => w.write(r.ts_ns, other).expect("write"),
        }
    }
    w.finish().expect("finish")
}

fn outputs(trace: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let replayed = replay(trace, &ReplayOptions::default(), &|_| {});
    let decode = DecodeOptions::default();
    let mut har = Vec::new();
    spliff_replay::har::write_har(&replayed, &decode, &mut har).expect("har");
    let mut text = Vec::new();
    let options = TextOptions {
        bodies: true,
        ..TextOptions::default()
    };
    spliff_replay::text::write_exchanges(&replayed, &options, &decode, &mut text).expect("text");
    (har, text)
}

#[test]
fn fixtures_replay_identically_whole_in_segments_and_byte_by_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/traces");
    for name in [
        "http1-keepalive.pcapng",
        "http1-loss.pcapng",
        "h2-multiplexed-ipv6.pcapng",
        "recorded-curl-h2-h1.pcapng",
        "recorded-urllib-curl-exchanges.pcapng",
    ] {
        let trace = std::fs::read(dir.join(name)).expect("fixture");
        let whole = outputs(&trace);
        assert!(whole.0.len() > 200, "{name}: HAR has entries");
        for size in [1460, 7, 1] {
            let cut = outputs(&recut(&trace, size));
            assert!(
                cut.0 == whole.0,
                "{name}: HAR differs with {size}-byte records"
            );
            assert!(
                cut.1 == whole.1,
                "{name}: text differs with {size}-byte records"
            );
        }
    }
}
