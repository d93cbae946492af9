//! What real servers say they exchanged, as the ground truth a replayed HAR is compared with:
//! the log of `support/exchange_server.py` (HTTP/1.1, Python `ssl` + `http.server`) and the
//! verbose log of nghttpd (HTTP/2). Both come from the server side, so they are independent
//! of spliff's own parsers.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::har::{assert_valid_har, body_bytes};
use crate::spliff::spliff;
use crate::tls_workload::{PYTHON, Server, wait_listening};

/// One exchange as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Request method.
    pub method: String,
    /// Absolute URL (`https://127.0.0.1:PORT/target`).
    pub url: String,
    /// Request header fields in wire order, as received (HTTP/2: pseudo-headers first).
    pub request_headers: Vec<(String, String)>,
    /// Request body.
    pub request_body: Vec<u8>,
    /// Interim 1xx statuses sent before the final response.
    pub informational: Vec<u16>,
    /// Final status.
    pub status: u16,
    /// Response header fields in wire order, as sent.
    pub response_headers: Vec<(String, String)>,
    /// Response body after content decoding; `None` when the server log cannot tell (an
    /// nghttpd error page).
    pub response_body: Option<Vec<u8>>,
}

/// Path of a file under `tests/support`.
pub fn support(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("support")
        .join(name)
}

/// Starts `support/exchange_server.py` logging to `log`.
pub fn exchange_server(cert: &Path, key: &Path, log: &Path) -> Server {
    let mut child = Command::new(PYTHON)
        .arg(support("exchange_server.py"))
        .args([cert, key, log])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start /usr/bin/python3 (apt-get install python3)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the server's port");
    let port = line
        .trim()
        .parse()
        .expect("exchange_server.py prints its port");
    Server::from_child(child, port)
}

/// Starts nghttpd with its verbose frame log (line-buffered, so it is complete while the
/// server still runs) going to `log`.
pub fn nghttpd_logged(docroot: &Path, cert: &Path, key: &Path, log: &Path) -> Server {
    nghttpd_logged_with(docroot, cert, key, log, &[])
}

/// [`nghttpd_logged`] with `extra` nghttpd options (e.g. `--header-table-size=65536`).
pub fn nghttpd_logged_with(
    docroot: &Path,
    cert: &Path,
    key: &Path,
    log: &Path,
    extra: &[&str],
) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let out = fs::File::create(log).expect("create the nghttpd log");
    let child = Command::new("stdbuf")
        .args(["-oL", "nghttpd", "-v", "-a", "127.0.0.1"])
        .args(extra)
        .arg("-d")
        .arg(docroot)
        .arg(port.to_string())
        .args([key, cert])
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .expect("start nghttpd (apt-get install nghttp2-server)");
    let server = Server::from_child(child, port);
    wait_listening(port);
    server
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p[0].as_str().unwrap_or_default().to_string(),
                p[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A JSON array of status codes.
fn statuses(v: &Value) -> Vec<u16> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_u64().and_then(|s| u16::try_from(s).ok()))
        .collect()
}

fn b64(v: &Value) -> Vec<u8> {
    BASE64
        .decode(v.as_str().unwrap_or_default())
        .expect("base64 in the server log")
}

/// Reads the exchange server's log; `port` is the server's port (for the URLs).
pub fn read_exchange_server_log(log: &Path, port: u16) -> Vec<Expected> {
    let text = fs::read_to_string(log).expect("exchange server log");
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("one JSON object per line");
            let payload = b64(&v["response_payload"]);
            let body = match v["content_encoding"].as_str() {
                Some("gzip") => {
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(&payload[..]),
                        &mut out,
                    )
                    .expect("the server's gzip payload");
                    out
                }
                _ => payload,
            };
            Expected {
                method: v["method"].as_str().unwrap_or_default().to_string(),
                url: format!(
                    "https://127.0.0.1:{port}{}",
                    v["target"].as_str().unwrap_or_default()
                ),
                request_headers: pairs(&v["request_headers"]),
                request_body: b64(&v["request_body"]),
                informational: statuses(&v["interim"]),
                status: v["status"].as_u64().unwrap_or_default() as u16,
                response_headers: pairs(&v["response_headers"]),
                response_body: Some(body),
            }
        })
        .collect()
}

