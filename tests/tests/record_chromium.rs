//! `spliff record -- chromium ...`: Chromium carries BoringSSL compiled into
//! its stripped executable, found by what its functions do (no symbol names
//! them). The browser is started through Debian's wrapper script, so the
//! executable is found at its exec, and the TLS runs in the network service
//! (a `--type=utility` child). Pages with subresources over HTTP/1.1 and
//! HTTP/2 must replay to the HAR the servers say they exchanged, every
//! connection the network service's, through BoringSSL in the chromium file.
//! A program that nearly matches the pattern must not be hooked.
#![cfg(target_os = "linux")]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use spliff_formats::{Record, TlsLibrary, TraceFile};
use spliff_tests::{
    exchange_log::{
        check_trace, exchange_server, nghttpd_logged, read_exchange_server_log, read_nghttpd_log,
    },
    require_bpf,
    spliff::spliff_bin,
    tls_workload::{TraceSummary, read_trace, self_signed_cert},
    tools::TempDir,
};

/// Where Debian's chromium package puts the browser's executable (the
/// `chromium` on PATH is a shell script exec'ing it).
const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// `spliff record -i lo -o TRACE -- chromium --headless ... --dump-dom URL`:
/// returns the DOM chromium printed.
fn record_chromium(trace: &Path, profile: &Path, url: &str) -> String {
    let out = Command::new(spliff_bin())
        // Packets of lo only: never hook the machine's real interfaces.
        .args(["record", "-i", "lo", "-o"])
        .arg(trace)
        .args([
            "--",
            "chromium",
            "--headless=new",
            "--no-sandbox",
            // The servers' certificates are self-signed.
            "--ignore-certificate-errors",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .output()
        .expect("run spliff record");
    assert!(
        out.status.success(),
        "spliff record failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every connection is the network service's (process chromium, the
/// chromium executable), through BoringSSL in that file, with its 5-tuple
/// and no loss.
fn assert_all_chromium_boringssl(summary: &TraceSummary) {
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert!(summary.losses.is_empty(), "{:?}", summary.losses);
    assert!(!summary.conns.is_empty(), "no connection recorded");
    for (conn_id, conn) in &summary.conns {
        let info = conn.info.as_ref().expect("a connection record");
        assert_eq!(
            summary.comms.get(&info.pid).map(String::as_str),
            Some("chromium"),
            "conn {conn_id}"
        );
        assert_eq!(info.tls_library, TlsLibrary::BoringSsl, "conn {conn_id}");
        assert_eq!(
            PathBuf::from(String::from_utf8_lossy(&info.library_path).into_owned()),
            PathBuf::from(CHROMIUM),
            "conn {conn_id}"
        );
        assert!(info.remote.is_some(), "conn {conn_id} has no 5-tuple");
    }
}

/// The recorded processes' command lines (argv joined), from the trace.
fn recorded_command_lines(trace: &Path) -> Vec<String> {
    let file = TraceFile::open(trace).expect("open trace");
    let (records, _) = file.reader().records_by_time();
    records
        .iter()
        .filter_map(|at| match &at.record {
            Record::Process(p) => Some(
                p.cmdline
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        })
        .collect()
}

/// The network service recorded the traffic: a `--type=utility` chromium.
fn assert_network_service_recorded(trace: &Path) {
    let lines = recorded_command_lines(trace);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(CHROMIUM) && l.contains("--type=utility")),
        "{lines:#?}"
    );
}

#[test]
fn records_a_chromium_page_over_http2_exactly() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-chromium-h2");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let docroot = d.join("www");
    fs::create_dir_all(&docroot).unwrap();
    fs::write(
        docroot.join("index.html"),
        b"<html><head><link rel=\"icon\" href=\"data:,\">\
          <script src=\"/app.js\"></script><script src=\"/lib.js\"></script>\
          </head><body><p>served over HTTP/2</p></body></html>",
    )
    .unwrap();
    fs::write(docroot.join("app.js"), b"document.title = 'from app.js';\n").unwrap();
    // Larger than one TLS record, read whole (an image that does not
    // decode would be cancelled part way).
    let lib: String = (0..1000)
        .map(|i| format!("// line {i} of a script that only comments\n"))
        .collect();
    fs::write(docroot.join("lib.js"), lib).unwrap();
    let log = d.join("nghttpd.log");
    let server = nghttpd_logged(&docroot, &cert, &key, &log);
    let port = server.port;
    let trace = d.join("t.pcapng");
    let dom = record_chromium(
        &trace,
        &d.join("profile"),
        &format!("https://127.0.0.1:{port}/index.html"),
    );
    // The script ran: the page and its subresources were loaded.
    assert!(dom.contains("<title>from app.js</title>"), "{dom}");
    // Stopped, so its log is complete and closed.
    drop(server);

    let summary = read_trace(&trace);
    assert_all_chromium_boringssl(&summary);
    assert_network_service_recorded(&trace);
    let expected = read_nghttpd_log(&log, port, &docroot);
    assert!(
        expected.iter().any(|e| e.url.ends_with("/lib.js")),
        "{expected:#?}"
    );
    check_trace(&trace, &expected, d);
}

#[test]
fn records_a_chromium_page_over_http1_exactly() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-chromium-h1");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let log = d.join("exchanges.jsonl");
    let server = exchange_server(&cert, &key, &log);
    let port = server.port;
    let trace = d.join("t.pcapng");
    let dom = record_chromium(
        &trace,
        &d.join("profile"),
        &format!("https://127.0.0.1:{port}/page"),
    );
    assert!(dom.contains("<p>page</p>"), "{dom}");
    drop(server);

    let summary = read_trace(&trace);
    assert_all_chromium_boringssl(&summary);
    assert_network_service_recorded(&trace);
    let expected = read_exchange_server_log(&log, port);
    assert!(
        expected.iter().any(|e| e.url.ends_with("/chunked")),
        "{expected:#?}"
    );
    check_trace(&trace, &expected, d);
}

/// tests/support/boringssl_lookalike.S and its main, built with `defines`.
fn lookalike(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("support");
    let out = dir.join(name);
    let status = Command::new("cc")
        .args(defines)
        .arg("-o")
        .arg(&out)
        .args(["-x", "assembler-with-cpp"])
        .arg(support.join("boringssl_lookalike.S"))
        .args(["-x", "c"])
        .arg(support.join("boringssl_lookalike_main.c"))
        .status()
        .expect("cc runs");
    assert!(status.success());
    out
}

/// `spliff record -i lo -o TRACE -- PROGRAM`: its output and the capture's
/// attached-probe lines.
fn record_program(trace: &Path, program: &Path, args: &[String]) -> (Output, Vec<String>) {
    let out = Command::new(spliff_bin())
        .args(["record", "-i", "lo", "-o"])
        .arg(trace)
        .arg("--")
        .arg(program)
        .args(args)
        .output()
        .expect("run spliff record");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = TraceFile::open(trace).expect("open trace");
    let (records, _) = file.reader().records_by_time();
    let attached = records
        .iter()
        .filter_map(|at| match &at.record {
            Record::CaptureInfo(info) => Some(info.attached.clone()),
            _ => None,
        })
        .flatten()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    (out, attached)
}

#[test]
fn a_near_miss_of_the_pattern_is_not_hooked() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-boringssl-near-miss");
    let d = dir.path();
    let by_pattern = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("found by code pattern"))
            .cloned()
            .collect::<Vec<_>>()
    };
    // The control: the whole pattern is hooked, by offset.
    let whole = lookalike(d, "lookalike", &[]);
    let (_, attached) = record_program(&d.join("whole.pcapng"), &whole, &[]);
    let hooked = by_pattern(&attached);
    assert!(
        hooked
            .iter()
            .any(|l| l.starts_with("uprobe SSL_write (offset 0x")),
        "{attached:#?}"
    );
    // SSL_write without its BAD_LENGTH check: nothing is attached to the
    // file, and the recorder says why.
    let near = lookalike(d, "near-miss", &["-DNEAR_MISS"]);
    // It connects (plain TCP), so the end of the capture names it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    let port = listener.local_addr().unwrap().port().to_string();
    let (out, attached) = record_program(
        &d.join("near.pcapng"),
        &near,
        &["127.0.0.1".to_string(), port],
    );
    // Only lines of this file count: a browser that another test of this
    // binary runs meanwhile is found by pattern too (a whole-machine scan).
    let near_name = near.display().to_string();
    let hooked_near: Vec<String> = by_pattern(&attached)
        .into_iter()
        .filter(|l| l.contains(&near_name))
        .collect();
    assert_eq!(hooked_near, Vec::<String>::new());
    assert!(
        !attached.iter().any(|l| l.contains("near-miss")),
        "{attached:#?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("near-miss has BoringSSL compiled in but is not hooked: SSL_write not found"),
        "{stderr}"
    );
    let report = stderr
        .lines()
        .find(|l| l.starts_with("spliff: not recorded: near-miss (pid "))
        .unwrap_or_else(|| panic!("no end report of near-miss: {stderr}"));
    assert!(
        report.ends_with(&format!(
            "; {} has BoringSSL compiled in, not hooked: SSL_write not found",
            near.display()
        )),
        "{report}"
    );
}

