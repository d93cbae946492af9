//! `spliff record -- node ...`: node carries OpenSSL inside its own executable
//! (no libssl.so), found by the functions the executable exports. Its `https`
//! and `http2` clients must be recorded as exactly as a program using the
//! shared library: both directions byte for byte against the server's log,
//! the HAR equal to what the server says it exchanged, the process `node`,
//! the library OpenSSL in the file /usr/bin/node (or wherever PATH has it).
#![cfg(target_os = "linux")]

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use spliff_formats::TlsLibrary;
use spliff_tests::{
    exchange_log::{check_trace, nghttpd_logged, read_nghttpd_log},
    har::body_bytes,
    require_bpf,
    spliff::{replay_to_har, spliff, spliff_bin},
    tls_workload::{TraceSummary, python_server, read_trace, self_signed_cert},
    tools::TempDir,
};

/// GET, then a POST of argv[3]'s bytes, each on its own connection
/// (`agent: false`), against the Python server on port argv[2].
const HTTPS_CLIENT: &str = r#"
const https = require('https');
const fs = require('fs');
const port = Number(process.argv[2]);
const upload = fs.readFileSync(process.argv[3]);
function request(options, body) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, rejectUnauthorized: false,
                                agent: false, ...options }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}
(async () => {
  await request({ path: '/get?client=node', method: 'GET' });
  const answer = await request({ path: '/upload', method: 'POST', headers: {
    'Content-Type': 'application/octet-stream', 'Content-Length': upload.length } }, upload);
  process.stdout.write(answer);
})().catch((e) => { console.error(e); process.exit(1); });
"#;

/// Several requests on one HTTP/2 connection to nghttpd on port argv[2].
const HTTP2_CLIENT: &str = r#"
const http2 = require('http2');
const session = http2.connect('https://127.0.0.1:' + process.argv[2], { rejectUnauthorized: false });
session.on('error', (e) => { console.error(e); process.exit(1); });
const paths = ['/a.txt', '/b.txt', '/c.bin', '/missing.txt'];
let left = paths.length;
for (const path of paths) {
  const req = session.request({ ':path': path });
  req.on('data', () => {});
  req.on('end', () => { if (--left === 0) session.close(); });
  req.end();
}
"#;

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The node executable `-- node` runs.
fn node_path() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("node"))
        .find(|p| p.is_file())
        .expect("node in PATH (the official build, OpenSSL compiled in)")
}

