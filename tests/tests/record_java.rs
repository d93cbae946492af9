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
/// functions): rustup, which fetches over rustls, is named as such when a
/// capture records nothing of it.
#[test]
fn a_rustls_client_is_named_as_not_supported() {
    if !require_bpf() {
        return;
    }
    let rustup = std::env::var_os("HOME")
        .map(|home| std::path::Path::new(&home).join(".cargo/bin/rustup"))
        .filter(|p| p.exists())
        .expect("rustup in ~/.cargo/bin (the Rust toolchain this repository builds with)");
    let dir = TempDir::new("record-rustls");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let server = python_server(d, &cert, &key, &d.join("log"));
    let out = Command::new(spliff_bin())
        .args(["record", "-i", "lo", "-o"])
        .arg(d.join("t.pcapng"))
        .arg("--")
        .arg(&rustup)
        .arg("check")
        // Its download fails on the self-signed certificate, after the
        // connection and the handshake's first flight.
        .env(
            "RUSTUP_DIST_SERVER",
            format!("https://127.0.0.1:{}", server.port),
        )
        .env("RUSTUP_HOME", d.join("rustup-home"))
        .output()
        .expect("run spliff record");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("(pid") && l.contains("no TLS data was recorded"))
        .unwrap_or_else(|| panic!("no report line for rustup: {stderr}"));
    assert!(line.contains("(rustls, not supported by spliff)"), "{line}");
}
