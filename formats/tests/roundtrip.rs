//! Writer → reader round trips: every record kind, arbitrary values, read back identical.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use spliff_formats::{
    CaptureId, CaptureInfo, ClockId, Connection, ConnectionCounters, ConnectionRole, Correlation,
    Direction, Entry, Handshake, HandshakeResult, HookKind, InterfaceEvent, InterfaceEventKind,
    Loss, LossCause, Process, Record, SectionInfo, TlsData, TlsLibrary, TraceReader, TraceWriter,
    Transport, UnixEndpoints,
};

/// Unix fields of a connection: transport, peer pid, inode, peer inode, path.
type UnixFields = (u8, u32, u64, u64, Vec<u8>);

/// Connection scalars: conn_id, pid, fd, cookie, open, close, role, library, version, proto.
type ConnFields = (u64, u32, i32, u64, u64, u64, u8, u8, u16, u8);

/// Owned inputs from which borrowed records are built (records borrow their byte fields).
#[derive(Debug, Clone)]
enum Owned {
    Capture(u64, u32, Vec<u8>, Vec<u8>, Vec<u8>, Vec<Vec<u8>>),
    Process(
        [u32; 4],
        u64,
        Vec<u8>,
        Vec<u8>,
        Vec<Vec<u8>>,
        Vec<u8>,
        Vec<u8>,
    ),
    Connection(
        Box<ConnFields>,
        Option<SocketAddr>,
        Option<SocketAddr>,
        Vec<u8>,
        Vec<u8>,
        Vec<u8>,
        [u64; 4],
        Box<UnixFields>,
    ),
    Interface(u32, Option<u32>, u8, u8, Vec<u8>, Vec<u8>),
    Correlation([u64; 3], Vec<Vec<u8>>),
    Data(u64, u32, u32, bool, u64, Vec<u8>),
    Handshake(u64, u32, u32, u64, u64, u8, i32),
    Loss(u64, u32, u32, u8, u8, u64, u64, u64),
}

fn borrow(o: &Owned) -> Record<'_> {
    match o {
        Owned::Capture(wall, clock, v, h, k, att) => Record::CaptureInfo(CaptureInfo {
            wall_clock_ns: *wall,
            clock: match clock {
                1 => ClockId::Monotonic,
                7 => ClockId::Boottime,
                c => ClockId::Other(*c),
            },
            spliff_version: v,
            hostname: h,
            kernel: k,
            attached: att.iter().map(Vec::as_slice).collect(),
        }),
        Owned::Process(ids, start, comm, exe, cmd, cg, cid) => Record::Process(Process {
            pid: ids[0],
            ppid: ids[1],
            uid: ids[2],
            gid: ids[3],
            start_ns: *start,
            comm,
            exe,
            cmdline: cmd.iter().map(Vec::as_slice).collect(),
            cgroup: cg,
            container_id: cid,
        }),
        Owned::Connection(f, local, remote, alpn, sni, lib, n, u) => {
            let (conn_id, pid, fd, cookie, open, close, role, tlslib, ver, proto) = **f;
            let (transport, peer_pid, inode, peer_inode, path) = &**u;
            Record::Connection(Connection {
                conn_id,
                pid,
                fd,
                socket_cookie: cookie,
                open_ns: open,
                close_ns: close,
                role: match role {
                    0 => ConnectionRole::Unknown,
                    1 => ConnectionRole::Client,
                    2 => ConnectionRole::Server,
                    r => ConnectionRole::Other(r),
                },
                tls_library: match tlslib {
                    0 => TlsLibrary::Unknown,
                    1 => TlsLibrary::OpenSsl,
                    2 => TlsLibrary::BoringSsl,
                    3 => TlsLibrary::GnuTls,
                    4 => TlsLibrary::Nss,
                    5 => TlsLibrary::WolfSsl,
                    6 => TlsLibrary::GoCryptoTls,
                    l => TlsLibrary::Other(l),
                },
                tls_version: ver,
                ip_protocol: proto,
                local: *local,
                remote: *remote,
                alpn,
                sni,
                library_path: lib,
                counters: ConnectionCounters {
                    packets_egress: n[0],
                    packets_ingress: n[1],
                    bytes_egress: n[2],
                    bytes_ingress: n[3],
                },
                transport: match transport {
                    0 => Transport::Tls,
                    1 => Transport::UnixStream,
                    t => Transport::Other(*t),
                },
                unix: UnixEndpoints {
                    path,
                    inode: *inode,
                    peer_inode: *peer_inode,
                    peer_pid: *peer_pid,
                },
            })
        }
        Owned::Interface(if_index, idb, event, hook, name, detail) => {
            Record::Interface(InterfaceEvent {
                if_index: *if_index,
                interface_id: *idb,
                event: match event {
                    1 => InterfaceEventKind::Appeared,
                    2 => InterfaceEventKind::Attached,
                    3 => InterfaceEventKind::AttachFailed,
                    4 => InterfaceEventKind::Detached,
                    5 => InterfaceEventKind::Disappeared,
                    e => InterfaceEventKind::Other(*e),
                },
                hook: match hook {
                    0 => HookKind::None,
                    1 => HookKind::XdpNative,
                    2 => HookKind::XdpGeneric,
                    3 => HookKind::XdpOffload,
                    4 => HookKind::TcxIngress,
                    5 => HookKind::TcxEgress,
                    6 => HookKind::ClsactIngress,
                    7 => HookKind::ClsactEgress,
                    h => HookKind::Other(*h),
                },
                name,
                detail,
            })
        }
        Owned::Correlation(n, reasons) => Record::Correlation(Correlation {
            tls_connections: n[0],
            with_socket: n[1],
            with_packets: n[2],
            reasons: reasons.iter().map(Vec::as_slice).collect(),
        }),
        Owned::Data(conn, pid, tid, egress, off, payload) => Record::TlsData(TlsData {
            conn_id: *conn,
            pid: *pid,
            tid: *tid,
            direction: if *egress {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            stream_offset: *off,
            payload,
        }),
        Owned::Handshake(conn, pid, tid, start, end, result, rc) => Record::Handshake(Handshake {
            conn_id: *conn,
            pid: *pid,
            tid: *tid,
            start_ns: *start,
            end_ns: *end,
            result: match result {
                0 => HandshakeResult::Unknown,
                1 => HandshakeResult::Ok,
                2 => HandshakeResult::Failed,
                r => HandshakeResult::Other(*r),
            },
            return_code: *rc,
        }),
        Owned::Loss(conn, pid, tid, dir, cause, off, len, events) => Record::Loss(Loss {
            conn_id: *conn,
            pid: *pid,
            tid: *tid,
            direction: match dir % 3 {
                0 => None,
                1 => Some(Direction::Egress),
                _ => Some(Direction::Ingress),
            },
            cause: match cause {
                1 => LossCause::Truncated,
                2 => LossCause::RingBufferFull,
                3 => LossCause::ReadFault,
                4 => LossCause::UserQueueFull,
                c => LossCause::Other(*c),
            },
            stream_offset: *off,
            length: *len,
            events: *events,
        }),
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn list() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(bytes(24), 0..5)
}

fn sockaddr() -> impl Strategy<Value = Option<SocketAddr>> {
    prop_oneof![
        Just(None),
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(a, p)| Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), p))),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(a, p)| Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), p))),
    ]
}

