//! `openssl s_server -WWW` reads its requests with `BIO_gets` on a buffer BIO over an SSL
//! BIO and writes through `BIO_puts`/`BIO_write`: its plaintext goes through the SSL BIO's
//! own methods and never through `SSL_read`/`SSL_write`. Recorded server-side with curl
//! clients: each connection is recorded once on each side, the server's streams are byte
//! for byte what curl wrote and read, and the server-side HAR entries hold curl's request
//! and the served files.
#![cfg(target_os = "linux")]

use std::{collections::BTreeMap, fs, process::Command};

use serde_json::Value;
use spliff_formats::{ConnectionRole, TlsLibrary};
use spliff_tests::{
    har::body_bytes,
    require_bpf,
    spliff::{replay_to_har, spliff_bin},
    tls_workload::{read_trace, self_signed_cert},
    tools::TempDir,
};

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn header_pairs(v: &Value) -> Vec<(String, String)> {
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

#[test]
fn records_openssl_s_server_www_through_its_ssl_bio() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-openssl-bio");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let www = d.join("www");
    fs::create_dir_all(&www).expect("document root");
    let files: BTreeMap<&str, Vec<u8>> = [
        ("small.txt", b"served through an SSL BIO\n".to_vec()),
        // Several TLS records and several BIO writes.
        (
            "large.txt",
            (0..150_000u32).map(|i| b'a' + (i % 26) as u8).collect(),
        ),
    ]
    .into();
    for (name, content) in &files {
        fs::write(www.join(name), content).expect("write a served file");
    }
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let script = d.join("workload.sh");
    fs::write(
        &script,
        format!(
            "cd {www}\n\
             openssl s_server -WWW -quiet -accept {port} -cert {cert} -key {key} >/dev/null 2>&1 &\n\
             S=$!\n\
             C='curl -sk --http1.1 -A spliff-test -o /dev/null'\n\
             $C --retry 100 --retry-connrefused --retry-delay 0 {base}/small.txt\n\
             $C {base}/large.txt\n\
             kill $S 2>/dev/null\n\
             wait\n",
            www = www.display(),
            cert = cert.display(),
            key = key.display(),
        ),
    )
    .expect("write the workload");
    let trace = d.join("t.pcapng");
    let out = Command::new(spliff_bin())
        .args(["record", "-i", "lo", "-o"])
        .arg(&trace)
        .args(["--lib", "openssl", "--", "sh"])
        .arg(&script)
        .output()
        .expect("run spliff record");
    assert!(
        out.status.success(),
        "spliff record failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let summary = read_trace(&trace);
    assert!(summary.losses.is_empty(), "loss: {:?}", summary.losses);
    let by_tuple: BTreeMap<_, _> = summary
        .conns
        .values()
        .filter_map(|c| {
            let info = c.info.as_ref()?;
            Some(((info.local?, info.remote?), (info, c)))
        })
        .collect();
    let comm = |pid: u32| summary.comms.get(&pid).cloned().unwrap_or_default();
    let mut servers = 0;
    for ((local, remote), (info, conn)) in &by_tuple {
        if comm(info.pid) != "openssl" {
            continue;
        }
        servers += 1;
        assert_eq!(info.tls_library, TlsLibrary::OpenSsl);
        assert_eq!(info.role, ConnectionRole::Server);
        let (client, client_conn) = by_tuple
            .get(&(*remote, *local))
            .unwrap_or_else(|| panic!("no client side for the server's {local} <- {remote}"));
        assert_eq!(comm(client.pid), "curl");
        assert!(!conn.ingress.is_empty() && !conn.egress.is_empty());
        // A connection recorded twice (the BIO method and SSL_read both) would
        // show its bytes twice here.
        assert!(
            conn.ingress == client_conn.egress,
            "what the server read, the client wrote"
        );
        assert!(
            conn.egress == client_conn.ingress,
            "what the server wrote, the client read"
        );
    }
    assert_eq!(
        servers,
        files.len(),
        "every connection recorded server-side"
    );
    assert_eq!(
        summary.conns.len(),
        2 * files.len(),
        "one connection per side and request"
    );

    let har = replay_to_har(&trace, &d.join("out.har"));
    let entries = har["log"]["entries"].as_array().expect("HAR entries");
    let served: Vec<&Value> = entries.iter().filter(|e| e["_comm"] == "openssl").collect();
    assert_eq!(served.len(), files.len(), "server-side HAR entries");
    for entry in served {
        let url = entry["request"]["url"].as_str().expect("URL");
        let name = url
            .strip_prefix(&format!("{base}/"))
            .unwrap_or_else(|| panic!("URL {url}"));
        assert_eq!(entry["request"]["method"], "GET");
        assert_eq!(
            header_pairs(&entry["request"]["headers"]),
            [
                ("Host", format!("127.0.0.1:{port}")),
                ("User-Agent", "spliff-test".into()),
                ("Accept", "*/*".into()),
            ]
            .map(|(k, v)| (k.to_string(), v))
            .to_vec(),
            "{url}: request headers as curl sends them"
        );
        assert_eq!(entry["response"]["status"], 200, "{url}");
        assert!(
            body_bytes(&entry["response"]["content"]).as_deref() == Some(&files[name][..]),
            "{url}: the served file"
        );
    }
}
