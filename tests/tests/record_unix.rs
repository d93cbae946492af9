//! `spliff record --unix`: real programs over unix stream sockets. curl against the Python
//! exchange server (GET, a 1 MB POST, a chunked answer) must replay to the HAR the server
//! logged, name the socket path, and dissect in tshark as HTTP; a conversation written with
//! sendmsg and writev of 70 and 100 iovecs must be in the trace whole and in order; grpcio's
//! client and server (HTTP/2 without TLS) must replay to the calls, messages, metadata and
//! trailers the server logged, and dissect in tshark as HTTP/2.
#![cfg(target_os = "linux")]

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use spliff_formats::{ConnectionRole, Direction, Entry, Record, TraceFile, Transport};
use spliff_tests::{
    exchange_log::{check_trace, read_exchange_server_log, support},
    har::{assert_valid_har, body_bytes},
    require_bpf,
    spliff::{spliff, spliff_bin},
    tls_workload::{PYTHON, Server},
    tools::{TempDir, run},
};

/// The exchange server serving plain HTTP/1.1 on a unix socket at `path`, listening once this
/// returns (it binds before it prints).
fn unix_exchange_server(path: &Path, log: &Path) -> Server {
    let mut child = Command::new(PYTHON)
        .arg(support("exchange_server.py"))
        .arg("--unix")
        .args([path, log])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the server's ready line");
    assert_eq!(line.trim(), "0", "exchange_server.py --unix is ready");
    Server::from_child(child, 0)
}