/// `spliff record -i lo -o TRACE -- node SCRIPT ARGS`.
fn record_node(trace: &Path, script: &Path, args: &[String]) {
    let out = Command::new(spliff_bin())
        // Packets of lo only: never hook the machine's real interfaces.
        .args(["record", "-i", "lo", "-o"])
        .arg(trace)
        .args(["--", "node"])
        .arg(script)
        .args(args)
        .output()
        .expect("run spliff record");
    assert!(
        out.status.success(),
        "spliff record failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every connection of the trace is node's, through OpenSSL in the node
/// executable, with no loss; returns how many there are.
fn assert_all_node_openssl(summary: &TraceSummary) -> usize {
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert!(summary.losses.is_empty(), "{:?}", summary.losses);
    let node = fs::canonicalize(node_path()).unwrap();
    for (conn_id, conn) in &summary.conns {
        let info = conn.info.as_ref().expect("a connection record");
        assert_eq!(
            summary.comms.get(&info.pid).map(String::as_str),
            Some("node"),
            "conn {conn_id}"
        );
        assert_eq!(info.tls_library, TlsLibrary::OpenSsl, "conn {conn_id}");
        let library = PathBuf::from(String::from_utf8_lossy(&info.library_path).into_owned());
        assert_eq!(
            fs::canonicalize(&library).ok().as_ref(),
            Some(&node),
            "conn {conn_id}: library file {}",
            library.display()
        );
    }
    summary.conns.len()
}

/// Waits until the Python server logged the end of `n` connections.
fn wait_done(logdir: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let done = fs::read_dir(logdir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".done"))
            .count();
        if done >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server saw {done} of {n} ends"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn records_node_https_exactly() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-node-https");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let logdir = d.join("log");
    let server = python_server(d, &cert, &key, &logdir);
    let upload = content(50 * 1000, 9);
    fs::write(d.join("upload.bin"), &upload).unwrap();
    fs::write(d.join("client.js"), HTTPS_CLIENT).unwrap();
    let trace = d.join("t.pcapng");
    record_node(
        &trace,
        &d.join("client.js"),
        &[
            server.port.to_string(),
            d.join("upload.bin").display().to_string(),
        ],
    );
    wait_done(&logdir, 2);

    let summary = read_trace(&trace);
    assert_eq!(assert_all_node_openssl(&summary), 2);
    // node's TLS writes into a memory BIO and libuv sends it later: no
    // socket call happens inside SSL_read/SSL_write, so the connection's
    // socket (and the client port the server logs by) is not known. Each
    // connection must still equal exactly one of the server's, both ways.
    let mut logged: Vec<(Vec<u8>, Vec<u8>)> = fs::read_dir(&logdir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "in"))
        .map(|p| {
            (
                fs::read(&p).unwrap(),
                fs::read(p.with_extension("out")).unwrap(),
            )
        })
        .collect();
    assert_eq!(logged.len(), 2);
    for (conn_id, conn) in &summary.conns {
        let at = logged
            .iter()
            .position(|(server_in, server_out)| {
                conn.egress == *server_in && conn.ingress == *server_out
            })
            .unwrap_or_else(|| {
                panic!(
                    "conn {conn_id} ({} bytes out, {} in) equals no connection the server logged",
                    conn.egress.len(),
                    conn.ingress.len()
                )
            });
        logged.swap_remove(at);
    }

    let har = replay_to_har(&trace, &d.join("out.har"));
    let entries = har["log"]["entries"].as_array().expect("entries");
    let base = format!("https://127.0.0.1:{}", server.port);
    let summary_of = |e: &Value| {
        (
            e["request"]["method"].as_str().unwrap_or("").to_owned(),
            e["request"]["url"].as_str().unwrap_or("").to_owned(),
            e["response"]["status"].as_u64(),
        )
    };
    assert_eq!(
        entries.iter().map(summary_of).collect::<Vec<_>>(),
        vec![
            ("GET".into(), format!("{base}/get?client=node"), Some(200)),
            ("POST".into(), format!("{base}/upload"), Some(200)),
        ]
    );
    assert_eq!(
        body_bytes(&entries[0]["response"]["content"]).unwrap(),
        b"hello from the python server, path /get?client=node\n"
    );
    assert!(body_bytes(&entries[1]["request"]["postData"]).unwrap() == upload);
    let answer =
        String::from_utf8(body_bytes(&entries[1]["response"]["content"]).unwrap()).unwrap();
    assert!(
        answer.starts_with("received 50000 bytes sha256 "),
        "{answer}"
    );
}

#[test]
fn records_node_http2_exactly() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-node-h2");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let docroot = d.join("www");
    fs::create_dir_all(&docroot).unwrap();
    fs::write(docroot.join("a.txt"), b"first file, served over HTTP/2\n").unwrap();
    fs::write(docroot.join("b.txt"), content(20_000, 1)).unwrap();
    fs::write(docroot.join("c.bin"), content(100 * 1024, 2)).unwrap();
    let log = d.join("nghttpd.log");
    let server = nghttpd_logged(&docroot, &cert, &key, &log);
    fs::write(d.join("client.js"), HTTP2_CLIENT).unwrap();
    let trace = d.join("t.pcapng");
    record_node(&trace, &d.join("client.js"), &[server.port.to_string()]);
    let port = server.port;
    // Stopped, so its log is complete and closed.
    drop(server);

    let summary = read_trace(&trace);
    assert_eq!(assert_all_node_openssl(&summary), 1);
    let info = summary.conns.values().next().unwrap().info.clone().unwrap();
    assert_eq!(info.alpn, b"h2");
    let expected = read_nghttpd_log(&log, port, &docroot);
    assert_eq!(expected.len(), 4, "{expected:#?}");
    check_trace(&trace, &expected, d);
}

#[test]
fn list_libs_names_node_as_openssl_by_its_exports() {
    let mut node = Command::new(node_path())
        .args(["-e", "setTimeout(() => {}, 20000)"])
        .spawn()
        .expect("start node");
    // Its maps are complete once it runs JavaScript; a moment is plenty.
    std::thread::sleep(Duration::from_millis(300));
    let pid = node.id().to_string();
    let out = spliff(&["record", "--list-libs", "--pid", &pid]);
    let _ = node.kill();
    let _ = node.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let node = fs::canonicalize(node_path()).unwrap();
    let per_process = format!(
        "pid {pid} (node): {} (OpenSSL, hooked, found by exported symbols)",
        node.display()
    );
    assert!(text.lines().any(|l| l == per_process), "{text}");
    let per_file = format!("{} (OpenSSL, found by exported symbols)", node.display());
    let at = text.lines().position(|l| l == per_file).expect(&text);
    assert!(
        text.lines()
            .skip(at + 1)
            .take_while(|l| l.starts_with("    "))
            .any(|l| l == format!("    mapped by pid {pid} (node)")),
        "{text}"
    );
}
