//! A small trace that holds every kind of block spliff writes, for the tool-compatibility tests.

use std::borrow::Cow;
use std::io::Write;
use std::net::SocketAddr;

use flate2::Compression;
use flate2::write::GzEncoder;

use spliff_formats::{
    CaptureId, CaptureInfo, ClockId, Connection, ConnectionCounters, ConnectionRole, Direction,
    Handshake, HandshakeResult, Interface, InterfaceStats, Loss, LossCause, Packet,
    PacketDirection, Process, Record, SectionInfo, TlsData, TlsLibrary, TraceWriter,
};

/// Kernel-clock instant of the capture start in the sample traces.
pub const SAMPLE_MONO_NS: u64 = 5_000_000_000;
/// Wall-clock instant matching [`SAMPLE_MONO_NS`]: 2026-11-23T12:00:00Z.
pub const SAMPLE_WALL_NS: u64 = 1_795_435_200_000_000_000;

/// The request and response plaintext of the sample's IPv4 connection.
pub const SAMPLE_REQUEST: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: example.test\r\n\r\n";
/// See [`SAMPLE_REQUEST`].
pub const SAMPLE_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello";

/// A packet's bytes: a minimal Ethernet + IPv4 + TCP header, so Wireshark dissects it.
fn eth_ipv4_tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let ip_start = p.len();
    p.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let mut sum: u32 = 0;
    for pair in p[ip_start..ip_start + 20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let csum = !(sum as u16);
    p[ip_start + 10..ip_start + 12].copy_from_slice(&csum.to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    p
}

/// Writes a trace with a capture info, a process, an IPv4 and an IPv6 connection, TLS data in
/// both directions (one write large enough to be split), a handshake, a loss, an interface with
/// two packets and its statistics. `capture_id` makes two samples mergeable.
pub fn sample_trace(capture_id: [u8; 16]) -> Vec<u8> {
    let mut w = TraceWriter::new(
        Vec::new(),
        &SectionInfo {
            hardware: "x86_64".into(),
            os: "Linux 6.18.0".into(),
            user_application: "spliff 0.1.0 (sample)".into(),
        },
        CaptureId(capture_id),
    )
    .expect("writing to a Vec cannot fail");
    let t = SAMPLE_MONO_NS;
    let records: Vec<(u64, Record<'_>)> = vec![
        (
            t,
            Record::CaptureInfo(CaptureInfo {
                wall_clock_ns: SAMPLE_WALL_NS,
                clock: ClockId::Monotonic,
                spliff_version: b"0.1.0",
                hostname: b"sample-host",
                kernel: b"6.18.0 #1 SMP",
                attached: vec![b"uprobe SSL_write /usr/lib/libssl.so.3".as_slice()],
            }),
        ),
        (
            t + 1,
            Record::Process(Process {
                pid: 4242,
                ppid: 1,
                uid: 1000,
                gid: 1000,
                start_ns: t - 1000,
                comm: b"curl",
                exe: b"/usr/bin/curl",
                cmdline: vec![b"curl".as_slice(), b"https://example.test/"],
                cgroup: b"0::/user.slice",
                container_id: b"",
            }),
        ),
        (
            t + 2,
            Record::Connection(Connection {
                conn_id: 1,
                pid: 4242,
                fd: 5,
                socket_cookie: 0x1234,
                open_ns: t + 2,
                close_ns: 0,
                role: ConnectionRole::Client,
                tls_library: TlsLibrary::OpenSsl,
                tls_version: 0x0304,
                ip_protocol: 6,
                local: Some("10.0.0.1:40000".parse::<SocketAddr>().expect("literal")),
                remote: Some("10.0.0.2:443".parse::<SocketAddr>().expect("literal")),
                alpn: b"http/1.1",
                sni: b"example.test",
                library_path: b"/usr/lib/libssl.so.3",
                counters: ConnectionCounters::default(),
                ..Connection::default()
            }),
        ),
        (
            t + 3,
            Record::Connection(Connection {
                conn_id: 2,
                pid: 4242,
                fd: 6,
                local: Some("[fd00::1]:40001".parse::<SocketAddr>().expect("literal")),
                remote: Some("[fd00::2]:8443".parse::<SocketAddr>().expect("literal")),
                alpn: b"h2",
                ..Connection::default()
            }),
        ),
        (
            t + 4,
            Record::Handshake(Handshake {
                conn_id: 1,
                pid: 4242,
                tid: 4242,
                start_ns: t + 2,
                end_ns: t + 4,
                result: HandshakeResult::Ok,
                return_code: 1,
            }),
        ),
        (
            t + 5,
            Record::TlsData(TlsData {
                conn_id: 1,
                pid: 4242,
                tid: 4242,
                direction: Direction::Egress,
                stream_offset: 0,
                payload: SAMPLE_REQUEST,
            }),
        ),
        (
            t + 6,
            Record::TlsData(TlsData {
                conn_id: 1,
                pid: 4242,
                tid: 4243,
                direction: Direction::Ingress,
                stream_offset: 0,
                payload: SAMPLE_RESPONSE,
            }),
        ),
        (
            t + 7,
            Record::Loss(Loss {
                conn_id: 2,
                pid: 4242,
                tid: 4242,
                direction: Some(Direction::Ingress),
                cause: LossCause::RingBufferFull,
                stream_offset: 100,
                length: 4096,
                events: 1,
            }),
        ),
        (
            t + 9,
            Record::Connection(Connection {
                conn_id: 1,
                close_ns: t + 9,
                ..Connection::default()
            }),
        ),
    ];
    for (ts, r) in &records {
        w.write(*ts, r).expect("writing to a Vec cannot fail");
    }
    // One write of 150 000 bytes: larger than the default maximum payload, so it is split.
    let big: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    w.write(
        t + 8,
        &Record::TlsData(TlsData {
            conn_id: 2,
            pid: 4242,
            tid: 4242,
            direction: Direction::Egress,
            stream_offset: 0,
            payload: &big,
        }),
    )
    .expect("writing to a Vec cannot fail");

    let lo = w
        .add_interface(&Interface {
            linktype: 1,
            snaplen: 128,
            name: "veth0".into(),
            description: "xdp generic".into(),
        })
        .expect("writing to a Vec cannot fail");
    let wall = SAMPLE_WALL_NS;
    for (i, (dir, comment)) in [
        (PacketDirection::Outbound, "pid=4242 comm=curl"),
        (PacketDirection::Inbound, "pid=4242 comm=curl"),
    ]
    .into_iter()
    .enumerate()
    {
        let data = if i == 0 {
            eth_ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 40000, 443)
        } else {
            eth_ipv4_tcp([10, 0, 0, 2], [10, 0, 0, 1], 443, 40000)
        };
        w.write_packet(&Packet {
            interface_id: lo,
            ts_wall_ns: wall + 2 + i as u64,
            original_len: data.len() as u32,
            data: &data,
            direction: Some(dir),
            comment: Some(Cow::Borrowed(comment)),
        })
        .expect("writing to a Vec cannot fail");
    }
    w.write_interface_stats(&InterfaceStats {
        interface_id: lo,
        ts_wall_ns: wall + 10,
        start_wall_ns: Some(wall),
        end_wall_ns: Some(wall + 10),
        received: Some(2),
        dropped: Some(0),
        delivered: Some(2),
        comment: Some("loss: none".into()),
    })
    .expect("writing to a Vec cannot fail");
    w.finish().expect("writing to a Vec cannot fail")
}

