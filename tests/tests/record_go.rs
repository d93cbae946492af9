//! `spliff record` of Go programs (crypto/tls linked in, no libssl): a Go
//! client and a Go server built here from `tests/support/go/` with Debian's
//! golang-go, with symbols and stripped (`-ldflags=-s -w`), over HTTP/1.1
//! and HTTP/2, and a client reading into a goroutine stack that moves
//! during the read. The recorded side's HAR must equal, byte for byte, what the
//! other side logged it exchanged, and name the right process and Go as the
//! library.
#![cfg(target_os = "linux")]

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use spliff_tests::{
    har::{assert_valid_har, body_bytes},
    require_bpf,
    spliff::{replay_to_har, spliff, spliff_bin},
    tls_workload::{Server, read_trace, self_signed_cert},
    tools::{KillOnDrop, TempDir},
};

const CLIENT_GO: &str = include_str!("../support/go/client.go");
const SERVER_GO: &str = include_str!("../support/go/server.go");

/// The four builds of one test run.
struct Programs {
    client: PathBuf,
    client_stripped: PathBuf,
    server: PathBuf,
    server_stripped: PathBuf,
}

/// `go build` of `source` into `out`, everything Go writes kept under `dir`.
fn go_build(dir: &Path, name: &str, source: &str, out: &Path, stripped: bool) {
    let package = dir.join("src").join(name);
    fs::create_dir_all(&package).unwrap();
    fs::write(package.join("main.go"), source).unwrap();
    let mut go = Command::new("go");
    go.arg("build").arg("-o").arg(out);
    if stripped {
        go.arg("-ldflags=-s -w");
    }
    let output = go
        .arg(".")
        .current_dir(&package)
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .output()
        .expect("run go (apt-get install golang-go)");
    assert!(
        output.status.success(),
        "go build {name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn build(dir: &Path) -> Programs {
    let bin = dir.join("bin");
    let programs = Programs {
        client: bin.join("client"),
        client_stripped: bin.join("client-stripped"),
        server: bin.join("server"),
        server_stripped: bin.join("server-stripped"),
    };
    go_build(dir, "client", CLIENT_GO, &programs.client, false);
    go_build(dir, "client", CLIENT_GO, &programs.client_stripped, true);
    go_build(dir, "server", SERVER_GO, &programs.server, false);
    go_build(dir, "server", SERVER_GO, &programs.server_stripped, true);
    programs
}

/// One exchange as the unrecorded side logged it.
#[derive(Debug)]
struct Logged {
    proto: String,
    method: String,
    path: String,
    request_body: Vec<u8>,
    status: u64,
    response_body: Vec<u8>,
}

fn read_log(path: &Path) -> Vec<Logged> {
    let bytes = |v: &Value| match v.as_str() {
        Some(text) => BASE64.decode(text).expect("base64 in the log"),
        None => Vec::new(),
    };
    fs::read_to_string(path)
        .expect("the other side's log")
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON log line"))
        .filter(|v| v.get("closed").is_none())
        .map(|v| Logged {
            proto: v["proto"].as_str().unwrap_or_default().to_owned(),
            method: v["method"].as_str().unwrap_or_default().to_owned(),
            path: v["path"].as_str().unwrap_or_default().to_owned(),
            request_body: bytes(&v["request_body"]),
            status: v["status"].as_u64().unwrap_or_default(),
            response_body: bytes(&v["response_body"]),
        })
        .collect()
}

/// The recorded process, as the HAR must name it.
struct Recorded<'a> {
    comm: &'a str,
    /// `None`: not known to the test (a `-- CMD` child), only that it is one.
    pid: Option<u32>,
    /// The ALPN the HAR must name, or `None`: none (HTTP/1.1 clients here
    /// offer none).
    alpn: Option<&'a str>,
}

