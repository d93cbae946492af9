//! `spliff record` against real TLS servers and clients (curl HTTP/1.1 and
//! HTTP/2, Python urllib): the trace must hold exactly the plaintext both
//! sides exchanged, with the right 5-tuples, pids and comms, and no loss.
#![cfg(target_os = "linux")]

use std::{
    collections::HashMap,
    fs,
    net::{IpAddr, Ipv4Addr},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use spliff_tests::{
    require_bpf,
    spliff::spliff_bin,
    tls_workload::{
        PY_CLIENT, PYTHON, h2_bodies, h2_frames, nghttpd, python_server, read_trace,
        self_signed_cert,
    },
    tools::{KillOnDrop, TempDir},
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Waits until the Python server has closed every connection it logged.
fn wait_server_done(logdir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names: Vec<String> = fs::read_dir(logdir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let open = names
            .iter()
            .filter(|n| n.ends_with(".in"))
            .filter(|n| !names.contains(&n.replace(".in", ".done")))
            .count();
        if open == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "python server connections never ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn records_curl_and_urllib_exactly() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-openssl");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let logdir = d.join("log");
    let py = python_server(d, &cert, &key, &logdir);

    let docroot = d.join("www");
    fs::create_dir_all(&docroot).unwrap();
    let big = body(1 << 20, 7);
    fs::write(docroot.join("big.bin"), &big).unwrap();
    fs::write(docroot.join("index.html"), b"<h1>nghttpd index</h1>\n").unwrap();
    let mut small_files = HashMap::new();
    for i in 1..=8 {
        let content = body(3000 + i * 111, i as u8);
        fs::write(docroot.join(format!("p{i}.bin")), &content).unwrap();
        small_files.insert(format!("p{i}.bin"), content);
    }
    let h2 = nghttpd(&docroot, &cert, &key);

    let upload = body(100 * 1000, 3);
    fs::write(d.join("upload.bin"), &upload).unwrap();
    fs::write(d.join("client.py"), PY_CLIENT).unwrap();
    let h1 = format!("https://127.0.0.1:{}", py.port);
    let h2url = format!("https://127.0.0.1:{}", h2.port);
    let parallel: Vec<String> = (1..=8).map(|i| format!("{h2url}/p{i}.bin")).collect();
    let workload = format!(
        "set -e\n\
         C='curl -sk --fail -o /dev/null'\n\
         $C --http1.1 {h1}/get\n\
         $C --http1.1 -H 'Expect:' --data-binary @{upload} {h1}/upload\n\
         $C --http1.1 {h1}/big\n\
         $C --http1.1 {h1}/chunked\n\
         $C --http1.1 --compressed {h1}/gzip\n\
         $C --http2 {h2url}/index.html\n\
         $C --http2 {h2url}/big.bin\n\
         $C --http2 --resolve localhost:{h2port}:127.0.0.1 https://localhost:{h2port}/index.html\n\
         curl -sk --fail --http2 --parallel --parallel-max 8 {urls}\n\
         {PYTHON} {client} {h1}\n",
        upload = d.join("upload.bin").display(),
        h2port = h2.port,
        urls = parallel
            .iter()
            .map(|u| format!("-o /dev/null {u}"))
            .collect::<Vec<_>>()
            .join(" "),
        client = d.join("client.py").display(),
    );
    fs::write(d.join("workload.sh"), workload).unwrap();

    let trace = d.join("t.pcapng");
    let started = Instant::now();
    let out = Command::new(spliff_bin())
        .arg("record")
        // Packets of lo only: never hook the machine's real interfaces.
        .args(["-i", "lo"])
        .arg("-o")
        .arg(&trace)
        .args(["--", "sh"])
        .arg(d.join("workload.sh"))
        .output()
        .expect("run spliff record");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "spliff record failed: {stderr}");
    eprintln!("{stderr}(took {:?})", started.elapsed());
    wait_server_done(&logdir);

    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        fs::metadata(&trace).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let summary = read_trace(&trace);
    assert!(
        summary.errors.is_empty(),
        "read errors: {:?}",
        summary.errors
    );
    assert!(
        summary.boottime_info,
        "first record must be capture info with CLOCK_BOOTTIME"
    );
    assert!(
        summary.losses.is_empty(),
        "loss records: {:?}",
        summary.losses
    );

    // Python server connections: both directions byte for byte.
    let mut h1_conns = 0;
    let mut h2_conns = 0;
    let mut saw_big_write = false;
    let mut h2_bodies_seen = Vec::new();
    for (conn_id, conn) in &summary.conns {
        let info = conn
            .info
            .clone()
            .unwrap_or_else(|| panic!("conn {conn_id} has no connection record"));
        let comm = summary
            .comms
            .get(&info.pid)
            .unwrap_or_else(|| panic!("no process record for pid {}", info.pid));
        assert!(
            comm == "curl" || comm == "python3",
            "conn {conn_id}: unexpected process {comm} (pid {}): the servers are out of scope",
            info.pid
        );
        let local = info
            .local
            .unwrap_or_else(|| panic!("conn {conn_id}: no local address"));
        let remote = info
            .remote
            .unwrap_or_else(|| panic!("conn {conn_id}: no remote address"));
        assert_eq!(local.ip(), LOCALHOST);
        assert_eq!(remote.ip(), LOCALHOST);
        assert!(
            info.open_ns > 0 && info.close_ns >= info.open_ns,
            "conn {conn_id}: times {info:?}"
        );
        if conn
            .calls
            .iter()
            .any(|((_, dir), n)| *dir == 0 && *n >= 1 << 20)
        {
            saw_big_write = true;
        }
        if remote.port() == py.port {
            h1_conns += 1;
            let port = local.port();
            let server_in = fs::read(logdir.join(format!("{port}.in")))
                .unwrap_or_else(|_| panic!("conn {conn_id}: the server saw no client port {port}"));
            let server_out = fs::read(logdir.join(format!("{port}.out"))).unwrap();
            assert!(
                conn.egress == server_in,
                "conn {conn_id} ({comm}): egress differs from what the server read ({} vs {} bytes)",
                conn.egress.len(),
                server_in.len()
            );
            assert!(
                conn.ingress == server_out,
                "conn {conn_id} ({comm}): ingress differs from what the server wrote ({} vs {} bytes)",
                conn.ingress.len(),
                server_out.len()
            );
        } else if remote.port() == h2.port {
            h2_conns += 1;
            assert_eq!(comm, "curl");
            assert_eq!(info.alpn, b"h2", "conn {conn_id}: ALPN");
            let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
            assert!(
                conn.egress.starts_with(preface),
                "conn {conn_id}: no HTTP/2 preface"
            );
            // Whole streams parse as frames: nothing missing, nothing extra.
            h2_frames(&conn.egress[preface.len()..]);
            let frames = h2_frames(&conn.ingress);
            h2_bodies_seen.extend(h2_bodies(&frames).into_values());
        } else {
            panic!("conn {conn_id}: remote {remote} is neither server");
        }
    }
    let server_conns = fs::read_dir(&logdir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".in"))
        .count();
    // 5 curl runs + 3 urllib requests (urllib closes after each).
    assert_eq!(
        h1_conns, server_conns,
        "every python-server connection is in the trace"
    );
    assert_eq!(h1_conns, 8);
    assert_eq!(h2_conns, 4);
    assert!(
        summary
            .conns
            .values()
            .any(|c| c.info.as_ref().is_some_and(|i| i.sni == b"localhost")),
        "SNI of the request to https://localhost not recorded"
    );
    assert!(
        saw_big_write,
        "no single write of 1 MiB or more was captured whole"
    );
    assert!(h2_bodies_seen.contains(&big), "1 MiB HTTP/2 body missing");
    assert!(
        h2_bodies_seen
            .iter()
            .any(|b| b == b"<h1>nghttpd index</h1>\n")
    );
    for (name, content) in &small_files {
        assert!(h2_bodies_seen.contains(content), "{name} body missing");
    }
}

