//! The spliff records: what a Custom Block carries. Each kind has a fixed id (see
//! [`RecordKind`]); docs/FORMAT.md gives the byte layout of each body in the order encoded here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::ids::{FORMAT_MAJOR, FORMAT_MINOR, RECORD_HEADER_LEN, RECORD_MAGIC};
use crate::wire::{Cursor, Put, Short};

/// Random identifier of one capture, carried by every record so that identifiers from two
/// captures never collide after `mergecap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CaptureId(pub [u8; 16]);

impl std::fmt::Display for CaptureId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Record kind ids. Never renumbered; a retired kind leaves a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u16)]
pub enum RecordKind {
    /// [`CaptureInfo`].
    CaptureInfo = 1,
    /// [`Process`].
    Process = 2,
    /// [`Connection`].
    Connection = 3,
    /// [`TlsData`].
    TlsData = 4,
    /// [`Handshake`].
    Handshake = 5,
    /// [`Loss`].
    Loss = 6,
    /// [`InterfaceEvent`] (since 1.1).
    Interface = 7,
    /// [`Correlation`] (since 1.1).
    Correlation = 8,
}

impl RecordKind {
    /// The kind for a wire id, or `None` for an id this version does not know.
    pub fn from_id(id: u16) -> Option<Self> {
        Some(match id {
            1 => Self::CaptureInfo,
            2 => Self::Process,
            3 => Self::Connection,
            4 => Self::TlsData,
            5 => Self::Handshake,
            6 => Self::Loss,
            7 => Self::Interface,
            8 => Self::Correlation,
            _ => return None,
        })
    }

    /// Lower-case name used in error messages and docs.
    pub fn name(self) -> &'static str {
        match self {
            Self::CaptureInfo => "capture-info",
            Self::Process => "process",
            Self::Connection => "connection",
            Self::TlsData => "tls-data",
            Self::Handshake => "handshake",
            Self::Loss => "loss",
            Self::Interface => "interface",
            Self::Correlation => "correlation",
        }
    }
}

/// Which kernel clock the `ts_ns` of every record of a capture counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockId {
    /// `CLOCK_MONOTONIC` (what `bpf_ktime_get_ns` returns).
    Monotonic,
    /// `CLOCK_BOOTTIME` (what `bpf_ktime_get_boot_ns` returns).
    Boottime,
    /// An id this version does not know.
    Other(u32),
}

impl ClockId {
    fn to_wire(self) -> u32 {
        match self {
            Self::Monotonic => 1,
            Self::Boottime => 7,
            Self::Other(v) => v,
        }
    }
    fn from_wire(v: u32) -> Self {
        match v {
            1 => Self::Monotonic,
            7 => Self::Boottime,
            v => Self::Other(v),
        }
    }
}

/// Facts about the capture as a whole. The record's `ts_ns` is the kernel clock at the same
/// instant as `wall_clock_ns`, which maps every kernel timestamp of the capture to wall time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureInfo<'a> {
    /// `CLOCK_REALTIME` at the record's `ts_ns`, in ns since the Unix epoch.
    pub wall_clock_ns: u64,
    /// The kernel clock that all `ts_ns` values of this capture count.
    pub clock: ClockId,
    /// Version of the spliff that recorded, e.g. `0.1.0`.
    pub spliff_version: &'a [u8],
    /// Host name of the recording machine.
    pub hostname: &'a [u8],
    /// Kernel release and version (`uname -r` and `-v`).
    pub kernel: &'a [u8],
    /// One human-readable line per thing attached (probe, library path, interface).
    pub attached: Vec<&'a [u8]>,
}

/// A process that produced data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process<'a> {
    /// Process id (thread-group id) as seen from the recording host's pid namespace.
    pub pid: u32,
    /// Parent process id; 0 when unknown.
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Process start on the capture's kernel clock; 0 when unknown.
    pub start_ns: u64,
    /// Kernel `comm` (at most 15 bytes on Linux).
    pub comm: &'a [u8],
    /// Path of the executable.
    pub exe: &'a [u8],
    /// Arguments, `argv[0]` first.
    pub cmdline: Vec<&'a [u8]>,
    /// cgroup v2 path (or the v1 line) of the process.
    pub cgroup: &'a [u8],
    /// Container id derived from the cgroup, empty when none.
    pub container_id: &'a [u8],
}

/// Side of the connection the recorded process is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionRole {
    /// Not known.
    #[default]
    Unknown,
    /// The process opened the connection (`connect`).
    Client,
    /// The process accepted it (`accept`).
    Server,
    /// A value this version does not know.
    Other(u8),
}

