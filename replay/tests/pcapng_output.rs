//! The pcapng output (`spliff replay -o out.pcapng`) on hostile and large traces: bounded work
//! for any stream offset, one distinct TCP 4-tuple per connection at any count.

use std::net::{IpAddr, SocketAddr};

use pcap_file::pcapng::PcapNgReader;
use pcap_file::pcapng::blocks::Block;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::opt_common::CommonOption;

use spliff_formats::{
    CaptureId, Connection, ConnectionRole, Direction, Record, SectionInfo, TlsData, TraceWriter,
};
use spliff_replay::ReplayOptions;
use spliff_replay::pcapng::{PcapngOptions, PcapngSink};
use spliff_replay::pipeline::{BatchLimits, ReplaySummary, replay_to};

/// A TLS data record of connection `conn_id` at `stream_offset`.
fn data(conn_id: u64, direction: Direction, stream_offset: u64, payload: &[u8]) -> Record<'_> {
    Record::TlsData(TlsData {
        conn_id,
        pid: 7,
        tid: 7,
        direction,
        stream_offset,
        payload,
    })
}

/// A trace of the given records, stamped 1 µs apart.
fn trace(records: &[Record<'_>]) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &SectionInfo::default(), CaptureId([3; 16]))
        .expect("writing to a Vec cannot fail");
    for (i, r) in records.iter().enumerate() {
        w.write(1_000_000 + i as u64 * 1_000, r).expect("write");
    }
    w.finish().expect("finish")
}

/// With `SPLIFF_FUZZ_SEEDS=DIR`, writes `trace` there as a seed of the `pcapng` fuzz target
/// (how `fixtures/fuzz/pcapng/corpus` was seeded).
fn seed(name: &str, trace: &[u8]) {
    if let Some(dir) = std::env::var_os("SPLIFF_FUZZ_SEEDS") {
        std::fs::write(std::path::Path::new(&dir).join(name), trace).expect("write a seed");
    }
}

/// The pcapng output of `trace` with `limits`.
fn replay_with(trace: &[u8], limits: BatchLimits) -> (Vec<u8>, ReplaySummary) {
    let mut out = Vec::new();
    let summary = replay_to(
        trace,
        &ReplayOptions::default(),
        limits,
        &|_| {},
        &PcapngSink::new(PcapngOptions::default()),
        &mut out,
    )
    .expect("replay into a Vec");
    (out, summary)
}

/// The pcapng output of `trace`, checked to be the same whether connections are rebuilt
/// whole (in batches) or item by item through windows (lazily).
fn replay_pcapng(trace: &[u8]) -> (Vec<u8>, ReplaySummary) {
    let (whole, summary) = replay_with(trace, BatchLimits::default());
    let (lazy, lazy_summary) = replay_with(
        trace,
        BatchLimits {
            lazy_bytes: 0,
            lazy_window: 64,
            ..BatchLimits::default()
        },
    );
    assert_eq!(lazy_summary.lazy_connections, summary.connections);
    assert!(whole == lazy, "the lazy path writes other bytes");
    (whole, summary)
}

/// One packet of the output: TCP 4-tuple as (client side first as sent), payload, comment.
#[derive(Debug)]
struct Segment {
    src: SocketAddr,
    dst: SocketAddr,
    payload: Vec<u8>,
    comment: String,
}

/// The TCP segments of a replay pcapng (raw IP link type), read with pcap-file.
fn segments(pcapng: &[u8]) -> Vec<Segment> {
    let mut reader = PcapNgReader::new(pcapng).expect("a pcapng section header");
    let mut out = Vec::new();
    while let Some(block) = reader.next_block() {
        let (Block::EnhancedPacket(epb), _) = block.expect("a whole block") else {
            continue;
        };
        let comment = epb
            .options
            .iter()
            .filter_map(|o| match o {
                EnhancedPacketOption::Common(CommonOption::Comment(c)) => Some(c.to_string()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("; ");
        let p = &epb.data;
        let (src, dst, tcp): (IpAddr, IpAddr, &[u8]) = if p[0] >> 4 == 4 {
            let a: [u8; 4] = p[12..16].try_into().expect("4");
            let b: [u8; 4] = p[16..20].try_into().expect("4");
            (a.into(), b.into(), &p[20..])
        } else {
            let a: [u8; 16] = p[8..24].try_into().expect("16");
            let b: [u8; 16] = p[24..40].try_into().expect("16");
            (a.into(), b.into(), &p[40..])
        };
        let port = |at: usize| u16::from_be_bytes([tcp[at], tcp[at + 1]]);
        out.push(Segment {
            src: SocketAddr::new(src, port(0)),
            dst: SocketAddr::new(dst, port(2)),
            payload: tcp[usize::from(tcp[12] >> 4) * 4..].to_vec(),
            comment,
        });
    }
    out
}

#[test]
fn a_stream_offset_near_2_64_is_written_in_bounded_work() {
    // Was: the segment planner's `pos + max` wrapped and planned segments without end (24 GB
    // until killed in a release build; an overflow panic in a debug build).
    let request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    let records = [
        Record::Connection(Connection {
            conn_id: 1,
            pid: 7,
            role: ConnectionRole::Client,
            local: Some("10.0.0.1:40000".parse::<SocketAddr>().expect("literal")),
            remote: Some("10.0.0.2:443".parse::<SocketAddr>().expect("literal")),
            ..Connection::default()
        }),
        data(1, Direction::Egress, 0, request),
        data(1, Direction::Egress, u64::MAX - 20, b"0123456789"),
        data(1, Direction::Ingress, u64::MAX - 30, b"HTTP"),
    ];
    let trace = trace(&records);
    seed("offset-near-2-64", &trace);
    let (out, _) = replay_pcapng(&trace);
    let segs = segments(&out);
    let payload: Vec<u8> = segs.iter().flat_map(|s| s.payload.clone()).collect();
    // Every captured byte once, no more: the offsets near 2^64 neither wrapped around nor
    // multiplied the segments.
    assert_eq!(payload.len(), request.len() + 10 + 4, "{segs:?}");
    assert!(
        segs.iter().any(|s| s.payload == b"0123456789"
            && s.comment.contains(&format!(
                "{} bytes of the request stream lost",
                u64::MAX - 20 - request.len() as u64
            ))
            && s.comment
                .contains("too many bytes for TCP sequence numbers")),
        "the loss before the far segment is reported: {segs:?}"
    );
}

/// `n` connections recorded with one client and server address (port reuse, merged captures).
fn one_address_pair(n: u64) -> Vec<u8> {
    let records: Vec<Record<'_>> = (1..=n)
        .flat_map(|conn_id| {
            [
                Record::Connection(Connection {
                    conn_id,
                    pid: 7,
                    role: ConnectionRole::Client,
                    local: Some("10.0.0.1:40000".parse::<SocketAddr>().expect("literal")),
                    remote: Some("10.0.0.2:443".parse::<SocketAddr>().expect("literal")),
                    ..Connection::default()
                }),
                data(conn_id, Direction::Egress, 0, b"x"),
            ]
        })
        .collect();
    trace(&records)
}

#[test]
fn connections_on_one_address_pair_get_distinct_4_tuples_past_the_port_count() {
    // Was: each connection probed the ports taken before it (quadratic), and the probe never
    // ended once the 64,512 client ports were taken.
    let few = one_address_pair(6);
    seed("one-address-pair", &few);
    assert_eq!(replay_pcapng(&few).1.connections, 6);
    let n = 70_000;
    // Rebuilt whole only: connections this small are never rendered lazily.
    let (out, summary) = replay_with(&one_address_pair(n), BatchLimits::default());
    assert_eq!(summary.connections, n as usize);
    let syns: Vec<Segment> = segments(&out)
        .into_iter()
        .filter(|s| s.comment.starts_with("spliff connection"))
        .collect();
    assert_eq!(syns.len(), n as usize);
    let tuples: std::collections::HashSet<(SocketAddr, SocketAddr)> =
        syns.iter().map(|s| (s.src, s.dst)).collect();
    assert_eq!(tuples.len(), n as usize, "a 4-tuple is shared");
    let moved = syns
        .iter()
        .filter(|s| s.src.ip() != "10.0.0.1".parse::<IpAddr>().expect("literal"))
        .collect::<Vec<_>>();
    assert!(!moved.is_empty());
    assert_eq!(moved.len(), n as usize - 64_512);
    assert!(moved.iter().all(|s| {
        s.src.ip().to_string() == "198.51.100.1"
            && s.comment
                .contains("every client port towards this server was taken")
    }));
}