#[test]
fn sigkill_leaves_a_readable_trace() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-kill");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let py = python_server(d, &cert, &key, &d.join("log"));
    let pidfile = d.join("workload.pid");
    fs::write(
        d.join("loop.sh"),
        format!(
            "echo $$ > {pidfile}\n\
             i=0; while [ $i -lt 400 ]; do curl -sk -o /dev/null https://127.0.0.1:{port}/get; i=$((i+1)); sleep 0.05; done\n",
            pidfile = pidfile.display(),
            port = py.port
        ),
    )
    .unwrap();
    let trace = d.join("t.pcapng");
    let mut recorder = KillOnDrop::new(
        Command::new(spliff_bin())
            .arg("record")
            // Packets of lo only: never hook the machine's real interfaces.
            .args(["-i", "lo"])
            .arg("-o")
            .arg(&trace)
            .args(["--", "sh"])
            .arg(d.join("loop.sh"))
            .spawn()
            .unwrap(),
    );
    // Kill once the trace on disk holds a few complete requests, however long the recorder
    // took to start (it loads more programs than the TLS probes; a loaded CI machine is slow).
    let complete = |summary: &spliff_tests::tls_workload::TraceSummary| {
        summary
            .conns
            .values()
            .filter(|c| !c.egress.is_empty() && !c.ingress.is_empty())
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while !trace.exists() || complete(&read_trace(&trace)) < 3 {
        assert!(
            Instant::now() < deadline,
            "the recorder wrote no complete request within 90 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    recorder.kill().unwrap(); // SIGKILL
    recorder.wait().unwrap();
    // The workload outlives the recorder; stop it (by its own pid).
    if let Some(pid) = fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        // SAFETY: kill(2) with a pid we were told; no memory involved.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let summary = read_trace(&trace);
    assert!(summary.errors.len() <= 1, "errors: {:?}", summary.errors);
    if let Some(error) = summary.errors.first() {
        assert!(
            error.contains("torn"),
            "only a torn tail is acceptable: {error}"
        );
    }
    assert!(summary.boottime_info);
    let with_data = complete(&summary);
    assert!(
        with_data >= 3,
        "expected several complete requests before the kill, got {with_data}"
    );
    for conn in summary.conns.values() {
        if !conn.ingress.is_empty() {
            assert!(conn.ingress.starts_with(b"HTTP/1.1 200 OK"));
        }
    }
}

/// Connections opened before the capture still get their 5-tuple (the fd is
/// learned from the syscalls inside SSL_read/SSL_write), `--pid` scopes the
/// capture, and SIGINT ends it cleanly.
#[test]
fn pid_scope_and_connection_opened_before_capture() {
    if !require_bpf() {
        return;
    }
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;

    let dir = TempDir::new("record-before");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let logdir = d.join("log");
    let py = python_server(d, &cert, &key, &logdir);
    let go = d.join("go");
    let script = format!(
        "import os, socket, ssl, sys, time\n\
         ctx = ssl._create_unverified_context()\n\
         s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port})))\n\
         print(s.getsockname()[1], flush=True)\n\
         while not os.path.exists({go:?}): time.sleep(0.01)\n\
         s.sendall(b'GET /early HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n\
         data = b''\n\
         while not data.endswith(b'path /early\\n'): data += s.recv(65536)\n\
         s.close()\n",
        port = py.port,
        go = go.display().to_string(),
    );
    let mut client = Command::new(PYTHON)
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(client.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let client_port: u16 = line.trim().parse().unwrap();

    let trace = d.join("t.pcapng");
    let mut recorder = KillOnDrop::new(
        Command::new(spliff_bin())
            .arg("record")
            // Packets of lo only: never hook the machine's real interfaces.
            .args(["-i", "lo"])
            .arg("-o")
            .arg(&trace)
            .arg("--pid")
            .arg(client.id().to_string())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Its first line says every probe is attached.
    let mut stderr = BufReader::new(recorder.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.contains("recording"), "{first}");
    fs::write(&go, b"").unwrap();
    assert!(client.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(recorder.id() as i32, libc::SIGINT) };
    let status = recorder.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "recorder failed: {rest}");
    assert!(rest.contains("recorded"), "no summary: {rest}");

    let summary = read_trace(&trace);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert!(summary.losses.is_empty(), "{:?}", summary.losses);
    // Only the selected process: the (also OpenSSL) server is not recorded.
    assert_eq!(summary.conns.len(), 1, "{:?}", summary.conns.keys());
    let conn = summary.conns.values().next().unwrap();
    let info = conn.info.clone().unwrap();
    assert_eq!(info.pid, client.id());
    assert_eq!(
        summary.comms.get(&info.pid).map(String::as_str),
        Some("python3")
    );
    assert_eq!(info.local.map(|a| a.port()), Some(client_port));
    assert_eq!(info.remote.map(|a| a.port()), Some(py.port));
    assert_eq!(
        conn.egress,
        fs::read(logdir.join(format!("{client_port}.in"))).unwrap()
    );
    assert_eq!(
        conn.ingress,
        fs::read(logdir.join(format!("{client_port}.out"))).unwrap()
    );
}

/// `--comm` alone attaches per process: a curl started after the recorder
/// is held at exec until its uprobes are in, so it is recorded from its
/// first TLS call, byte for byte; processes with other comms (the Python
/// server and a Python client, both OpenSSL) are not recorded. The curl is
/// a copy under a name of its own: `--comm curl` would also hold (and
/// record) the curls of tests running in parallel.
#[test]
fn comm_scope_records_a_process_started_later_completely() {
    if !require_bpf() {
        return;
    }
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;

    let dir = TempDir::new("record-comm");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let logdir = d.join("log");
    let py = python_server(d, &cert, &key, &logdir);
    let upload = body(50 * 1000, 5);
    fs::write(d.join("upload.bin"), &upload).unwrap();
    fs::write(d.join("client.py"), PY_CLIENT).unwrap();
    let h1 = format!("https://127.0.0.1:{}", py.port);
    const COMM: &str = "spliffcommcurl";
    let curl_copy = d.join(COMM);
    fs::copy("/usr/bin/curl", &curl_copy).expect("copy curl (apt-get install curl)");

    let trace = d.join("t.pcapng");
    let mut recorder = KillOnDrop::new(
        Command::new(spliff_bin())
            .arg("record")
            // Packets of lo only: never hook the machine's real interfaces.
            .args(["-i", "lo"])
            .arg("-o")
            .arg(&trace)
            .args(["--comm", COMM])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(recorder.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.contains("recording"), "{first}");

    // Started only now; a stop that is never continued would hang it, so
    // wait with a deadline (a liveness bound: attaching every library's
    // probes to the stopped process takes seconds while other recorders on
    // the machine register or remove theirs).
    let run = |program: &str, args: &[String]| {
        let mut child = Command::new(program).args(args).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "{program} failed");
                return;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                panic!("{program} did not finish (left stopped?)");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let curl = |extra: &[&str], url: String| {
        let mut args: Vec<String> = ["-sk", "--fail", "-o", "/dev/null", "--http1.1"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        args.push(url);
        run(&curl_copy.display().to_string(), &args);
    };
    curl(&[], format!("{h1}/get"));
    let data = format!("@{}", d.join("upload.bin").display());
    curl(
        &["-H", "Expect:", "--data-binary", &data],
        format!("{h1}/upload"),
    );
    run(
        PYTHON,
        &[d.join("client.py").display().to_string(), h1.clone()],
    );
    wait_server_done(&logdir);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(recorder.id() as i32, libc::SIGINT) };
    let status = recorder.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "recorder failed: {rest}");

    let summary = read_trace(&trace);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert!(summary.losses.is_empty(), "{:?}", summary.losses);
    assert_eq!(summary.conns.len(), 2, "{:?}", summary.conns.keys());
    for (conn_id, conn) in &summary.conns {
        let info = conn.info.clone().unwrap();
        assert_eq!(
            summary.comms.get(&info.pid).map(String::as_str),
            Some(COMM),
            "conn {conn_id}: only the curl copy is in scope"
        );
        let client_port = info.local.map(|a| a.port()).unwrap();
        assert_eq!(info.remote.map(|a| a.port()), Some(py.port));
        assert_eq!(
            conn.egress,
            fs::read(logdir.join(format!("{client_port}.in"))).unwrap(),
            "conn {conn_id}: egress differs from what the server read"
        );
        assert_eq!(
            conn.ingress,
            fs::read(logdir.join(format!("{client_port}.out"))).unwrap(),
            "conn {conn_id}: ingress differs from what the server wrote"
        );
    }
}