/// Replays `trace` to HAR and checks it against `log`: every exchange once,
/// bodies equal both ways, the protocol, the process and the library.
fn check(trace: &Path, log: &[Logged], port: u16, recorded: &Recorded<'_>, work: &Path) {
    let summary = read_trace(trace);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert!(summary.losses.is_empty(), "loss: {:?}", summary.losses);
    let har_path = work.join("out.har");
    let har = replay_to_har(trace, &har_path);
    assert_valid_har(&har_path);
    let entries = har["log"]["entries"].as_array().expect("HAR entries");
    assert_eq!(entries.len(), log.len(), "HAR entries vs logged exchanges");
    let pids: std::collections::BTreeSet<u64> =
        entries.iter().filter_map(|e| e["_pid"].as_u64()).collect();
    assert_eq!(pids.len(), 1, "one recorded process: {pids:?}");
    if let Some(pid) = recorded.pid {
        assert_eq!(pids.first().copied(), Some(u64::from(pid)));
    }
    for want in log {
        let url = format!("https://127.0.0.1:{port}{}", want.path);
        let what = format!("{} {url}", want.method);
        let matching: Vec<&Value> = entries
            .iter()
            .filter(|e| {
                e["request"]["method"].as_str() == Some(&want.method)
                    && e["request"]["url"].as_str() == Some(&url)
            })
            .collect();
        assert_eq!(matching.len(), 1, "{what}: {} HAR entries", matching.len());
        let entry = matching[0];
        assert!(
            entry.get("_incomplete").is_none() && entry.get("_loss").is_none(),
            "{what}: incomplete: {} {}",
            entry["_incomplete"],
            entry["_loss"]
        );
        let version = if want.proto == "HTTP/2.0" {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        };
        assert_eq!(entry["request"]["httpVersion"], version, "{what}");
        assert_eq!(entry["response"]["status"].as_u64(), Some(want.status));
        let request = body_bytes(&entry["request"]["postData"]).unwrap_or_default();
        assert!(
            request == want.request_body,
            "{what}: request body differs ({} vs {} bytes)",
            request.len(),
            want.request_body.len()
        );
        let response = body_bytes(&entry["response"]["content"]).unwrap_or_default();
        assert!(
            response == want.response_body,
            "{what}: response body differs ({} vs {} bytes)",
            response.len(),
            want.response_body.len()
        );
        assert_eq!(entry["_comm"], recorded.comm, "{what}");
        assert_eq!(entry["_tlsLibrary"], "go", "{what}");
        assert_eq!(entry["_alpn"].as_str(), recorded.alpn, "{what}");
    }
    // HTTP/2: everything, the 20 concurrent requests included, on one connection.
    let connections: std::collections::BTreeSet<String> = entries
        .iter()
        .map(|e| e["_connectionId"].to_string())
        .collect();
    assert_eq!(connections.len(), 1, "one TLS connection: {connections:?}");
}

