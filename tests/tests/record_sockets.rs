//! Socket identity in `spliff record`: every TLS connection of a real Python TLS client and
//! server (127.0.0.1 and ::1) gets the 5-tuple and the socket cookie the processes see
//! themselves (`getsockname`, `getpeername`, `SO_COOKIE`, which is what `ss -e` prints as
//! `sk:`), also for a connection opened before recording started (warm-up), also with
//! sock_ops on a private cgroup2 mount that is gone after the capture, and the correlation
//! record counts what the trace holds.
#![cfg(target_os = "linux")]

use std::{
    collections::{BTreeMap, HashSet},
    fs,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use spliff_formats::{Connection, ConnectionCounters, Record, TraceFile};
use spliff_tests::{
    require_bpf,
    spliff::spliff_bin,
    tls_workload::{PYTHON, self_signed_cert},
    tools::{KillOnDrop, TempDir},
};

/// TLS server and client in one script. Every side logs one JSON line per connection with
/// its pid, addresses and the kernel's socket cookie (SO_COOKIE), read only after the
/// request was served: a cookie in the trace's first connection record was then assigned
/// before the TLS probes looked, i.e. by sock_ops or the warm-up, not by this getsockopt.
///
///   server CERT KEY LOG     listens on 127.0.0.1 and ::1, prints "PORT4 PORT6"
///   client HOST PORT LOG [READY GO]   one request; with READY/GO: handshake, create READY,
///                                     wait for GO, then send the request
const SCRIPT: &str = r#"
import json, os, socket, ssl, sys, threading, time
SO_COOKIE = 57

def entry(role, s):
    cookie = int.from_bytes(s.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8), sys.byteorder)
    return json.dumps({"role": role, "pid": os.getpid(), "local": list(s.getsockname()[:2]),
                       "remote": list(s.getpeername()[:2]), "cookie": cookie})

def log(path, line):
    with open(path, "a") as f:
        f.write(line + "\n")

if sys.argv[1] == "server":
    cert, key, logpath = sys.argv[2:5]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    def serve(ls):
        while True:
            c, _ = ls.accept()
            threading.Thread(target=handle, args=(c,), daemon=True).start()
    def handle(c):
        try:
            s = ctx.wrap_socket(c, server_side=True)
            req = b""
            while b"\r\n\r\n" not in req:
                d = s.recv(4096)
                if not d:
                    return
                req += d
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            log(logpath, entry("server", s))
            s.close()
        except (OSError, ssl.SSLError):
            pass
    ports = []
    for family, host in [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]:
        ls = socket.socket(family)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, 0))
        ls.listen(16)
        ports.append(str(ls.getsockname()[1]))
        threading.Thread(target=serve, args=(ls,), daemon=True).start()
    print(" ".join(ports), flush=True)
    while True:
        time.sleep(3600)
else:
    host, port, logpath = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    ctx = ssl._create_unverified_context()
    s = ctx.wrap_socket(socket.create_connection((host, port)))
    if len(sys.argv) > 5:
        ready, go = sys.argv[5:7]
        open(ready, "w").close()
        while not os.path.exists(go):
            time.sleep(0.02)
    s.sendall(b"GET /sockets HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        resp += d
    assert resp.endswith(b"hello"), resp
    log(logpath, entry("client", s))
    s.close()
"#;

/// One connection as a process saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    role: String,
    pid: u32,
    local: SocketAddr,
    remote: SocketAddr,
    cookie: u64,
}

fn read_log(path: &Path) -> Vec<Seen> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let addr = |key: &str| {
                let ip = v[key][0].as_str().unwrap().parse().unwrap();
                SocketAddr::new(ip, v[key][1].as_u64().unwrap() as u16)
            };
            Seen {
                role: v["role"].as_str().unwrap().to_owned(),
                pid: v["pid"].as_u64().unwrap() as u32,
                local: addr("local"),
                remote: addr("remote"),
                cookie: v["cookie"].as_u64().unwrap(),
            }
        })
        .collect()
}

