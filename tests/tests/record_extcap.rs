//! The Wireshark extcap interface: installed with `spliff extcap --install`, listed by
//! `tshark -D`, and `tshark -i spliff` captures a curl workload's decrypted sessions with every
//! request dissected as HTTP (HTTP/1.1) or HTTP/2.
#![cfg(target_os = "linux")]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use spliff_tests::{
    require_bpf,
    spliff::spliff,
    tls_workload::{nghttpd, python_server, self_signed_cert},
    tools::{TempDir, run},
};

/// Removes the installed wrapper when the test ends, whatever happens.
struct Installed(PathBuf);

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn install() -> Installed {
    let out = spliff(&["extcap", "--install"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = stdout
        .strip_prefix("installed ")
        .and_then(|rest| rest.split(" (runs").next())
        .unwrap_or_else(|| panic!("install says where: {stdout}"));
    Installed(PathBuf::from(path))
}

/// Waits until the recorder the interface started says it is recording.
fn wait_ready(log: &Path, tshark: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if text.contains("spliff: recording") {
            return;
        }
        if let Some(status) = tshark.try_wait().unwrap() {
            panic!("tshark ended ({status}) before the recorder was ready:\n{text}");
        }
        assert!(Instant::now() < deadline, "recorder never ready:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn fields(capture: &Path, filter: &str, field: &str) -> Vec<String> {
    run(
        "tshark",
        &[
            "-r",
            capture.to_str().unwrap(),
            "-Y",
            filter,
            "-T",
            "fields",
            "-e",
            field,
        ],
    )
    .stdout
    .lines()
    .flat_map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
    .collect()
}

#[test]
fn tshark_captures_curl_through_the_spliff_interface() {
    if !require_bpf() {
        return;
    }
    let _installed = install();
    let listed = run("tshark", &["-D"]).stdout;
    assert!(listed.contains(". spliff ("), "{listed}");

    let dir = TempDir::new("record-extcap");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let py = python_server(d, &cert, &key, &d.join("log"));
    let docroot = d.join("doc");
    fs::create_dir_all(&docroot).unwrap();
    fs::write(docroot.join("index.html"), "hello over h2\n").unwrap();
    fs::write(docroot.join("big"), vec![b'x'; 200_000]).unwrap();
    let h2 = nghttpd(&docroot, &cert, &key);

    let capture = d.join("capture.pcapng");
    let log = d.join("recorder.log");
    let mut tshark = Command::new("tshark")
        .args([
            "-i",
            "spliff",
            "-a",
            "duration:60",
            "-o",
            "extcap.spliff.comm:curl",
        ])
        .arg("-w")
        .arg(&capture)
        .env("SPLIFF_EXTCAP_LOG", &log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run tshark (apt-get install tshark)");
    wait_ready(&log, &mut tshark);
    // Other programs named curl may run meanwhile: this run's requests carry a token.
    let token = d.file_name().unwrap().to_string_lossy().replace('-', "");
    let h1 = format!("https://127.0.0.1:{}", py.port);
    let h2url = format!("https://127.0.0.1:{}", h2.port);
    for args in [
        vec!["--http1.1", "-o", "/dev/null", "-o", "/dev/null"],
        vec!["--http2", "-o", "/dev/null", "-o", "/dev/null"],
    ] {
        let base = if args[0] == "--http2" { &h2url } else { &h1 };
        let status = Command::new("curl")
            .arg("-sk")
            .args(&args)
            .arg(format!("{base}/index.html?n=1&t={token}"))
            .arg(format!("{base}/big?n=2&t={token}"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let status = tshark.wait().unwrap();
    assert!(status.success(), "{}", fs::read_to_string(&log).unwrap());

    let recorder = fs::read_to_string(&log).unwrap();
    let ours = |paths: Vec<String>| -> Vec<String> {
        paths
            .into_iter()
            .filter(|p| p.ends_with(&format!("&t={token}")))
            .map(|p| p.replace(&format!("&t={token}"), ""))
            .collect()
    };
    let http1 = ours(fields(&capture, "http.request", "http.request.uri"));
    assert_eq!(
        http1,
        ["/index.html?n=1", "/big?n=2"],
        "HTTP/1.1 requests; recorder:\n{recorder}"
    );
    let http2 = ours(fields(&capture, "http2.headers.path", "http2.headers.path"));
    assert_eq!(
        http2,
        ["/index.html?n=1", "/big?n=2"],
        "HTTP/2 requests; recorder:\n{recorder}"
    );
    // Responses, dissected: at least ours (other curls may add theirs).
    let statuses = fields(&capture, "http2.headers.status", "http2.headers.status");
    assert!(
        statuses.iter().filter(|s| *s == "200").count() >= 2,
        "{statuses:?}"
    );
    let http1_responses = fields(&capture, "http.response", "http.response.code");
    assert!(
        http1_responses.iter().filter(|s| *s == "200").count() >= 2,
        "{http1_responses:?}"
    );
}
