//! A capture that joins a live HTTP/2 connection (`spliff record --pid`), on real programs.
//!
//! 1. A client fetches, over one connection and slowly, files from nghttpd whose bodies are
//!    made of complete HTTP/2 frames: HEADERS with an `x-evil: injected` field on the stream
//!    that carries them and on streams the client opens later or never, DATA with END_STREAM,
//!    RST_STREAM, GOAWAY, SETTINGS, PING, WINDOW_UPDATE. The recorder attaches to the client
//!    while that goes on, so the capture begins inside the connection, inside a body: with
//!    curl (`--limit-rate`) mostly at a TLS record, which nghttpd begins at a frame; with a
//!    client that reads 997 bytes at a time, inside a frame. In the replayed HAR, every entry
//!    must be a stream nghttpd served, every header one it sent or received on that stream
//!    (never `x-evil`), every entry that differs from what the server sent must be marked
//!    incomplete, and the requests made wholly after the join must be there with their exact
//!    bodies.
//! 2. A client that announced a 64 KiB HPACK table (and a server whose encoder uses it) fills
//!    it with more than 4096 bytes of headers before the capture joins; after the join both
//!    sides insert more and refer to entries deeper than 4096 bytes. Replay must decode what
//!    was inserted after the join, never report invalid HPACK, and mark what it could not
//!    decode.
#![cfg(target_os = "linux")]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
use spliff_tests::{
    exchange_log::{nghttpd_logged_with, support},
    har::{assert_valid_har, body_bytes},
    require_bpf,
    spliff::{replay_to_har, spliff_bin},
    tls_workload::{PYTHON, self_signed_cert},
    tools::{KillOnDrop, TempDir},
};

/// A running `spliff record`, stopped with SIGINT by [`Recorder::stop`] or killed on drop.
struct Recorder {
    child: KillOnDrop,
    stderr: Option<BufReader<std::process::ChildStderr>>,
}

impl Recorder {
    /// Starts `spliff record -i lo -o TRACE --pid PID` and waits for its "recording" line
    /// (uprobe registration waits on other recorders of a busy machine: a liveness bound).
    fn start(trace: &Path, pid: u32) -> Recorder {
        let mut child = Command::new(spliff_bin())
            // Packets of lo only: never hook the machine's real interfaces.
            .args(["record", "-i", "lo", "-o"])
            .arg(trace)
            .args(["--pid", &pid.to_string()])
            .stderr(Stdio::piped())
            .spawn()
            .expect("start spliff record");
        let stderr = child.stderr.take().expect("piped stderr");
        let child = KillOnDrop::new(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut stderr = BufReader::new(stderr);
            let mut first = String::new();
            let _ = stderr.read_line(&mut first);
            let _ = tx.send((first, stderr));
        });
        let (first, stderr) = rx
            .recv_timeout(Duration::from_secs(180))
            .expect("the recorder said nothing within 180 s");
        assert!(first.contains("recording"), "recorder: {first}");
        Recorder {
            child,
            stderr: Some(stderr),
        }
    }

    /// SIGINT, then the recorder's exit; asserts it ended well.
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().expect("wait for the recorder");
        let mut rest = String::new();
        if let Some(mut stderr) = self.stderr.take() {
            std::io::Read::read_to_string(&mut stderr, &mut rest).ok();
        }
        assert!(status.success(), "recorder failed: {rest}");
    }
}