fn record_command(trace: &Path, command: &[&Path], args: &[&str]) {
    let out = Command::new(spliff_bin())
        .args(["record", "-i", "lo", "-o"])
        .arg(trace)
        .arg("--")
        .args(command)
        .args(args)
        .output()
        .expect("run spliff record");
    assert!(
        out.status.success(),
        "spliff record failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts an unrecorded Go server; returns it and its port.
fn start_server(program: &Path, cert: &Path, key: &Path, log: &Path) -> Server {
    let mut child = Command::new(program)
        .args([cert, key, log])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the Go server");
    let port = read_port(child.stdout.take().expect("piped"));
    Server::from_child(child, port)
}

fn read_port(stdout: impl std::io::Read) -> u16 {
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the server's port");
    line.trim().parse().expect("the server prints its port")
}

#[test]
fn records_go_clients_with_and_without_symbols() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-go-client");
    let d = dir.path();
    let programs = build(d);
    let (cert, key) = self_signed_cert(d);
    let cases = [
        (&programs.client, "h1"),
        (&programs.client, "h2"),
        (&programs.client_stripped, "h1"),
        (&programs.client_stripped, "h2"),
        // Read into a buffer on a goroutine stack that moves meanwhile.
        (&programs.client, "stack"),
    ];
    for (i, (client, mode)) in cases.into_iter().enumerate() {
        let server_log = d.join(format!("server{i}.log"));
        let server = start_server(&programs.server, &cert, &key, &server_log);
        let trace = d.join(format!("client{i}.pcapng"));
        let base = format!("https://127.0.0.1:{}", server.port);
        let client_log = d.join(format!("client{i}.log"));
        record_command(
            &trace,
            &[client],
            &[&base, mode, client_log.to_str().unwrap()],
        );
        // The server logs an exchange once its handler is done, before the
        // client has the whole response: complete once the client ended.
        let log = read_log(&server_log);
        let exchanges = match mode {
            "h1" => 2,
            "h2" => 22,
            _ => 1,
        };
        assert_eq!(log.len(), exchanges, "{mode}");
        let name = client.file_name().unwrap().to_str().unwrap();
        let comm = &name[..name.len().min(15)];
        let recorded = Recorded {
            comm,
            pid: None,
            alpn: (mode == "h2").then_some("h2"),
        };
        check(&trace, &log, server.port, &recorded, d);
        drop(server);
    }
}

#[test]
fn records_go_servers_with_and_without_symbols() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-go-server");
    let d = dir.path();
    let programs = build(d);
    let (cert, key) = self_signed_cert(d);
    for (i, server) in [&programs.server, &programs.server_stripped]
        .into_iter()
        .enumerate()
    {
        for mode in ["h1", "h2"] {
            let trace = d.join(format!("server{i}{mode}.pcapng"));
            let server_log = d.join(format!("server{i}{mode}.log"));
            let mut recorder = KillOnDrop::new(
                Command::new(spliff_bin())
                    .args(["record", "-i", "lo", "-o"])
                    .arg(&trace)
                    .arg("--")
                    .arg(server)
                    .args([&cert, &key, &server_log])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("run spliff record"),
            );
            // The port comes once the server listens, after every probe is on.
            let port = read_port(recorder.stdout.take().expect("piped"));
            let client_log = d.join(format!("client-of-server{i}{mode}.log"));
            let status = Command::new(&programs.client)
                .args([&format!("https://127.0.0.1:{port}"), mode])
                .arg(&client_log)
                .status()
                .expect("run the Go client");
            assert!(status.success());
            wait_closed(&server_log);
            let log = read_log(&client_log);
            wait_recorded(&trace, log.len(), d);
            // SIGINT: the recorder passes it on to the server and records
            // until it exits.
            let pid = recorder.id();
            let server_pid = server_pid(pid);
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(pid as i32, libc::SIGINT) };
            let out = recorder
                .into_inner()
                .wait_with_output()
                .expect("spliff record ends");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() || out.status.code() == Some(0),
                "spliff record: {stderr}"
            );
            let name = server.file_name().unwrap().to_str().unwrap();
            check(
                &trace,
                &log,
                port,
                &Recorded {
                    comm: &name[..name.len().min(15)],
                    pid: server_pid,
                    alpn: (mode == "h2").then_some("h2"),
                },
                d,
            );
        }
    }
}

/// Waits until the server logged its connection closed: its last write
/// has returned then (stopping it earlier could end it between a write's
/// system call and the function's return, where the probe reads it).
fn wait_closed(log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(log)
        .unwrap_or_default()
        .contains("\"closed\"")
    {
        assert!(
            Instant::now() < deadline,
            "the server never closed the connection"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until the trace on disk holds `exchanges` complete exchanges. Go's HTTP/2
/// server writes from a goroutine of its own: its last write's return, where the probe reads
/// it, can come after the client has the bytes and the server has logged the connection
/// closed, and a recorder stopped in between misses it (seen once under heavy load). Not an
/// assertion: past the bound, `check` says what is missing.
fn wait_recorded(trace: &Path, exchanges: usize, work: &Path) {
    let har = work.join("progress.har");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let out = spliff(&[
            "replay",
            trace.to_str().expect("utf-8 path"),
            "-o",
            har.to_str().expect("utf-8 path"),
        ]);
        let complete = out.status.success()
            && fs::read(&har)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| {
                    v["log"]["entries"]
                        .as_array()
                        .map(|e| e.iter().filter(|e| e.get("_incomplete").is_none()).count())
                })
                .is_some_and(|n| n >= exchanges);
        if complete {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pid of the recorder's only child, the server.
fn server_pid(recorder: u32) -> Option<u32> {
    let children = fs::read_to_string(format!("/proc/{recorder}/task/{recorder}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}