impl ConnectionRole {
    fn to_wire(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Client => 1,
            Self::Server => 2,
            Self::Other(v) => v,
        }
    }
    fn from_wire(v: u8) -> Self {
        match v {
            0 => Self::Unknown,
            1 => Self::Client,
            2 => Self::Server,
            v => Self::Other(v),
        }
    }
}

/// TLS library whose functions produced the plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsLibrary {
    /// Not known.
    #[default]
    Unknown,
    /// OpenSSL 1.1 or 3.x (`libssl`).
    OpenSsl,
    /// BoringSSL (statically linked, e.g. Chromium).
    BoringSsl,
    /// GnuTLS.
    GnuTls,
    /// NSS / NSPR.
    Nss,
    /// wolfSSL.
    WolfSsl,
    /// Go's `crypto/tls`, linked into the program itself.
    GoCryptoTls,
    /// A value this version does not know.
    Other(u8),
}

impl TlsLibrary {
    fn to_wire(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::OpenSsl => 1,
            Self::BoringSsl => 2,
            Self::GnuTls => 3,
            Self::Nss => 4,
            Self::WolfSsl => 5,
            Self::GoCryptoTls => 6,
            Self::Other(v) => v,
        }
    }
    fn from_wire(v: u8) -> Self {
        match v {
            0 => Self::Unknown,
            1 => Self::OpenSsl,
            2 => Self::BoringSsl,
            3 => Self::GnuTls,
            4 => Self::Nss,
            5 => Self::WolfSsl,
            6 => Self::GoCryptoTls,
            v => Self::Other(v),
        }
    }

    /// Lower-case name, as used in HAR extensions.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown | Self::Other(_) => "unknown",
            Self::OpenSsl => "openssl",
            Self::BoringSsl => "boringssl",
            Self::GnuTls => "gnutls",
            Self::Nss => "nss",
            Self::WolfSsl => "wolfssl",
            Self::GoCryptoTls => "go",
        }
    }
}

/// What carried a connection's bytes (since 1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// TLS over a network socket: the plaintext is the TLS library's. The default, and what
    /// every record before 1.2 describes.
    #[default]
    Tls,
    /// A unix-domain stream socket: the bytes as the process wrote and read them, no TLS.
    UnixStream,
    /// A value this version does not know.
    Other(u8),
}

impl Transport {
    fn to_wire(self) -> u8 {
        match self {
            Self::Tls => 0,
            Self::UnixStream => 1,
            Self::Other(v) => v,
        }
    }
    fn from_wire(v: u8) -> Self {
        match v {
            0 => Self::Tls,
            1 => Self::UnixStream,
            v => Self::Other(v),
        }
    }
}

/// The ends of a unix stream socket connection (since 1.2). [`Default`] is "nothing known".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnixEndpoints<'a> {
    /// The socket's path as the kernel stores it; an abstract name starts with a NUL byte;
    /// empty when unnamed (`socketpair`) or unknown.
    pub path: &'a [u8],
    /// Inode of the recorded process's socket (as `/proc/net/unix` and `ss -x` show); 0
    /// unknown.
    pub inode: u64,
    /// Inode of the other end's socket; 0 unknown.
    pub peer_inode: u64,
    /// Process at the other end as the kernel recorded it at connect time (`SO_PEERCRED`);
    /// 0 unknown.
    pub peer_pid: u32,
}

/// Direction of plaintext relative to the recorded process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Written by the process (`SSL_write`): leaves towards the peer.
    Egress,
    /// Read by the process (`SSL_read`): came from the peer.
    Ingress,
}

impl Direction {
    fn to_wire(self) -> u8 {
        match self {
            Self::Egress => 1,
            Self::Ingress => 2,
        }
    }
    fn from_wire(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Egress),
            2 => Some(Self::Ingress),
            _ => None,
        }
    }
}

/// IP addresses take a fixed 16 bytes on the wire: IPv4 in the first four, the rest zero.
struct IpAddrBytes;

impl IpAddrBytes {
    fn encode(addr: IpAddr) -> [u8; 16] {
        match addr {
            IpAddr::V4(v4) => {
                let mut out = [0u8; 16];
                out[..4].copy_from_slice(&v4.octets());
                out
            }
            IpAddr::V6(v6) => v6.octets(),
        }
    }
    fn decode(family: u8, raw: [u8; 16]) -> Option<IpAddr> {
        match family {
            4 => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
            6 => Some(IpAddr::V6(Ipv6Addr::from(raw))),
            _ => None,
        }
    }
}

