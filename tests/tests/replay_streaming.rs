//! The streaming replay (`pipeline::replay_to`, what `spliff replay` runs) against the
//! whole-trace model (`pipeline::replay` + `write_*`): the same bytes for HAR, text and pcapng,
//! whatever the thread count and batch size; and a structural proof of its memory bound: on a
//! trace of many sequential connections it never holds more than a batch of connections, and
//! never more waiting output than one batch produced.

use std::net::SocketAddr;

use spliff_formats::{
    CaptureId, CaptureInfo, ClockId, Connection, ConnectionRole, Direction, Record, SectionInfo,
    TlsData, TlsLibrary, TraceWriter,
};
use spliff_replay::ReplayOptions;
use spliff_replay::body::DecodeOptions;
use spliff_replay::har::HarSink;
use spliff_replay::pcapng::{PcapngOptions, PcapngSink};
use spliff_replay::pipeline::{BatchLimits, ReplaySummary, Sink, replay, replay_to};
use spliff_replay::text::{TextOptions, TextSink};

type Writes = Vec<(u64, Direction, Vec<u8>)>;

fn http1(exchanges: usize, spacing_ns: u64) -> Writes {
    let mut out = Vec::new();
    for i in 0..exchanges {
        let t = i as u64 * spacing_ns;
        let req = format!("GET /r/{i} HTTP/1.1\r\nHost: stream.test\r\n\r\n");
        out.push((t, Direction::Egress, req.into_bytes()));
        let body = format!("body {i} ").repeat(40);
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let resp = resp.into_bytes();
        let (a, b) = resp.split_at(resp.len() / 2);
        out.push((t + spacing_ns / 3, Direction::Ingress, a.to_vec()));
        out.push((t + spacing_ns / 2, Direction::Ingress, b.to_vec()));
    }
    out
}

fn http2() -> Writes {
    let conv = spliff_tests::h2gen::conversation(4, 100, 0);
    let mut w: Writes = conv
        .client
        .into_iter()
        .map(|(t, b)| (t, Direction::Egress, b))
        .chain(
            conv.server
                .into_iter()
                .map(|(t, b)| (t, Direction::Ingress, b)),
        )
        .collect();
    w.sort_by_key(|w| w.0);
    w
}

/// `connections` connections starting every `gap_ns`, each replaying `writes(i)`; every second
/// one closes `close_after_ns` after it started. Every third connection records an open time
/// before its first record (the pcapng handshake is stamped with it, before anything else the
/// connection has).
fn trace(
    connections: u64,
    gap_ns: u64,
    close_after_ns: u64,
    writes: impl Fn(u64) -> Writes,
) -> Vec<u8> {
    let mut w =
        TraceWriter::new(Vec::new(), &SectionInfo::default(), CaptureId([0x5e; 16])).expect("vec");
    let base = 1_000_000_000u64;
    w.write(
        base,
        &Record::CaptureInfo(CaptureInfo {
            wall_clock_ns: 1_795_435_200_000_000_000,
            clock: ClockId::Boottime,
            spliff_version: b"test",
            hostname: b"test",
            kernel: b"test",
            attached: vec![],
        }),
    )
    .expect("write");
    for n in 1..=connections {
        let t0 = base + n * gap_ns;
        let writes = writes(n);
        let h2 = writes
            .first()
            .is_some_and(|w| w.2.starts_with(b"PRI * HTTP/2.0"));
        let local: SocketAddr = format!("10.9.{}.{}:{}", n >> 8, n & 0xff, 20000 + n)
            .parse()
            .expect("addr");
        w.write(
            t0,
            &Record::Connection(Connection {
                conn_id: n,
                pid: 42,
                role: ConnectionRole::Client,
                tls_library: TlsLibrary::OpenSsl,
                ip_protocol: 6,
                local: Some(local),
                remote: Some("10.2.0.1:443".parse().expect("addr")),
                alpn: if h2 { &b"h2"[..] } else { &b"http/1.1"[..] },
                open_ns: if n % 3 == 0 { t0 - gap_ns / 2 } else { 0 },
                close_ns: if n % 2 == 0 { t0 + close_after_ns } else { 0 },
                ..Connection::default()
            }),
        )
        .expect("write");
        let mut offsets = [0u64; 2];
        for (t, dir, bytes) in &writes {
            let i = usize::from(*dir == Direction::Ingress);
            w.write(
                t0 + 1 + t,
                &Record::TlsData(TlsData {
                    conn_id: n,
                    pid: 42,
                    tid: 42,
                    direction: *dir,
                    stream_offset: offsets[i],
                    payload: bytes,
                }),
            )
            .expect("write");
            offsets[i] += bytes.len() as u64;
        }
    }
    w.finish().expect("finish")
}

fn streamed<S: Sink>(trace: &[u8], limits: BatchLimits, sink: S) -> (Vec<u8>, ReplaySummary) {
    let mut out = Vec::new();
    let summary = replay_to(
        trace,
        &ReplayOptions::default(),
        limits,
        &|_| {},
        &sink,
        &mut out,
    )
    .expect("replay");
    (out, summary)
}

