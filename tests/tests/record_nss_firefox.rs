//! `spliff record -- firefox-esr --headless --screenshot URL`: Firefox's TLS is NSS, its
//! plaintext goes through NSPR's `PR_Write`/`PR_Read` on the parent process's socket thread,
//! and Debian's Firefox brings its own `libssl3.so` in /usr/lib/firefox-esr. A page loaded
//! over HTTP/1.1 (the Python exchange server) and one over HTTP/2 (nghttpd, with an image
//! the page pulls in), each from a server that logs what it received and sent, trusted
//! through a test CA imported into a fresh profile with certutil: the replayed HAR must
//! equal the servers' logs, and every connection must be NSS's, a client, in the parent
//! process (`firefox-esr`, not a content process), with its 5-tuple and, over HTTP/2, its
//! ALPN.
#![cfg(target_os = "linux")]

use std::{
    fs,
    io::{BufRead as _, BufReader, Read as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use spliff_formats::{ConnectionRole, TlsLibrary};
use spliff_tests::{
    exchange_log::{
        check_trace, exchange_server, nghttpd_logged, read_exchange_server_log, read_nghttpd_log,
    },
    require_bpf,
    spliff::spliff_bin,
    tls_workload::read_trace,
    tools::{KillOnDrop, TempDir},
};

/// Preferences that keep a headless Firefox from talking to anything but the test server
/// (no update, telemetry, captive portal or safe-browsing requests) and from answering a
/// page from its cache instead of the network.
const USER_JS: &str = r#"
user_pref("app.update.enabled", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.cache.disk.enable", false);
user_pref("browser.cache.memory.enable", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("network.dns.disablePrefetch", true);
user_pref("network.prefetch-next", false);
user_pref("network.http.speculative-parallel-limit", 0);
"#;

fn run(what: &str, command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a server certificate for 127.0.0.1 it signed: (CA, cert, key). Firefox
/// does not take a self-signed server certificate as its own trust anchor.
fn ca_and_server_cert(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = d.join("ca.key");
    let ca = d.join("ca.pem");
    let key = d.join("key.pem");
    let csr = d.join("server.csr");
    let cert = d.join("cert.pem");
    let ext = d.join("server.ext");
    fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("write the extensions");
    run(
        "openssl req (CA)",
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=spliff test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
    );
    run(
        "openssl req (server)",
        Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    run(
        "openssl x509 (sign)",
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-set_serial", "2"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert),
    );
    (ca, cert, key)
}

/// A fresh Firefox profile under `d/name` trusting `ca` for web sites.
fn profile(d: &Path, name: &str, ca: &Path) -> PathBuf {
    let dir = d.join(name);
    fs::create_dir_all(&dir).expect("profile directory");
    let db = format!("sql:{}", dir.display());
    run(
        "certutil -N (apt-get install libnss3-tools)",
        Command::new("certutil").args(["-N", "--empty-password", "-d", &db]),
    );
    run(
        "certutil -A",
        Command::new("certutil")
            .args(["-A", "-n", "spliff test CA", "-t", "C,,", "-d", &db, "-i"])
            .arg(ca),
    );
    fs::write(dir.join("user.js"), USER_JS).expect("write user.js");
    dir
}

/// `spliff record -i lo -o TRACE -- firefox-esr --headless --profile P --screenshot F URL`:
/// Firefox exits once the page and what it pulls in are loaded.
fn record_firefox(d: &Path, trace: &Path, profile: &Path, url: &str) {
    let out = Command::new(spliff_bin())
        .args(["record", "-i", "lo", "-o"])
        .arg(trace)
        .args(["--", "firefox-esr", "--headless", "--profile"])
        .arg(profile)
        .arg("--screenshot")
        .arg(d.join("screenshot.png"))
        .arg(url)
        // No sandbox of its own for the content processes: none is needed to load a page,
        // and a VM or container may lack the namespaces it asks for.
        .env("MOZ_DISABLE_CONTENT_SANDBOX", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run spliff record (apt-get install firefox-esr)");
    assert!(
        out.status.success(),
        "spliff record -- firefox-esr failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every connection is NSS's, a client, in Firefox's parent process (named `comm`), to
/// `port`; returns their ALPNs.
fn assert_firefox_connections(trace: &Path, port: u16, comm: &str) -> Vec<Vec<u8>> {
    let summary = read_trace(trace);
    assert!(summary.losses.is_empty(), "loss: {:?}", summary.losses);
    assert!(!summary.conns.is_empty(), "no connection recorded");
    let mut alpns = Vec::new();
    for (conn_id, conn) in &summary.conns {
        let info = conn.info.clone().expect("connection record");
        // The parent process keeps the program's name; content processes rename
        // themselves ("Web Content", "Isolated Web Co").
        assert_eq!(
            summary.comms.get(&info.pid).map(String::as_str),
            Some(comm),
            "conn {conn_id}: process"
        );
        assert_eq!(info.tls_library, TlsLibrary::Nss, "conn {conn_id}: library");
        // Known gap under --comm: a connection first seen by its SNI takes its library
        // file from a guess that can name another process's hooked file (/usr/bin/node).
        assert!(
            comm != "firefox-esr" || String::from_utf8_lossy(&info.library_path).contains("lib"),
            "conn {conn_id}: library file {:?}",
            String::from_utf8_lossy(&info.library_path)
        );
        assert_eq!(info.role, ConnectionRole::Client, "conn {conn_id}: role");
        let remote = info.remote.expect("the connection's socket");
        assert_eq!(remote.port(), port, "conn {conn_id}: remote port");
        assert!(
            !conn.egress.is_empty() && !conn.ingress.is_empty(),
            "conn {conn_id}: both directions"
        );
        alpns.push(info.alpn);
    }
    alpns
}

/// HTTP/2's client connection preface.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Checks that `stream` is whole HTTP/2 frames, the first a SETTINGS (what each side
/// sends first), chained from its first byte to its last: the recorded plaintext of a
/// direction holds no byte too many, too few or out of place. Says where it breaks and
/// shows the first bytes.
fn assert_h2_frames_from_start(what: &str, stream: &[u8]) {
    let head: Vec<String> = stream.iter().take(24).map(|b| format!("{b:02x}")).collect();
    assert!(
        stream.len() >= 9 && stream[3] == 4 && stream[5..9] == [0; 4],
        "{what}: does not begin with a SETTINGS frame; first bytes {}",
        head.join(" ")
    );
    let mut at = 0;
    while at < stream.len() {
        let header = stream.get(at..at + 9).unwrap_or_else(|| {
            panic!(
                "{what}: {} bytes after the last whole frame at offset {at}; first bytes {}",
                stream.len() - at,
                head.join(" ")
            )
        });
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        // Neither side raised SETTINGS_MAX_FRAME_SIZE above its default.
        assert!(
            len <= 16384,
            "{what}: no frame header at offset {at} (length {len}); first bytes {}",
            head.join(" ")
        );
        at += 9 + len;
    }
    assert_eq!(at, stream.len(), "{what}: the last frame is cut short");
}

/// A page that pulls in an image, served over HTTP/2 from `d/docroot`.
fn h2_docroot(d: &Path) -> PathBuf {
    let docroot = d.join("docroot");
    fs::create_dir_all(&docroot).expect("docroot");
    fs::write(
        docroot.join("index.html"),
        "<!DOCTYPE html><html><body><p>over HTTP/2</p><img src=\"/pixels.bin\"></body></html>\n",
    )
    .expect("write the page");
    let pixels: Vec<u8> = (0..120_000u32).map(|i| (i * 29 + 5) as u8).collect();
    fs::write(docroot.join("pixels.bin"), &pixels).expect("write the image");
    docroot
}

/// The page and its image were loaded, each direction of each connection is whole frames
/// from its first byte, the HAR equals nghttpd's log, and every connection is Firefox's
/// (its parent process named `comm`) over h2.
fn check_h2_trace(trace: &Path, log: &Path, port: u16, docroot: &Path, comm: &str) {
    let expected = read_nghttpd_log(log, port, docroot);
    for path in ["/index.html", "/pixels.bin"] {
        assert!(
            expected
                .iter()
                .any(|e| e.url == format!("https://127.0.0.1:{port}{path}")),
            "Firefox did not load {path}: {expected:#?}"
        );
    }
    // Each direction's first bytes are checked on their own first: the HAR check below
    // only says that a frame was found by resynchronisation.
    for (conn_id, conn) in &read_trace(trace).conns {
        let egress = conn.egress.strip_prefix(H2_PREFACE).unwrap_or_else(|| {
            panic!("conn {conn_id}: the client's stream does not begin with the preface")
        });
        assert_h2_frames_from_start(&format!("conn {conn_id} egress"), egress);
        assert_h2_frames_from_start(&format!("conn {conn_id} ingress"), &conn.ingress);
    }
    check_trace(
        trace,
        &expected,
        trace.parent().expect("the test's directory"),
    );
    let alpns = assert_firefox_connections(trace, port, comm);
    assert!(
        alpns.iter().all(|a| a == b"h2"),
        "ALPN of every connection: {alpns:?}"
    );
}

#[test]
fn records_firefox_over_http1_exactly() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-firefox-h1");
    let d = dir.path();
    let (ca, cert, key) = ca_and_server_cert(d);
    let profile = profile(d, "profile", &ca);
    let log = d.join("server.jsonl");
    let server = exchange_server(&cert, &key, &log);
    let trace = d.join("t.pcapng");
    let url = format!("https://127.0.0.1:{}/text?client=firefox", server.port);
    record_firefox(d, &trace, &profile, &url);

    let expected = read_exchange_server_log(&log, server.port);
    assert!(
        expected.iter().any(|e| e.url == url),
        "Firefox did not load the page: {expected:#?}"
    );
    check_trace(&trace, &expected, d);
    assert_firefox_connections(&trace, server.port, "firefox-esr");
}

#[test]
fn records_firefox_over_http2_exactly() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-firefox-h2");
    let d = dir.path();
    let (ca, cert, key) = ca_and_server_cert(d);
    let profile = profile(d, "profile", &ca);
    let docroot = h2_docroot(d);
    let log = d.join("nghttpd.log");
    let server = nghttpd_logged(&docroot, &cert, &key, &log);
    let port = server.port;
    let trace = d.join("t.pcapng");
    let url = format!("https://127.0.0.1:{port}/index.html");
    record_firefox(d, &trace, &profile, &url);
    // Stopped, so its log is complete.
    drop(server);

    check_h2_trace(&trace, &log, port, &docroot, "firefox-esr");
}

/// `--comm NAME` with a Firefox started once the recorder is ready: Firefox does its TLS
/// on its "Socket Thread", and the scope must take the process's name, not only the
/// calling thread's (it recorded nothing). NAME is a symbolic link to Firefox, named after
/// the test process, so that the Firefoxes of tests running in parallel (this one's too,
/// from another copy of the suite) stay out of scope.
#[test]
fn comm_scope_records_a_firefox_started_later() {
    if !require_bpf() {
        return;
    }
    // 15 characters at most: a comm's length.
    let comm = format!("spliffox{}", std::process::id() % 10_000_000);
    let dir = TempDir::new("record-firefox-comm");
    let d = dir.path();
    let (ca, cert, key) = ca_and_server_cert(d);
    let profile = profile(d, "profile", &ca);
    let docroot = h2_docroot(d);
    let log = d.join("nghttpd.log");
    let server = nghttpd_logged(&docroot, &cert, &key, &log);
    let port = server.port;
    let firefox = fs::canonicalize("/usr/bin/firefox-esr")
        .expect("firefox-esr (apt-get install firefox-esr)");
    let link = d.join(&comm);
    std::os::unix::fs::symlink(&firefox, &link).expect("link Firefox under a name of its own");

    let trace = d.join("t.pcapng");
    let mut recorder = KillOnDrop::new(
        Command::new(spliff_bin())
            .args(["record", "-i", "lo", "--comm", &comm, "-o"])
            .arg(&trace)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run spliff record"),
    );
    let mut stderr = BufReader::new(recorder.stderr.take().expect("the recorder's stderr"));
    let mut first = String::new();
    stderr
        .read_line(&mut first)
        .expect("the recorder's first line");
    assert!(first.contains("recording"), "{first}");

    let status = Command::new(&link)
        .args(["--headless", "--profile"])
        .arg(&profile)
        .arg("--screenshot")
        .arg(d.join("screenshot.png"))
        .arg(format!("https://127.0.0.1:{port}/index.html"))
        .env("MOZ_DISABLE_CONTENT_SANDBOX", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run Firefox");
    assert!(status.success(), "Firefox failed: {status}");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(recorder.id() as i32, libc::SIGINT) };
    let status = recorder.wait().expect("wait for the recorder");
    let mut rest = String::new();
    stderr
        .read_to_string(&mut rest)
        .expect("the recorder's stderr");
    assert!(status.success(), "recorder failed: {rest}");
    // Stopped, so its log is complete.
    drop(server);
    check_h2_trace(&trace, &log, port, &docroot, &comm);
}