/// One TLS connection. A connection may be described by several records as the recorder learns
/// more (5-tuple, ALPN, close); see [`Connection::merge`]. [`Default`] is "nothing known"
/// (with `fd` = -1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection<'a> {
    /// Identifier, unique within the capture; [`TlsData`] and others refer to it.
    pub conn_id: u64,
    /// Process that owns the TLS session.
    pub pid: u32,
    /// File descriptor of the socket; -1 when unknown.
    pub fd: i32,
    /// Kernel socket cookie; 0 when unknown.
    pub socket_cookie: u64,
    /// First sight of the connection on the capture clock; 0 when unknown.
    pub open_ns: u64,
    /// Close on the capture clock; 0 while open or unknown.
    pub close_ns: u64,
    /// Client or server side.
    pub role: ConnectionRole,
    /// TLS library.
    pub tls_library: TlsLibrary,
    /// Negotiated TLS version as on the wire (0x0303 = TLS 1.2, 0x0304 = TLS 1.3); 0 unknown.
    pub tls_version: u16,
    /// IP protocol number (6 = TCP); 0 unknown.
    pub ip_protocol: u8,
    /// Local socket address; `None` when unknown.
    pub local: Option<SocketAddr>,
    /// Peer socket address; `None` when unknown.
    pub remote: Option<SocketAddr>,
    /// Negotiated ALPN protocol, e.g. `h2`; empty when none or unknown.
    pub alpn: &'a [u8],
    /// Server name indication; empty when none or unknown.
    pub sni: &'a [u8],
    /// Path of the TLS library file the probes were attached to.
    pub library_path: &'a [u8],
    /// Packets and bytes the network hooks matched to the connection's socket (since 1.1).
    pub counters: ConnectionCounters,
    /// What carried the bytes (since 1.2).
    pub transport: Transport,
    /// The unix socket's ends, for [`Transport::UnixStream`] (since 1.2).
    pub unix: UnixEndpoints<'a>,
}

/// Packets and bytes of a connection's socket seen by the network hooks, per direction
/// relative to the recorded process. All zero when packets were not captured (or in a 1.0
/// record). Bytes count IP packets as on the wire (IP header included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionCounters {
    /// Packets sent by the socket.
    pub packets_egress: u64,
    /// Packets received by the socket.
    pub packets_ingress: u64,
    /// Bytes sent by the socket.
    pub bytes_egress: u64,
    /// Bytes received by the socket.
    pub bytes_ingress: u64,
}

impl ConnectionCounters {
    /// Whether any packet was counted.
    pub fn is_empty(&self) -> bool {
        *self == ConnectionCounters::default()
    }
}

impl Default for Connection<'_> {
    fn default() -> Self {
        Connection {
            conn_id: 0,
            pid: 0,
            fd: -1,
            socket_cookie: 0,
            open_ns: 0,
            close_ns: 0,
            role: ConnectionRole::Unknown,
            tls_library: TlsLibrary::Unknown,
            tls_version: 0,
            ip_protocol: 0,
            local: None,
            remote: None,
            alpn: b"",
            sni: b"",
            library_path: b"",
            counters: ConnectionCounters::default(),
            transport: Transport::Tls,
            unix: UnixEndpoints::default(),
        }
    }
}

impl<'a> Connection<'a> {
    /// Folds a later record of the same connection into this one: every field the later record
    /// knows (non-zero, non-empty, `Some`) replaces the earlier value.
    pub fn merge(&mut self, later: &Connection<'a>) {
        fn take<T: Copy + PartialEq + Default>(dst: &mut T, src: T) {
            if src != T::default() {
                *dst = src;
            }
        }
        take(&mut self.pid, later.pid);
        if later.fd >= 0 {
            self.fd = later.fd;
        }
        take(&mut self.socket_cookie, later.socket_cookie);
        take(&mut self.open_ns, later.open_ns);
        take(&mut self.close_ns, later.close_ns);
        take(&mut self.role, later.role);
        take(&mut self.tls_library, later.tls_library);
        take(&mut self.tls_version, later.tls_version);
        take(&mut self.ip_protocol, later.ip_protocol);
        if later.local.is_some() {
            self.local = later.local;
        }
        if later.remote.is_some() {
            self.remote = later.remote;
        }
        for (dst, src) in [
            (&mut self.alpn, later.alpn),
            (&mut self.sni, later.sni),
            (&mut self.library_path, later.library_path),
        ] {
            if !src.is_empty() {
                *dst = src;
            }
        }
        // Counters are written whole (a later record carries totals, not increments).
        if !later.counters.is_empty() {
            self.counters = later.counters;
        }
        take(&mut self.transport, later.transport);
        take(&mut self.unix.inode, later.unix.inode);
        take(&mut self.unix.peer_inode, later.unix.peer_inode);
        take(&mut self.unix.peer_pid, later.unix.peer_pid);
        if !later.unix.path.is_empty() {
            self.unix.path = later.unix.path;
        }
    }
}

