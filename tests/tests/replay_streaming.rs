//! The streaming replay (`pipeline::replay_to`, what `spliff replay` runs) against the
//! whole-trace model (`pipeline::replay` + `write_*`): the same bytes for HAR, text and pcapng,
//! whatever the thread count and batch size; and a structural proof of its memory bound: on a
//! trace of many sequential connections it never holds more than a batch of connections, and
//! never more waiting output than one batch produced; on one large connection it holds about
//! one exchange at a time.

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
    h2_writes(spliff_tests::h2gen::conversation(4, 100, 0))
}

/// Both sides' writes of an HTTP/2 conversation, in time order.
fn h2_writes(conv: spliff_tests::h2gen::H2Conversation) -> Writes {
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
    trace_with_alpn(connections, gap_ns, close_after_ns, None, writes)
}

/// [`trace`] with the ALPN given (`Some(b"")`: none recorded) instead of taken from the
/// first bytes.
fn trace_with_alpn(
    connections: u64,
    gap_ns: u64,
    close_after_ns: u64,
    alpn: Option<&[u8]>,
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
                alpn: alpn.unwrap_or(if h2 { &b"h2"[..] } else { &b"http/1.1"[..] }),
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
            // Every connection rendered item by item, overlapping each other, with windows
            // that every read outgrows.
            BatchLimits {
                lazy_bytes: 0,
                lazy_window: 16,
                ..BatchLimits::default()
            },
            // Some in batches, some item by item (the HTTP/1 ones are the larger).
            BatchLimits {
                bytes: 20_000,
                connections: 3,
                lazy_bytes: 3_000,
                lazy_window: 1,
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
        // Every connection lazy, with windows that every read outgrows (1), that cut HTTP/2
        // frame headers (9), and larger ones.
        let lazy = [1, 9, 64, 4096].map(|lazy_window| BatchLimits {
            lazy_bytes: 0,
            lazy_window,
            ..BatchLimits::default()
        });
        let batches = [
            BatchLimits::default(),
            BatchLimits {
                bytes: 1,
                connections: 1,
                ..BatchLimits::default()
            },
        ];
        for limits in batches.into_iter().chain(lazy) {
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

/// One keep-alive HTTP/1.1 connection: `exchanges` responses of `body` bytes, alternating
/// Content-Length, chunked and gzip (binary bodies: HAR writes them as base64), pipelined in
/// pairs (two requests, then both responses), each response read 16 KiB at a time.
fn large_http1(exchanges: usize, body: usize) -> Writes {
    let binary: Vec<u8> = (0..body).map(|i| (i * 131 % 251) as u8).collect();
    let gz = spliff_tests::sample::gzip(&binary);
    let mut out = Vec::new();
    for pair in 0..exchanges / 2 {
        let t = pair as u64 * 1_000_000;
        for k in 0..2 {
            let i = pair * 2 + k;
            let req = format!("GET /big/{i} HTTP/1.1\r\nHost: big.test\r\n\r\n");
            out.push((t + k as u64, Direction::Egress, req.into_bytes()));
        }
        for k in 0..2 {
            let i = pair * 2 + k;
            let mut resp = Vec::new();
            match i % 3 {
                0 => {
                    resp.extend(format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n", binary.len()).bytes());
                    resp.extend_from_slice(&binary);
                }
                1 => {
                    resp.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
                    for c in binary.chunks(5000) {
                        resp.extend(format!("{:x}\r\n", c.len()).bytes());
                        resp.extend_from_slice(c);
                        resp.extend_from_slice(b"\r\n");
                    }
                    resp.extend_from_slice(b"0\r\n\r\n");
                }
                _ => {
                    resp.extend(format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", gz.len()).bytes());
                    resp.extend_from_slice(&gz);
                }
            }
            for (n, chunk) in resp.chunks(16 << 10).enumerate() {
                let ts = t + 100_000 * (k as u64 + 1) + n as u64;
                out.push((ts, Direction::Ingress, chunk.to_vec()));
            }
        }
    }
    out
}

#[test]
fn a_large_http1_connection_is_held_one_exchange_at_a_time() {
    // 90 exchanges of 128 KiB (about 11 MiB of plaintext) on one connection: far more than
    // the bounds asserted below.
    let body = 128 << 10;
    let t = trace(1, 1_000_000, 0, |_| large_http1(90, body));
    let whole = all_whole(&t);
    assert!(whole[0].len() > 10 << 20, "HAR of {} bytes", whole[0].len());
    for threads in [1, 2] {
        let got = pool(threads).install(|| {
            let mut got = Vec::new();
            for (k, sink) in [0, 1, 2].into_iter().enumerate() {
                let limits = BatchLimits {
                    lazy_bytes: 1 << 20,
                    lazy_window: 64 << 10,
                    ..BatchLimits::default()
                };
                let (bytes, summary) = match sink {
                    0 => streamed(&t, limits, HarSink::default()),
                    1 => streamed(
                        &t,
                        limits,
                        TextSink {
                            options: TextOptions {
                                bodies: true,
                                ..TextOptions::default()
                            },
                            ..TextSink::default()
                        },
                    ),
                    _ => streamed(&t, limits, PcapngSink::new(PcapngOptions::default())),
                };
                assert_eq!(summary.lazy_connections, 1, "{summary:?}");
                // One exchange rebuilt at a time...
                assert!(summary.max_lazy_exchanges_held <= 1, "{summary:?}");
                // ...over windows of the plaintext about one exchange long (two directions,
                // each at most twice the largest exchange plus the scan margin), not the
                // connection's 100 MiB...
                assert!(
                    summary.max_lazy_plaintext <= 4 * (body as u64 + (80 << 10)),
                    "{summary:?}"
                );
                // ...and the output waiting for the merge is one item (a packet or an
                // exchange; the text view's hexdump of a body is under 8 times its size),
                // not the connection's.
                assert!(summary.max_waiting_items <= 1, "{summary:?}");
                assert!(summary.max_waiting_bytes <= 8 * body as u64, "{summary:?}");
                assert!(
                    bytes == whole[k],
                    "output {k} differs with {threads} threads"
                );
                got.push(bytes);
            }
            got
        });
        assert_eq!(got.len(), 3);
    }
}

#[test]
fn a_large_http2_connection_streams_its_output_and_gives_the_same_bytes() {
    // All 64 requests are sent before any response is read, so all 64 streams are open at
    // once: the connection holds them, and gives the same bytes.
    let w = h2_writes(spliff_tests::h2gen::conversation_with_bodies(
        64,
        100,
        64 << 10,
        0,
    ));
    let t = trace(1, 1_000_000, 0, |_| w.clone());
    let whole = all_whole(&t);
    let limits = BatchLimits {
        lazy_bytes: 1 << 20,
        ..BatchLimits::default()
    };
    for threads in [1, 2] {
        let got = pool(threads).install(|| all_streamed(&t, limits));
        assert!(got == whole, "differs with {threads} threads");
    }
    let (_, summary) = streamed(&t, limits, HarSink::default());
    assert_eq!(summary.lazy_connections, 1, "{summary:?}");
    assert!(summary.max_lazy_exchanges_held <= 64, "{summary:?}");
    assert!(summary.max_waiting_items <= 1, "{summary:?}");
}

#[test]
fn a_large_many_stream_http2_connection_is_held_a_few_streams_at_a_time() {
    // 400 GETs, 4 open at a time, 48 KiB bodies (some gzip-encoded): ~19 MiB on one
    // connection. Only the open streams (and exchanges waiting for an earlier one) are held,
    // and a window of about a frame of each direction, whatever the size of the connection.
    let t = trace(1, 1_000_000, 0, |_| many_stream_http2());
    // Two windows of at most twice what they started with (a frame is 16 KiB here).
    assert_held_a_few_streams_at_a_time(&t, |window| 4 * window);
}

#[test]
fn a_large_http2_capture_begun_mid_connection_is_held_a_few_streams_at_a_time() {
    // The same connection with its first 40 writes of each direction (preface, SETTINGS and
    // the first streams) before the capture, and no ALPN: only the frame chains at the start
    // of each direction say HTTP/2, and that is decided from the first windows.
    let mut seen = [0usize; 2];
    let w: Writes = many_stream_http2()
        .into_iter()
        .filter(|(_, dir, _)| {
            let i = usize::from(*dir == Direction::Ingress);
            seen[i] += 1;
            seen[i] > 40
        })
        .collect();
    let t = trace_with_alpn(1, 1_000_000, 0, Some(b""), |_| w.clone());
    // Finding the first frame boundary of a direction that begins mid-frame may look as far
    // as a frame header read at a wrong place claims (at most a 16 MiB frame): the windows
    // grow that far once, whatever the size of the connection.
    assert_held_a_few_streams_at_a_time(&t, |window| 2 * (16 << 20) + 4 * window);
}

/// 400 GETs, 4 open at a time, 48 KiB bodies (every fifth gzip-encoded), both sides' writes
/// in time order.
fn many_stream_http2() -> Writes {
    let body = bytes::Bytes::from(
        (0..48 << 10)
            .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    );
    let gz = {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&b"spliff streams http2 ".repeat(3000))
            .expect("gzip");
        bytes::Bytes::from(e.finish().expect("gzip"))
    };
    let (client, server) = spliff_tests::h2gen::big_conversation(400, 4, move |i| {
        if i % 5 == 4 {
            (gz.clone(), true)
        } else {
            (body.clone(), false)
        }
    });
    let mut w: Writes = client
        .into_iter()
        .map(|(t, b)| (t, Direction::Egress, b))
        .chain(server.into_iter().map(|(t, b)| (t, Direction::Ingress, b)))
        .collect();
    w.sort_by_key(|w| w.0);
    w
}

/// Streamed output equals the whole model's, with at most a few exchanges held and at most
/// `plaintext(first window)` bytes of windows.
fn assert_held_a_few_streams_at_a_time(t: &[u8], plaintext: impl Fn(u64) -> u64) {
    let whole = all_whole(t);
    for window in [64 << 10, 1 << 20] {
        let limits = BatchLimits {
            lazy_bytes: 1 << 20,
            lazy_window: window,
            ..BatchLimits::default()
        };
        let got = all_streamed(t, limits);
        assert!(got == whole, "differs with windows from {window} bytes");
        let (_, summary) = streamed(t, limits, HarSink::default());
        eprintln!("windows from {window} bytes: {summary:?}");
        assert_eq!(summary.lazy_connections, 1, "{summary:?}");
        // 4 open streams, and the few closed ones waiting for an earlier one to close.
        assert!(summary.max_lazy_exchanges_held <= 8, "{summary:?}");
        assert!(
            summary.max_lazy_plaintext <= plaintext(window),
            "{summary:?}"
        );
        assert!(summary.max_waiting_items <= 8, "{summary:?}");
    }
}

/// One GET answered by a `len`-byte binary body with Content-Length, read 16 KiB at a time.
fn bulk_download(body: &[u8]) -> Writes {
    let mut out = vec![(
        0,
        Direction::Egress,
        b"GET /download.bin HTTP/1.1\r\nHost: bulk.test\r\n\r\n".to_vec(),
    )];
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(body);
    for (n, chunk) in resp.chunks(16 << 10).enumerate() {
        out.push((1_000 + n as u64, Direction::Ingress, chunk.to_vec()));
    }
    out
}

/// The `text` of the first HAR entry's response content, base64-decoded.
fn har_content(har: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let key = b"\"content\":{";
    let at = har
        .windows(key.len())
        .position(|w| w == key)
        .expect("content");
    let text = b"\"text\":\"";
    let from = at
        + har[at..]
            .windows(text.len())
            .position(|w| w == text)
            .expect("text")
        + text.len();
    let len = har[from..].iter().position(|&b| b == b'"').expect("end");
    base64::engine::general_purpose::STANDARD
        .decode(&har[from..from + len])
        .expect("base64")
}

#[test]
fn a_bulk_body_is_written_from_the_trace_without_being_held() {
    // 64 MiB in one body (issue 19): before, the windows grew to hold it, the exchange held a
    // copy and the HAR entry its base64, each larger than the body. Now it is written from
    // the trace as the entry is written: the windows stay at their first size, nothing waits
    // for the merge but the entry's head, and the HAR holds the exact bytes.
    let mut x = 0x9e37_79b9u32;
    let body: Vec<u8> = (0..64usize << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let t = trace(1, 1_000_000, 0, |_| bulk_download(&body));
    let limits = BatchLimits::default();
    let (har, summary) = streamed(&t, limits, HarSink::default());
    assert_eq!(summary.lazy_connections, 1, "{summary:?}");
    assert!(summary.max_lazy_plaintext <= 4 << 20, "{summary:?}");
    assert!(summary.max_waiting_bytes <= 64 << 10, "{summary:?}");
    assert!(
        har_content(&har) == body,
        "the HAR body is not the body sent"
    );
    for (name, (out, summary)) in [
        ("text", streamed(&t, limits, TextSink::default())),
        (
            "pcapng",
            streamed(&t, limits, PcapngSink::new(PcapngOptions::default())),
        ),
    ] {
        assert!(!out.is_empty(), "{name}");
        assert!(summary.max_lazy_plaintext <= 4 << 20, "{name}: {summary:?}");
        assert!(summary.max_lazy_exchanges_held <= 1, "{name}: {summary:?}");
    }
}
