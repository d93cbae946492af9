//! Writes a trace of two bulk downloads, for the replay benchmark of large bodies:
//! `bulk_trace SIZE_MB PATH`.
//!
//! Two keep-alive HTTP/1.1 connections, each a single GET answered by one binary body of
//! SIZE_MB / 2 MiB with Content-Length (base64 in HAR), read 16 KiB at a time; both downloads
//! run at once, so their records interleave as two parallel transfers do. The body is
//! generated while it is written: the generator's memory stays small whatever the size.
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
}

fn connection(conn_id: u64) -> Record<'static> {
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
        alpn: b"http/1.1",
        ..Connection::default()
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let size_mb: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1024);
    let path = args.next().unwrap_or_else(|| "bulk.pcapng".into());
    let body_len = (size_mb << 20) / 2;
    let file = std::fs::File::create(&path).expect("create output");
    let base = 1_000_000_000u64;
    let mut w = bench_writer(file, [0xb2; 16], base);
    let mut downloads: Vec<Download> = (1..=2u64)
        .map(|conn_id| {
            let t = base + conn_id * 1_000;
            w.write(t, &connection(conn_id)).expect("write");
            let mut offsets = [0u64; 2];
            let req = format!(
                "GET /download/{conn_id}.bin HTTP/1.1\r\nHost: bulk.test\r\nUser-Agent: bench/1\r\n\r\n"
            );
            bench_data(&mut w, t + 10, conn_id, Direction::Egress, &mut offsets, req.as_bytes());
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {body_len}\r\n\r\n"
            );
            Download {
                conn_id,
                offsets,
                head: head.into_bytes(),
                left: body_len,
                body: Binary(0x9e37_79b9 ^ conn_id as u32),
            }
        })
        .collect();
    let mut buf = vec![0u8; READ];
    let mut t = base + 100_000;
    while downloads.iter().any(|d| d.left > 0 || !d.head.is_empty()) {
        for d in &mut downloads {
            // The first read carries the head and the body's first bytes.
            let head = std::mem::take(&mut d.head);
            let take = (READ - head.len()).min(d.left as usize);
            if head.is_empty() && take == 0 {
                continue;
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
    eprintln!("2 downloads of {} MiB", body_len >> 20);
}
