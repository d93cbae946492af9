//! The live view of `spliff record`: real clients against real servers, the view on the
//! recorder's standard output compared with `spliff replay` of the trace written in the same
//! run, a long-lived HTTP/2 connection's request shown while the connection is open, and the
//! original spliff's flag spellings.
#![cfg(target_os = "linux")]

use std::{
    fs::{self, File},
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use spliff_tests::{
    require_bpf,
    spliff::{spliff, spliff_bin},
    tls_workload::{PY_CLIENT, PYTHON, Server, nghttpd, python_server, self_signed_cert},
    tools::{KillOnDrop, TempDir},
};

/// `spliff record ARGS` with its standard output in `view` (a file: it outlives nothing).
fn record(args: &[&str], view: &Path) -> Output {
    Command::new(spliff_bin())
        .arg("record")
        .args(args)
        .stdout(File::create(view).unwrap())
        .output()
        .unwrap()
}

fn replay_text(trace: &Path, flags: &[&str]) -> String {
    let out = spliff(
        &[
            &["replay", trace.to_str().unwrap(), "--color", "never"],
            flags,
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `workload` (a shell command) under `record -o FILE --live FLAGS` and checks that the
/// live view printed exactly what `replay` prints of the trace; returns that text.
fn live_equals_replay(dir: &Path, tag: &str, flags: &[&str], workload: &str) -> String {
    let trace = dir.join(format!("{tag}.pcapng"));
    let view = dir.join(format!("{tag}.live.txt"));
    let mut args = vec!["--no-packets", "-o", trace.to_str().unwrap(), "--live"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "bash", "-c", workload]);
    let out = record(&args, &view);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = fs::read_to_string(&view).unwrap();
    let replayed = replay_text(&trace, flags);
    assert_eq!(live, replayed, "{tag}: live view and replay differ");
    live
}

#[test]
fn the_live_view_prints_what_replay_prints_for_curl_and_python() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-live");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let py = python_server(d, &cert, &key, &d.join("log"));
    let docroot = d.join("doc");
    fs::create_dir_all(&docroot).unwrap();
    fs::write(docroot.join("index.html"), "hello over h2\n").unwrap();
    fs::write(docroot.join("big"), vec![b'x'; 300_000]).unwrap();
    let h2 = nghttpd(&docroot, &cert, &key);
    let h1 = format!("https://127.0.0.1:{}", py.port);
    let h2url = format!("https://127.0.0.1:{}", h2.port);
    fs::write(d.join("client.py"), PY_CLIENT).unwrap();
    // Every client's own output goes to /dev/null: the recorder's standard output is the view.
    let workload = format!(
        "curl -sk --http1.1 -o /dev/null -o /dev/null -o /dev/null {h1}/get {h1}/chunked {h1}/big \
         && curl -sk --http2 -o /dev/null -o /dev/null {h2url}/index.html {h2url}/big \
         && {PYTHON} {client} {h1} >/dev/null",
        client = d.join("client.py").display(),
    );
    let text = live_equals_replay(d, "default", &[], &workload);
    for url in [
        format!("→ GET {h1}/get"),
        format!("← 200 {h1}/chunked"),
        format!("→ GET {h2url}/big"),
        format!("← 200 {h2url}/index.html"),
        format!("→ POST {h1}/upload"),
        "python3".to_string(),
    ] {
        assert!(text.contains(&url), "{url} missing from the view:\n{text}");
    }
    // The other looks of the view, on a smaller workload.
    let small = format!(
        "curl -sk --http1.1 -o /dev/null {h1}/gzip && curl -sk --http2 -o /dev/null {h2url}/index.html"
    );
    let compact = live_equals_replay(d, "compact", &["-c"], &small);
    assert_eq!(compact.lines().count(), 2, "{compact}");
    let bodies = live_equals_replay(d, "bodies", &["-b", "-H"], &small);
    assert!(bodies.contains("hello over h2"), "{bodies}");
    assert!(bodies.contains("compress me, spliff!"), "{bodies}");
    assert_eq!(
        bodies.matches("TLS handshake complete").count(),
        2,
        "{bodies}"
    );
}

/// An HTTP/2 server (node) that answers `/slow...` only once `trigger` exists.
const NODE_SLOW_SERVER: &str = r#"
const http2 = require('http2'), fs = require('fs');
const [cert, key, trigger] = process.argv.slice(2);
const server = http2.createSecureServer({cert: fs.readFileSync(cert), key: fs.readFileSync(key)});
server.on('stream', (stream, headers) => {
  const path = headers[':path'];
  const reply = () => {
    stream.respond({':status': 200, 'content-type': 'text/plain'});
    stream.end('answer to ' + path + '\n');
  };
  if (!path.startsWith('/slow')) return reply();
  const wait = setInterval(() => {
    if (fs.existsSync(trigger)) { clearInterval(wait); reply(); }
  }, 20);
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
"#;

fn node_slow_server(dir: &Path, cert: &Path, key: &Path, trigger: &Path) -> Server {
    let script = dir.join("slow.js");
    fs::write(&script, NODE_SLOW_SERVER).unwrap();
    let mut child = Command::new("node")
        .arg(&script)
        .args([cert, key, trigger])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start node (apt-get install nodejs)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("node server prints its port");
    Server::from_child(child, port)
}

/// Waits until `path` contains `needle`, or `child` ended (then fails with its output).
fn wait_for_text(path: &Path, needle: &str, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("recorder ended ({status}) before showing {needle}:\n{text}");
        }
        assert!(Instant::now() < deadline, "{needle} never shown:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_long_lived_http2_connection_shows_its_requests_while_open() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-live-h2");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let trigger = d.join("answer-now");
    let server = node_slow_server(d, &cert, &key, &trigger);
    let base = format!("https://127.0.0.1:{}", server.port);
    let view = d.join("view.txt");
    let errors = d.join("stderr.txt");
    // No -o: the live view is the only output. curl sends both requests on one connection.
    let mut recorder = KillOnDrop::new(
        Command::new(spliff_bin())
            .args(["record", "--no-packets", "--", "curl", "-sk", "--http2"])
            .args(["-o", "/dev/null", "-o", "/dev/null"])
            .arg(format!("{base}/first"))
            .arg(format!("{base}/slow"))
            .stdout(File::create(&view).unwrap())
            .stderr(File::create(&errors).unwrap())
            .spawn()
            .unwrap(),
    );
    let shown = wait_for_text(&view, &format!("→ GET {base}/slow"), &mut recorder);
    // The server has not answered /slow: its connection is open, and the view already shows
    // the request (and the first exchange whole).
    assert!(!trigger.exists());
    assert!(shown.contains(&format!("← 200 {base}/first")), "{shown}");
    assert!(!shown.contains(&format!("← 200 {base}/slow")), "{shown}");
    assert!(
        recorder.try_wait().unwrap().is_none(),
        "the recorder (and curl) still run"
    );
    fs::write(&trigger, "").unwrap();
    let status = recorder.wait().unwrap();
    assert!(status.success(), "{}", fs::read_to_string(&errors).unwrap());
    let text = fs::read_to_string(&view).unwrap();
    assert!(text.contains(&format!("← 200 {base}/slow")), "{text}");
    assert!(text.contains("[stream 3]"), "{text}");
}

#[test]
fn the_original_spliff_flag_spellings_work() {
    if !require_bpf() {
        return;
    }
    // --show-libs is --list-libs; --openssl, --gnutls and --nss are --lib openssl, gnutls, nss.
    let listed = |args: &[&str]| {
        let out = spliff(&[&["record", "--show-libs"], args].concat());
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let openssl = listed(&["--openssl"]);
    assert!(
        openssl.contains("(OpenSSL, found by file name)\n"),
        "{openssl}"
    );
    assert!(
        openssl.contains("(GnuTLS, found by file name, not hooked: see --lib)"),
        "{openssl}"
    );
    let gnutls = listed(&["--gnutls"]);
    assert!(
        gnutls.contains("(GnuTLS, found by file name)\n"),
        "{gnutls}"
    );
    assert!(
        gnutls.contains("(OpenSSL, found by file name, not hooked: see --lib)"),
        "{gnutls}"
    );
    let nss = listed(&["--nss"]);
    assert!(nss.contains("(NSS, found by file name)\n"), "{nss}");
    assert!(
        nss.contains("(OpenSSL, found by file name, not hooked: see --lib)"),
        "{nss}"
    );
    // -p is --pid.
    let out = spliff(&["record", "-p", "999999999", "--no-packets"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no process with pid 999999999 (--pid)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = TempDir::new("record-live-flags");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let py = python_server(d, &cert, &key, &d.join("log"));
    let url = format!("https://127.0.0.1:{}/get", py.port);
    let curl = ["--", "curl", "-sk", "-o", "/dev/null", url.as_str()];
    // -C alone is no colour, even after --color always; without it, colour.
    let view = d.join("colour.txt");
    let out = record(
        &[&["--no-packets", "--color", "always"], &curl[..]].concat(),
        &view,
    );
    assert!(out.status.success());
    assert!(fs::read_to_string(&view).unwrap().contains("\x1b["));
    let out = record(
        &[
            &["--no-packets", "--color", "always", "-C", "-c", "-l", "-H"],
            &curl[..],
        ]
        .concat(),
        &view,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = fs::read_to_string(&view).unwrap();
    assert!(!plain.contains("\x1b["), "{plain}");
    assert!(plain.contains(&format!("GET {url} 200")), "{plain}");
    assert!(plain.contains("TLS handshake complete"), "{plain}");
    // -C MB is still the file size of a rotated capture.
    let base = d.join("rot.pcapng");
    let out = record(
        &[
            &["--no-packets", "-C", "5", "-o", base.to_str().unwrap()],
            &curl[..],
        ]
        .concat(),
        &d.join("none.txt"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(d.join("rot.000001.pcapng").exists());
    assert!(!base.exists());
}