fn record(trace: &Path, unix: &str, command: &[&str]) {
    let out = Command::new(spliff_bin())
        .args(["record", "--no-packets", "--unix", unix, "-o"])
        .arg(trace)
        .arg("--")
        .args(command)
        .output()
        .expect("run spliff record");
    assert!(
        out.status.success(),
        "spliff record failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn curl_over_a_unix_socket_replays_as_the_server_logged_it() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-unix-curl");
    let d = dir.path();
    let socket = d.join("http.sock");
    let log = d.join("log.jsonl");
    let server = unix_exchange_server(&socket, &log);
    let upload: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(d.join("upload.bin"), &upload).expect("write upload");
    let s = socket.display();
    let workload = format!(
        "set -e\n\
         C='curl -s --unix-socket {s} -o /dev/null'\n\
         $C http://localhost/text?via=unix\n\
         $C -H 'Content-Type: application/octet-stream' --data-binary @{up} http://localhost/upload\n\
         $C http://localhost/chunked\n",
        up = d.join("upload.bin").display(),
    );
    fs::write(d.join("workload.sh"), workload).expect("write workload");
    let trace = d.join("t.pcapng");
    record(
        &trace,
        socket.to_str().expect("utf-8"),
        &["sh", d.join("workload.sh").to_str().expect("utf-8")],
    );
    drop(server);

    let mut expected = read_exchange_server_log(&log, 0);
    for e in &mut expected {
        e.url = e.url.replace("https://127.0.0.1:0", "http://localhost");
    }
    assert_eq!(expected.len(), 3, "the server logged every request");
    assert_eq!(
        expected[1].request_body, upload,
        "the server got the upload"
    );
    check_trace(&trace, &expected, d);

    let har: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("out.har")).expect("check_trace wrote the HAR"))
            .expect("HAR is JSON");
    for entry in har["log"]["entries"].as_array().expect("entries") {
        assert_eq!(entry["_unixSocket"].as_str(), Some(s.to_string().as_str()));
        assert_eq!(entry["_tlsLibrary"].as_str(), Some("none"));
    }
    let text = String::from_utf8(spliff(&["replay", trace.to_str().unwrap(), "-c"]).stdout)
        .expect("utf-8");
    assert_eq!(text.matches(&format!("unix:{s}")).count(), 3, "{text}");

    let pcap = d.join("replayed.pcapng");
    let out = spliff(&[
        "replay",
        trace.to_str().unwrap(),
        "-o",
        pcap.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let methods = run(
        "tshark",
        &[
            "-r",
            pcap.to_str().unwrap(),
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-e",
            "http.request.method",
        ],
    )
    .stdout;
    assert_eq!(
        methods.lines().collect::<Vec<_>>(),
        ["GET", "POST", "GET"],
        "tshark dissects the replayed unix connections as HTTP"
    );
    let comments = run(
        "tshark",
        &[
            "-r",
            pcap.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.comment",
        ],
    )
    .stdout;
    assert!(
        comments.contains(&format!("unix socket {s}")),
        "the packet comment names the socket: {comments}"
    );
}

/// Per connection of the trace: its record (merged) fields we check, and its bytes per
/// direction joined by stream offset.
type Streams = BTreeMap<u64, (ConnectionRole, Transport, Vec<u8>, [Vec<u8>; 2], u64)>;

fn streams(trace: &Path) -> Streams {
    let file = TraceFile::open(trace).expect("trace");
    let mut out = Streams::new();
    let mut losses = 0;
    for entry in file.reader() {
        let Ok(Entry::Record(r)) = entry else {
            continue;
        };
        match r.record {
            Record::Connection(c) => {
                let e = out.entry(c.conn_id).or_default();
                if c.role != ConnectionRole::Unknown {
                    e.0 = c.role;
                }
                if c.transport != Transport::Tls {
                    e.1 = c.transport;
                }
                if !c.unix.path.is_empty() {
                    e.2 = c.unix.path.to_vec();
                }
                if c.unix.peer_pid != 0 {
                    e.4 = u64::from(c.unix.peer_pid);
                }
            }
            Record::TlsData(data) => {
                let e = out.entry(data.conn_id).or_default();
                let side = &mut e.3[usize::from(data.direction == Direction::Ingress)];
                assert_eq!(
                    data.stream_offset,
                    side.len() as u64,
                    "pieces in stream order"
                );
                side.extend_from_slice(data.payload);
            }
            Record::Loss(_) => losses += 1,
            _ => {}
        }
    }
    assert_eq!(losses, 0, "no loss records");
    out
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn sendmsg_and_writev_of_many_iovecs_are_recorded_whole_and_in_order() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-unix-iovecs");
    let d = dir.path();
    let socket = d.join("pair.sock");
    let trace = d.join("t.pcapng");
    let truth = d.join("truth.txt");
    let script = format!(
        "{PYTHON} {} {} > {}",
        support("unix_iovec_pair.py").display(),
        socket.display(),
        truth.display()
    );
    record(&trace, "any", &["sh", "-c", &script]);
    let truth = fs::read_to_string(&truth).expect("the script's ground truth");
    let mut lines = truth.lines();
    let sent = unhex(lines.next().expect("sent"));
    let received = unhex(lines.next().expect("received"));

    let streams = streams(&trace);
    let path = socket.as_os_str().as_encoded_bytes().to_vec();
    let client = streams
        .values()
        .find(|c| c.0 == ConnectionRole::Client && c.2 == path)
        .unwrap_or_else(|| panic!("a client connection on {}", socket.display()));
    assert_eq!(client.1, Transport::UnixStream);
    assert!(
        client.3[0] == sent,
        "egress: {} of {} bytes",
        client.3[0].len(),
        sent.len()
    );
    assert!(client.3[1] == received, "ingress differs");
    // The server end is in the same process: it read what the client wrote.
    let server = streams
        .values()
        .find(|c| c.0 == ConnectionRole::Server && c.2 == path)
        .expect("the accepted end");
    assert!(server.3[1] == sent && server.3[0] == received);
    assert_ne!(client.4, 0, "the peer process is known");

    // Not HTTP: the text view shows each call's bytes, both directions in time order.
    let text =
        String::from_utf8(spliff(&["replay", trace.to_str().unwrap(), "--color", "never"]).stdout)
            .expect("utf-8");
    let split: usize = lines
        .next()
        .and_then(|l| l.parse().ok())
        .expect("first message length");
    let (first, second) = sent.split_at(split);
    let position = |bytes: &[u8]| {
        text.find(std::str::from_utf8(bytes).expect("letters"))
            .unwrap_or_else(|| panic!("{} bytes not shown as one chunk", bytes.len()))
    };
    let order = [
        position(first),
        position(&received[..first.len()]),
        position(second),
        position(&received[first.len()..]),
    ];
    assert!(order.is_sorted(), "chunks out of time order: {order:?}");
    assert!(text.contains(&format!(
        "bytes written at offset 0 unix:{}",
        socket.display()
    )));
}

/// A gRPC message as it travels: uncompressed flag, 4-byte big-endian length, the bytes.
fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

fn b64(v: &serde_json::Value) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64 string"))
        .expect("base64")
}

