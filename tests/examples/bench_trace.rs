//! Writes a large mixed HTTP/1.1 + HTTP/2 trace for the replay benchmark:
//! `bench_trace SIZE_MB PATH`. Real `h2` conversations and keep-alive HTTP/1.1 exchanges are
//! generated once and written again and again with fresh connection ids and later timestamps,
//! streaming to disk (memory stays small whatever the size).
//!
//! Both protocols carry real bodies: HTTP/1.1 text bodies and, every fourth response, a binary
//! one (written to HAR as base64); HTTP/2 24 KiB responses on 16 multiplexed streams, with one
//! 4 kB header (a large cookie's worth) in Huffman-coded HPACK.

use std::net::SocketAddr;

use spliff_formats::{Connection, ConnectionRole, Direction, Record, TlsLibrary};
use spliff_tests::sample::{bench_data, bench_writer};

type Writes = Vec<(u64, Direction, Vec<u8>)>;

fn http1_conversation(body_len: usize, binary_len: usize, requests: usize) -> Writes {
    let text: Vec<u8> = (0..body_len).map(|i| b'a' + (i % 26) as u8).collect();
    // Not UTF-8 (a PNG signature, then bytes of every value).
    let binary: Vec<u8> = b"\x89PNG\r\n\x1a\n"
        .iter()
        .copied()
        .chain((0..binary_len).map(|i| (i * 131 % 251) as u8))
        .collect();
    let mut out = Vec::new();
    for i in 0..requests {
        let t = i as u64 * 1_000_000;
        let (path, ctype, body) = if i % 4 == 3 {
            (format!("/img/{i}.png"), "image/png", &binary)
        } else {
            (format!("/asset/{i}.js"), "application/javascript", &text)
        };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: bench/1\r\nAccept: */*\r\n\r\n"
        );
        out.push((t, Direction::Egress, req.into_bytes()));
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        resp.extend_from_slice(body);
        // As a client reads it: 16 KiB at a time.
        for (k, chunk) in resp.chunks(16 * 1024).enumerate() {
            out.push((t + 100_000 + k as u64, Direction::Ingress, chunk.to_vec()));
        }
    }
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let size_mb: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1024);
    let path = args.next().unwrap_or_else(|| "bench.pcapng".into());
    // 16 streams of 24 KiB responses, one 4 kB request header.
    let h2 = spliff_tests::h2gen::conversation_with_bodies(16, 4_000, 24 << 10, 0);
    let mut h2_writes: Writes = h2
        .client
        .iter()
        .map(|(t, b)| (*t, Direction::Egress, b.clone()))
        .chain(
            h2.server
                .iter()
                .map(|(t, b)| (*t, Direction::Ingress, b.clone())),
        )
        .collect();
    h2_writes.sort_by_key(|w| w.0);
    let h1_writes = http1_conversation(8 * 1024, 32 * 1024, 12);

    let file = std::fs::File::create(&path).expect("create output");
    let base = 1_000_000_000u64;
    let mut w = bench_writer(file, [0xbe; 16], base);
    let mut written = 0u64;
    let mut conn_id = 0u64;
    while written < size_mb << 20 {
        conn_id += 1;
        let (writes, alpn) = if conn_id.is_multiple_of(2) {
            (&h2_writes, &b"h2"[..])
        } else {
            (&h1_writes, &b"http/1.1"[..])
        };
        // Connections overlap in time, as they do in real captures.
        let t0 = base + conn_id * 2_000_000;
        let local: SocketAddr = format!(
            "10.1.{}.{}:{}",
            (conn_id >> 8) & 0xff,
            conn_id & 0xff,
            30000 + conn_id % 30000
        )
        .parse()
        .expect("addr");
        w.write(
            t0,
            &Record::Connection(Connection {
                conn_id,
                pid: 100,
                fd: 5,
                role: ConnectionRole::Client,
                tls_library: TlsLibrary::OpenSsl,
                ip_protocol: 6,
                local: Some(local),
                remote: Some("10.2.0.1:443".parse().expect("addr")),
                alpn,
                ..Connection::default()
            }),
        )
        .expect("write");
        let mut offsets = [0u64; 2];
        for (t, dir, bytes) in writes {
            bench_data(&mut w, t0 + t, conn_id, *dir, &mut offsets, bytes);
            written += bytes.len() as u64;
        }
    }
    w.finish().expect("finish");
    eprintln!("{conn_id} connections, {} MiB of plaintext", written >> 20);
}
