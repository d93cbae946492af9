//! The byte layout of docs/FORMAT.md, checked against what the writer produces: if either
//! changes without the other, this fails.

use spliff_formats::{
    CaptureId, Connection, ConnectionCounters, ConnectionRole, Correlation, Direction, Entry,
    HookKind, InterfaceEvent, InterfaceEventKind, Record, SectionInfo, TlsData, TlsLibrary,
    TraceReader, TraceWriter, Transport, UnixEndpoints,
};

/// The custom data (record) of the first spliff Custom Block after the SHB and interface 0.
fn first_record(ts: u64, record: &Record<'_>) -> (Vec<u8>, Vec<u8>) {
    let mut w = TraceWriter::new(
        Vec::new(),
        &SectionInfo::default(),
        CaptureId(*b"0123456789abcdef"),
    )
    .expect("vec");
    w.write(ts, record).expect("write");
    let bytes = w.finish().expect("finish");
    let mut i = 0;
    loop {
        let ty = u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4"));
        let len = u32::from_le_bytes(bytes[i + 4..i + 8].try_into().expect("4")) as usize;
        if ty == 0x0BAD {
            let block = bytes[i..i + len].to_vec();
            return (block[12..len - 4].to_vec(), block);
        }
        i += len;
    }
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().expect("2"))
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8"))
}

#[test]
fn block_and_record_header_match_format_md_4_1_and_4_2() {
    let payload = b"GET / HTTP/1.1\r\n\r\n";
    let (rec, block) = first_record(
        0x1122_3344_5566_7788,
        &Record::TlsData(TlsData {
            conn_id: 0xAABB,
            pid: 100,
            tid: 101,
            direction: Direction::Ingress,
            stream_offset: 0x0102_0304,
            payload,
        }),
    );
    assert_eq!(u32_at(&block, 8), 32473, "PEN at block offset 8");
    assert!(block.len().is_multiple_of(4));
    assert_eq!(&rec[0..4], b"SPLF");
    assert_eq!(u16_at(&rec, 4), 1, "major");
    assert_eq!(u16_at(&rec, 6), 2, "minor (1.2)");
    assert_eq!(u16_at(&rec, 8), 4, "kind tls-data");
    assert_eq!(u16_at(&rec, 10), 0, "flags");
    let body_len = u32_at(&rec, 12) as usize;
    assert_eq!(&rec[16..32], b"0123456789abcdef");
    assert_eq!(u64_at(&rec, 32), 0x1122_3344_5566_7788);
    let body = &rec[40..40 + body_len];
    // Kind 4 body.
    assert_eq!(u64_at(body, 0), 0xAABB);
    assert_eq!(u64_at(body, 8), 0x0102_0304);
    assert_eq!(u32_at(body, 16), 100);
    assert_eq!(u32_at(body, 20), 101);
    assert_eq!(body[24], 2, "ingress");
    assert_eq!(u32_at(body, 28) as usize, payload.len());
    assert_eq!(&body[32..], payload);
    assert_eq!(body_len, 32 + payload.len());
    // Padding after the record is zero.
    assert!(rec[40 + body_len..].iter().all(|b| *b == 0));
}

#[test]
fn connection_body_matches_format_md_kind_3() {
    let (rec, _) = first_record(
        5,
        &Record::Connection(Connection {
            conn_id: 9,
            pid: 10,
            fd: -1,
            socket_cookie: 11,
            open_ns: 12,
            close_ns: 13,
            role: ConnectionRole::Server,
            tls_library: TlsLibrary::GnuTls,
            tls_version: 0x0304,
            ip_protocol: 6,
            local: Some("192.0.2.1:443".parse().expect("addr")),
            remote: None,
            alpn: b"h2",
            sni: b"example.test",
            library_path: b"/lib/libgnutls.so.30",
            counters: ConnectionCounters {
                packets_egress: 21,
                packets_ingress: 22,
                bytes_egress: 23,
                bytes_ingress: 24,
            },
            transport: Transport::UnixStream,
            unix: UnixEndpoints {
                path: b"/run/x.sock",
                inode: 31,
                peer_inode: 32,
                peer_pid: 33,
            },
        }),
    );
    let b = &rec[40..];
    assert_eq!(u64_at(b, 0), 9);
    assert_eq!(u32_at(b, 8), 10);
    assert_eq!(u32_at(b, 12), u32::MAX, "fd -1");
    assert_eq!(u64_at(b, 16), 11);
    assert_eq!(u64_at(b, 24), 12);
    assert_eq!(u64_at(b, 32), 13);
    assert_eq!(b[40], 2, "server");
    assert_eq!(b[41], 3, "gnutls");
    assert_eq!(u16_at(b, 42), 0x0304);
    assert_eq!(b[44], 4, "family");
    assert_eq!(b[45], 6, "tcp");
    assert_eq!(u16_at(b, 46), 443);
    assert_eq!(u16_at(b, 48), 0);
    assert_eq!(u16_at(b, 50), 1, "only local known");
    assert_eq!(&b[52..56], &[192, 0, 2, 1]);
    assert!(b[56..84].iter().all(|x| *x == 0));
    assert_eq!(u32_at(b, 84), 2);
    assert_eq!(&b[88..90], b"h2");
    assert_eq!(u32_at(b, 90), 12);
    assert_eq!(&b[94..106], b"example.test");
    assert_eq!(u32_at(b, 106), 20);
    assert_eq!(&b[110..130], b"/lib/libgnutls.so.30");
    // 1.1: counters appended after the variable fields.
    assert_eq!(u64_at(b, 130), 21);
    assert_eq!(u64_at(b, 138), 22);
    assert_eq!(u64_at(b, 146), 23);
    assert_eq!(u64_at(b, 154), 24);
    // 1.2: transport and the unix socket's ends.
    assert_eq!(b[162], 1, "unix stream");
    assert_eq!(b[163], 0);
    assert_eq!(u16_at(b, 164), 0);
    assert_eq!(u32_at(b, 166), 33, "peer_pid");
    assert_eq!(u64_at(b, 170), 31, "socket_inode");
    assert_eq!(u64_at(b, 178), 32, "peer_inode");
    assert_eq!(u32_at(b, 186), 11);
    assert_eq!(&b[190..201], b"/run/x.sock");
    assert_eq!(u32_at(&rec, 12), 201, "body length");
}