/// Plaintext of one read or write (or one piece of it; see [`TlsData::stream_offset`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsData<'a> {
    /// Connection the bytes belong to.
    pub conn_id: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id that called the TLS library.
    pub tid: u32,
    /// Direction relative to the process.
    pub direction: Direction,
    /// Position of `payload[0]` in this direction's plaintext stream, counted from the first
    /// byte the capture saw. A write larger than one record continues at `offset + len`.
    pub stream_offset: u64,
    /// The plaintext bytes.
    pub payload: &'a [u8],
}

/// Outcome of a TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeResult {
    /// Not known (the capture ended during the handshake).
    Unknown,
    /// Completed.
    Ok,
    /// Failed; see [`Handshake::return_code`].
    Failed,
    /// A value this version does not know.
    Other(u8),
}

impl HandshakeResult {
    fn to_wire(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Ok => 1,
            Self::Failed => 2,
            Self::Other(v) => v,
        }
    }
    fn from_wire(v: u8) -> Self {
        match v {
            0 => Self::Unknown,
            1 => Self::Ok,
            2 => Self::Failed,
            v => Self::Other(v),
        }
    }
}

/// Timing and result of a TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Connection.
    pub conn_id: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Start on the capture clock.
    pub start_ns: u64,
    /// End on the capture clock; 0 when it did not end during the capture.
    pub end_ns: u64,
    /// Outcome.
    pub result: HandshakeResult,
    /// Return value of the library call that ended it.
    pub return_code: i32,
}

/// Why data is missing from the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossCause {
    /// The kernel program copied only part of the buffer (its per-event limit).
    Truncated,
    /// The kernel ring buffer was full; whole events were dropped.
    RingBufferFull,
    /// Reading the process's memory failed (page not present).
    ReadFault,
    /// The recorder's own queue overflowed.
    UserQueueFull,
    /// A value this version does not know.
    Other(u8),
}

impl LossCause {
    fn to_wire(self) -> u8 {
        match self {
            Self::Truncated => 1,
            Self::RingBufferFull => 2,
            Self::ReadFault => 3,
            Self::UserQueueFull => 4,
            Self::Other(v) => v,
        }
    }
    fn from_wire(v: u8) -> Self {
        match v {
            1 => Self::Truncated,
            2 => Self::RingBufferFull,
            3 => Self::ReadFault,
            4 => Self::UserQueueFull,
            v => Self::Other(v),
        }
    }
}

/// Data the capture knows it did not record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// Connection, or 0 when the loss cannot be attributed to one.
    pub conn_id: u64,
    /// Process id, 0 when unknown.
    pub pid: u32,
    /// Thread id, 0 when unknown.
    pub tid: u32,
    /// Direction, `None` when unknown.
    pub direction: Option<Direction>,
    /// Why.
    pub cause: LossCause,
    /// First missing byte in the direction's stream (meaningful when `length > 0`).
    pub stream_offset: u64,
    /// Number of missing plaintext bytes; 0 when unknown.
    pub length: u64,
    /// Number of kernel events lost; 0 when unknown.
    pub events: u64,
}

/// What happened to an interface during the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterfaceEventKind {
    /// The interface exists (at capture start, or it was created during the capture).
    Appeared,
    /// A packet hook was attached to it.
    Attached,
    /// A packet hook could not be attached; `detail` says why.
    AttachFailed,
    /// A packet hook was detached (capture end, or the interface went away).
    Detached,
    /// The interface was removed during the capture.
    Disappeared,
    /// A value this version does not know.
    Other(u8),
}

impl InterfaceEventKind {
    fn to_wire(self) -> u8 {
        match self {
            Self::Appeared => 1,
            Self::Attached => 2,
            Self::AttachFailed => 3,
            Self::Detached => 4,
            Self::Disappeared => 5,
            Self::Other(v) => v,
        }
    }
    fn from_wire(v: u8) -> Self {
        match v {
            1 => Self::Appeared,
            2 => Self::Attached,
            3 => Self::AttachFailed,
            4 => Self::Detached,
            5 => Self::Disappeared,
            v => Self::Other(v),
        }
    }

    /// Lower-case name for text output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Appeared => "appeared",
            Self::Attached => "attached",
            Self::AttachFailed => "attach-failed",
            Self::Detached => "detached",
            Self::Disappeared => "disappeared",
            Self::Other(_) => "other",
        }
    }
}