/// Kernel clock at the capture start of [`http1_trace`].
pub const MONO: u64 = 1_000_000_000;
/// Wall clock at [`MONO`].
pub const WALL: u64 = 1_795_435_200_000_000_000; // 2026-11-23T12:00:00Z

/// The capture info record every test trace starts with: boot-time clock at [`MONO`], wall
/// clock [`WALL`].
fn capture_info() -> (u64, Record<'static>) {
    (
        MONO,
        Record::CaptureInfo(CaptureInfo {
            wall_clock_ns: WALL,
            clock: ClockId::Boottime,
            spliff_version: b"test",
            hostname: b"h",
            kernel: b"k",
            attached: vec![],
        }),
    )
}

/// gzip-compresses `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A keep-alive HTTP/1.1 connection of curl (as trace bytes, and the page it fetched): a GET answered with a gzip body, a POST with a
/// body answered chunked, written as the recorder would (several reads per response).
pub fn http1_trace() -> (Vec<u8>, Vec<u8>) {
    let page = b"<html><body>hello spliff</body></html>".repeat(20);
    let gz = gzip(&page);
    let req1 = b"GET /index.html?lang=en&x=1 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: curl/8.0\r\nAccept-Encoding: gzip\r\nCookie: a=1; b=2\r\n\r\n".to_vec();
    let mut resp1 = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nSet-Cookie: s=abc; Path=/\r\n\r\n",
        gz.len()
    )
    .into_bytes();
    resp1.extend_from_slice(&gz);
    let req2 = b"POST /api/items HTTP/1.1\r\nHost: example.test\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"name\":\"x\"}\n".to_vec();
    let resp2 = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{\"id\":7\r\n1\r\n}\r\n0\r\n\r\n".to_vec();

    let mut w =
        TraceWriter::new(Vec::new(), &SectionInfo::default(), CaptureId([3; 16])).expect("vec");
    let conn = |close| {
        Record::Connection(Connection {
            conn_id: 1,
            pid: 4242,
            fd: 5,
            role: ConnectionRole::Client,
            tls_library: TlsLibrary::OpenSsl,
            ip_protocol: 6,
            local: Some("127.0.0.1:40000".parse::<SocketAddr>().expect("addr")),
            remote: Some("127.0.0.1:8443".parse::<SocketAddr>().expect("addr")),
            alpn: b"http/1.1",
            sni: b"example.test",
            close_ns: close,
            ..Connection::default()
        })
    };
    let records: Vec<(u64, Record<'_>)> = vec![
        capture_info(),
        (
            MONO + 1,
            Record::Process(Process {
                pid: 4242,
                ppid: 1,
                uid: 0,
                gid: 0,
                start_ns: 0,
                comm: b"curl",
                exe: b"/usr/bin/curl",
                cmdline: vec![b"curl".as_slice()],
                cgroup: b"",
                container_id: b"",
            }),
        ),
        (MONO + 2, conn(0)),
        (
            MONO + 5_000_000,
            Record::Handshake(Handshake {
                conn_id: 1,
                pid: 4242,
                tid: 4242,
                start_ns: MONO + 2,
                end_ns: MONO + 5_000_000,
                result: HandshakeResult::Ok,
                return_code: 1,
            }),
        ),
    ];
    for (ts, r) in &records {
        w.write(*ts, r).expect("write");
    }
    let mut offsets = [0u64; 2];
    let mut put = |w: &mut TraceWriter<Vec<u8>>, ts: u64, dir: Direction, bytes: &[u8]| {
        let i = (dir == Direction::Ingress) as usize;
        w.write(
            ts,
            &Record::TlsData(TlsData {
                conn_id: 1,
                pid: 4242,
                tid: 4242,
                direction: dir,
                stream_offset: offsets[i],
                payload: bytes,
            }),
        )
        .expect("write");
        offsets[i] += bytes.len() as u64;
    };
    let t = MONO + 10_000_000;
    put(&mut w, t, Direction::Egress, &req1);
    let (a, b) = resp1.split_at(resp1.len() / 2);
    put(&mut w, t + 2_000_000, Direction::Ingress, a);
    put(&mut w, t + 3_000_000, Direction::Ingress, b);
    put(&mut w, t + 10_000_000, Direction::Egress, &req2);
    put(&mut w, t + 12_000_000, Direction::Ingress, &resp2);
    w.write(t + 20_000_000, &conn(t + 20_000_000))
        .expect("write");
    (w.finish().expect("finish"), page)
}

