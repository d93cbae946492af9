//! Java's TLS (JSSE) is Java code run by the JVM, with no library spliff can
//! hook: a capture of a Java client records nothing of it, and the
//! end-of-capture report must say why instead of leaving an empty trace
//! unexplained.
#![cfg(target_os = "linux")]

use std::{fs, process::Command};

use spliff_tests::{
    require_bpf,
    spliff::spliff_bin,
    tls_workload::{python_server, self_signed_cert},
    tools::TempDir,
};

#[test]
fn a_java_client_is_named_as_not_supported() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-java");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let server = python_server(d, &cert, &key, &d.join("log"));
    let source = d.join("Fetch.java");
    fs::write(&source, include_str!("../support/java/Fetch.java")).unwrap();
    let out = Command::new(spliff_bin())
        .args(["record", "-i", "lo", "-o"])
        .arg(d.join("t.pcapng"))
        .args(["--", "java"])
        .arg(&source)
        .arg(server.port.to_string())
        .output()
        .expect("run spliff record (apt-get install default-jdk-headless)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "spliff record failed: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("java (pid") && l.contains("no TLS data was recorded"))
        .unwrap_or_else(|| panic!("no report line for java: {stderr}"));
    assert!(
        line.contains("libjvm.so (Java (JSSE), not supported by spliff)"),
        "{line}"
    );
}

/// rustls is compiled into Rust programs (no library to hook, no exported
/// functions): a client built with it (`src/bin/rustls_get.rs`) completes an
/// exchange spliff cannot see, and is named as such in the report.
#[test]
fn a_rustls_client_is_named_as_not_supported() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-rustls");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let server = python_server(d, &cert, &key, &d.join("log"));
    let out = Command::new(spliff_bin())
        .args(["record", "-i", "lo", "-o"])
        .arg(d.join("t.pcapng"))
        .args(["--", env!("CARGO_BIN_EXE_rustls_get")])
        .arg(server.port.to_string())
        .output()
        .expect("run spliff record");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "spliff record failed: {stderr}");
    // The exchange happened (the client printed the server's status line)...
    assert!(stdout.starts_with("HTTP/1."), "client output: {stdout}");
    // ...and nothing of it was recorded, which the report explains.
    let line = stderr
        .lines()
        .find(|l| l.contains("rustls_get (pid") && l.contains("no TLS data was recorded"))
        .unwrap_or_else(|| panic!("no report line for rustls_get: {stderr}"));
    assert!(line.contains("(rustls, not supported by spliff)"), "{line}");
}