/// A connection's pair shares one family on the wire: a mixed pair comes back as IPv6 with the
/// IPv4 side mapped. This is the expected value after a round trip.
fn normalise(
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let any_v6 = [local, remote].iter().flatten().any(SocketAddr::is_ipv6);
    let map = |a: Option<SocketAddr>| {
        a.map(|a| match a.ip() {
            IpAddr::V4(v4) if any_v6 => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
            _ => a,
        })
    };
    (map(local), map(remote))
}

fn owned() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (
            any::<u64>(),
            prop_oneof![Just(1u32), Just(7), any::<u32>()],
            bytes(16),
            bytes(32),
            bytes(64),
            list()
        )
            .prop_map(|(w, c, v, h, k, a)| Owned::Capture(w, c, v, h, k, a)),
        (
            any::<[u32; 4]>(),
            any::<u64>(),
            bytes(16),
            bytes(64),
            list(),
            bytes(64),
            bytes(64)
        )
            .prop_map(|(i, s, c, e, cmd, cg, cid)| Owned::Process(i, s, c, e, cmd, cg, cid)),
        (
            any::<(u64, u32, i32, u64, u64, u64, u8, u8, u16, u8)>(),
            sockaddr(),
            sockaddr(),
            bytes(12),
            bytes(64),
            bytes(64),
            any::<[u64; 4]>(),
            (
                any::<u8>(),
                any::<u32>(),
                any::<u64>(),
                any::<u64>(),
                bytes(108)
            )
        )
            .prop_map(|(f, l, r, a, s, lib, n, u)| {
                let (l, r) = normalise(l, r);
                Owned::Connection(Box::new(f), l, r, a, s, lib, n, Box::new(u))
            }),
        (
            any::<u32>(),
            // u32::MAX is the wire's "no IDB" and reads back as None.
            prop_oneof![Just(None), (0u32..u32::MAX).prop_map(Some)],
            any::<u8>(),
            any::<u8>(),
            bytes(16),
            bytes(64)
        )
            .prop_map(|(i, d, e, h, n, t)| Owned::Interface(i, d, e, h, n, t)),
        (any::<[u64; 3]>(), list()).prop_map(|(n, r)| Owned::Correlation(n, r)),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            0u64..u64::MAX / 2,
            bytes(3000)
        )
            .prop_map(|(c, p, t, e, o, d)| Owned::Data(c, p, t, e, o, d)),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u8>(),
            any::<i32>()
        )
            .prop_map(|(c, p, t, s, e, r, rc)| Owned::Handshake(c, p, t, s, e, r, rc)),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            0u8..3,
            1u8..=255,
            any::<u64>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(c, p, t, d, ca, o, l, e)| Owned::Loss(c, p, t, d, ca, o, l, e)),
    ]
}