/// Waits (liveness bound `secs`) until `done()` holds; panics with `what` otherwise.
fn wait_for(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK literal field without indexing, new name, no Huffman.
fn literal(name: &str, value: &str) -> Vec<u8> {
    assert!(name.len() < 127 && value.len() < 127);
    let mut b = vec![0x00, name.len() as u8];
    b.extend_from_slice(name.as_bytes());
    b.push(value.len() as u8);
    b.extend_from_slice(value.as_bytes());
    b
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// A body of `len` bytes made only of complete, well-formed HTTP/2 frames (but the last,
/// which is cut): what a resynchronisation inside it would take for the connection's own.
/// `own` is the stream that carries it (curl opens streams 1, 3, 5, ... in order).
fn lookalike_body(own: u32, len: usize) -> Vec<u8> {
    let mut x = own.wrapping_mul(2_654_435_761) | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut out = Vec::with_capacity(len + 4096);
    while out.len() < len {
        let r = rnd();
        // Streams a lookalike may name: the carrier, the client's next ones, an earlier one
        // and one it never opens.
        let target = [
            own,
            own + 2,
            own + 4,
            own.saturating_sub(2).max(1),
            0x7fff_fff1,
        ][r as usize % 5];
        let evil = format!("injected-{own}-{target}");
        let f = match (r >> 8) % 9 {
            0 => {
                let mut p = Vec::new();
                for (id, v) in [(1u16, 65_536u32), (4, 1 << 20), (3, 100)] {
                    p.extend_from_slice(&id.to_be_bytes());
                    p.extend_from_slice(&v.to_be_bytes());
                }
                frame(SETTINGS, 0, 0, &p)
            }
            1 | 2 => {
                let mut block = vec![0x88]; // :status: 200
                block.extend(literal("x-evil", &evil));
                block.extend(literal("content-length", "7"));
                let flags = END_HEADERS | if r & 0x10000 != 0 { END_STREAM } else { 0 };
                frame(HEADERS, flags, target, &block)
            }
            3 | 4 => {
                let n = 1 + (rnd() % 1500) as usize;
                let mut p = b"evil-body ".repeat(n / 10 + 1);
                p.truncate(n);
                let flags = if r & 0x20000 != 0 { END_STREAM } else { 0 };
                frame(DATA, flags, target, &p)
            }
            5 => frame(RST_STREAM, 0, target, &8u32.to_be_bytes()),
            6 => frame(PING, 0, 0, &rnd().to_be_bytes().repeat(2)),
            7 => frame(WINDOW_UPDATE, 0, 0, &1000u32.to_be_bytes()),
            _ => {
                let mut p = own.saturating_sub(2).to_be_bytes().to_vec();
                p.extend_from_slice(&0u32.to_be_bytes());
                p.extend_from_slice(b"x-evil: injected goaway");
                frame(GOAWAY, 0, 0, &p)
            }
        };
        out.extend(f);
    }
    out.truncate(len);
    out
}

/// What nghttpd's `-v` log says of each stream of each connection.
#[derive(Debug, Default, Clone)]
struct Served {
    request: Vec<(String, String)>,
    response: Vec<(String, String)>,
}

/// Splits `name: value` where the name may itself start with `:`.
fn header_line(line: &str) -> Option<(String, String)> {
    let skip = usize::from(line.starts_with(':'));
    let colon = line[skip..].find(": ")? + skip;
    Some((line[..colon].to_string(), line[colon + 2..].to_string()))
}

/// nghttpd's log, by (connection id, stream id); response headers include trailers (every
/// HEADERS frame it sent).
fn read_served(log: &Path) -> BTreeMap<(u64, u32), Served> {
    let text = fs::read_to_string(log).expect("nghttpd log");
    let mut streams: BTreeMap<(u64, u32), Served> = BTreeMap::new();
    let mut sending: Option<(u64, u32)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("[id=") {
            sending = None;
            let Some((id, rest)) = rest.split_once(']') else {
                continue;
            };
            let Ok(id) = id.parse::<u64>() else { continue };
            let Some((_, event)) = rest.split_once("] ") else {
                continue;
            };
            if let Some(h) = event.strip_prefix("recv (stream_id=") {
                let (sid, header) = h.split_once(") ").expect("recv header line");
                let pair = header_line(header).expect("header name: value");
                let sid = sid.parse().expect("stream id");
                streams.entry((id, sid)).or_default().request.push(pair);
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
                streams.entry(key).or_default().response.push(pair);
            }
        }
    }
    streams
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

/// Whether every pair of `shown` is among `sent` (as many times as shown).
fn all_sent(shown: &[(String, String)], sent: &[(String, String)]) -> bool {
    let mut left: Vec<&(String, String)> = sent.iter().collect();
    shown
        .iter()
        .all(|p| match left.iter().position(|s| *s == p) {
            Some(i) => {
                left.remove(i);
                true
            }
            None => false,
        })
}

/// The path of a HAR request URL (`https://host:port/path` → `/path`).
fn url_path(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    rest.find('/').map(|i| &rest[i..])
}

fn incomplete(entry: &Value) -> Vec<String> {
    entry["_incomplete"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect()
}

/// The client of [`join_inside_lookalike_bodies`].
enum Client {
    /// curl, over one connection, transfers one after the other, each read slowly.
    Curl,
    /// `support/h2_slow_client.py`: reads of 997 bytes, so that the capture begins inside a
    /// frame (curl's reads mostly begin at TLS records, which nghttpd starts at frames).
    SmallReads,
}

#[test]
fn join_inside_frame_lookalike_bodies_shows_only_what_the_server_sent() {
    if !require_bpf() {
        return;
    }
    join_inside_lookalike_bodies(Client::Curl);
}

#[test]
fn join_mid_frame_inside_lookalike_bodies_shows_only_what_the_server_sent() {
    if !require_bpf() {
        return;
    }
    join_inside_lookalike_bodies(Client::SmallReads);
}

fn join_inside_lookalike_bodies(client: Client) {
    const FILES: u32 = 300;
    const AFTER: usize = 6;
    let dir = TempDir::new("h2-join-lookalike");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let docroot = d.join("www");
    fs::create_dir_all(&docroot).expect("docroot");
    let mut files = BTreeMap::new();
    for k in 1..=FILES {
        let path = format!("/b{k}.bin");
        let body = lookalike_body(2 * k - 1, 120_000 + (k as usize * 7919) % 60_000);
        fs::write(docroot.join(&path[1..]), &body).expect("write a file");
        files.insert(path, body);
    }
    let log = d.join("nghttpd.log");
    let server = nghttpd_logged_with(&docroot, &cert, &key, &log, &[]);
    let base = format!("https://127.0.0.1:{}", server.port);
    // A line with the URL as each transfer ends.
    let done = d.join("done.txt");
    let done_file = fs::File::create(&done).expect("client output");
    // One connection, transfers one after the other, each read slowly: at any moment a body
    // is on its way, so the capture joins inside one.
    let curl = KillOnDrop::new(match client {
        Client::Curl => {
            let mut config = String::new();
            for k in 1..=FILES {
                config.push_str(&format!(
                    "url = \"{base}/b{k}.bin\"\noutput = \"/dev/null\"\n"
                ));
            }
            fs::write(d.join("curl.conf"), config).expect("curl config");
            Command::new("curl")
                .args(["-sk", "--http2", "--limit-rate", "200k", "--rate", "2/s"])
                // To stderr, which curl does not buffer.
                .args(["-w", "%{stderr}%{url_effective}\\n"])
                .arg("-K")
                .arg(d.join("curl.conf"))
                .stderr(done_file)
                .spawn()
                .expect("run curl")
        }
        Client::SmallReads => Command::new(PYTHON)
            .arg(support("h2_slow_client.py"))
            .arg(&base)
            .args((1..=FILES).map(|k| format!("/b{k}.bin")))
            .stdout(done_file)
            .spawn()
            .expect("run the HTTP/2 client"),
    });
    let completed = || {
        fs::read_to_string(&done)
            .unwrap_or_default()
            .lines()
            .map(|l| url_path(l).unwrap_or_default().to_string())
            .collect::<Vec<String>>()
    };
    // The connection is up and lookalike bodies have passed before the capture begins.
    wait_for(60, "the client's first transfers", || {
        completed().len() >= 3
    });
    let trace = d.join("t.pcapng");
    let recorder = Recorder::start(&trace, curl.id());
    // Transfers that had not begun when the recorder said it records are wholly captured.
    let before = completed().len();
    let first_after = before + 2;
    assert!(
        first_after + AFTER <= FILES as usize,
        "the client ended before the capture began"
    );
    wait_for(120, "transfers after the join", || {
        completed().len() >= first_after + AFTER
    });
    recorder.stop();
    drop(curl);
    let after_stop = completed();
    assert!(after_stop.len() >= first_after + AFTER, "{after_stop:?}");
    drop(server);

    let served = read_served(&log);
    let conns: BTreeSet<u64> = served.keys().map(|k| k.0).collect();
    assert_eq!(conns.len(), 1, "the client used one connection: {conns:?}");
    // Stream of each path (the client opens 1, 3, 5, ... in the order of its transfers).
    let path_of = |s: &Served| {
        s.request
            .iter()
            .find(|(k, _)| k == ":path")
            .map(|(_, v)| v.clone())
    };
    for (k, path) in after_stop.iter().enumerate() {
        let sid = 2 * k as u32 + 1;
        let s = &served[&(*conns.first().unwrap(), sid)];
        assert_eq!(path_of(s).as_deref(), Some(path.as_str()), "stream {sid}");
    }
    let ingress_has_lookalikes = {
        let summary = spliff_tests::tls_workload::read_trace(&trace);
        summary
            .conns
            .values()
            .any(|c| c.ingress.windows(6).any(|w| w == b"x-evil"))
    };
    assert!(ingress_has_lookalikes, "no lookalike frame was captured");

    let har_path = d.join("out.har");
    let har = replay_to_har(&trace, &har_path);
    assert_valid_har(&har_path);
    let entries = har["log"]["entries"].as_array().expect("HAR entries");
    let conn = *conns.first().unwrap();
    let mut by_stream: BTreeMap<u32, &Value> = BTreeMap::new();
    for entry in entries {
        let sid = entry["_streamId"]
            .as_u64()
            .expect("an HTTP/2 entry has its stream id") as u32;
        let what = format!("entry of stream {sid}");
        assert!(
            by_stream.insert(sid, entry).is_none(),
            "{what}: two entries"
        );
        let served = served.get(&(conn, sid)).unwrap_or_else(|| {
            panic!(
                "{what}: nghttpd never served that stream: {:?}",
                incomplete(entry)
            )
        });
        let path = path_of(served).expect("a served stream has its path");
        let req = &entry["request"];
        let resp = &entry["response"];
        let req_headers = har_pairs(&req["headers"]);
        let resp_headers = har_pairs(&resp["headers"]);
        let trailers = har_pairs(&resp["_trailers"]);
        for (name, value) in req_headers.iter().chain(&resp_headers).chain(&trailers) {
            assert!(
                !name.contains("evil") && !value.contains("injected"),
                "{what}: a lookalike's header is shown: {name}: {value}"
            );
        }
        assert!(
            all_sent(&req_headers, &served.request),
            "{what}: request headers nghttpd never received: {req_headers:?} vs {:?}",
            served.request
        );
        assert!(
            all_sent(&resp_headers, &served.response) && all_sent(&trailers, &served.response),
            "{what}: response headers nghttpd never sent: {resp_headers:?} {trailers:?} vs {:?}",
            served.response
        );
        if let Some(p) = req["url"].as_str().and_then(url_path) {
            assert!(
                entry.get("_requestMissing").is_some() || p == path,
                "{what}: URL {p}, nghttpd served {path}"
            );
        }
        let body = body_bytes(&resp["content"]).unwrap_or_default();
        let exact = req_headers == served.request
            && resp_headers == served.response
            && trailers.is_empty()
            && resp["status"].as_u64() == Some(200)
            && body == files[&path];
        assert!(
            exact || !incomplete(entry).is_empty(),
            "{what} ({path}) differs from what nghttpd sent but is not marked incomplete: \
             status {}, body {} of {} bytes, headers {resp_headers:?}",
            resp["status"],
            body.len(),
            files[&path].len()
        );
    }
    // Every transfer wholly after the join is there, with its exact body. Its header blocks
    // may refer to HPACK entries from before the join: then they are not shown, and said so.
    for (k, path) in after_stop.iter().enumerate().skip(first_after).take(AFTER) {
        let sid = 2 * k as u32 + 1;
        let entry = by_stream
            .get(&sid)
            .unwrap_or_else(|| panic!("{path} (stream {sid}), made after the join, is missing"));
        let marks = incomplete(entry);
        let resp = &entry["response"];
        let body = body_bytes(&resp["content"]).unwrap_or_default();
        assert!(
            body == files[path],
            "{path}: body of {} bytes, nghttpd sent {}; {marks:?}",
            body.len(),
            files[path].len(),
        );
        let status = resp["status"].as_u64();
        assert!(
            status == Some(200)
                || (status == Some(0)
                    && marks
                        .iter()
                        .any(|m| m.starts_with("response headers not output"))),
            "{path}: status {status:?}, {marks:?}"
        );
        let url = entry["request"]["url"].as_str().unwrap_or_default();
        assert!(
            url_path(url) == Some(path.as_str())
                || (entry["_requestMissing"] == true
                    && marks
                        .iter()
                        .any(|m| m.starts_with("request headers not output"))),
            "{path}: URL {url}, {marks:?}"
        );
    }
    // Where the capture found the response frames. When it had to skip bytes to find them
    // (it began inside a frame), everything decoded from them says so.
    let resync = entries
        .iter()
        .flat_map(incomplete)
        .find(|m| m.contains("resynchronisation"));
    if let Some(mark) = &resync {
        for entry in entries {
            let got_response = body_bytes(&entry["response"]["content"])
                .is_some_and(|b| !b.is_empty())
                || entry["response"]["status"].as_u64() != Some(0);
            assert!(
                !got_response || incomplete(entry).contains(mark),
                "stream {}: decoded after the resynchronisation but not marked: {:?}",
                entry["_streamId"],
                incomplete(entry)
            );
        }
    }
    eprintln!(
        "joined after {before} transfers; {} entries; {}",
        entries.len(),
        resync
            .as_deref()
            .unwrap_or("response frames found without skipping bytes")
    );
}

#[test]
fn join_after_a_64k_hpack_table_decodes_what_it_can_without_invalid_hpack() {
    if !require_bpf() {
        return;
    }
    const BEFORE: usize = 6;
    // By the 8th request, `x-post-1` lies some 6 KiB deep in the client's table.
    const AFTER: usize = 8;
    let dir = TempDir::new("h2-join-table");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let docroot = d.join("www");
    fs::create_dir_all(&docroot).expect("docroot");
    let mut files = BTreeMap::new();
    for (tag, n) in [("pre", BEFORE), ("post", AFTER)] {
        for i in 1..=n {
            let path = format!("/{tag}{i}.txt");
            let body: Vec<u8> = (0..1000 + 100 * i + 7 * tag.len())
                .map(|j| b"abcdefghijklmnopqrstuvwxyz\n"[(j * 7 + i) % 27])
                .collect();
            fs::write(docroot.join(&path[1..]), &body).expect("write a file");
            files.insert(path, body);
        }
    }
    // nghttpd's decoder allows a 64 KiB table and its encoder uses what the client allows
    // (64 KiB): its trailers (~4.5 KiB, the same on every response) stay in its table.
    let trailers: Vec<String> = (1..=5)
        .map(|i| format!("--trailer=x-trailer-{i}: {i}{}", "t".repeat(900)))
        .collect();
    let mut extra = vec![
        "--header-table-size=65536",
        "--encoder-header-table-size=65536",
    ];
    extra.extend(trailers.iter().map(String::as_str));
    let log = d.join("nghttpd.log");
    let server = nghttpd_logged_with(&docroot, &cert, &key, &log, &extra);
    let go = d.join("go");
    let mut client = Command::new(PYTHON)
        .arg(support("h2_table_client.py"))
        .arg(server.port.to_string())
        .arg(&go)
        .args([BEFORE.to_string(), AFTER.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the HTTP/2 client");
    let stdout = client.stdout.take().expect("piped stdout");
    let client = KillOnDrop::new(client);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let next_line = |lines: &mut Vec<String>| {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the client said nothing within 60 s");
        lines.push(line);
    };
    while lines.last().map(String::as_str) != Some("ready") {
        next_line(&mut lines);
    }
    // The tables hold more than 4096 bytes now; the capture joins the idle connection.
    let trace = d.join("t.pcapng");
    let recorder = Recorder::start(&trace, client.id());
    fs::write(&go, b"").expect("go");
    while lines.len() < BEFORE + 1 + AFTER {
        next_line(&mut lines);
    }
    recorder.stop();
    drop(client);
    drop(server);
    assert_eq!(
        lines.last().map(String::as_str),
        Some(&*format!("done /post{AFTER}.txt"))
    );

    let served = read_served(&log);
    let har_path = d.join("out.har");
    let har = replay_to_har(&trace, &har_path);
    assert_valid_har(&har_path);
    let entries = har["log"]["entries"].as_array().expect("HAR entries");
    assert_eq!(entries.len(), AFTER, "one entry per request after the join");
    for entry in entries {
        let sid = entry["_streamId"].as_u64().expect("stream id") as u32;
        let what = format!("stream {sid}");
        let marks = incomplete(entry);
        assert!(
            !marks.iter().any(|m| m.contains("invalid HPACK")),
            "{what}: {marks:?}"
        );
        let served = served
            .iter()
            .find(|((_, s), v)| *s == sid && !v.request.is_empty())
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{what}: nghttpd never served it"));
        let req_headers = har_pairs(&entry["request"]["headers"]);
        let resp = &entry["response"];
        let resp_headers = har_pairs(&resp["headers"]);
        let trailers = har_pairs(&resp["_trailers"]);
        assert!(
            all_sent(&req_headers, &served.request),
            "{what}: {req_headers:?}"
        );
        assert!(
            all_sent(&resp_headers, &served.response) && all_sent(&trailers, &served.response),
            "{what}: {resp_headers:?} {trailers:?}"
        );
        // The request inserted `x-post-j` and referred to every earlier `x-post-*`, all
        // inserted after the join (deeper than 4096 bytes in the table once a few are in):
        // decoded. `x-pre-1` and `:authority` were inserted before: unknown, and said so.
        let path = served
            .request
            .iter()
            .find(|(k, _)| k == ":path")
            .map(|(_, v)| v.clone())
            .expect("path");
        let j: usize = path
            .trim_start_matches("/post")
            .trim_end_matches(".txt")
            .parse()
            .expect("a request after the join");
        let shown_post: Vec<&(String, String)> = req_headers
            .iter()
            .filter(|(k, _)| k.starts_with("x-post-"))
            .collect();
        let want: Vec<&(String, String)> = served
            .request
            .iter()
            .filter(|(k, _)| k.starts_with("x-post-"))
            .collect();
        assert_eq!(want.len(), j, "{what}: x-post-* headers nghttpd received");
        if j.is_multiple_of(2) {
            assert_eq!(shown_post, want, "{what}: x-post-* headers");
        }
        if j.is_multiple_of(2) {
            // Nothing from before the join: the whole request, exactly.
            assert_eq!(req_headers, served.request, "{what}: request headers");
            let url = entry["request"]["url"].as_str().unwrap_or_default();
            assert_eq!(url_path(url), Some(path.as_str()), "{what}: URL {url}");
        } else {
            assert!(
                req_headers.len() < served.request.len()
                    && marks
                        .iter()
                        .any(|m| m.starts_with("request headers not output")),
                "{what}: a block referring to an entry from before the join must be \
                 missing and said so: {marks:?}"
            );
        }
        // nghttpd refers to its `server` field and trailers from before the join.
        if [&resp_headers[..], &trailers[..]].concat() != served.response {
            assert!(
                marks.iter().any(|m| m.starts_with("response")),
                "{what}: response headers not all shown, and not said so: {marks:?}"
            );
        }
        assert!(
            body_bytes(&resp["content"]).as_ref() == Some(&files[&path]),
            "{what}: response body"
        );
    }
    let text = serde_json::to_string(&har).expect("HAR text");
    assert!(!text.contains("invalid HPACK"), "{text}");
}