/// A trace of one HTTP/2 connection from [`crate::h2gen::conversation`]: the recorded process
/// is the client (`nghttp`, pid 777) on IPv6, ALPN `h2`. Writes keep their timestamps.
pub fn h2_trace(conv: &crate::h2gen::H2Conversation) -> Vec<u8> {
    let mut w =
        TraceWriter::new(Vec::new(), &SectionInfo::default(), CaptureId([4; 16])).expect("vec");
    let first = conv.client.first().map_or(MONO, |(t, _)| *t);
    let last = conv
        .client
        .iter()
        .chain(&conv.server)
        .map(|(t, _)| *t)
        .max()
        .unwrap_or(first);
    let conn = |close| {
        Record::Connection(Connection {
            conn_id: 9,
            pid: 777,
            fd: 3,
            role: ConnectionRole::Client,
            tls_library: TlsLibrary::OpenSsl,
            tls_version: 0x0304,
            ip_protocol: 6,
            local: Some("[fd00::1]:41000".parse::<SocketAddr>().expect("addr")),
            remote: Some("[fd00::2]:443".parse::<SocketAddr>().expect("addr")),
            alpn: b"h2",
            sni: b"h2.example.test",
            close_ns: close,
            ..Connection::default()
        })
    };
    let head: Vec<(u64, Record<'_>)> = vec![
        capture_info(),
        (
            MONO,
            Record::Process(Process {
                pid: 777,
                ppid: 1,
                uid: 0,
                gid: 0,
                start_ns: 0,
                comm: b"nghttp",
                exe: b"/usr/bin/nghttp",
                cmdline: vec![b"nghttp".as_slice(), b"-n"],
                cgroup: b"",
                container_id: b"",
            }),
        ),
        (first, conn(0)),
    ];
    for (ts, r) in &head {
        w.write(*ts, r).expect("write");
    }
    let mut events: Vec<(u64, Direction, &[u8])> = conv
        .client
        .iter()
        .map(|(t, b)| (*t, Direction::Egress, b.as_slice()))
        .chain(
            conv.server
                .iter()
                .map(|(t, b)| (*t, Direction::Ingress, b.as_slice())),
        )
        .collect();
    events.sort_by_key(|e| e.0);
    let mut offsets = [0u64; 2];
    for (ts, dir, bytes) in events {
        let i = usize::from(dir == Direction::Ingress);
        w.write(
            ts,
            &Record::TlsData(TlsData {
                conn_id: 9,
                pid: 777,
                tid: 777,
                direction: dir,
                stream_offset: offsets[i],
                payload: bytes,
            }),
        )
        .expect("write");
        offsets[i] += bytes.len() as u64;
    }
    w.write(last + 1, &conn(last + 1)).expect("write");
    w.finish().expect("finish")
}

