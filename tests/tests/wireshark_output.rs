//! `spliff replay -o out.pcapng` dissected by stock tshark (no options, no keys, no "Decode
//! As"): the same exchanges as the HAR of the same trace, with equal methods, paths, statuses,
//! header values and bodies; and the same bytes on every run and thread count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use spliff_tests::har::body_bytes;
use spliff_tests::spliff::spliff;
use spliff_tests::tools::{TempDir, run};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/traces")
        .join(name)
}

/// Every committed trace, sorted.
fn fixture_traces() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/traces");
    let mut traces: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcapng"))
        .collect();
    traces.sort();
    traces
}

fn replay_to(trace: &Path, out: &Path, env: &[(&str, &str)]) {
    let mut cmd = std::process::Command::new(spliff_tests::spliff::spliff_bin());
    cmd.args([
        "replay",
        trace.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("run spliff");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn har(trace: &Path, dir: &TempDir) -> Value {
    let path = dir.path().join("out.har");
    replay_to(trace, &path, &[]);
    serde_json::from_slice(&std::fs::read(&path).expect("har")).expect("json")
}

fn pcapng(trace: &Path, dir: &TempDir) -> PathBuf {
    let path = dir.path().join("out.pcapng");
    replay_to(trace, &path, &[]);
    path
}

fn entries(h: &Value) -> Vec<Value> {
    h["log"]["entries"].as_array().expect("entries").clone()
}

fn headers(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .expect("headers")
        .iter()
        .map(|h| {
            (
                h["name"].as_str().expect("name").to_string(),
                h["value"].as_str().expect("value").to_string(),
            )
        })
        .collect()
}

/// Exported HTTP objects (decoded bodies) as a sorted list of byte strings.
fn exported_objects(pcap: &Path, dir: &TempDir) -> Vec<Vec<u8>> {
    let out = dir.path().join("objects");
    std::fs::create_dir_all(&out).expect("dir");
    run(
        "tshark",
        &[
            "-r",
            pcap.to_str().expect("utf-8"),
            "-q",
            "--export-objects",
            &format!("http,{}", out.display()),
        ],
    );
    let mut objects: Vec<Vec<u8>> = std::fs::read_dir(&out)
        .expect("objects")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
        .collect();
    objects.sort();
    objects
}

/// Bodies a HAR says were sent and received (request postData, decoded response content),
/// excluding entries marked incomplete, sorted like [`exported_objects`].
fn har_bodies(entries: &[Value]) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    for e in entries.iter().filter(|e| e.get("_incomplete").is_none()) {
        bodies.extend(body_bytes(&e["request"]["postData"]));
        bodies.extend(body_bytes(&e["response"]["content"]));
    }
    bodies.sort();
    bodies
}

/// A dissected HTTP/1 request: method, URI, header lines.
type H1Request = (String, String, Vec<String>);
/// A dissected HTTP/1 response: status code, header lines.
type H1Response = (String, Vec<String>);

/// HTTP/1: every request and response tshark finds.
fn tshark_http1(pcap: &Path) -> (Vec<H1Request>, Vec<H1Response>) {
    let p = pcap.to_str().expect("utf-8");
    let fields = |filter: &str, f: &[&str]| {
        let mut args = vec![
            "-r",
            p,
            "-Y",
            filter,
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-E",
            "aggregator=~",
        ];
        for x in f {
            args.push("-e");
            args.push(x);
        }
        run("tshark", &args).stdout
    };
    let split_lines = |s: &str| -> Vec<String> {
        s.split('~')
            .filter(|l| !l.is_empty())
            .map(|l| l.trim_end_matches("\\r\\n").to_string())
            .collect()
    };
    let requests = fields(
        "http.request",
        &[
            "http.request.method",
            "http.request.uri",
            "http.request.line",
        ],
    )
    .lines()
    .map(|l| {
        let f: Vec<&str> = l.splitn(3, '|').collect();
        (
            f[0].to_string(),
            f[1].to_string(),
            split_lines(f.get(2).copied().unwrap_or("")),
        )
    })
    .collect();
    let responses = fields(
        "http.response",
        &["http.response.code", "http.response.line"],
    )
    .lines()
    .map(|l| {
        let f: Vec<&str> = l.splitn(2, '|').collect();
        (
            f[0].to_string(),
            split_lines(f.get(1).copied().unwrap_or("")),
        )
    })
    .collect();
    (requests, responses)
}

fn check_http1(trace: &str, complete_exchanges: usize) {
    let dir = TempDir::new("ws-h1");
    let trace = fixture(trace);
    let har = har(&trace, &dir);
    let entries = entries(&har);
    let complete: Vec<&Value> = entries
        .iter()
        .filter(|e| e.get("_incomplete").is_none())
        .collect();
    assert_eq!(complete.len(), complete_exchanges);
    let pcap = pcapng(&trace, &dir);
    let (requests, responses) = tshark_http1(&pcap);
    // Every request of the HAR (complete or not: requests were captured whole) is found.
    assert_eq!(requests.len(), entries.len(), "{requests:?}");
    for (e, (method, uri, lines)) in entries.iter().zip(&requests) {
        assert_eq!(e["request"]["method"].as_str(), Some(method.as_str()));
        assert!(
            e["request"]["url"]
                .as_str()
                .expect("url")
                .ends_with(uri.as_str()),
            "{uri}"
        );
        let want: Vec<String> = headers(&e["request"]["headers"])
            .into_iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        assert_eq!(lines, &want);
    }
    // Every complete response is dissected with its status and header lines.
    for e in &complete {
        let status = e["response"]["status"].to_string();
        let want: Vec<String> = headers(&e["response"]["headers"])
            .into_iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        assert!(
            responses.iter().any(|(s, l)| *s == status && *l == want),
            "response {status} {want:?} not in {responses:?}"
        );
    }
    assert_eq!(exported_objects(&pcap, &dir), har_bodies(&entries));
}

#[test]
fn http1_keep_alive_gzip_and_chunked_dissect_as_in_the_har() {
    check_http1("http1-keepalive.pcapng", 2);
}

#[test]
fn the_all_blocks_sample_dissects_as_in_the_har() {
    // One HTTP/1 exchange; its second connection carries non-HTTP bytes and a loss, which
    // neither the HAR nor Wireshark turns into an exchange.
    check_http1("sample.pcapng", 1);
}

#[test]
fn a_loss_shows_as_a_sequence_gap_with_a_comment_and_spares_the_other_exchanges() {
    check_http1("http1-loss.pcapng", 1);
    let dir = TempDir::new("ws-loss");
    let pcap = pcapng(&fixture("http1-loss.pcapng"), &dir);
    let p = pcap.to_str().expect("utf-8");
    let lost = run(
        "tshark",
        &[
            "-r",
            p,
            "-Y",
            "tcp.analysis.lost_segment",
            "-T",
            "fields",
            "-e",
            "frame.comment",
        ],
    );
    let lines: Vec<&str> = lost.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", lost.stdout);
    assert!(
        lines[0].contains("40 bytes of the response stream lost"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("ring buffer was full"), "{}", lines[0]);
}

/// HTTP/2 streams as tshark dissects them: per stream id, request headers, response headers
/// and the DATA payload of each direction.
#[derive(Debug, Default)]
struct H2Stream {
    request_headers: Vec<(String, String)>,
    response_headers: Vec<(String, String)>,
    request_body: Vec<u8>,
    response_body: Vec<u8>,
    request_block_open: bool,
    response_block_open: bool,
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn hex_bytes(s: &str) -> Vec<u8> {
    s.split(':')
        .filter(|h| !h.is_empty())
        .map(|h| u8::from_str_radix(h, 16).expect("hex"))
        .collect()
}

fn tshark_http2(pcap: &Path) -> BTreeMap<(u64, u64), H2Stream> {
    let out = run(
        "tshark",
        &[
            "-r",
            pcap.to_str().expect("utf-8"),
            "-T",
            "json",
            "--no-duplicate-keys",
            "-J",
            "tcp http2",
        ],
    );
    let packets: Value = serde_json::from_str(&out.stdout).expect("tshark json");
    let mut streams: BTreeMap<(u64, u64), H2Stream> = BTreeMap::new();
    for packet in packets.as_array().expect("packets") {
        let layers = &packet["_source"]["layers"];
        let to_server = layers["tcp"]["tcp.dstport"].as_str() == Some("80");
        let tcp_stream = layers["tcp"]["tcp.stream"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        for http2 in as_list(&layers["http2"]) {
            for frame in as_list(&http2["http2.stream"]) {
                let Some(id) = frame["http2.streamid"]
                    .as_str()
                    .and_then(|s| s.parse::<u64>().ok())
                else {
                    continue;
                };
                let s = streams.entry((tcp_stream, id)).or_default();
                match frame["http2.type"].as_str() {
                    Some("0") => {
                        let data = hex_bytes(frame["http2.data.data"].as_str().unwrap_or(""));
                        let body = if to_server {
                            &mut s.request_body
                        } else {
                            &mut s.response_body
                        };
                        // Wireshark reassembles a body of several DATA frames and shows all of
                        // it again in the last frame (marked by `http2.body.fragments`).
                        if frame.get("http2.body.fragments").is_some() {
                            *body = data;
                        } else {
                            body.extend(data);
                        }
                    }
                    // HEADERS, then CONTINUATION frames until END_HEADERS: one block. A
                    // second block on the same side is trailers, which the HAR keeps apart.
                    Some(t @ ("1" | "9")) => {
                        let hs: Vec<(String, String)> = as_list(&frame["http2.header"])
                            .iter()
                            .map(|h| {
                                (
                                    h["http2.header.name"].as_str().unwrap_or("").to_string(),
                                    h["http2.header.value"].as_str().unwrap_or("").to_string(),
                                )
                            })
                            .collect();
                        let end_headers =
                            frame["http2.flags_tree"]["http2.flags.eh"].as_str() == Some("1");
                        let (target, open) = if to_server {
                            (&mut s.request_headers, &mut s.request_block_open)
                        } else {
                            (&mut s.response_headers, &mut s.response_block_open)
                        };
                        if (t == "1" && target.is_empty()) || (t == "9" && *open) {
                            target.extend(hs);
                            *open = !end_headers;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    streams
}

/// Equal header lists; on failure prints names and value lengths, not 40 KB values.
fn assert_same_headers(got: &[(String, String)], want: &[(String, String)], stream: u64) {
    if got != want {
        let brief = |h: &[(String, String)]| -> Vec<String> {
            h.iter()
                .map(|(n, v)| format!("{n} ({} bytes)", v.len()))
                .collect()
        };
        panic!(
            "stream {stream}: tshark has {:?}, the HAR {:?}",
            brief(got),
            brief(want)
        );
    }
}

#[test]
fn http2_multiplexed_ipv6_with_continuation_dissects_as_in_the_har() {
    let dir = TempDir::new("ws-h2");
    let trace = fixture("h2-multiplexed-ipv6.pcapng");
    let entries = entries(&har(&trace, &dir));
    assert_eq!(entries.len(), 12);
    let pcap = pcapng(&trace, &dir);
    let streams = tshark_http2(&pcap);
    for e in &entries {
        let id = e["_streamId"].as_u64().expect("stream id");
        // One connection: TCP stream 0.
        let s = streams
            .get(&(0, id))
            .unwrap_or_else(|| panic!("tshark misses stream {id}"));
        assert_same_headers(&s.request_headers, &headers(&e["request"]["headers"]), id);
        assert_same_headers(&s.response_headers, &headers(&e["response"]["headers"]), id);
        let post = e["request"]["postData"]["text"].as_str().unwrap_or("");
        assert_eq!(s.request_body, post.as_bytes(), "stream {id}");
        let content = e["response"]["content"]["text"].as_str().unwrap_or("");
        assert_eq!(s.response_body, content.as_bytes(), "stream {id}");
    }
    // The 40 000-byte header arrived whole through HEADERS + CONTINUATION over several
    // segments (at most 16 000 bytes each).
    let big = &streams[&(0, 1)].request_headers;
    assert!(big.iter().any(|(n, v)| n == "x-big" && v.len() == 40_000));
    let continuation = run(
        "tshark",
        &[
            "-r",
            pcap.to_str().expect("utf-8"),
            "-Y",
            "http2.type == 9",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
    );
    assert!(
        !continuation.stdout.trim().is_empty(),
        "no CONTINUATION frame dissected"
    );
    let ipv6 = run(
        "tshark",
        &[
            "-r",
            pcap.to_str().expect("utf-8"),
            "-Y",
            "ipv6.src == fd00::1 && http2",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
    );
    assert!(ipv6.stdout.lines().count() >= 3, "{}", ipv6.stdout);
}

#[test]
fn process_comments_select_a_process_and_keep_the_recorded_ports() {
    let dir = TempDir::new("ws-comment");
    let pcap = pcapng(&fixture("http1-keepalive.pcapng"), &dir);
    let out = run(
        "tshark",
        &[
            "-r",
            pcap.to_str().expect("utf-8"),
            "-Y",
            "frame.comment contains \"curl\"",
            "-T",
            "fields",
            "-e",
            "frame.comment",
        ],
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one comment per connection: {}", out.stdout);
    for needle in [
        "pid=4242",
        "comm=curl",
        "exe=/usr/bin/curl",
        "server 127.0.0.1:8443",
        "alpn=http/1.1",
    ] {
        assert!(
            lines[0].contains(needle),
            "{needle} missing from {}",
            lines[0]
        );
    }
}

#[test]
fn pcapng_output_is_identical_across_runs_and_thread_counts() {
    for trace in [
        "http1-keepalive.pcapng",
        "h2-multiplexed-ipv6.pcapng",
        "http1-loss.pcapng",
    ] {
        let dir = TempDir::new("ws-det");
        let trace = fixture(trace);
        let mut outputs = Vec::new();
        for threads in ["1", "2", "4"] {
            let path = dir.path().join(format!("t{threads}.pcapng"));
            replay_to(&trace, &path, &[("RAYON_NUM_THREADS", threads)]);
            outputs.push(std::fs::read(&path).expect("read"));
        }
        assert!(
            outputs.windows(2).all(|w| w[0] == w[1]),
            "{}",
            trace.display()
        );
    }
    let _ = spliff(&["--version"]);
}

/// Every request tshark finds in a replay pcapng as (method, path), sorted: HTTP/1 request
/// lines and HTTP/2 request header blocks alike.
fn tshark_requests(pcap: &Path) -> Vec<(String, String)> {
    let p = pcap.to_str().expect("utf-8");
    let mut out: Vec<(String, String)> = Vec::new();
    let h1 = run(
        "tshark",
        &[
            "-r",
            p,
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-e",
            "http.request.method",
            "-e",
            "http.request.uri",
        ],
    );
    for line in h1.stdout.lines() {
        let (m, u) = line.split_once('\t').unwrap_or((line, ""));
        out.push((m.to_string(), u.to_string()));
    }
    for (_, s) in tshark_http2(pcap) {
        let get = |n: &str| {
            s.request_headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        if let (Some(m), Some(p)) = (get(":method"), get(":path")) {
            out.push((m, p));
        }
    }
    out.sort();
    out
}

#[test]
fn every_fixture_dissects_into_the_requests_of_its_har() {
    let traces = fixture_traces();
    assert!(traces.len() >= 4, "{traces:?}");
    for trace in traces {
        let dir = TempDir::new("ws-all");
        let entries = entries(&har(&trace, &dir));
        let mut want: Vec<(String, String)> = entries
            .iter()
            .map(|e| {
                let url = e["request"]["url"].as_str().expect("url");
                let path = url
                    .splitn(4, '/')
                    .nth(3)
                    .map_or("/".to_string(), |p| format!("/{p}"));
                (
                    e["request"]["method"].as_str().expect("method").to_string(),
                    path,
                )
            })
            .collect();
        want.sort();
        let got = tshark_requests(&pcapng(&trace, &dir));
        assert_eq!(got, want, "{}", trace.display());
    }
}

/// An exchange reduced to what both the HAR and tshark show: request and response header lists
/// and bodies.
type Seen = (
    Vec<(String, String)>,
    Vec<(String, String)>,
    Vec<u8>,
    Vec<u8>,
);

fn is_complete(e: &Value) -> bool {
    e.get("_incomplete").is_none()
}

#[test]
fn every_fixture_matches_its_har_in_headers_and_bodies() {
    let traces = fixture_traces();
    for trace in traces {
        let dir = TempDir::new("ws-deep");
        let entries = entries(&har(&trace, &dir));
        let pcap = pcapng(&trace, &dir);
        // HTTP/1: request header lines of every request, response header lines of every
        // complete exchange, bodies of complete exchanges via --export-objects.
        let h1: Vec<&Value> = entries
            .iter()
            .filter(|e| e["request"]["httpVersion"] != "HTTP/2.0")
            .collect();
        let (requests, responses) = tshark_http1(&pcap);
        let lines = |v: &Value| -> Vec<String> {
            headers(v)
                .into_iter()
                .map(|(n, v)| format!("{n}: {v}"))
                .collect()
        };
        let mut want_req: Vec<Vec<String>> =
            h1.iter().map(|e| lines(&e["request"]["headers"])).collect();
        let mut got_req: Vec<Vec<String>> = requests.into_iter().map(|r| r.2).collect();
        want_req.sort();
        got_req.sort();
        assert_eq!(
            got_req,
            want_req,
            "{}: HTTP/1 request headers",
            trace.display()
        );
        for e in h1.iter().filter(|e| is_complete(e)) {
            let want = (
                e["response"]["status"].to_string(),
                lines(&e["response"]["headers"]),
            );
            assert!(
                responses.contains(&want),
                "{}: response {want:?} not dissected",
                trace.display()
            );
        }
        let h1_complete: Vec<Value> = h1
            .iter()
            .filter(|e| is_complete(e))
            .map(|e| (*e).clone())
            .collect();
        let objects = exported_objects(&pcap, &dir);
        for body in har_bodies(&h1_complete) {
            assert!(
                objects.contains(&body),
                "{}: HTTP/1 body of {} bytes not exported",
                trace.display(),
                body.len()
            );
        }
        // HTTP/2: per stream, header blocks and DATA payloads, compared as multisets (tshark
        // numbers TCP streams, the HAR names connections; the pairing is by content).
        let mut want_h2: Vec<Seen> = entries
            .iter()
            .filter(|e| e["request"]["httpVersion"] == "HTTP/2.0" && is_complete(e))
            .map(|e| {
                (
                    headers(&e["request"]["headers"]),
                    headers(&e["response"]["headers"]),
                    body_bytes(&e["request"]["postData"]).unwrap_or_default(),
                    body_bytes(&e["response"]["content"]).unwrap_or_default(),
                )
            })
            .collect();
        let mut got_h2: Vec<Seen> = tshark_http2(&pcap)
            .into_values()
            .filter(|s| !s.request_headers.is_empty())
            .map(|s| {
                (
                    s.request_headers,
                    s.response_headers,
                    s.request_body,
                    s.response_body,
                )
            })
            .collect();
        want_h2.sort();
        got_h2.sort();
        let summary = |v: &[Seen]| -> Vec<String> {
            v.iter()
                .map(|(rq, rs, b1, b2)| format!("{rq:?} {rs:?} body {}+{}", b1.len(), b2.len()))
                .collect()
        };
        assert!(
            got_h2 == want_h2,
            "{}: HTTP/2 streams differ ({} dissected, {} in the HAR)\ntshark: {:#?}\nHAR: {:#?}",
            trace.display(),
            got_h2.len(),
            want_h2.len(),
            summary(&got_h2),
            summary(&want_h2)
        );
    }
}