/// A second capture of the same program finds the search's result in the
/// cache on disk (and says so), and hooks the same offsets, which it
/// verified against the program again.
#[test]
fn a_second_capture_finds_the_offsets_in_the_cache() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-boringssl-cache");
    let d = dir.path();
    // A build-id of its own: the other test's lookalike, built from the same
    // sources meanwhile, would otherwise share the entry's name.
    let build_id = format!(
        "{:08x}{:016x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    );
    let program = lookalike(d, "cached", &[&format!("-Wl,--build-id=0x{build_id}")]);
    // The entry of a program that exists only for this test goes with it.
    let entry = PathBuf::from(format!("/var/cache/spliff/boringssl-{build_id}"));
    let _remove_entry = RemoveOnDrop(entry);
    // Only lines of this file: a running browser is found by pattern too.
    let name = program.display().to_string();
    let offsets = |attached: &[String]| {
        attached
            .iter()
            .filter(|l| l.contains(&name) && l.contains("(offset 0x"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let in_cache = format!(
        "spliff: {}: stripped BoringSSL found in cache",
        program.display()
    );
    let (first, attached_first) = record_program(&d.join("first.pcapng"), &program, &[]);
    let first_stderr = String::from_utf8_lossy(&first.stderr);
    assert!(!first_stderr.contains(&in_cache), "{first_stderr}");
    let (second, attached_second) = record_program(&d.join("second.pcapng"), &program, &[]);
    let second_stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second_stderr.contains(&in_cache), "{second_stderr}");
    let hooked = offsets(&attached_first);
    assert!(
        hooked
            .iter()
            .any(|l| l.starts_with("uprobe SSL_write (offset 0x")),
        "{attached_first:#?}"
    );
    assert_eq!(offsets(&attached_second), hooked);
}

/// Removes a file when dropped (also when the test fails).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
