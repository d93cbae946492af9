//! Writes a trace of N tiny connections that all recorded one client and one server address
//! (port reuse, merged captures): `one_pair_trace N PATH`. The pcapng output must give each
//! its own TCP 4-tuple in bounded time and memory (docs/BENCHMARKS.md, "One address pair");
//! `replay/tests/pcapng_output.rs` checks the assignment itself on 70 000.

use spliff_formats::{Connection, ConnectionRole, Direction, Record, TlsLibrary};
use spliff_tests::sample::{bench_data, bench_writer};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(n), Some(path)) = (args.next().and_then(|n| n.parse::<u64>().ok()), args.next())
    else {
        eprintln!("usage: one_pair_trace N PATH");
        std::process::exit(2);
    };
    let file = std::fs::File::create(&path).expect("create the trace");
    let mut w = bench_writer(file, [5; 16], 1_000_000);
    let local = "10.0.0.1:40000".parse().expect("literal");
    let remote = "10.0.0.2:443".parse().expect("literal");
    for conn_id in 1..=n {
        let ts = 2_000_000 + conn_id * 1_000;
        let conn = Connection {
            conn_id,
            pid: 100,
            role: ConnectionRole::Client,
            tls_library: TlsLibrary::OpenSsl,
            local: Some(local),
            remote: Some(remote),
            ..Connection::default()
        };
        w.write(ts, &Record::Connection(conn)).expect("write");
        let mut offsets = [0, 0];
        bench_data(
            &mut w,
            ts + 1,
            conn_id,
            Direction::Egress,
            &mut offsets,
            b"x",
        );
    }
    w.finish().expect("finish the trace");
}
