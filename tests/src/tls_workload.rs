//! Real TLS servers and clients for the recorder's end-to-end tests: a
//! Python `ssl` HTTP/1.1 server that logs every plaintext byte it read and
//! wrote per connection, nghttpd (HTTP/2), a self-signed certificate, and
//! helpers that rebuild streams from a trace.

use std::{
    collections::{BTreeMap, HashMap},
    io::{BufRead as _, BufReader},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use spliff_formats::{Connection, Direction, Loss, Process, Record, TraceFile};

/// The system Python: it links the system libssl.so.3 (a pyenv Python earlier
/// in PATH may carry its own OpenSSL).
pub const PYTHON: &str = "/usr/bin/python3";

/// HTTP/1.1 server over Python's `ssl`. Argv: cert key logdir. Prints its
/// port. For each connection, `<client port>.in` / `.out` get exactly the
/// plaintext read from / written to the client, and `<client port>.done`
/// appears when the connection ended.
pub const PY_SERVER: &str = r#"
import gzip, hashlib, os, socket, ssl, sys, threading
cert, key, logdir = sys.argv[1:4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(64)
print(ls.getsockname()[1], flush=True)
BIG = bytes((i * 7 + 3) % 251 for i in range(1 << 20))
GZ = gzip.compress(b"compress me, spliff! " * 2000)

def handle(conn, addr):
    port = addr[1]
    try:
        s = ctx.wrap_socket(conn, server_side=True)
    except Exception:
        conn.close()
        return
    fin = open(os.path.join(logdir, "%d.in" % port), "wb")
    fout = open(os.path.join(logdir, "%d.out" % port), "wb")
    def recv():
        d = s.recv(1 << 20)
        fin.write(d); fin.flush()
        return d
    def send(d):
        s.sendall(d)
        fout.write(d); fout.flush()
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = recv()
                if not d:
                    return
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            method, path, _ = lines[0].split(b" ", 2)
            headers = {}
            for l in lines[1:]:
                k, v = l.split(b":", 1)
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get(b"content-length", b"0"))
            while len(buf) < n:
                d = recv()
                if not d:
                    return
                buf += d
            body, buf = buf[:n], buf[n:]
            extra = b""
            if path == b"/upload":
                out = b"received %d bytes sha256 %s\n" % (n, hashlib.sha256(body).hexdigest().encode())
            elif path == b"/big":
                out = BIG
            elif path == b"/gzip":
                out = GZ
                extra = b"Content-Encoding: gzip\r\n"
            elif path == b"/chunked":
                chunks = [b"first chunk\n", b"second, longer chunk " * 50 + b"\n", b"last\n"]
                payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
                send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n")
                send(payload)
                continue
            else:
                out = b"hello from the python server, path " + path + b"\n"
            send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n" + extra +
                 b"Content-Length: %d\r\n\r\n" % len(out))
            send(out)
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        fin.close(); fout.close()
        open(os.path.join(logdir, "%d.done" % port), "w").close()
        try:
            s.close()
        except Exception:
            pass

while True:
    c, a = ls.accept()
    threading.Thread(target=handle, args=(c, a), daemon=True).start()
"#;

/// urllib client (SSL_read_ex / SSL_write_ex). Argv: base URL. Posts a body
/// larger than 1 MiB, which Python hands to one SSL_write_ex.
pub const PY_CLIENT: &str = r#"
import ssl, sys, urllib.request
base = sys.argv[1]
ctx = ssl._create_unverified_context()
assert urllib.request.urlopen(base + "/get?client=urllib", context=ctx).read()
body = bytes((i * 13 + 5) % 256 for i in range((1 << 20) + 4321))
req = urllib.request.Request(base + "/upload", data=body, method="POST")
print(urllib.request.urlopen(req, context=ctx).read().decode().strip())
assert len(urllib.request.urlopen(base + "/big", context=ctx).read()) == 1 << 20
"#;