/// Which packet hook an [`InterfaceEvent`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// No hook (the interface itself appeared or disappeared).
    None,
    /// XDP in the driver (native mode).
    XdpNative,
    /// XDP in the generic (SKB) path.
    XdpGeneric,
    /// XDP offloaded to the NIC.
    XdpOffload,
    /// TC ingress through tcx.
    TcxIngress,
    /// TC egress through tcx.
    TcxEgress,
    /// TC ingress through the clsact qdisc.
    ClsactIngress,
    /// TC egress through the clsact qdisc.
    ClsactEgress,
    /// A value this version does not know.
    Other(u8),
}

impl HookKind {
    fn to_wire(self) -> u8 {
        match self {
            Self::None => 0,
            Self::XdpNative => 1,
            Self::XdpGeneric => 2,
            Self::XdpOffload => 3,
            Self::TcxIngress => 4,
            Self::TcxEgress => 5,
            Self::ClsactIngress => 6,
            Self::ClsactEgress => 7,
            Self::Other(v) => v,
        }
    }
    fn from_wire(v: u8) -> Self {
        match v {
            0 => Self::None,
            1 => Self::XdpNative,
            2 => Self::XdpGeneric,
            3 => Self::XdpOffload,
            4 => Self::TcxIngress,
            5 => Self::TcxEgress,
            6 => Self::ClsactIngress,
            7 => Self::ClsactEgress,
            v => Self::Other(v),
        }
    }

    /// Lower-case name for text output, e.g. `xdp-generic`.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::XdpNative => "xdp-native",
            Self::XdpGeneric => "xdp-generic",
            Self::XdpOffload => "xdp-offload",
            Self::TcxIngress => "tcx-ingress",
            Self::TcxEgress => "tcx-egress",
            Self::ClsactIngress => "clsact-ingress",
            Self::ClsactEgress => "clsact-egress",
            Self::Other(_) => "other",
        }
    }
}

/// An interface appearing, being hooked or going away during the capture (since 1.1). The
/// packets themselves are pcapng EPBs on the interface's IDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceEvent<'a> {
    /// Kernel interface index (in the recorder's network namespace).
    pub if_index: u32,
    /// Index of the interface's IDB in this section, when it has one.
    pub interface_id: Option<u32>,
    /// What happened.
    pub event: InterfaceEventKind,
    /// The hook concerned, [`HookKind::None`] for the interface itself.
    pub hook: HookKind,
    /// Interface name, e.g. `eth0`.
    pub name: &'a [u8],
    /// Free text: why an attach failed, or a note on the mode.
    pub detail: &'a [u8],
}

/// How many TLS connections of the capture were tied to their socket and packets, and why the
/// others were not (since 1.1). Written once, at the end of a capture.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Correlation<'a> {
    /// TLS connections in the capture.
    pub tls_connections: u64,
    /// Of those, how many got their socket's 5-tuple.
    pub with_socket: u64,
    /// Of those, how many got at least one packet.
    pub with_packets: u64,
    /// One human-readable line per reason a connection was not fully correlated, with its
    /// count, e.g. `2 connections: no socket behind the SSL (memory BIO)`.
    pub reasons: Vec<&'a [u8]>,
}