fn server(d: &Path, log: &Path) -> (KillOnDrop, u16, u16) {
    let (cert, key) = self_signed_cert(d);
    let mut child = Command::new(PYTHON)
        .arg(d.join("sockets.py"))
        .arg("server")
        .args([&cert, &key, log])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start /usr/bin/python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(ports.len(), 2, "server printed {line:?}");
    (KillOnDrop::new(child), ports[0], ports[1])
}

/// `spliff record` running in the background until [`Recorder::stop`].
struct Recorder {
    child: Option<Child>,
    stderr: Option<JoinHandle<String>>,
}

impl Recorder {
    /// Starts `cmd` (a spliff record command line) and waits until it printed a line
    /// starting with `ready`.
    fn start(mut cmd: Command, ready: &'static str) -> Self {
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .expect("start spliff record");
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with(ready) {
                    let _ = tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let mut recorder = Recorder {
            child: Some(child),
            stderr: Some(reader),
        };
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let (_, stderr) = recorder.stop();
            panic!("spliff record did not start:\n{stderr}");
        }
        recorder
    }

    /// SIGINT, wait; (success, stderr).
    fn stop(&mut self) -> (bool, String) {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let status = child.wait().unwrap();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (status.success(), stderr)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn client(d: &Path, host: &str, port: u16, log: &Path, gate: Option<(&Path, &Path)>) -> Child {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(d.join("sockets.py"))
        .arg("client")
        .arg(host)
        .arg(port.to_string())
        .arg(log);
    if let Some((ready, go)) = gate {
        cmd.arg(ready).arg(go);
    }
    cmd.spawn().expect("start the python client")
}

fn wait_ok(mut child: Child) {
    assert!(child.wait().unwrap().success(), "python client failed");
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Until `log` has `n` lines (a server logs after its reply, maybe after the client).
fn wait_lines(log: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_log(log).len() < n {
        assert!(
            Instant::now() < deadline,
            "{} has fewer than {n} lines",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the trace says about its connections.
#[derive(Debug, Default)]
struct Traced {
    /// Merged connection records by conn_id.
    conns: BTreeMap<u64, TracedConn>,
    /// (tls_connections, with_socket, with_packets, reasons).
    correlation: Option<(u64, u64, u64, Vec<String>)>,
    /// Capture info's list of attachments.
    attached: Vec<String>,
}

#[derive(Debug, Clone)]
struct TracedConn {
    pid: u32,
    cookie: u64,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    counters: ConnectionCounters,
    /// Cookie of the record written from the TLS probes' fd walk (fd >= 0).
    fd_walk_cookie: Option<u64>,
    has_data: bool,
}

fn read(trace: &Path) -> Traced {
    let file = TraceFile::open(trace).expect("open trace");
    let (records, errors) = file.reader().records_by_time();
    assert!(errors.is_empty(), "read errors: {errors:?}");
    let mut merged: BTreeMap<u64, Connection<'_>> = BTreeMap::new();
    let mut fd_walk = BTreeMap::new();
    let mut with_data = HashSet::new();
    let mut traced = Traced::default();
    for at in &records {
        match &at.record {
            Record::Connection(c) => {
                if c.fd >= 0 {
                    fd_walk.entry(c.conn_id).or_insert(c.socket_cookie);
                }
                merged
                    .entry(c.conn_id)
                    .and_modify(|m| m.merge(c))
                    .or_insert_with(|| c.clone());
            }
            Record::TlsData(d) => {
                with_data.insert(d.conn_id);
            }
            Record::Correlation(c) => {
                assert!(traced.correlation.is_none(), "two correlation records");
                traced.correlation = Some((
                    c.tls_connections,
                    c.with_socket,
                    c.with_packets,
                    c.reasons
                        .iter()
                        .map(|r| String::from_utf8_lossy(r).into_owned())
                        .collect(),
                ));
            }
            Record::CaptureInfo(info) => {
                traced.attached = info
                    .attached
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
            }
            _ => {}
        }
    }
    for (id, c) in merged {
        traced.conns.insert(
            id,
            TracedConn {
                pid: c.pid,
                cookie: c.socket_cookie,
                local: c.local,
                remote: c.remote,
                counters: c.counters,
                fd_walk_cookie: fd_walk.get(&id).copied(),
                has_data: with_data.contains(&id),
            },
        );
    }
    traced
}

/// Every connection a process logged is in the trace with its pid, addresses and cookie,
/// and (with `at_first_look`) the cookie was known at the TLS probes' first look.
fn assert_correlated(traced: &Traced, seen: &[Seen], at_first_look: bool) {
    for s in seen {
        let matches: Vec<&TracedConn> = traced
            .conns
            .values()
            .filter(|c| c.pid == s.pid && c.local == Some(s.local) && c.remote == Some(s.remote))
            .collect();
        assert_eq!(
            matches.len(),
            1,
            "{s:?}: expected one connection in the trace with that pid and 5-tuple; trace has \
             {:#?}",
            traced
                .conns
                .values()
                .filter(|c| c.pid == s.pid)
                .collect::<Vec<_>>()
        );
        let c = matches[0];
        assert_eq!(c.cookie, s.cookie, "{s:?}: cookie in the trace");
        assert!(
            !at_first_look || c.fd_walk_cookie == Some(s.cookie),
            "{s:?}: the TLS probes' fd walk saw cookie {:?} (sock_ops / warm-up should have \
             made the kernel assign it first)",
            c.fd_walk_cookie
        );
        assert!(c.has_data, "{s:?}: no TLS data");
    }
}

/// The correlation record counts what the trace holds.
fn assert_correlation_counts(traced: &Traced) {
    let (total, with_socket, with_packets, reasons) =
        traced.correlation.clone().expect("no correlation record");
    assert_eq!(total, traced.conns.len() as u64, "{reasons:?}");
    let tupled = traced
        .conns
        .values()
        .filter(|c| c.local.is_some() && c.remote.is_some())
        .count() as u64;
    assert_eq!(with_socket, tupled, "{reasons:?}");
    let packets = traced
        .conns
        .values()
        .filter(|c| !c.counters.is_empty())
        .count() as u64;
    assert_eq!(with_packets, packets, "{reasons:?}");
    let explained: u64 = reasons
        .iter()
        .map(|r| r.split_whitespace().next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        explained,
        total - with_packets,
        "every connection without packets has a reason: {reasons:?}"
    );
}

const WARM_UP_LINE: &str = "spliff: sockets from sock_ops and the socket table: ";

fn setup(tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    fs::write(dir.path().join("sockets.py"), SCRIPT).unwrap();
    let log = dir.path().join("seen.jsonl");
    (dir, log)
}

fn record_cmd(trace: &Path) -> Command {
    let mut cmd = Command::new(spliff_bin());
    // Packets of lo only: never hook the machine's real interfaces.
    cmd.arg("record").args(["-i", "lo"]).arg("-o").arg(trace);
    cmd
}

#[test]
fn tls_connections_get_the_kernels_tuple_and_cookie() {
    if !require_bpf() {
        return;
    }
    let (dir, log) = setup("record-sockets");
    let d = dir.path();
    let (_server, port4, port6) = server(d, &log);
    let trace = d.join("t.pcapng");
    let mut recorder = Recorder::start(record_cmd(&trace), "spliff: recording");
    wait_ok(client(d, "127.0.0.1", port4, &log, None));
    wait_ok(client(d, "::1", port6, &log, None));
    wait_lines(&log, 4);
    let (ok, stderr) = recorder.stop();
    assert!(ok, "spliff record failed:\n{stderr}");
    assert!(stderr.contains("spliff: correlation: "), "{stderr}");

    let seen = read_log(&log);
    assert_eq!(seen.iter().filter(|s| s.role == "client").count(), 2);
    assert!(seen.iter().any(|s| s.local.is_ipv6()), "{seen:?}");
    let traced = read(&trace);
    assert_correlated(&traced, &seen, true);
    assert_correlation_counts(&traced);
    assert!(
        traced.attached.iter().any(|a| a.starts_with("sock_ops")),
        "{:?}",
        traced.attached
    );
}

#[test]
fn a_connection_opened_before_recording_is_correlated_after_warm_up() {
    opened_before_recording(true);
}

/// The same without waiting for the warm-up: the client's first TLS write may come before
/// or after it (the fd walk then sees no cookie yet), and either order must end the same.
#[test]
fn a_connection_opened_before_recording_is_correlated_in_either_order() {
    opened_before_recording(false);
}

fn opened_before_recording(wait_for_warm_up: bool) {
    if !require_bpf() {
        return;
    }
    let (dir, log) = setup(if wait_for_warm_up {
        "record-sockets-warm"
    } else {
        "record-sockets-race"
    });
    let d = dir.path();
    let (_server, port4, _) = server(d, &log);
    let (ready, go) = (d.join("ready"), d.join("go"));
    // Connected and handshaken before the recorder exists.
    let early = client(d, "127.0.0.1", port4, &log, Some((&ready, &go)));
    wait_for(&ready);
    let trace = d.join("t.pcapng");
    // The warm-up line: from here on the kernel has assigned the early socket's cookie.
    let ready = if wait_for_warm_up {
        WARM_UP_LINE
    } else {
        "spliff: recording"
    };
    let mut recorder = Recorder::start(record_cmd(&trace), ready);
    fs::write(&go, b"").unwrap();
    wait_ok(early);
    wait_lines(&log, 2);
    let (ok, stderr) = recorder.stop();
    assert!(ok, "spliff record failed:\n{stderr}");
    let warmed: usize = stderr
        .lines()
        .find_map(|l| l.strip_prefix(WARM_UP_LINE))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no warm-up line:\n{stderr}"));
    assert!(warmed >= 2, "warm-up found {warmed} sockets:\n{stderr}");

    let seen = read_log(&log);
    assert_eq!(seen.len(), 2, "{seen:?}");
    let traced = read(&trace);
    assert_correlated(&traced, &seen, wait_for_warm_up);
    assert_correlation_counts(&traced);
}

/// cgroup2 mount points in a mountinfo text.
fn cgroup2_mounts(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter(|l| l.contains(" - cgroup2 "))
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .collect()
}

#[test]
fn sock_ops_works_on_a_private_cgroup2_mount_that_is_gone_afterwards() {
    if !require_bpf() {
        return;
    }
    let (dir, log) = setup("record-sockets-private");
    let d = dir.path();
    let (_server, port4, _) = server(d, &log);
    let trace = d.join("t.pcapng");
    let after = d.join("mountinfo-after");
    // A mount namespace of its own without any cgroup2 mount, as on a cgroup v1 host.
    let script = format!(
        "set -e\n\
         for m in $(grep ' - cgroup2 ' /proc/self/mountinfo | cut -d' ' -f5); do umount -l \"$m\"; done\n\
         ! grep ' - cgroup2 ' /proc/self/mountinfo\n\
         {spliff} record -i lo -o {trace} -- {python} {script} client 127.0.0.1 {port4} {log}\n\
         cat /proc/self/mountinfo > {after}\n",
        spliff = spliff_bin().display(),
        trace = trace.display(),
        python = PYTHON,
        script = d.join("sockets.py").display(),
        log = log.display(),
        after = after.display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("run unshare (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "record in a private mount namespace failed:\n{stderr}"
    );
    let mountinfo = fs::read_to_string(&after).unwrap();
    assert!(
        cgroup2_mounts(&mountinfo).is_empty() && !mountinfo.contains("/run/spliff"),
        "spliff left a mount behind:\n{mountinfo}"
    );
    wait_lines(&log, 2);

    let traced = read(&trace);
    assert!(
        traced
            .attached
            .iter()
            .any(|a| a.starts_with("sock_ops") && a.contains("private mount")),
        "{:?}\n{stderr}",
        traced.attached
    );
    // Only the client is in scope (-- CMD).
    let seen: Vec<Seen> = read_log(&log)
        .into_iter()
        .filter(|s| s.role == "client")
        .collect();
    assert_correlated(&traced, &seen, true);
    assert_correlation_counts(&traced);
    // Its mount point directory is gone too.
    let mount_point = traced
        .attached
        .iter()
        .find_map(|a| a.split("private mount at ").nth(1)?.split(',').next())
        .expect("the attached line names the private mount point");
    assert!(
        !Path::new(mount_point).exists(),
        "{mount_point} is left behind"
    );
}