/// `connection` written, then cut as a writer of `minor` wrote it (`cut` bytes fewer), read back.
fn read_older(connection: &Connection<'_>, minor: u16, cut: usize) -> Vec<Record<'static>> {
    let (mut rec, _) = first_record(1, &Record::Connection(connection.clone()));
    let body_len = u32_at(&rec, 12) as usize - cut;
    rec[6..8].copy_from_slice(&minor.to_le_bytes());
    rec[12..16].copy_from_slice(&(body_len as u32).to_le_bytes());
    rec.truncate(40 + body_len);
    let mut file = TraceWriter::new(Vec::new(), &SectionInfo::default(), CaptureId([1; 16]))
        .expect("vec")
        .finish()
        .expect("finish");
    let padded = rec.len().next_multiple_of(4);
    let block_len = (12 + padded + 4) as u32;
    file.extend_from_slice(&0x0BADu32.to_le_bytes());
    file.extend_from_slice(&block_len.to_le_bytes());
    file.extend_from_slice(&32473u32.to_le_bytes());
    file.extend_from_slice(&rec);
    file.resize(file.len() + padded - rec.len(), 0);
    file.extend_from_slice(&block_len.to_le_bytes());
    TraceReader::new(&file)
        .filter_map(|e| match e.expect("no read error") {
            Entry::Record(r) => Some(match r.record {
                Record::Connection(c) => Record::Connection(Connection {
                    alpn: c.alpn.to_vec().leak(),
                    sni: c.sni.to_vec().leak(),
                    library_path: c.library_path.to_vec().leak(),
                    unix: UnixEndpoints {
                        path: c.unix.path.to_vec().leak(),
                        ..c.unix
                    },
                    ..c
                }),
                other => panic!("not a connection: {other:?}"),
            }),
            _ => None,
        })
        .collect()
}

#[test]
fn a_1_1_connection_body_reads_as_tls_without_unix_ends() {
    let connection = Connection {
        conn_id: 3,
        alpn: b"h2",
        counters: ConnectionCounters {
            packets_egress: 1,
            ..ConnectionCounters::default()
        },
        ..Connection::default()
    };
    // A 1.1 writer stopped after the counters: no transport, no unix fields (28 bytes with
    // an empty path).
    let records = read_older(&connection, 1, 28);
    assert_eq!(records, vec![Record::Connection(connection)]);
}

#[test]
fn a_1_0_connection_body_without_counters_reads_as_zero_counters() {
    let connection = Connection {
        conn_id: 3,
        alpn: b"h2",
        ..Connection::default()
    };
    // The record as a 1.0 writer wrote it: minor 0, no counters (32 bytes) and none of 1.2's
    // fields (28 bytes with an empty path) at the end.
    let records = read_older(&connection, 0, 60);
    assert_eq!(records, vec![Record::Connection(connection)]);
}

#[test]
fn interface_body_matches_format_md_kind_7() {
    let (rec, _) = first_record(
        6,
        &Record::Interface(InterfaceEvent {
            if_index: 7,
            interface_id: Some(2),
            event: InterfaceEventKind::AttachFailed,
            hook: HookKind::XdpNative,
            name: b"eth0",
            detail: b"no",
        }),
    );
    assert_eq!(u16_at(&rec, 8), 7, "kind interface");
    let b = &rec[40..];
    assert_eq!(u32_at(b, 0), 7);
    assert_eq!(u32_at(b, 4), 2);
    assert_eq!(b[8], 3, "attach failed");
    assert_eq!(b[9], 1, "xdp native");
    assert_eq!(u16_at(b, 10), 0);
    assert_eq!(u32_at(b, 12), 4);
    assert_eq!(&b[16..20], b"eth0");
    assert_eq!(u32_at(b, 20), 2);
    assert_eq!(&b[24..26], b"no");
    assert_eq!(u32_at(&rec, 12), 26, "body length");
}

#[test]
fn correlation_body_matches_format_md_kind_8() {
    let (rec, _) = first_record(
        6,
        &Record::Correlation(Correlation {
            tls_connections: 5,
            with_socket: 4,
            with_packets: 3,
            reasons: vec![b"1 x"],
        }),
    );
    assert_eq!(u16_at(&rec, 8), 8, "kind correlation");
    let b = &rec[40..];
    assert_eq!(u64_at(b, 0), 5);
    assert_eq!(u64_at(b, 8), 4);
    assert_eq!(u64_at(b, 16), 3);
    assert_eq!(u32_at(b, 24), 1, "one line");
    assert_eq!(u32_at(b, 28), 3);
    assert_eq!(&b[32..35], b"1 x");
}