/// Splits `name: value` where the name may itself start with `:` (a pseudo-header).
fn header_line(line: &str) -> Option<(String, String)> {
    let skip = usize::from(line.starts_with(':'));
    let colon = line[skip..].find(": ")? + skip;
    Some((line[..colon].to_string(), line[colon + 2..].to_string()))
}

/// Reads nghttpd's `-v` log: per connection and stream, the request headers it received and
/// the response headers it sent. A 200 response's body is the docroot file of its path.
pub fn read_nghttpd_log(log: &Path, port: u16, docroot: &Path) -> Vec<Expected> {
    let text = fs::read_to_string(log).expect("nghttpd log");
    // (connection id, stream id) -> (request headers, response headers)
    type Headers = Vec<(String, String)>;
    let mut streams: BTreeMap<(u64, u32), (Headers, Headers)> = BTreeMap::new();
    let mut sending: Option<(u64, u32)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("[id=") {
            sending = None;
            let Some((id, rest)) = rest.split_once(']') else {
                continue;
            };
            let Ok(id) = id.parse::<u64>() else { continue };
            // "[  0.538] recv (stream_id=1) :method: GET"
            let Some((_, event)) = rest.split_once("] ") else {
                continue;
            };
            if let Some(h) = event.strip_prefix("recv (stream_id=") {
                let (sid, header) = h.split_once(") ").expect("recv header line");
                let (name, value) = header_line(header).expect("header name: value");
                streams
                    .entry((id, sid.parse().expect("stream id")))
                    .or_default()
                    .0
                    .push((name, value));
            } else if event.starts_with("send HEADERS frame") {
                let sid = event
                    .rsplit_once("stream_id=")
                    .and_then(|(_, s)| s.trim_end_matches('>').parse().ok())
                    .expect("stream id of a sent HEADERS frame");
                sending = Some((id, sid));
            }
        } else if let Some(key) = sending {
            let line = line.trim_start();
            if line.starts_with(';') || line.starts_with('(') {
                continue;
            }
            if let Some(pair) = header_line(line) {
                streams.entry(key).or_default().1.push(pair);
            }
        }
    }
    streams
        .into_values()
        .filter(|(req, _)| !req.is_empty())
        .map(|(request_headers, response_headers)| {
            let get = |hs: &[(String, String)], n: &str| {
                hs.iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let path = get(&request_headers, ":path");
            let status: u16 = get(&response_headers, ":status").parse().unwrap_or(0);
            let response_body = (status == 200).then(|| {
                fs::read(docroot.join(path.trim_start_matches('/'))).expect("served file")
            });
            Expected {
                method: get(&request_headers, ":method"),
                url: format!("https://127.0.0.1:{port}{path}"),
                request_headers,
                request_body: Vec::new(),
                informational: Vec::new(),
                status,
                response_headers,
                response_body,
            }
        })
        .collect()
}

/// The expected exchanges as JSON (bodies in base64), for a fixture's ground-truth file.
pub fn to_json(expected: &[Expected]) -> Value {
    let hs = |h: &[(String, String)]| -> Value {
        h.iter()
            .map(|(k, v)| json!([k, v]))
            .collect::<Vec<_>>()
            .into()
    };
    expected
        .iter()
        .map(|e| {
            json!({
                "method": e.method,
                "url": e.url,
                "request_headers": hs(&e.request_headers),
                "request_body": BASE64.encode(&e.request_body),
                "informational": e.informational,
                "status": e.status,
                "response_headers": hs(&e.response_headers),
                "response_body": e.response_body.as_ref().map(|b| BASE64.encode(b)),
            })
        })
        .collect::<Vec<_>>()
        .into()
}

/// Inverse of [`to_json`].
pub fn from_json(v: &Value) -> Vec<Expected> {
    v.as_array()
        .expect("a JSON array of exchanges")
        .iter()
        .map(|e| Expected {
            method: e["method"].as_str().unwrap_or_default().to_string(),
            url: e["url"].as_str().unwrap_or_default().to_string(),
            request_headers: pairs(&e["request_headers"]),
            request_body: b64(&e["request_body"]),
            informational: statuses(&e["informational"]),
            status: e["status"].as_u64().unwrap_or_default() as u16,
            response_headers: pairs(&e["response_headers"]),
            response_body: e["response_body"]
                .as_str()
                .map(|_| b64(&e["response_body"])),
        })
        .collect()
}

