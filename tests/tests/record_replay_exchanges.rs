//! The whole product on real programs: `spliff record` of curl (HTTP/1.1 and HTTP/2) and
//! Python urllib against a Python `ssl` server and nghttpd, then `spliff replay` to HAR. Every
//! request and response in the HAR (method, URL, status, headers in wire order, decoded bodies,
//! 1xx responses) must equal what the servers logged they exchanged; the HAR must pass
//! har-validator and the text view must list the same exchanges.
//!
//! With `SPLIFF_FIXTURE_DIR=DIR`, the trace and the servers' ground truth are also copied to
//! DIR: that is how `fixtures/traces/recorded-urllib-curl-exchanges.*` was made.
#![cfg(target_os = "linux")]

use std::{fs, path::Path, process::Command};

use spliff_formats::{Entry, Record, TraceFile};

use spliff_tests::{
    exchange_log::{
        check_trace, exchange_server, nghttpd_logged, read_exchange_server_log, read_nghttpd_log,
        support, to_json,
    },
    require_bpf,
    spliff::spliff_bin,
    tls_workload::{PYTHON, self_signed_cert},
    tools::{TempDir, run},
};

/// Deterministic text that compresses (HTTP/2 bodies) or not (binary), by seed.
fn content(len: usize, seed: u32, text: bool) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if text {
                b"abcdefghij klmnopqrstuvwxyz\n"[(x % 28) as usize]
            } else {
                x as u8
            }
        })
        .collect()
}

#[test]
fn replayed_har_equals_what_the_servers_exchanged() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-replay");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);

    let h1_log = d.join("h1.jsonl");
    let h1 = exchange_server(&cert, &key, &h1_log);
    let docroot = d.join("www");
    fs::create_dir_all(&docroot).expect("docroot");
    for i in 1..=4 {
        fs::write(
            docroot.join(format!("f{i}.txt")),
            content(2000 + 5000 * i, i as u32, true),
        )
        .expect("write file");
    }
    fs::write(docroot.join("big.bin"), content(100 * 1024, 99, false)).expect("write file");
    let h2_log = d.join("nghttpd.log");
    let h2 = nghttpd_logged(&docroot, &cert, &key, &h2_log);
    fs::write(d.join("form.bin"), content(3000, 7, false)).expect("write upload");

    let b1 = format!("https://127.0.0.1:{}", h1.port);
    let b2 = format!("https://127.0.0.1:{}", h2.port);
    let workload = format!(
        "set -e\n\
         {PYTHON} {client} {b1}\n\
         C='curl -sk --http1.1'\n\
         $C --compressed -o /dev/null {b1}/text?client=curl -o /dev/null {b1}/chunked?client=curl \
            -o /dev/null {b1}/gzip?client=curl -o /dev/null {b1}/redirect?client=curl \
            -o /dev/null {b1}/missing?client=curl\n\
         $C -I -o /dev/null {b1}/text?client=curl-head\n\
         $C -o /dev/null -H 'Expect: 100-continue' --data-binary 'expect a 100 first' {b1}/json?client=curl-expect\n\
         $C -o /dev/null -H 'Content-Type: application/octet-stream' --data-binary @{form} {b1}/json?client=curl-binary\n\
         curl -sk --http2 --parallel --parallel-max 4 -o /dev/null {b2}/f1.txt -o /dev/null {b2}/f2.txt \
            -o /dev/null {b2}/f3.txt -o /dev/null {b2}/f4.txt -o /dev/null {b2}/missing.txt\n\
         curl -sk --http2 -o /dev/null {b2}/big.bin\n",
        client = support("urllib_client.py").display(),
        form = d.join("form.bin").display(),
    );
    fs::write(d.join("workload.sh"), workload).expect("write workload");

    let trace = d.join("t.pcapng");
    let out = Command::new(spliff_bin())
        // Packets of lo only: never hook the machine's real interfaces.
        .args(["record", "-i", "lo", "-o"])
        .arg(&trace)
        .args(["--", "sh"])
        .arg(d.join("workload.sh"))
        .output()
        .expect("run spliff record");
    assert!(
        out.status.success(),
        "spliff record failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The servers log when they have answered; the workload waited for every answer, so the
    // logs are complete now. Stop nghttpd so its log is closed too.
    let h2_port = h2.port;
    drop(h2);
    let mut expected = read_exchange_server_log(&h1_log, h1.port);
    expected.extend(read_nghttpd_log(&h2_log, h2_port, &docroot));
    assert_eq!(
        expected.len(),
        5 + 5 + 1 + 1 + 1 + 6,
        "the servers did not log every request of the workload: {:#?}",
        expected
            .iter()
            .map(|e| format!("{} {}", e.method, e.url))
            .collect::<Vec<_>>()
    );
    check_trace(&trace, &expected, d);
    check_packets(&trace, &[h1.port, h2_port]);

    if let Some(dir) = std::env::var_os("SPLIFF_FIXTURE_DIR") {
        let dir = Path::new(&dir);
        fs::copy(&trace, dir.join("recorded-urllib-curl-exchanges.pcapng")).expect("copy trace");
        fs::write(
            dir.join("recorded-urllib-curl-exchanges.expected.json"),
            serde_json::to_string_pretty(&to_json(&expected)).expect("json"),
        )
        .expect("write ground truth");
    }
}

/// Every TLS connection got its socket and packets, and tshark shows each packet to or from
/// the servers with the client process that sent or received it.
fn check_packets(trace: &Path, ports: &[u16]) {
    let file = TraceFile::open(trace).expect("trace");
    let correlation = file
        .reader()
        .filter_map(|e| match e {
            Ok(Entry::Record(r)) => match r.record {
                Record::Correlation(c) => Some((c.tls_connections, c.with_socket, c.with_packets)),
                _ => None,
            },
            _ => None,
        })
        .last()
        .expect("a correlation record");
    assert!(correlation.0 >= 9, "TLS connections: {correlation:?}");
    assert_eq!(
        (correlation.1, correlation.2),
        (correlation.0, correlation.0),
        "every TLS connection has its 5-tuple and packets"
    );
    let filter = ports
        .iter()
        .map(|p| format!("tcp.port == {p}"))
        .collect::<Vec<_>>()
        .join(" || ");
    let out = run(
        "tshark",
        &[
            "-r",
            trace.to_str().expect("utf-8"),
            "-Y",
            &filter,
            "-T",
            "fields",
            "-e",
            "frame.comment",
        ],
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.len() > 50, "too few packets:\n{}", out.stdout);
    for line in lines {
        // The recorded clients (the servers are out of the `-- CMD` scope; their end of the
        // flow is listed without a process).
        assert!(
            line.contains("comm=curl conn=") || line.contains("comm=python3 conn="),
            "a packet without its process: {line}"
        );
    }
}
