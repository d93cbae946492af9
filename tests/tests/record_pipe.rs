//! `spliff record -o - | spliff replay -`: the trace as a stream through a pipe gives the same
//! HAR as the same bytes read from a file, and the exchanges the client really made.
#![cfg(target_os = "linux")]

use std::{fs, process::Command};

use serde_json::Value;
use spliff_tests::{
    har::assert_valid_har,
    require_bpf,
    spliff::spliff_bin,
    tls_workload::{python_server, self_signed_cert},
    tools::TempDir,
};

#[test]
fn a_trace_streamed_through_a_pipe_replays_like_the_file() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-pipe");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let server = python_server(d, &cert, &key, &d.join("log"));
    let base = format!("https://127.0.0.1:{}", server.port);
    let spliff = spliff_bin();
    // curl prints to its standard output, which must not reach the trace's stream: the
    // recorder sends it to standard error.
    let pipeline = format!(
        "{spliff} record --no-packets -o - -- curl -sk --http1.1 {base}/get {base}/big \
         | tee {d}/t.pcapng | {spliff} replay - -o {d}/pipe.har",
        spliff = spliff.display(),
        d = d.display(),
    );
    let out = Command::new("bash")
        .args(["-c", &format!("set -o pipefail; {pipeline}")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("hello from the python server"),
        "curl's output goes to standard error: {stderr}"
    );

    let from_file = Command::new(&spliff)
        .arg("replay")
        .arg(d.join("t.pcapng"))
        .arg("-o")
        .arg(d.join("file.har"))
        .output()
        .unwrap();
    assert!(from_file.status.success());
    let pipe_har = fs::read(d.join("pipe.har")).unwrap();
    assert_eq!(pipe_har, fs::read(d.join("file.har")).unwrap());
    assert_valid_har(&d.join("pipe.har"));

    let har: Value = serde_json::from_slice(&pipe_har).unwrap();
    let entries = har["log"]["entries"].as_array().unwrap();
    let urls: Vec<&str> = entries
        .iter()
        .map(|e| e["request"]["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, [format!("{base}/get"), format!("{base}/big")]);
    assert_eq!(entries[1]["response"]["content"]["size"], 1 << 20);
}