/// A child process killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Port it listens on (127.0.0.1).
    pub port: u16,
}

impl Server {
    /// Takes ownership of a started server process listening on `port`.
    pub fn from_child(child: Child, port: u16) -> Server {
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a self-signed certificate for `localhost` / 127.0.0.1 into `dir`;
/// returns (cert, key).
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl (apt-get install openssl)");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

/// Starts the Python HTTP/1.1 server logging into `logdir`.
pub fn python_server(dir: &Path, cert: &Path, key: &Path, logdir: &Path) -> Server {
    let script = dir.join("server.py");
    std::fs::write(&script, PY_SERVER).unwrap();
    std::fs::create_dir_all(logdir).unwrap();
    let mut child = Command::new(PYTHON)
        .arg(&script)
        .args([cert, key, logdir])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start /usr/bin/python3 (apt-get install python3)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("python server prints its port");
    Server { child, port }
}

/// Starts nghttpd serving `docroot` over TLS (HTTP/2).
pub fn nghttpd(docroot: &Path, cert: &Path, key: &Path) -> Server {
    // nghttpd has no "any port" option: take a free one from the kernel.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("nghttpd")
        .args(["-a", "127.0.0.1", "-d"])
        .arg(docroot)
        .arg(port.to_string())
        .args([key, cert])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nghttpd (apt-get install nghttp2-server)");
    let server = Server { child, port };
    wait_listening(port);
    server
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A connection of a trace with everything the trace says about it.
#[derive(Debug, Default)]
pub struct TracedConn {
    /// Merged connection records.
    pub info: Option<ConnInfo>,
    /// Reassembled egress stream (written by the process).
    pub egress: Vec<u8>,
    /// Reassembled ingress stream (read by the process).
    pub ingress: Vec<u8>,
    /// Payload sizes of the calls (grouped by timestamp and direction).
    pub calls: BTreeMap<(u64, u8), u64>,
}

/// Owned subset of a merged connection record.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    /// Owning process.
    pub pid: u32,
    /// Local address.
    pub local: Option<SocketAddr>,
    /// Remote address.
    pub remote: Option<SocketAddr>,
    /// ALPN.
    pub alpn: Vec<u8>,
    /// SNI.
    pub sni: Vec<u8>,
    /// Which library's probes saw it.
    pub tls_library: spliff_formats::TlsLibrary,
    /// The file of that library (a program, for a library compiled in).
    pub library_path: Vec<u8>,
    /// Client or server side.
    pub role: spliff_formats::ConnectionRole,
    /// Open and close time.
    pub open_ns: u64,
    /// Close time.
    pub close_ns: u64,
}

/// What a trace holds, rebuilt.
#[derive(Debug, Default)]
pub struct TraceSummary {
    /// By conn_id.
    pub conns: BTreeMap<u64, TracedConn>,
    /// comm by pid.
    pub comms: HashMap<u32, String>,
    /// Every loss record.
    pub losses: Vec<Loss>,
    /// Read errors (strings).
    pub errors: Vec<String>,
    /// Whether the first record is a capture info with clock Boottime.
    pub boottime_info: bool,
    /// Records read.
    pub records: usize,
}

/// Payload pieces of one stream: (stream offset, bytes).
type Pieces<'a> = Vec<(u64, &'a [u8])>;

/// One HTTP/2 frame: (type, flags, stream id, payload).
pub type H2Frame = (u8, u8, u32, Vec<u8>);

/// Reads a trace and rebuilds every connection's streams; a hole in a
/// stream panics (the caller asserts that no loss was recorded anyway).
pub fn read_trace(path: &Path) -> TraceSummary {
    let file = TraceFile::open(path).expect("open trace");
    let (records, errors) = file.reader().records_by_time();
    let mut summary = TraceSummary {
        errors: errors.iter().map(|e| e.to_string()).collect(),
        records: records.len(),
        ..TraceSummary::default()
    };
    let mut merged: BTreeMap<u64, Connection<'_>> = BTreeMap::new();
    let mut pieces: BTreeMap<(u64, u8), Pieces<'_>> = BTreeMap::new();
    for (i, at) in records.iter().enumerate() {
        match &at.record {
            Record::CaptureInfo(info) => {
                summary.boottime_info |= i == 0 && info.clock == spliff_formats::ClockId::Boottime;
            }
            Record::Process(Process { pid, comm, .. }) => {
                summary
                    .comms
                    .insert(*pid, String::from_utf8_lossy(comm).into_owned());
            }
            Record::Connection(c) => {
                merged
                    .entry(c.conn_id)
                    .and_modify(|m| m.merge(c))
                    .or_insert_with(|| c.clone());
            }
            Record::TlsData(d) => {
                let dir = u8::from(d.direction == Direction::Ingress);
                pieces
                    .entry((d.conn_id, dir))
                    .or_default()
                    .push((d.stream_offset, d.payload));
                *summary
                    .conns
                    .entry(d.conn_id)
                    .or_default()
                    .calls
                    .entry((at.ts_ns, dir))
                    .or_default() += d.payload.len() as u64;
            }
            Record::Loss(l) => summary.losses.push(l.clone()),
            _ => {}
        };
    }
    for ((conn_id, dir), mut list) in pieces {
        list.sort_by_key(|p| p.0);
        let mut stream = Vec::new();
        for (offset, payload) in list {
            assert_eq!(
                offset,
                stream.len() as u64,
                "conn {conn_id} dir {dir}: hole or overlap in the stream"
            );
            stream.extend_from_slice(payload);
        }
        let conn = summary.conns.entry(conn_id).or_default();
        if dir == 0 {
            conn.egress = stream;
        } else {
            conn.ingress = stream;
        }
    }
    for (conn_id, c) in merged {
        summary.conns.entry(conn_id).or_default().info = Some(ConnInfo {
            pid: c.pid,
            local: c.local,
            remote: c.remote,
            alpn: c.alpn.to_vec(),
            sni: c.sni.to_vec(),
            tls_library: c.tls_library,
            library_path: c.library_path.to_vec(),
            role: c.role,
            open_ns: c.open_ns,
            close_ns: c.close_ns,
        });
    }
    summary
}

/// HTTP/2 frames of one direction: (type, flags, stream id, payload).
/// Panics when the stream is not a whole number of well-formed frames.
pub fn h2_frames(mut stream: &[u8]) -> Vec<H2Frame> {
    let mut frames = Vec::new();
    while !stream.is_empty() {
        assert!(stream.len() >= 9, "truncated HTTP/2 frame header");
        let len =
            usize::from(stream[0]) << 16 | usize::from(stream[1]) << 8 | usize::from(stream[2]);
        let (ty, flags) = (stream[3], stream[4]);
        let id = u32::from_be_bytes([stream[5], stream[6], stream[7], stream[8]]) & 0x7fff_ffff;
        assert!(stream.len() >= 9 + len, "truncated HTTP/2 frame payload");
        frames.push((ty, flags, id, stream[9..9 + len].to_vec()));
        stream = &stream[9 + len..];
    }
    frames
}

/// Response bodies by stream id, from the DATA frames of an ingress stream.
pub fn h2_bodies(frames: &[H2Frame]) -> BTreeMap<u32, Vec<u8>> {
    const DATA: u8 = 0;
    const PADDED: u8 = 0x8;
    let mut bodies: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    for (ty, flags, id, payload) in frames {
        if *ty != DATA {
            continue;
        }
        let data = if flags & PADDED != 0 {
            let pad = usize::from(payload[0]);
            &payload[1..payload.len() - pad]
        } else {
            &payload[..]
        };
        bodies.entry(*id).or_default().extend_from_slice(data);
    }
    bodies
}