fn har_pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                h["name"].as_str().unwrap_or_default().to_string(),
                h["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Asserts that the HAR's entries are exactly `expected`, one to one, matched by method and
/// URL (each must be unique in `expected`): request headers, request body, 1xx responses,
/// status, response headers and decoded response body all equal.
pub fn assert_har_matches(har: &Value, expected: &[Expected]) {
    let entries = har["log"]["entries"].as_array().expect("HAR entries");
    assert_eq!(
        entries.len(),
        expected.len(),
        "HAR has {} entries, the servers logged {} exchanges: {:?}",
        entries.len(),
        expected.len(),
        entries
            .iter()
            .map(|e| format!("{} {}", e["request"]["method"], e["request"]["url"]))
            .collect::<Vec<_>>()
    );
    for want in expected {
        let what = format!("{} {}", want.method, want.url);
        let matching: Vec<&Value> = entries
            .iter()
            .filter(|e| {
                e["request"]["method"].as_str() == Some(&want.method)
                    && e["request"]["url"].as_str() == Some(&want.url)
            })
            .collect();
        assert_eq!(matching.len(), 1, "{what}: {} HAR entries", matching.len());
        let entry = matching[0];
        assert!(
            entry.get("_incomplete").is_none() && entry.get("_loss").is_none(),
            "{what}: marked incomplete: {entry}"
        );
        let req = &entry["request"];
        let resp = &entry["response"];
        assert_eq!(
            har_pairs(&req["headers"]),
            want.request_headers,
            "{what}: request headers"
        );
        let body = body_bytes(&req["postData"]).unwrap_or_default();
        assert!(
            body == want.request_body,
            "{what}: request body differs ({} vs {} bytes)",
            body.len(),
            want.request_body.len()
        );
        let informational: Vec<u16> = resp["_informational"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["status"].as_u64().map(|s| s as u16))
            .collect();
        assert_eq!(informational, want.informational, "{what}: 1xx responses");
        assert_eq!(
            resp["status"].as_u64(),
            Some(u64::from(want.status)),
            "{what}: status"
        );
        assert_eq!(
            har_pairs(&resp["headers"]),
            want.response_headers,
            "{what}: response headers"
        );
        let got = body_bytes(&resp["content"]).unwrap_or_default();
        match &want.response_body {
            Some(b) => assert!(
                got == *b,
                "{what}: response body differs ({} vs {} bytes)",
                got.len(),
                b.len()
            ),
            None => {
                let length = want
                    .response_headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse::<usize>().ok());
                if let Some(length) = length {
                    assert_eq!(got.len(), length, "{what}: body length vs content-length");
                }
            }
        }
    }
}

/// Replays `trace` with `args` and returns stdout (or the file written with `-o`).
fn replay(trace: &Path, args: &[&str]) -> Vec<u8> {
    let mut all = vec!["replay", trace.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let out = spliff(&all);
    assert!(
        out.status.success(),
        "spliff replay {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Checks a trace against the servers' ground truth: HAR equal, valid, and the text view
/// (`-c`, one line per exchange) names every exchange with its status.
pub fn check_trace(trace: &Path, expected: &[Expected], work: &Path) {
    let har_path = work.join("out.har");
    replay(trace, &["-o", har_path.to_str().expect("utf-8 path")]);
    assert_valid_har(&har_path);
    let har: Value =
        serde_json::from_slice(&fs::read(&har_path).expect("HAR written")).expect("HAR is JSON");
    assert_har_matches(&har, expected);
    let text = String::from_utf8(replay(trace, &["-c", "--color", "never"])).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "one text line per exchange:\n{text}"
    );
    for e in expected {
        let needle = format!(" {} {} {}", e.method, e.url, e.status);
        assert!(
            lines.iter().filter(|l| l.contains(&needle)).count() == 1,
            "text view lacks `{needle}`:\n{text}"
        );
    }
}
