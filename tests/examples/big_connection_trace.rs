//! Writes a trace holding ONE large connection, for the replay memory benchmark:
//! `big_connection_trace h1|h2 SIZE_MB PATH`.
//!
//! - `h1`: one keep-alive HTTP/1.1 connection; responses of up to 1 MiB, binary (base64 in
//!   HAR) with Content-Length, binary chunked, and gzip-encoded text, read 16 KiB at a time.
//! - `h2`: one HTTP/2 connection made by the real `h2` crate (client and server in process):
//!   GETs 8 at a time, binary responses of up to 1 MiB and gzip-encoded ones.
//!
//! The sibling of `bench_trace` (many small connections); `scripts/bench-replay-big.sh` runs
//! both replays on it.

use bytes::Bytes;
use spliff_formats::{Connection, ConnectionRole, Direction, Record, TlsLibrary};
use spliff_tests::sample::{bench_data, bench_writer, gzip};

const MIB: usize = 1 << 20;
/// Body sizes cycled through (all at most 1 MiB).
const SIZES: [usize; 4] = [MIB, 256 << 10, 700 << 10, 64 << 10];

/// Binary (not UTF-8) bytes: a PNG signature, then a pseudo-random sequence.
fn binary(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend((8..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    out
}

/// Text that compresses about 3:1, gzip-encoded.
fn gzipped_text(len: usize) -> (Vec<u8>, usize) {
    let words = [
        "spliff", "replay", "stream", "bounded", "memory", "body", "exchange",
    ];
    let mut text = String::new();
    let mut x = 7u32;
    while text.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        text.push_str(words[(x >> 16) as usize % words.len()]);
        text.push_str(&format!("{} ", (x >> 8) % 1000));
    }
    text.truncate(len);
    (gzip(text.as_bytes()), len)
}

type Writes = Vec<(u64, Direction, Vec<u8>)>;

fn write_connection(
    path: &str,
    alpn: &[u8],
    mut emit: impl FnMut(&mut dyn FnMut(u64, Direction, &[u8])),
) {
    let file = std::fs::File::create(path).expect("create output");
    let base = 1_000_000_000u64;
    let mut w = bench_writer(file, [0xb1; 16], base);
    w.write(
        base,
        &Record::Connection(Connection {
            conn_id: 1,
            pid: 100,
            fd: 5,
            role: ConnectionRole::Client,
            tls_library: TlsLibrary::OpenSsl,
            ip_protocol: 6,
            local: Some("10.1.0.1:40000".parse().expect("addr")),
            remote: Some("10.2.0.1:443".parse().expect("addr")),
            alpn,
            ..Connection::default()
        }),
    )
    .expect("write");
    let mut offsets = [0u64; 2];
    let mut written = 0u64;
    emit(&mut |t, dir, bytes| {
        bench_data(&mut w, base + t, 1, dir, &mut offsets, bytes);
        written += bytes.len() as u64;
    });
    w.finish().expect("finish");
    eprintln!("1 connection, {} MiB of plaintext", written >> 20);
}

fn http1(size: u64, path: &str) {
    let bodies: Vec<Vec<u8>> = (0..8).map(|k| binary(SIZES[k % 4], k as u32)).collect();
    let (gz, gz_len) = gzipped_text(MIB);
    write_connection(path, b"http/1.1", |emit| {
        let mut total = 0u64;
        let mut i = 0usize;
        while total < size {
            let t = i as u64 * 1_000_000;
            let req =
                format!("GET /blob/{i} HTTP/1.1\r\nHost: big.test\r\nUser-Agent: bench/1\r\n\r\n");
            let mut resp = Vec::new();
            match i % 4 {
                // gzip-encoded text
                3 => {
                    resp.extend_from_slice(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\nX-Decoded-Length: {gz_len}\r\nContent-Length: {}\r\n\r\n",
                            gz.len()
                        )
                        .as_bytes(),
                    );
                    resp.extend_from_slice(&gz);
                }
                // binary, chunked in 8 KiB chunks
                1 => {
                    let body = &bodies[i % 8];
                    resp.extend_from_slice(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
                    );
                    for c in body.chunks(8 << 10) {
                        resp.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                        resp.extend_from_slice(c);
                        resp.extend_from_slice(b"\r\n");
                    }
                    resp.extend_from_slice(b"0\r\n\r\n");
                }
                // binary with Content-Length
                _ => {
                    let body = &bodies[i % 8];
                    resp.extend_from_slice(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    resp.extend_from_slice(body);
                }
            }
            emit(t, Direction::Egress, req.as_bytes());
            for (k, chunk) in resp.chunks(16 * 1024).enumerate() {
                emit(t + 100_000 + k as u64, Direction::Ingress, chunk);
            }
            total += (req.len() + resp.len()) as u64;
            i += 1;
        }
    });
}

fn http2(size: u64, path: &str) {
    let bodies: Vec<Bytes> = (0..8)
        .map(|k| Bytes::from(binary(SIZES[k % 4], k as u32)))
        .collect();
    let gz = Bytes::from(gzipped_text(MIB).0);
    // Average body: (1 MiB + 256 + 700 KiB + gzip) / 4.
    let avg = (bodies[0].len() + bodies[1].len() + bodies[2].len() + gz.len()) / 4;
    let streams = (size as usize).div_ceil(avg);
    let (client, server) = spliff_tests::h2gen::big_conversation(streams, 8, move |i| {
        if i % 4 == 3 {
            (gz.clone(), true)
        } else {
            (bodies[i % 8].clone(), false)
        }
    });
    let mut writes: Writes = client
        .into_iter()
        .map(|(t, b)| (t, Direction::Egress, b))
        .chain(server.into_iter().map(|(t, b)| (t, Direction::Ingress, b)))
        .collect();
    writes.sort_by_key(|w| w.0);
    write_connection(path, b"h2", |emit| {
        for (t, dir, bytes) in &writes {
            emit(*t, *dir, bytes);
        }
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let proto = args.next().unwrap_or_else(|| "h1".into());
    let size_mb: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1024);
    let path = args.next().unwrap_or_else(|| "big.pcapng".into());
    match proto.as_str() {
        "h1" => http1(size_mb << 20, &path),
        "h2" => http2(size_mb << 20, &path),
        other => {
            eprintln!("big_connection_trace: unknown protocol {other:?} (h1 or h2)");
            std::process::exit(2);
        }
    }
}