fn pairs(v: &serde_json::Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let get = |i: usize, key: &str| {
                p.get(i)
                    .or_else(|| p.get(key))
                    .and_then(|x| x.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            (get(0, "name"), get(1, "value"))
        })
        .collect()
}

/// Whether `want` appears in `have` in the same relative order.
fn in_order(want: &[(String, String)], have: &[(String, String)]) -> bool {
    let mut rest = have.iter();
    want.iter().all(|w| rest.any(|h| h == w))
}

#[test]
fn grpc_over_a_unix_socket_replays_as_the_server_logged_it() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-unix-grpc");
    let d = dir.path();
    let socket = d.join("grpc.sock");
    let log = d.join("grpc.jsonl");
    let mut child = Command::new(PYTHON)
        .arg(support("grpc_unix.py"))
        .arg("server")
        .args([&socket, &log])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the server's ready line");
    assert_eq!(
        line.trim(),
        "ready",
        "grpc_unix.py server (apt-get install python3-grpcio)"
    );
    let server = Server::from_child(child, 0);
    let trace = d.join("t.pcapng");
    let script = support("grpc_unix.py");
    record(
        &trace,
        socket.to_str().expect("utf-8"),
        &[
            PYTHON,
            script.to_str().expect("utf-8"),
            "client",
            socket.to_str().expect("utf-8"),
        ],
    );
    drop(server);

    let logged: Vec<serde_json::Value> = fs::read_to_string(&log)
        .expect("server log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(logged.len(), 4, "the server logged every call");
    let har_path = d.join("out.har");
    let out = spliff(&[
        "replay",
        trace.to_str().unwrap(),
        "-o",
        har_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_valid_har(&har_path);
    let har: serde_json::Value =
        serde_json::from_slice(&fs::read(&har_path).expect("HAR")).expect("JSON");
    let entries = har["log"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), logged.len(), "one HAR entry per call");
    for (entry, call) in entries.iter().zip(&logged) {
        let method = call["method"].as_str().expect("method");
        let what = format!("{method}: {entry}");
        assert_eq!(
            entry["request"]["url"].as_str(),
            Some(format!("http://localhost{method}").as_str()),
            "{what}"
        );
        assert_eq!(entry["_unixSocket"].as_str(), socket.to_str(), "{what}");
        let request_headers = pairs(&entry["request"]["headers"]);
        assert!(
            in_order(&pairs(&call["metadata"]), &request_headers),
            "{what}: the metadata the server received"
        );
        let body = body_bytes(&entry["request"]["postData"]).unwrap_or_default();
        assert!(
            body == grpc_frame(&b64(&call["request"])),
            "{what}: request"
        );
        let answer: Vec<u8> = call["responses"]
            .as_array()
            .expect("responses")
            .iter()
            .flat_map(|r| grpc_frame(&b64(r)))
            .collect();
        let got = body_bytes(&entry["response"]["content"]).unwrap_or_default();
        assert!(got == answer, "{what}: response messages");
        // Trailers, or the headers of a trailers-only answer (an error).
        let trailers = pairs(&entry["response"]["_trailers"]);
        let status_block = if trailers.is_empty() {
            pairs(&entry["response"]["headers"])
        } else {
            trailers
        };
        let mut want = vec![(
            "grpc-status".to_string(),
            call["code"].as_u64().expect("code").to_string(),
        )];
        if let Some(details) = call["details"].as_str().filter(|d| !d.is_empty()) {
            want.push(("grpc-message".to_string(), details.to_string()));
        }
        want.extend(pairs(&call["trailers"]));
        assert!(
            in_order(&want, &status_block),
            "{what}: status {want:?} in {status_block:?}"
        );
    }

    // The text view: one line per call, with its status and the socket.
    let text = String::from_utf8(
        spliff(&["replay", trace.to_str().unwrap(), "-c", "--color", "never"]).stdout,
    )
    .expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), logged.len(), "{text}");
    for (line, call) in lines.iter().zip(&logged) {
        let method = call["method"].as_str().expect("method");
        assert!(
            line.contains(&format!(
                " POST http://localhost{method} 200 application/grpc "
            )) && line.contains(&format!("unix:{}", socket.display())),
            "{line}"
        );
    }

    let pcap = d.join("replayed.pcapng");
    let out = spliff(&[
        "replay",
        trace.to_str().unwrap(),
        "-o",
        pcap.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let paths = run(
        "tshark",
        &[
            "-r",
            pcap.to_str().unwrap(),
            "-Y",
            "http2.headers.path",
            "-T",
            "fields",
            "-e",
            "http2.headers.path",
        ],
    )
    .stdout;
    let want: Vec<&str> = logged.iter().filter_map(|c| c["method"].as_str()).collect();
    assert_eq!(
        paths.lines().collect::<Vec<_>>(),
        want,
        "tshark dissects the replayed connection as HTTP/2"
    );
}

#[test]
fn an_abstract_socket_is_selected_by_its_at_name_and_others_are_not() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-unix-abstract");
    let d = dir.path();
    let name = format!("spliff-test-{}", std::process::id());
    // Two abstract sockets: only the one named with --unix is recorded.
    let script = format!(
        "import socket, threading\n\
         def pair(name, msg):\n\
         \x20   l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
         \x20   l.bind('\\0' + name); l.listen(1)\n\
         \x20   def srv():\n\
         \x20       c, _ = l.accept(); c.sendall(c.recv(100).upper()); c.close()\n\
         \x20   t = threading.Thread(target=srv); t.start()\n\
         \x20   c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
         \x20   c.connect('\\0' + name); c.sendall(msg); assert c.recv(100) == msg.upper(); t.join()\n\
         pair('{name}', b'selected bytes')\n\
         pair('{name}-other', b'other bytes')\n"
    );
    fs::write(d.join("abstract.py"), script).expect("write script");
    let trace = d.join("t.pcapng");
    record(
        &trace,
        &format!("@{name}"),
        &[PYTHON, d.join("abstract.py").to_str().expect("utf-8")],
    );
    let streams = streams(&trace);
    let path = [b"\0".as_slice(), name.as_bytes()].concat();
    assert_eq!(streams.len(), 2, "both ends of the selected socket only");
    for c in streams.values() {
        assert_eq!(c.2, path, "the abstract name, NUL first");
        let (written, read) = match c.0 {
            ConnectionRole::Client => (&b"selected bytes"[..], &b"SELECTED BYTES"[..]),
            _ => (&b"SELECTED BYTES"[..], &b"selected bytes"[..]),
        };
        assert_eq!((&c.3[0][..], &c.3[1][..]), (written, read));
    }
    let text = String::from_utf8(spliff(&["replay", trace.to_str().unwrap(), "-c"]).stdout)
        .expect("utf-8");
    assert!(text.contains(&format!("unix:@{name} ")), "{text}");
}