/// A decoded spliff record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// See [`CaptureInfo`].
    CaptureInfo(CaptureInfo<'a>),
    /// See [`Process`].
    Process(Process<'a>),
    /// See [`Connection`].
    Connection(Connection<'a>),
    /// See [`TlsData`].
    TlsData(TlsData<'a>),
    /// See [`Handshake`].
    Handshake(Handshake),
    /// See [`Loss`].
    Loss(Loss),
    /// See [`InterfaceEvent`].
    Interface(InterfaceEvent<'a>),
    /// See [`Correlation`].
    Correlation(Correlation<'a>),
}

impl Record<'_> {
    /// The record's kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::CaptureInfo(_) => RecordKind::CaptureInfo,
            Record::Process(_) => RecordKind::Process,
            Record::Connection(_) => RecordKind::Connection,
            Record::TlsData(_) => RecordKind::TlsData,
            Record::Handshake(_) => RecordKind::Handshake,
            Record::Loss(_) => RecordKind::Loss,
            Record::Interface(_) => RecordKind::Interface,
            Record::Correlation(_) => RecordKind::Correlation,
        }
    }
}

/// The fixed 40-byte header in front of every body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub major: u16,
    pub minor: u16,
    pub kind: u16,
    pub body_len: u32,
    pub capture_id: CaptureId,
    pub ts_ns: u64,
}

/// Why a custom block's payload is not a readable spliff record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    NotSpliff,
    Short(Short),
    Version { major: u16, minor: u16 },
    BadValue { field: &'static str, value: u64 },
    UnknownKind(u16),
}

impl From<Short> for DecodeError {
    fn from(s: Short) -> Self {
        DecodeError::Short(s)
    }
}

pub(crate) fn decode_header(data: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
    if data.len() < 4 || data[..4] != RECORD_MAGIC {
        return Err(DecodeError::NotSpliff);
    }
    let mut c = Cursor::new(data);
    c.u32("magic")?;
    let major = c.u16("major version")?;
    let minor = c.u16("minor version")?;
    let kind = c.u16("record kind")?;
    let _flags = c.u16("flags")?;
    let body_len = c.u32("body length")?;
    let capture_id = CaptureId(c.bytes16("capture id")?);
    let ts_ns = c.u64("ts_ns")?;
    let header = Header {
        major,
        minor,
        kind,
        body_len,
        capture_id,
        ts_ns,
    };
    if major != FORMAT_MAJOR {
        return Err(DecodeError::Version { major, minor });
    }
    let rest = &data[RECORD_HEADER_LEN..];
    if body_len as usize > rest.len() {
        return Err(DecodeError::Short(Short {
            field: "body",
            at: RECORD_HEADER_LEN,
            needed: u64::from(body_len),
            left: rest.len(),
        }));
    }
    Ok((header, &rest[..body_len as usize]))
}

pub(crate) fn decode_body<'a>(kind: u16, body: &'a [u8]) -> Result<Record<'a>, DecodeError> {
    let kind = RecordKind::from_id(kind).ok_or(DecodeError::UnknownKind(kind))?;
    let mut c = Cursor::new(body);
    let c = &mut c;
    // Bodies may be longer than what this version knows (a later minor version appended
    // fields); the rest is ignored by design.
    Ok(match kind {
        RecordKind::CaptureInfo => Record::CaptureInfo(CaptureInfo {
            wall_clock_ns: c.u64("wall_clock_ns")?,
            clock: ClockId::from_wire(c.u32("clock_id")?),
            spliff_version: {
                c.u32("reserved")?;
                c.bytes("spliff_version")?
            },
            hostname: c.bytes("hostname")?,
            kernel: c.bytes("kernel")?,
            attached: c.list("attached")?,
        }),
        RecordKind::Process => Record::Process(Process {
            pid: c.u32("pid")?,
            ppid: c.u32("ppid")?,
            uid: c.u32("uid")?,
            gid: c.u32("gid")?,
            start_ns: c.u64("start_ns")?,
            comm: c.bytes("comm")?,
            exe: c.bytes("exe")?,
            cmdline: c.list("cmdline")?,
            cgroup: c.bytes("cgroup")?,
            container_id: c.bytes("container_id")?,
        }),
        RecordKind::Connection => {
            let conn_id = c.u64("conn_id")?;
            let pid = c.u32("pid")?;
            let fd = c.i32("fd")?;
            let socket_cookie = c.u64("socket_cookie")?;
            let open_ns = c.u64("open_ns")?;
            let close_ns = c.u64("close_ns")?;
            let role = ConnectionRole::from_wire(c.u8("role")?);
            let tls_library = TlsLibrary::from_wire(c.u8("tls_library")?);
            let tls_version = c.u16("tls_version")?;
            let family = c.u8("family")?;
            let ip_protocol = c.u8("ip_protocol")?;
            let local_port = c.u16("local_port")?;
            let remote_port = c.u16("remote_port")?;
            let known = c.u16("address_flags")?;
            let local_addr = c.bytes16("local_addr")?;
            let remote_addr = c.bytes16("remote_addr")?;
            if !matches!(family, 0 | 4 | 6) {
                return Err(DecodeError::BadValue {
                    field: "family",
                    value: u64::from(family),
                });
            }
            let mut conn = Connection {
                conn_id,
                pid,
                fd,
                socket_cookie,
                open_ns,
                close_ns,
                role,
                tls_library,
                tls_version,
                ip_protocol,
                local: IpAddrBytes::decode(family, local_addr)
                    .filter(|_| known & ADDR_LOCAL_KNOWN != 0)
                    .map(|ip| SocketAddr::new(ip, local_port)),
                remote: IpAddrBytes::decode(family, remote_addr)
                    .filter(|_| known & ADDR_REMOTE_KNOWN != 0)
                    .map(|ip| SocketAddr::new(ip, remote_port)),
                alpn: c.bytes("alpn")?,
                sni: c.bytes("sni")?,
                library_path: c.bytes("library_path")?,
                counters: if c.at_end() {
                    ConnectionCounters::default()
                } else {
                    ConnectionCounters {
                        packets_egress: c.u64("packets_egress")?,
                        packets_ingress: c.u64("packets_ingress")?,
                        bytes_egress: c.u64("bytes_egress")?,
                        bytes_ingress: c.u64("bytes_ingress")?,
                    }
                },
                transport: Transport::Tls,
                unix: UnixEndpoints::default(),
            };
            if !c.at_end() {
                conn.transport = Transport::from_wire(c.u8("transport")?);
                c.u8("reserved")?;
                c.u16("reserved")?;
                conn.unix = UnixEndpoints {
                    peer_pid: c.u32("peer_pid")?,
                    inode: c.u64("socket_inode")?,
                    peer_inode: c.u64("peer_inode")?,
                    path: c.bytes("socket_path")?,
                };
            }
            Record::Connection(conn)
        }
        RecordKind::TlsData => {
            let conn_id = c.u64("conn_id")?;
            let stream_offset = c.u64("stream_offset")?;
            let pid = c.u32("pid")?;
            let tid = c.u32("tid")?;
            let dir = c.u8("direction")?;
            let direction = Direction::from_wire(dir).ok_or(DecodeError::BadValue {
                field: "direction",
                value: u64::from(dir),
            })?;
            let _flags = c.u8("flags")?;
            let _reserved = c.u16("reserved")?;
            let payload = c.bytes("payload")?;
            if stream_offset.checked_add(payload.len() as u64).is_none() {
                return Err(DecodeError::BadValue {
                    field: "stream_offset",
                    value: stream_offset,
                });
            }
            Record::TlsData(TlsData {
                conn_id,
                pid,
                tid,
                direction,
                stream_offset,
                payload,
            })
        }
        RecordKind::Handshake => Record::Handshake(Handshake {
            conn_id: c.u64("conn_id")?,
            start_ns: c.u64("start_ns")?,
            end_ns: c.u64("end_ns")?,
            pid: c.u32("pid")?,
            tid: c.u32("tid")?,
            return_code: c.i32("return_code")?,
            result: {
                let r = HandshakeResult::from_wire(c.u8("result")?);
                c.u8("reserved")?;
                c.u16("reserved")?;
                r
            },
        }),
        RecordKind::Loss => {
            let conn_id = c.u64("conn_id")?;
            let stream_offset = c.u64("stream_offset")?;
            let length = c.u64("length")?;
            let events = c.u64("events")?;
            let pid = c.u32("pid")?;
            let tid = c.u32("tid")?;
            let dir = c.u8("direction")?;
            let direction = match dir {
                0 => None,
                d => Some(Direction::from_wire(d).ok_or(DecodeError::BadValue {
                    field: "direction",
                    value: u64::from(d),
                })?),
            };
            let cause = LossCause::from_wire(c.u8("cause")?);
            let _reserved = c.u16("reserved")?;
            Record::Loss(Loss {
                conn_id,
                pid,
                tid,
                direction,
                cause,
                stream_offset,
                length,
                events,
            })
        }
        RecordKind::Interface => {
            let if_index = c.u32("if_index")?;
            let interface_id = c.u32("interface_id")?;
            let event = InterfaceEventKind::from_wire(c.u8("event")?);
            let hook = HookKind::from_wire(c.u8("hook")?);
            let _reserved = c.u16("reserved")?;
            Record::Interface(InterfaceEvent {
                if_index,
                interface_id: (interface_id != NO_INTERFACE_ID).then_some(interface_id),
                event,
                hook,
                name: c.bytes("name")?,
                detail: c.bytes("detail")?,
            })
        }
        RecordKind::Correlation => Record::Correlation(Correlation {
            tls_connections: c.u64("tls_connections")?,
            with_socket: c.u64("with_socket")?,
            with_packets: c.u64("with_packets")?,
            reasons: c.list("reasons")?,
        }),
    })
}

