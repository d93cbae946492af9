//! The byte layout of docs/FORMAT.md, checked against what the writer produces: if either
//! changes without the other, this fails.

use spliff_formats::{
    CaptureId, Connection, ConnectionRole, Direction, Record, SectionInfo, TlsData, TlsLibrary,
    TraceWriter,
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
    assert_eq!(u16_at(&rec, 6), 0, "minor");
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
}