/// HAR, text and pcapng through the streaming pipeline.
fn all_streamed(trace: &[u8], limits: BatchLimits) -> [Vec<u8>; 3] {
    let text = TextOptions {
        bodies: true,
        ..TextOptions::default()
    };
    [
        streamed(trace, limits, HarSink::default()).0,
        streamed(
            trace,
            limits,
            TextSink {
                options: text,
                ..TextSink::default()
            },
        )
        .0,
        streamed(trace, limits, PcapngSink::new(PcapngOptions::default())).0,
    ]
}

/// HAR, text and pcapng from the whole-trace model.
fn all_whole(trace: &[u8]) -> [Vec<u8>; 3] {
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
    let mut pcapng = Vec::new();
    spliff_replay::pcapng::write_pcapng(&replayed, &PcapngOptions::default(), &mut pcapng)
        .expect("pcapng");
    [har, text, pcapng]
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool")
}

#[test]
fn overlapping_connections_stream_to_the_same_bytes_for_any_threads_and_batches() {
    // 60 connections 1 ms apart, each lasting ~4 ms, some closed only 50 ms later: every batch
    // boundary cuts through connections that are still producing output. HTTP/1.1 and HTTP/2
    // alternate.
    let h2 = http2();
    let t = trace(60, 1_000_000, 50_000_000, |n| {
        if n % 2 == 0 {
            h2.clone()
        } else {
            http1(4, 1_000_000)
        }
    });
    let whole = all_whole(&t);
    assert!(whole[0].len() > 10_000 && whole[2].len() > 10_000);
    for threads in [1, 2, 4] {
        for limits in [
            BatchLimits::default(),
            BatchLimits {
                bytes: 1,
                connections: 1,
                ..BatchLimits::default()
            },
            BatchLimits {
                bytes: 20_000,
                connections: 7,
                ..BatchLimits::default()
            },
            // Every connection rendered item by item, overlapping each other.
            BatchLimits {
                lazy_bytes: 0,
                ..BatchLimits::default()
            },
            // Some in batches, some item by item (the HTTP/1 ones are the larger).
            BatchLimits {
                bytes: 20_000,
                connections: 3,
                lazy_bytes: 3_000,
            },
        ] {
            let got = pool(threads).install(|| all_streamed(&t, limits));
            for (k, name) in ["HAR", "text", "pcapng"].iter().enumerate() {
                assert!(
                    got[k] == whole[k],
                    "{name} differs with {threads} threads and {limits:?}"
                );
            }
        }
    }
}

#[test]
fn fixtures_stream_to_the_same_bytes_as_the_whole_model() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/traces");
    for f in std::fs::read_dir(&dir).expect("fixtures") {
        let path = f.expect("entry").path();
        if path.extension().is_none_or(|e| e != "pcapng") {
            continue;
        }
        let t = std::fs::read(&path).expect("read");
        let whole = all_whole(&t);
        for limits in [
            BatchLimits::default(),
            BatchLimits {
                bytes: 1,
                connections: 1,
                ..BatchLimits::default()
            },
            BatchLimits {
                lazy_bytes: 0,
                ..BatchLimits::default()
            },
        ] {
            let got = pool(2).install(|| all_streamed(&t, limits));
            assert!(got == whole, "{} differs with {limits:?}", path.display());
        }
    }
}

#[test]
fn sequential_connections_are_held_a_batch_at_a_time() {
    // 600 connections one after the other: each ends before the next starts.
    let t = trace(600, 10_000_000, 9_000_000, |_| http1(3, 1_000_000));
    let limits = BatchLimits {
        bytes: u64::MAX,
        connections: 8,
        ..BatchLimits::default()
    };
    let (har, summary) = pool(2).install(|| streamed(&t, limits, HarSink::default()));
    assert_eq!(summary.connections, 600);
    assert_eq!(summary.items, 1800);
    assert_eq!(har, all_whole(&t)[0]);
    // Never more than one batch rebuilt at once...
    assert!(summary.max_batch <= 8, "{summary:?}");
    // ...and what waits for the merge is at most what one batch produced: the memory held does
    // not grow with the number of connections in the trace.
    assert!(summary.max_waiting_connections <= 8, "{summary:?}");
    assert!(summary.max_waiting_items <= 8 * 3, "{summary:?}");

    // Byte limit: a batch closes once it holds that much plaintext.
    let per_connection: u64 = http1(3, 1_000_000).iter().map(|w| w.2.len() as u64).sum();
    let limits = BatchLimits {
        bytes: 4 * per_connection,
        connections: usize::MAX,
        ..BatchLimits::default()
    };
    let (_, summary) = streamed(&t, limits, PcapngSink::new(PcapngOptions::default()));
    assert!(summary.max_batch <= 5, "{summary:?}");
    assert!(summary.max_waiting_connections <= 5, "{summary:?}");
}