/// [`http1_trace`] with 40 bytes in the middle of the first response's gzip body lost (a loss
/// record in place of the bytes), as a ring-buffer overflow would leave it. The head is intact.
pub fn http1_loss_trace() -> Vec<u8> {
    const LOST_AT: u64 = 140;
    const LOST: u64 = 40;
    let (bytes, _) = http1_trace();
    let mut w =
        TraceWriter::new(Vec::new(), &SectionInfo::default(), CaptureId([5; 16])).expect("vec");
    for entry in spliff_formats::TraceReader::new(&bytes) {
        let spliff_formats::Entry::Record(r) = entry.expect("sample reads") else {
            continue;
        };
        match &r.record {
            // The read that carries response bytes LOST_AT..LOST_AT+LOST.
            Record::TlsData(d)
                if d.direction == Direction::Ingress
                    && d.stream_offset <= LOST_AT
                    && d.stream_offset + d.payload.len() as u64 >= LOST_AT + LOST =>
            {
                let cut = (LOST_AT - d.stream_offset) as usize;
                let resume = cut + LOST as usize;
                w.write(
                    r.ts_ns,
                    &Record::TlsData(TlsData {
                        payload: &d.payload[..cut],
                        ..d.clone()
                    }),
                )
                .expect("write");
                w.write(
                    r.ts_ns,
                    &Record::Loss(Loss {
                        conn_id: d.conn_id,
                        pid: d.pid,
                        tid: d.tid,
                        direction: Some(Direction::Ingress),
                        cause: LossCause::RingBufferFull,
                        stream_offset: LOST_AT,
                        length: LOST,
                        events: 1,
                    }),
                )
                .expect("write");
                w.write(
                    r.ts_ns,
                    &Record::TlsData(TlsData {
                        stream_offset: LOST_AT + LOST,
                        payload: &d.payload[resume..],
                        ..d.clone()
                    }),
                )
                .expect("write");
            }
            other => w.write(r.ts_ns, other).expect("write"),
        }
    }
    w.finish().expect("finish")
}

/// A benchmark trace's writer on `file`: capture info (kernel time `base`) and the one
/// process (pid 100, `bench`) every benchmark connection belongs to are already written.
pub fn bench_writer(
    file: std::fs::File,
    capture_id: [u8; 16],
    base: u64,
) -> TraceWriter<std::io::BufWriter<std::fs::File>> {
    let mut w = TraceWriter::new(
        std::io::BufWriter::new(file),
        &SectionInfo::default(),
        CaptureId(capture_id),
    )
    .expect("trace");
    w.write(
        base,
        &Record::CaptureInfo(CaptureInfo {
            wall_clock_ns: 1_795_435_200_000_000_000,
            clock: ClockId::Boottime,
            spliff_version: b"bench",
            hostname: b"bench",
            kernel: b"bench",
            attached: vec![],
        }),
    )
    .expect("write");
    w.write(
        base,
        &Record::Process(Process {
            pid: 100,
            ppid: 1,
            uid: 0,
            gid: 0,
            start_ns: 0,
            comm: b"bench",
            exe: b"/usr/bin/bench",
            cmdline: vec![b"bench".as_slice()],
            cgroup: b"",
            container_id: b"",
        }),
    )
    .expect("write");
    w
}

/// Writes `payload` as the next TLS data of benchmark connection `conn_id` (process 100) in
/// direction `dir`, advancing that direction's offset in `offsets` ([egress, ingress]).
pub fn bench_data(
    w: &mut TraceWriter<std::io::BufWriter<std::fs::File>>,
    ts_ns: u64,
    conn_id: u64,
    dir: Direction,
    offsets: &mut [u64; 2],
    payload: &[u8],
) {
    let i = usize::from(dir == Direction::Ingress);
    w.write(
        ts_ns,
        &Record::TlsData(TlsData {
            conn_id,
            pid: 100,
            tid: 100,
            direction: dir,
            stream_offset: offsets[i],
            payload,
        }),
    )
    .expect("write");
    offsets[i] += payload.len() as u64;
}