fn write(records: &[(u64, Record<'_>)], max_payload: usize) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &SectionInfo::default(), CaptureId([9; 16]))
        .expect("vec writer")
        .with_max_payload(max_payload);
    for (ts, r) in records {
        w.write(*ts, r).expect("write");
    }
    w.finish().expect("finish")
}

/// Joins consecutive TLS data pieces of one write (same ts, connection, direction, contiguous
/// offsets) so a split write compares equal to the original.
fn read_joined(bytes: &[u8]) -> Vec<(u64, Record<'static>)> {
    let mut out: Vec<(u64, Record<'static>)> = Vec::new();
    for entry in TraceReader::new(bytes) {
        let entry = entry.expect("no read error");
        let Entry::Record(r) = entry else { continue };
        assert_eq!(r.capture_id, CaptureId([9; 16]));
        let rec = leak(r.record);
        if let (Some((ts, Record::TlsData(prev))), Record::TlsData(next)) = (out.last_mut(), &rec)
            && *ts == r.ts_ns
            && prev.conn_id == next.conn_id
            && prev.direction == next.direction
            && prev.stream_offset + prev.payload.len() as u64 == next.stream_offset
        {
            let mut joined = prev.payload.to_vec();
            joined.extend_from_slice(next.payload);
            prev.payload = Box::leak(joined.into_boxed_slice());
            continue;
        }
        out.push((r.ts_ns, rec));
    }
    out
}

/// Test-only: extends borrowed records to 'static by leaking copies, so results outlive the
/// buffer they were read from.
fn leak(r: Record<'_>) -> Record<'static> {
    fn l(b: &[u8]) -> &'static [u8] {
        Box::leak(b.to_vec().into_boxed_slice())
    }
    fn ls(v: &[&[u8]]) -> Vec<&'static [u8]> {
        v.iter().map(|b| l(b)).collect()
    }
    match r {
        Record::CaptureInfo(c) => Record::CaptureInfo(CaptureInfo {
            spliff_version: l(c.spliff_version),
            hostname: l(c.hostname),
            kernel: l(c.kernel),
            attached: ls(&c.attached),
            wall_clock_ns: c.wall_clock_ns,
            clock: c.clock,
        }),
        Record::Process(p) => Record::Process(Process {
            comm: l(p.comm),
            exe: l(p.exe),
            cmdline: ls(&p.cmdline),
            cgroup: l(p.cgroup),
            container_id: l(p.container_id),
            ..p
        }),
        Record::Connection(c) => Record::Connection(Connection {
            alpn: l(c.alpn),
            sni: l(c.sni),
            library_path: l(c.library_path),
            unix: UnixEndpoints {
                path: l(c.unix.path),
                ..c.unix
            },
            ..c
        }),
        Record::TlsData(d) => Record::TlsData(TlsData {
            payload: l(d.payload),
            ..d
        }),
        Record::Handshake(h) => Record::Handshake(h),
        Record::Loss(x) => Record::Loss(x),
        Record::Interface(i) => Record::Interface(InterfaceEvent {
            name: l(i.name),
            detail: l(i.detail),
            ..i
        }),
        Record::Correlation(c) => Record::Correlation(Correlation {
            reasons: ls(&c.reasons),
            ..c
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_record_kind_reads_back_identical(
        items in proptest::collection::vec((any::<u64>(), owned()), 0..40),
        max_payload in prop_oneof![Just(65536usize), 1usize..700],
    ) {
        let records: Vec<(u64, Record<'_>)> = items.iter().map(|(ts, o)| (*ts, borrow(o))).collect();
        let bytes = write(&records, max_payload);
        let back = read_joined(&bytes);
        prop_assert_eq!(back.len(), records.len());
        for (got, want) in back.iter().zip(&records) {
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn records_by_time_is_sorted_and_complete(
        items in proptest::collection::vec((0u64..50, owned()), 0..30),
    ) {
        let records: Vec<(u64, Record<'_>)> = items.iter().map(|(ts, o)| (*ts, borrow(o))).collect();
        let bytes = write(&records, 1 << 20);
        let (sorted, errors) = TraceReader::new(&bytes).records_by_time();
        prop_assert!(errors.is_empty());
        prop_assert_eq!(sorted.len(), records.len());
        for pair in sorted.windows(2) {
            prop_assert!((pair[0].ts_ns, pair[0].offset) < (pair[1].ts_ns, pair[1].offset));
        }
    }
}

#[test]
fn large_write_is_split_by_stream_offset() {
    let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let rec = Record::TlsData(TlsData {
        conn_id: 7,
        pid: 1,
        tid: 2,
        direction: Direction::Egress,
        stream_offset: 1000,
        payload: &payload,
    });
    let bytes = write(&[(42, rec)], 65536);
    let pieces: Vec<(u64, usize)> = TraceReader::new(&bytes)
        .filter_map(|e| match e.expect("read") {
            Entry::Record(r) => match r.record {
                Record::TlsData(d) => Some((d.stream_offset, d.payload.len())),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        pieces,
        vec![
            (1000, 65536),
            (66536, 65536),
            (132072, 65536),
            (197608, 3392)
        ]
    );
}