/// Appends the header and body of `record` to `out` (which the caller cleared).
pub(crate) fn encode(out: &mut Vec<u8>, capture_id: CaptureId, ts_ns: u64, record: &Record<'_>) {
    let start = out.len();
    let mut p = Put(out);
    p.raw(&RECORD_MAGIC)
        .u16(FORMAT_MAJOR)
        .u16(FORMAT_MINOR)
        .u16(record.kind() as u16)
        .u16(0)
        .u32(0) // body length, patched below
        .raw(&capture_id.0)
        .u64(ts_ns);
    match record {
        Record::CaptureInfo(r) => {
            p.u64(r.wall_clock_ns)
                .u32(r.clock.to_wire())
                .u32(0)
                .bytes(r.spliff_version)
                .bytes(r.hostname)
                .bytes(r.kernel)
                .list(&r.attached);
        }
        Record::Process(r) => {
            p.u32(r.pid)
                .u32(r.ppid)
                .u32(r.uid)
                .u32(r.gid)
                .u64(r.start_ns)
                .bytes(r.comm)
                .bytes(r.exe)
                .list(&r.cmdline)
                .bytes(r.cgroup)
                .bytes(r.container_id);
        }
        Record::Connection(r) => {
            let (family, local, remote) = tuple_wire(r.local, r.remote);
            let mut known = 0;
            if r.local.is_some() {
                known |= ADDR_LOCAL_KNOWN;
            }
            if r.remote.is_some() {
                known |= ADDR_REMOTE_KNOWN;
            }
            p.u64(r.conn_id)
                .u32(r.pid)
                .i32(r.fd)
                .u64(r.socket_cookie)
                .u64(r.open_ns)
                .u64(r.close_ns)
                .u8(r.role.to_wire())
                .u8(r.tls_library.to_wire())
                .u16(r.tls_version)
                .u8(family)
                .u8(r.ip_protocol)
                .u16(local.1)
                .u16(remote.1)
                .u16(known)
                .raw(&local.0)
                .raw(&remote.0)
                .bytes(r.alpn)
                .bytes(r.sni)
                .bytes(r.library_path)
                .u64(r.counters.packets_egress)
                .u64(r.counters.packets_ingress)
                .u64(r.counters.bytes_egress)
                .u64(r.counters.bytes_ingress)
                .u8(r.transport.to_wire())
                .u8(0)
                .u16(0)
                .u32(r.unix.peer_pid)
                .u64(r.unix.inode)
                .u64(r.unix.peer_inode)
                .bytes(r.unix.path);
        }
        Record::TlsData(r) => {
            p.u64(r.conn_id)
                .u64(r.stream_offset)
                .u32(r.pid)
                .u32(r.tid)
                .u8(r.direction.to_wire())
                .u8(0)
                .u16(0)
                .bytes(r.payload);
        }
        Record::Handshake(r) => {
            p.u64(r.conn_id)
                .u64(r.start_ns)
                .u64(r.end_ns)
                .u32(r.pid)
                .u32(r.tid)
                .i32(r.return_code)
                .u8(r.result.to_wire())
                .u8(0)
                .u16(0);
        }
        Record::Loss(r) => {
            p.u64(r.conn_id)
                .u64(r.stream_offset)
                .u64(r.length)
                .u64(r.events)
                .u32(r.pid)
                .u32(r.tid)
                .u8(r.direction.map_or(0, Direction::to_wire))
                .u8(r.cause.to_wire())
                .u16(0);
        }
        Record::Interface(r) => {
            p.u32(r.if_index)
                .u32(r.interface_id.unwrap_or(NO_INTERFACE_ID))
                .u8(r.event.to_wire())
                .u8(r.hook.to_wire())
                .u16(0)
                .bytes(r.name)
                .bytes(r.detail);
        }
        Record::Correlation(r) => {
            p.u64(r.tls_connections)
                .u64(r.with_socket)
                .u64(r.with_packets)
                .list(&r.reasons);
        }
    }
    let body_len = (out.len() - start - RECORD_HEADER_LEN) as u32;
    out[start + 12..start + 16].copy_from_slice(&body_len.to_le_bytes());
}

