//! Writes a trace of bulk downloads, for the replay benchmark of large bodies:
//! `bulk_trace SIZE_MB PATH [h2]`.
//!
//! Two keep-alive HTTP/1.1 connections, each a single GET answered by one binary body of
//! SIZE_MB / 2 MiB with Content-Length (base64 in HAR), read 16 KiB at a time; with `h2`, a
//! third connection downloads as much over HTTP/2 (one stream, DATA frames of 16 KiB less
//! their header, frames and HPACK written by hand). The downloads run at once, so their
//! records interleave as parallel transfers do. Bodies are generated while they are written:
//! the generator's memory stays small whatever the size.
//!
//! The sibling of `bench_trace` (many small bodies) and `big_connection_trace` (one long
//! connection of bodies up to 1 MiB); `scripts/bench-replay.sh` runs the replays on it.

use spliff_formats::{Connection, ConnectionRole, Direction, Record, TlsLibrary};
use spliff_tests::sample::{bench_data, bench_writer};

const READ: usize = 16 << 10;

/// A pseudo-random byte source (xorshift), seeded per download: binary, not UTF-8.
struct Binary(u32);

impl Binary {
    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            *b = self.0 as u8;
        }
    }
}

/// One download: the response still to write and its body source.
struct Download {
    conn_id: u64,
    offsets: [u64; 2],
    head: Vec<u8>,
    left: u64,
    body: Binary,
    /// HTTP/2: each read is one DATA frame of stream 1.
    h2: bool,
}

/// An HTTP/2 frame header (RFC 9113 §4.1).
fn frame(len: usize, kind: u8, flags: u8, stream: u32) -> Vec<u8> {
    let mut f = (len as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f
}

/// A header block of HPACK fields: indexed (`(index, None)`) or literal without indexing
/// with an indexed name (`(index, Some(value))`), no Huffman coding.
fn hpack(fields: &[(u8, Option<&str>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, value) in fields {
        match value {
            None => out.push(0x80 | index),
            Some(v) => {
                if *index < 15 {
                    out.push(*index);
                } else {
                    out.extend_from_slice(&[0x0f, index - 15]);
                }
                out.push(v.len() as u8);
                out.extend_from_slice(v.as_bytes());
            }
        }
    }
    out
}

/// HEADERS on stream 1, END_HEADERS (and END_STREAM when `end`).
fn headers(block: &[u8], end: bool) -> Vec<u8> {
    let mut f = frame(block.len(), 1, 0x4 | if end { 0x1 } else { 0 }, 1);
    f.extend_from_slice(block);
    f
}

/// The client's bytes of the HTTP/2 download: preface, SETTINGS, the GET.
fn h2_request(conn_id: u64) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0, 4, 0, 0));
    let path = format!("/download/{conn_id}.bin");
    // :method GET, :scheme https, :path, :authority.
    out.extend(headers(
        &hpack(&[
            (2, None),
            (7, None),
            (4, Some(&path)),
            (1, Some("bulk.test")),
        ]),
        true,
    ));
    out
}

/// The server's bytes before the body: SETTINGS, and the response's HEADERS.
fn h2_response_head(body_len: u64) -> Vec<u8> {
    let mut out = frame(0, 4, 0, 0);
    let len = body_len.to_string();
    // :status 200, content-type, content-length.
    out.extend(headers(
        &hpack(&[
            (8, None),
            (31, Some("application/octet-stream")),
            (28, Some(&len)),
        ]),
        false,
    ));
    out
}

fn connection(conn_id: u64, alpn: &'static [u8]) -> Record<'static> {
    Record::Connection(Connection {
        conn_id,
        pid: 100,
        fd: 4 + conn_id as i32,
        role: ConnectionRole::Client,
        tls_library: TlsLibrary::OpenSsl,
        ip_protocol: 6,
        local: Some(
            format!("10.1.0.{conn_id}:4000{conn_id}")
                .parse()
                .expect("addr"),
        ),
        remote: Some("10.2.0.1:443".parse().expect("addr")),
        alpn,
        ..Connection::default()
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let size_mb: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1024);
    let path = args.next().unwrap_or_else(|| "bulk.pcapng".into());
    let with_h2 = args.next().is_some_and(|a| a == "h2");
    let body_len = (size_mb << 20) / 2;
    let file = std::fs::File::create(&path).expect("create output");
    let base = 1_000_000_000u64;
    let mut w = bench_writer(file, [0xb2; 16], base);
    let mut downloads: Vec<Download> = (1..=if with_h2 { 3u64 } else { 2 })
        .map(|conn_id| {
            let h2 = conn_id == 3;
            let t = base + conn_id * 1_000;
            let alpn: &'static [u8] = if h2 { b"h2" } else { b"http/1.1" };
            w.write(t, &connection(conn_id, alpn)).expect("write");
            let mut offsets = [0u64; 2];
            let (req, head) = if h2 {
                (h2_request(conn_id), h2_response_head(body_len))
            } else {
                let req = format!(
                    "GET /download/{conn_id}.bin HTTP/1.1\r\nHost: bulk.test\r\nUser-Agent: bench/1\r\n\r\n"
                );
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {body_len}\r\n\r\n"
                );
                (req.into_bytes(), head.into_bytes())
            };
            bench_data(&mut w, t + 10, conn_id, Direction::Egress, &mut offsets, &req);
            Download {
                conn_id,
                offsets,
                head,
                left: body_len,
                body: Binary(0x9e37_79b9 ^ conn_id as u32),
                h2,
            }
        })
        .collect();
    let mut buf = vec![0u8; READ];
    let mut t = base + 100_000;
    while downloads.iter().any(|d| d.left > 0 || !d.head.is_empty()) {
        for d in &mut downloads {
            // The first read carries the head and the body's first bytes.
            let mut head = std::mem::take(&mut d.head);
            let frame_header = if d.h2 { 9 } else { 0 };
            let take = (READ - head.len() - frame_header).min(d.left as usize);
            if head.is_empty() && take == 0 {
                continue;
            }
            if d.h2 {
                let end = if take as u64 == d.left { 0x1 } else { 0 };
                head.extend(frame(take, 0, end, 1));
            }
            buf[..head.len()].copy_from_slice(&head);
            d.body.fill(&mut buf[head.len()..head.len() + take]);
            d.left -= take as u64;
            let n = head.len() + take;
            bench_data(
                &mut w,
                t,
                d.conn_id,
                Direction::Ingress,
                &mut d.offsets,
                &buf[..n],
            );
            t += 1_000;
        }
    }
    w.finish().expect("finish");
    eprintln!("{} downloads of {} MiB", downloads.len(), body_len >> 20);
}
