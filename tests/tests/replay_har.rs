//! Trace → replay → HAR, checked field by field and by har-validator.

use serde_json::Value;
use spliff_replay::ReplayOptions;
use spliff_replay::body::DecodeOptions;
use spliff_replay::pipeline::replay;
use spliff_tests::har::assert_valid_har;
use spliff_tests::sample::http1_trace;
use spliff_tests::tools::TempDir;

fn har_of(trace: &[u8], dir: &TempDir) -> (Value, std::path::PathBuf) {
    let replayed = replay(trace, &ReplayOptions::default(), &|_| {});
    let mut out = Vec::new();
    spliff_replay::har::write_har(&replayed, &DecodeOptions::default(), &mut out).expect("har");
    let path = dir.path().join("out.har");
    std::fs::write(&path, &out).expect("write");
    (serde_json::from_slice(&out).expect("HAR is JSON"), path)
}

#[test]
fn http1_keep_alive_exchanges_become_valid_har_entries() {
    let dir = TempDir::new("har1");
    let (trace, page) = http1_trace();
    let (har, path) = har_of(&trace, &dir);
    assert_valid_har(&path);
    let entries = har["log"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2);

    let e = &entries[0];
    assert_eq!(e["startedDateTime"], "2026-11-23T12:00:00.010000000Z");
    assert_eq!(e["request"]["method"], "GET");
    assert_eq!(
        e["request"]["url"],
        "https://example.test/index.html?lang=en&x=1"
    );
    assert_eq!(e["request"]["httpVersion"], "HTTP/1.1");
    assert_eq!(e["request"]["queryString"][0]["name"], "lang");
    assert_eq!(e["request"]["cookies"][1]["value"], "2");
    assert_eq!(e["request"]["headers"][0]["name"], "Host");
    assert_eq!(e["response"]["status"], 200);
    assert_eq!(e["response"]["statusText"], "OK");
    assert_eq!(e["response"]["content"]["mimeType"], "text/html");
    assert_eq!(
        e["response"]["content"]["text"],
        String::from_utf8(page.clone()).expect("utf-8")
    );
    assert_eq!(e["response"]["content"]["size"], page.len());
    assert!(
        e["response"]["content"]["compression"]
            .as_i64()
            .expect("compression")
            > 0
    );
    assert_eq!(e["response"]["cookies"][0]["name"], "s");
    assert_eq!(e["timings"]["ssl"], 4.999998);
    assert_eq!(e["timings"]["wait"], 2.0);
    assert_eq!(e["timings"]["receive"], 1.0);
    assert_eq!(e["serverIPAddress"], "127.0.0.1");
    assert_eq!(e["_pid"], 4242);
    assert_eq!(e["_comm"], "curl");
    assert_eq!(e["_tlsLibrary"], "openssl");
    assert_eq!(e["_alpn"], "http/1.1");
    assert!(e.get("_incomplete").is_none(), "{e}");

    let e = &entries[1];
    assert_eq!(e["request"]["method"], "POST");
    assert_eq!(e["request"]["postData"]["text"], "{\"name\":\"x\"}\n");
    assert_eq!(e["request"]["postData"]["mimeType"], "application/json");
    assert_eq!(e["response"]["status"], 201);
    assert_eq!(e["response"]["content"]["text"], "{\"id\":7}");
    assert_eq!(
        e["timings"]["ssl"], -1.0,
        "the handshake belongs to the first exchange only"
    );
}

#[test]
fn har_output_is_byte_identical_across_runs_and_thread_counts() {
    let (trace, _) = http1_trace();
    let render = |threads: usize| {
        let pool = rayon_pool(threads);
        pool.install(|| {
            let replayed = replay(&trace, &ReplayOptions::default(), &|_| {});
            let mut out = Vec::new();
            spliff_replay::har::write_har(&replayed, &DecodeOptions::default(), &mut out)
                .expect("har");
            out
        })
    };
    let one = render(1);
    assert_eq!(one, render(2));
    assert_eq!(one, render(4));
}

fn rayon_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool")
}

/// The marks of issue 19 stay valid HAR: a request not captured (placeholder method and URL,
/// `_requestMissing`, a request comment) and trailers (`_trailers`).
#[test]
fn a_missing_request_and_trailers_are_valid_har() {
    use spliff_formats::{
        CaptureId, Connection, ConnectionRole, Direction, Record, SectionInfo, TlsData, TraceWriter,
    };
    let dir = TempDir::new("har-missing");
    let mut w = TraceWriter::new(Vec::new(), &SectionInfo::default(), CaptureId([4; 16]))
        .expect("writing to a Vec cannot fail");
    let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\
                     grpc-status: 0\r\n\r\n";
    let records = [
        Record::Connection(Connection {
            conn_id: 1,
            pid: 7,
            role: ConnectionRole::Client,
            local: "10.0.0.1:40000".parse().ok(),
            remote: "10.0.0.2:443".parse().ok(),
            sni: b"example.test",
            ..Connection::default()
        }),
        // The capture began after the request was written: only the response is in it.
        Record::TlsData(TlsData {
            conn_id: 1,
            pid: 7,
            tid: 7,
            direction: Direction::Ingress,
            stream_offset: 0,
            payload: response,
        }),
    ];
    for (i, r) in records.iter().enumerate() {
        w.write(1_000 + i as u64, r).expect("write");
    }
    let (har, path) = har_of(&w.finish().expect("finish"), &dir);
    assert_valid_har(&path);
    let e = &har["log"]["entries"][0];
    assert_eq!(e["_requestMissing"], true);
    assert_eq!(e["request"]["method"], "(not captured)");
    assert_eq!(e["response"]["_trailers"][0]["name"], "grpc-status");
}