type WireAddr = ([u8; 16], u16);

/// `interface_id` of an interface event whose interface has no IDB.
const NO_INTERFACE_ID: u32 = u32::MAX;

/// `address_flags` bits of a connection body: which side of the pair is known.
const ADDR_LOCAL_KNOWN: u16 = 1;
const ADDR_REMOTE_KNOWN: u16 = 2;

/// Both ends share one family byte on the wire; a mixed pair is written as IPv6 with the IPv4
/// side mapped (`::ffff:a.b.c.d`), and a half-known pair keeps the known side.
fn tuple_wire(local: Option<SocketAddr>, remote: Option<SocketAddr>) -> (u8, WireAddr, WireAddr) {
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        ip => ip,
    };
    let family = match (local, remote) {
        (None, None) => return (0, ([0; 16], 0), ([0; 16], 0)),
        (Some(a), Some(b)) if a.is_ipv4() && b.is_ipv4() => 4,
        (Some(a), None) | (None, Some(a)) if a.is_ipv4() => 4,
        _ => 6,
    };
    let enc = |a: Option<SocketAddr>| match a {
        None => ([0; 16], 0),
        Some(a) if family == 6 => (IpAddrBytes::encode(v6(a)), a.port()),
        Some(a) => (IpAddrBytes::encode(a.ip()), a.port()),
    };
    (family, enc(local), enc(remote))
}
