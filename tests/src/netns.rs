//! Network namespaces for the packet tests: uniquely named, joined by veth
//! pairs or tunnels, and deleted on drop (also when a test panics), with
//! every process still running inside them killed first.
//!
//! Everything runs through `ip` (iproute2), as a person would set it up;
//! traffic never leaves the namespaces.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// Runs `ip ARGS`, panicking with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip (apt-get install iproute2): {e}"));
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Creates `spl-<pid>-<n>-<tag>` with its loopback up.
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "spl-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `program ARGS` inside the namespace to completion.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} in {}: {e}", self.name))
    }

    /// Waits until something accepts TCP connections on `addr` (as seen
    /// from inside the namespace).
    pub fn wait_listening(&self, addr: &str, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let target = format!("/dev/tcp/{addr}/{port}");
        loop {
            let ok = self
                .command("bash")
                .args(["-c", &format!("exec 3<>{target}")])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nothing listens on {addr}:{port} in {}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes would keep the namespace (and its devices) alive.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: kill(2) has no memory arguments.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Joins `a` and `b` with a veth pair named `a_if` in `a` and `b_if` in
/// `b`, addresses `a_addr`/`b_addr` (CIDR), both ends up. The pair is
/// created directly inside the namespaces, so names need only be unique
/// there and the pair goes away with them.
pub fn veth(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    ip(&[
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]);
    a.ip(&["addr", "add", a_addr, "dev", a_if]);
    b.ip(&["addr", "add", b_addr, "dev", b_if]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// A point-to-point link between two namespaces made of two tun devices (raw IP: no
/// link-layer header, like WireGuard or a VPN client's device) and a relay in this
/// process that copies each packet from one to the other. This kernel has no IP tunnel
/// modules (ipip, gre, wireguard); tun is built in. Stops relaying on drop.
#[derive(Debug)]
pub struct TunPair {
    stop: Arc<std::sync::atomic::AtomicBool>,
    relays: Vec<std::thread::JoinHandle<()>>,
}

/// `struct ifreq` as TUNSETIFF reads it: the name and the flags, padded to its 40 bytes.
#[repr(C)]
struct TunRequest {
    name: [u8; 16],
    flags: libc::c_short,
    _rest: [u8; 22],
}

/// Creates tun device `name` in `ns` and returns its file. The network namespace is per
/// thread, so a short-lived thread enters `ns`; the device stays there.
fn open_tun(ns: &Netns, name: &str) -> std::fs::File {
    use std::os::fd::AsRawFd as _;
    let path = format!("/run/netns/{}", ns.name());
    let name = name.to_string();
    std::thread::spawn(move || {
        let netns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on a valid namespace fd; it changes this thread only.
        let entered = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            entered,
            0,
            "setns {path}: {}",
            std::io::Error::last_os_error()
        );
        let tun = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .unwrap_or_else(|e| panic!("/dev/net/tun: {e}"));
        let mut request = TunRequest {
            name: [0; 16],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
            _rest: [0; 22],
        };
        request.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes one struct ifreq, which `request` lays out.
        let made = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut request) };
        assert!(
            made >= 0,
            "TUNSETIFF {name} in {path}: {}",
            std::io::Error::last_os_error()
        );
        tun
    })
    .join()
    .expect("the thread creating the tun device")
}

/// Copies packets from `from` to `to` until `stop`.
fn relay(
    from: std::fs::File,
    mut to: std::fs::File,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use std::{io::Read as _, io::Write as _, os::fd::AsRawFd as _};
    std::thread::spawn(move || {
        let mut from = from;
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            let mut poll = libc::pollfd {
                fd: from.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut poll, 1, 50) } <= 0 {
                continue;
            }
            match from.read(&mut buf) {
                // A write to a device that is down fails; the packet is lost as on a wire.
                Ok(n) if n > 0 => drop(to.write(&buf[..n])),
                _ => break,
            }
        }
    })
}

/// Joins `a` and `b` with tun devices `a_if` / `b_if` (both up, with `a_addr` / `b_addr`,
/// CIDR) and a relay between them.
pub fn tun_pair(
    a: &Netns,
    a_if: &str,
    a_addr: &str,
    b: &Netns,
    b_if: &str,
    b_addr: &str,
) -> TunPair {
    let ta = open_tun(a, a_if);
    let tb = open_tun(b, b_if);
    a.ip(&["addr", "add", a_addr, "dev", a_if]);
    b.ip(&["addr", "add", b_addr, "dev", b_if]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let relays = vec![
        relay(
            ta.try_clone().expect("dup the tun fd"),
            tb.try_clone().expect("dup the tun fd"),
            stop.clone(),
        ),
        relay(tb, ta, stop.clone()),
    ];
    TunPair { stop, relays }
}

impl Drop for TunPair {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for relay in self.relays.drain(..) {
            let _ = relay.join();
        }
    }
}

/// A VXLAN device `name` (VNI `vni`, UDP 4789) in `ns` over `underlay`,
/// sending to `remote`, with overlay address `addr` (CIDR).
pub fn vxlan(ns: &Netns, name: &str, vni: u32, underlay: &str, remote: &str, addr: &str) {
    let vni = vni.to_string();
    ns.ip(&[
        "link", "add", name, "type", "vxlan", "id", &vni, "dev", underlay, "remote", remote,
        "dstport", "4789",
    ]);
    ns.ip(&["addr", "add", addr, "dev", name]);
    ns.ip(&["link", "set", name, "up"]);
}

/// `openssl s_server -www` on `addr:port` inside `ns` (killed with the
/// namespace, or on drop).
#[derive(Debug)]
pub struct TlsServer {
    child: Child,
}

impl TlsServer {
    /// Starts the server and waits until it listens.
    pub fn start(ns: &Netns, addr: &str, port: u16, cert: &Path, key: &Path) -> Self {
        let child = ns
            .command("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("{addr}:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server (apt-get install openssl)");
        ns.wait_listening(addr, port);
        Self { child }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `spliff record` running in the background inside a namespace.
#[derive(Debug)]
pub struct BackgroundRecorder {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl BackgroundRecorder {
    /// Starts `spliff record ARGS` in `ns` and waits until it says it is
    /// recording (every hook attached).
    pub fn start(ns: &Netns, spliff: &Path, args: &[&str]) -> Self {
        let mut child = ns
            .command(spliff)
            .arg("record")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start spliff record");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
        let recorder = Self { child, stderr };
        recorder.wait_for("spliff: recording");
        recorder
    }

    /// Waits until stderr contains `needle` (60 s at most: a liveness bound;
    /// registering ~80 uprobes takes seconds while other recorders on the
    /// machine attach or detach theirs).
    pub fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.stderr().contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "spliff never printed {needle:?}; stderr so far:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything spliff printed so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops it with SIGINT (as Ctrl-C would), waits, and returns its
    /// stderr; panics if it failed.
    pub fn stop(mut self) -> String {
        // `ip netns exec` execs spliff: the child is spliff itself.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        let status = self.child.wait().expect("wait for spliff");
        // Let the reader thread take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let stderr = self.stderr();
        assert!(
            status.success(),
            "spliff record failed ({status}):\n{stderr}"
        );
        stderr
    }
}

impl Drop for BackgroundRecorder {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
