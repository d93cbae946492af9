//! Rust mirror of `include/spliff_abi.h`, the records the kernel programs write.
//!
//! The C header is the definition; this module copies it by hand and
//! `tests/abi_layout.rs` compiles the header with the host C compiler to check
//! every size and offset here. Change both together.
//!
//! These structs describe bytes the kernel produced. Reading one ([`read`])
//! only reinterprets bytes; deciding whether its `kind`, `size` and lengths
//! make sense is the reader's job.

use core::mem::size_of;

/// Event kinds (`spliff_event_header.kind`). Values are append-only and never
/// reused; `0` is never emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum EventKind {
    /// [`ProcessExecEvent`]: a task completed `execve()`.
    ProcessExec = 1,
    /// [`TlsDataEvent`]: plaintext of one TLS read or write (or a piece).
    TlsData = 2,
    /// [`TlsLossEvent`]: a byte range the kernel could not copy.
    TlsLoss = 3,
    /// [`TlsConnEvent`]: socket and role of a connection.
    TlsConn = 4,
    /// [`TlsHandshakeEvent`]: a handshake call returned.
    TlsHandshake = 5,
    /// [`TlsCloseEvent`]: `SSL_shutdown` or `SSL_free`.
    TlsClose = 6,
    /// [`TlsStringEvent`]: SNI or ALPN.
    TlsString = 7,
    /// [`PacketEvent`]: headers of one packet (in the packet ring).
    Packet = 8,
    /// [`SocketEvent`]: a TCP socket seen by sock_ops.
    Socket = 9,
    /// [`UnixConnEvent`]: first sight of a selected unix stream socket.
    UnixConn = 10,
}

impl EventKind {
    /// The kind for a raw header value, `None` for 0 and for kinds this build
    /// does not know.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::ProcessExec),
            2 => Some(Self::TlsData),
            3 => Some(Self::TlsLoss),
            4 => Some(Self::TlsConn),
            5 => Some(Self::TlsHandshake),
            6 => Some(Self::TlsClose),
            7 => Some(Self::TlsString),
            8 => Some(Self::Packet),
            9 => Some(Self::Socket),
            10 => Some(Self::UnixConn),
            _ => None,
        }
    }
}

/// `SPLIFF_EVENT_INVALID`: the kind value no event carries.
pub const EVENT_KIND_INVALID: u32 = 0;

/// Indices of the per-CPU `u64` counters in the `spliff_stats` map.
/// Append-only, like [`EventKind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Stat {
    /// Events lost because the ring buffer was full.
    RingbufFull = 0,
    /// Plaintext bytes of the TLS data events among [`Stat::RingbufFull`].
    RingbufFullBytes = 1,
}

/// `SPLIFF_STAT_COUNT`: number of counters in `spliff_stats`.
pub const STAT_COUNT: u32 = 2;

/// `SPLIFF_DATA_CHUNK`: plaintext bytes per [`TlsDataEvent`] at most.
pub const DATA_CHUNK: usize = 16384;
/// `SPLIFF_MAX_CHUNKS_PER_CALL`: chunks copied per call before truncating.
pub const MAX_CHUNKS_PER_CALL: u32 = 1024;
/// `SPLIFF_DIR_EGRESS`: written by the process.
pub const DIR_EGRESS: u8 = 1;
/// `SPLIFF_DIR_INGRESS`: read by the process.
pub const DIR_INGRESS: u8 = 2;
/// `SPLIFF_LOSS_TRUNCATED`.
pub const LOSS_TRUNCATED: u8 = 1;
/// `SPLIFF_LOSS_RINGBUF`.
pub const LOSS_RINGBUF: u8 = 2;
/// `SPLIFF_LOSS_READ_FAULT`.
pub const LOSS_READ_FAULT: u8 = 3;
/// `SPLIFF_CONN_HAS_SOCKET`: family, addresses, ports, cookie are valid.
pub const CONN_HAS_SOCKET: u8 = 1 << 0;
/// `SPLIFF_CONN_HAS_ROLE`: `role` is valid.
pub const CONN_HAS_ROLE: u8 = 1 << 1;
/// `SPLIFF_CONN_HAS_FD`: `fd` is valid.
pub const CONN_HAS_FD: u8 = 1 << 2;
/// `SPLIFF_ROLE_CLIENT`.
pub const ROLE_CLIENT: u8 = 1;
/// `SPLIFF_ROLE_SERVER`.
pub const ROLE_SERVER: u8 = 2;
/// `SPLIFF_LIB_OPENSSL`: the connection's probes are OpenSSL's (the values
/// equal the trace format's `tls_library`).
pub const LIB_OPENSSL: u8 = 1;
/// `SPLIFF_LIB_BORINGSSL`: BoringSSL compiled into a stripped program.
pub const LIB_BORINGSSL: u8 = 2;
/// `SPLIFF_LIB_GNUTLS`.
pub const LIB_GNUTLS: u8 = 3;
/// `SPLIFF_LIB_NSS`: NSS over NSPR.
pub const LIB_NSS: u8 = 4;
/// `SPLIFF_LIB_WOLFSSL`.
pub const LIB_WOLFSSL: u8 = 5;
/// `SPLIFF_LIB_GO`: Go's `crypto/tls`.
pub const LIB_GO: u8 = 6;
/// `SPLIFF_CLOSE_SHUTDOWN`.
pub const CLOSE_SHUTDOWN: u32 = 1;
/// `SPLIFF_CLOSE_FREE`.
pub const CLOSE_FREE: u32 = 2;
/// `SPLIFF_STRING_MAX`.
pub const STRING_MAX: usize = 256;
/// `SPLIFF_STRING_SNI`.
pub const STRING_SNI: u32 = 1;
/// `SPLIFF_STRING_ALPN`.
pub const STRING_ALPN: u32 = 2;
/// `SPLIFF_TRACK_RECORD`: a tracked process that is recorded.
pub const TRACK_RECORD: u32 = 1;
/// `SPLIFF_TRACK_FOLLOW`: a tracked process whose children are recorded.
pub const TRACK_FOLLOW: u32 = 2;
/// `SPLIFF_TRACK_ONLY`: a tracked process recorded without its children.
pub const TRACK_ONLY: u32 = 3;

/// `SPLIFF_SOCKET_CONNECT`: `connect()`, in the owner's context.
pub const SOCKET_CONNECT: u8 = 1;
/// `SPLIFF_SOCKET_ACTIVE_ESTABLISHED`: the client's handshake completed.
pub const SOCKET_ACTIVE_ESTABLISHED: u8 = 2;
/// `SPLIFF_SOCKET_PASSIVE_ESTABLISHED`: an accepted socket's handshake completed.
pub const SOCKET_PASSIVE_ESTABLISHED: u8 = 3;
/// `SPLIFF_SOCKET_STATE`: a TCP state change (close included).
pub const SOCKET_STATE: u8 = 4;
/// `SPLIFF_SOCKET_HAS_OWNER`: `header.pid` and `comm` are the socket's owner.
pub const SOCKET_HAS_OWNER: u8 = 1 << 0;
/// `SPLIFF_TCP_ESTABLISHED`.
pub const TCP_ESTABLISHED: u8 = 1;
/// `SPLIFF_TCP_CLOSE`.
pub const TCP_CLOSE: u8 = 7;

/// `SPLIFF_COMM_LEN` (the kernel's `TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;
/// `SPLIFF_FILENAME_MAX`: bytes of the exec'd path kept, NUL included.
pub const FILENAME_MAX: usize = 256;
/// `SPLIFF_RINGBUF_DEFAULT_BYTES`: default size of the `spliff_events` ring.
pub const RINGBUF_DEFAULT_BYTES: u32 = 4 * 1024 * 1024;

/// `SPLIFF_EXEC_FILENAME_TRUNCATED`: the path was longer than
/// [`FILENAME_MAX`]` - 1` bytes; `filename` holds its start.
pub const EXEC_FILENAME_TRUNCATED: u32 = 1 << 0;
/// `SPLIFF_EXEC_FILENAME_UNREADABLE`: the kernel could not copy the path;
/// `filename_len` is 0.
pub const EXEC_FILENAME_UNREADABLE: u32 = 1 << 1;
/// `SPLIFF_EXEC_STOPPED`: the kernel sent the process `SIGSTOP` before its
/// first instruction; user space attaches its uprobes, then sends `SIGCONT`.
pub const EXEC_STOPPED: u32 = 1 << 2;
/// `SPLIFF_EXEC_FORKED`: not an exec; a selected process forked
/// `header.pid` without exec (the child already runs, `filename` is empty).
pub const EXEC_FORKED: u32 = 1 << 3;

/// `struct spliff_event_header`: leads every ring buffer record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EventHeader {
    /// Raw [`EventKind`].
    pub kind: u32,
    /// Whole record in bytes, header included.
    pub size: u32,
    /// `CLOCK_BOOTTIME` in nanoseconds when the event was produced.
    pub ts_ns: u64,
    /// Process id (tgid) in the initial pid namespace.
    pub pid: u32,
    /// Thread id in the initial pid namespace.
    pub tid: u32,
}

/// `struct spliff_process_exec_event`, kind [`EventKind::ProcessExec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ProcessExecEvent {
    /// Common header; `header.pid` is the process that exec'd.
    pub header: EventHeader,
    /// Tgid of the real parent (not a ptrace tracer).
    pub ppid: u32,
    /// Real uid in the initial user namespace.
    pub uid: u32,
    /// Valid bytes at the start of `filename`, without the NUL.
    pub filename_len: u32,
    /// `EXEC_FILENAME_*` bits.
    pub flags: u32,
    /// The new `comm` (binary name, at most 15 bytes), NUL padded.
    pub comm: [u8; COMM_LEN],
    /// The path passed to `execve()`; only `filename_len` bytes are meaningful.
    pub filename: [u8; FILENAME_MAX],
}

impl Default for ProcessExecEvent {
    fn default() -> Self {
        Self {
            header: EventHeader::default(),
            ppid: 0,
            uid: 0,
            filename_len: 0,
            flags: 0,
            comm: [0; COMM_LEN],
            filename: [0; FILENAME_MAX],
        }
    }
}

/// `struct spliff_tls_data_event`, kind [`EventKind::TlsData`]. Variable
/// size in the ring: only `data_len` bytes of `data` are delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct TlsDataEvent {
    /// Common header; ts is entry (writes) or return (reads).
    pub header: EventHeader,
    /// `SSL *` in the process.
    pub ssl: u64,
    /// Stream offset of `data[0]`, per connection and direction.
    pub stream_offset: u64,
    /// Valid bytes in `data`.
    pub data_len: u32,
    /// [`DIR_EGRESS`] or [`DIR_INGRESS`].
    pub direction: u8,
    /// Zero.
    pub reserved8: u8,
    /// Zero.
    pub reserved16: u16,
    /// Plaintext.
    pub data: [u8; DATA_CHUNK],
}

/// Bytes of [`TlsDataEvent`] before `data`.
pub const TLS_DATA_HEADER_LEN: usize = core::mem::offset_of!(TlsDataEvent, data);

/// The fixed part of a [`TlsDataEvent`], which is what the ring delivers
/// ahead of the payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TlsDataHead {
    /// Common header.
    pub header: EventHeader,
    /// `SSL *`.
    pub ssl: u64,
    /// Stream offset of the first payload byte.
    pub stream_offset: u64,
    /// Payload bytes.
    pub data_len: u32,
    /// Direction.
    pub direction: u8,
    /// Zero.
    pub reserved8: u8,
    /// Zero.
    pub reserved16: u16,
}

/// `struct spliff_tls_loss_event`, kind [`EventKind::TlsLoss`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TlsLossEvent {
    /// Common header.
    pub header: EventHeader,
    /// `SSL *`.
    pub ssl: u64,
    /// First missing byte.
    pub stream_offset: u64,
    /// Missing bytes.
    pub length: u64,
    /// Direction.
    pub direction: u8,
    /// `LOSS_*`.
    pub cause: u8,
    /// Zero.
    pub reserved16: u16,
    /// Zero.
    pub reserved32: u32,
}

/// `struct spliff_tls_conn_event`, kind [`EventKind::TlsConn`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TlsConnEvent {
    /// Common header.
    pub header: EventHeader,
    /// `SSL *`.
    pub ssl: u64,
    /// Kernel socket cookie, 0 unknown.
    pub socket_cookie: u64,
    /// File descriptor, -1 unknown.
    pub fd: i32,
    /// `AF_INET` 2, `AF_INET6` 10.
    pub family: u16,
    /// IP protocol.
    pub protocol: u16,
    /// Local port, host order.
    pub local_port: u16,
    /// Remote port, host order.
    pub remote_port: u16,
    /// `ROLE_*` or 0.
    pub role: u8,
    /// `CONN_HAS_*`.
    pub flags: u8,
    /// `LIB_*` or 0.
    pub library: u8,
    /// Zero.
    pub reserved8: u8,
    /// Local address, network order (IPv4 in the first 4 bytes).
    pub local_addr: [u8; 16],
    /// Remote address.
    pub remote_addr: [u8; 16],
    /// Comm of the calling task.
    pub comm: [u8; COMM_LEN],
}

/// `struct spliff_tls_handshake_event`, kind [`EventKind::TlsHandshake`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TlsHandshakeEvent {
    /// Common header; ts is the return.
    pub header: EventHeader,
    /// `SSL *`.
    pub ssl: u64,
    /// Entry of the first handshake call on this connection.
    pub start_ns: u64,
    /// Return value.
    pub ret: i32,
    /// Zero.
    pub reserved32: u32,
}

/// `struct spliff_tls_close_event`, kind [`EventKind::TlsClose`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TlsCloseEvent {
    /// Common header.
    pub header: EventHeader,
    /// `SSL *`.
    pub ssl: u64,
    /// Kernel's egress stream position at close.
    pub end_offset_egress: u64,
    /// Kernel's ingress stream position at close.
    pub end_offset_ingress: u64,
    /// `CLOSE_*`.
    pub reason: u32,
    /// Zero.
    pub reserved32: u32,
}

/// `struct spliff_tls_string_event`, kind [`EventKind::TlsString`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct TlsStringEvent {
    /// Common header.
    pub header: EventHeader,
    /// `SSL *`.
    pub ssl: u64,
    /// `STRING_*`.
    pub kind: u32,
    /// Valid bytes in `value`.
    pub len: u32,
    /// The string.
    pub value: [u8; STRING_MAX],
}

/// `SPLIFF_UNIX_PATH_MAX`: `sun_path`'s size, and the key of the paths map
/// (`struct spliff_unix_path_key`, which is exactly this many bytes: user space writes it
/// as `[u8; UNIX_PATH_MAX]`).
pub const UNIX_PATH_MAX: usize = 108;

/// `struct spliff_unix_conn_event`, kind [`EventKind::UnixConn`]. Its data,
/// loss and close come as TLS events whose `ssl` is this `sk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct UnixConnEvent {
    /// Common header.
    pub header: EventHeader,
    /// Kernel address of the `struct sock`.
    pub sk: u64,
    /// This end's socket inode.
    pub inode: u64,
    /// The other end's socket inode; 0 unknown.
    pub peer_inode: u64,
    /// `SO_PEERCRED`'s pid; 0 unknown.
    pub peer_pid: u32,
    /// File descriptor.
    pub fd: i32,
    /// `ROLE_CLIENT` (connected) or `ROLE_SERVER` (accepted).
    pub role: u8,
    /// Zero.
    pub reserved8: u8,
    /// Valid bytes in `path`.
    pub path_len: u16,
    /// Zero.
    pub reserved32: u32,
    /// Socket path; an abstract name starts with NUL.
    pub path: [u8; UNIX_PATH_MAX],
    /// Comm of the calling task.
    pub comm: [u8; COMM_LEN],
    /// Zero.
    pub reserved_tail: [u8; 4],
}

/// `SPLIFF_PACKET_SNAPLEN_MAX`: bytes of a packet copied at most.
pub const PACKET_SNAPLEN_MAX: usize = 256;
/// `SPLIFF_HOOK_XDP`.
pub const HOOK_XDP: u8 = 1;
/// `SPLIFF_HOOK_TC`.
pub const HOOK_TC: u8 = 2;
/// `SPLIFF_PACKET_RINGBUF_DEFAULT_BYTES`: default size of `spliff_packets`.
pub const PACKET_RINGBUF_DEFAULT_BYTES: u32 = 8 * 1024 * 1024;

/// `struct spliff_packet_event`, kind [`EventKind::Packet`]. Variable size
/// in the ring: only `captured_len` bytes of `data` are delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct PacketEvent {
    /// Common header; pid and tid are 0.
    pub header: EventHeader,
    /// TC egress: cookie of the sending socket; 0 unknown.
    pub socket_cookie: u64,
    /// Interface index in the recorder's network namespace.
    pub ifindex: u32,
    /// Length of the whole packet as the hook saw it.
    pub wire_len: u32,
    /// Valid bytes in `data`.
    pub captured_len: u16,
    /// [`DIR_INGRESS`] (received) or [`DIR_EGRESS`] (sent).
    pub direction: u8,
    /// `HOOK_*`.
    pub hook: u8,
    /// TC: `skb->protocol` (ethertype, host order); 0 for XDP.
    pub protocol: u16,
    /// Zero.
    pub reserved16: u16,
    /// The packet's first bytes, from the link-layer header (or the IP
    /// header on devices without one).
    pub data: [u8; PACKET_SNAPLEN_MAX],
}

/// Bytes of [`PacketEvent`] before `data`.
pub const PACKET_HEADER_LEN: usize = core::mem::offset_of!(PacketEvent, data);

/// `spliff_packet_iface.flags`: keep the parsed headers only (at most the snap length).
pub const IFACE_HEADERS_ONLY: u32 = 1;
/// `spliff_packet_iface.flags`: packets start at the IP header (devices without a
/// link-layer header).
pub const IFACE_NO_LINK_HEADER: u32 = 2;

/// `struct spliff_packet_iface`: per-CPU value of the `spliff_packet_ifaces` map, an
/// interface's settings (the same on every CPU) and that CPU's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PacketIface {
    /// Bytes kept per packet at most, 1..=[`PACKET_SNAPLEN_MAX`].
    pub snaplen: u32,
    /// `IFACE_*` bits.
    pub flags: u32,
    /// Packets the hooks saw.
    pub seen: u64,
    /// Packets put into the packet ring.
    pub written: u64,
    /// Packets lost because the packet ring was full.
    pub ring_full: u64,
    /// Wire bytes of the packets seen.
    pub bytes: u64,
}

/// `struct spliff_socket_event`, kind [`EventKind::Socket`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SocketEvent {
    /// Common header; `pid` is 0 unless [`SOCKET_HAS_OWNER`].
    pub header: EventHeader,
    /// Kernel socket cookie.
    pub cookie: u64,
    /// `SOCKET_*` op.
    pub op: u8,
    /// State before a [`SOCKET_STATE`] change, else 0.
    pub old_state: u8,
    /// State after a [`SOCKET_STATE`] change, else the current one.
    pub new_state: u8,
    /// `SOCKET_HAS_*`.
    pub flags: u8,
    /// `AF_INET` (2) or `AF_INET6` (10).
    pub family: u16,
    /// IP protocol (6).
    pub protocol: u16,
    /// Local port, host order.
    pub local_port: u16,
    /// Remote port, host order.
    pub remote_port: u16,
    /// Zero.
    pub reserved32: u32,
    /// Local address (IPv4 in the first 4 bytes), network order.
    pub local_addr: [u8; 16],
    /// Remote address, like `local_addr`.
    pub remote_addr: [u8; 16],
    /// Owner's comm with [`SOCKET_HAS_OWNER`], NUL padded.
    pub comm: [u8; COMM_LEN],
}

/// `SPLIFF_STOPPED_MAX`: entries of the `spliff_stopped` map; with it full
/// the kernel stops no process.
pub const STOPPED_MAX: u32 = 4096;

/// `struct spliff_stop_key`: key of the `spliff_stopped` map, one `SIGSTOP`
/// the exec program sent and nobody has continued yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct StopKey {
    /// The stopped process (tgid).
    pub pid: u32,
    /// Zero.
    pub reserved32: u32,
    /// `header.ts_ns` of the exec event that reported the stop.
    pub ts_ns: u64,
}

mod sealed {
    pub trait Sealed {}
}

/// ABI records: `#[repr(C)]`, only integers and integer arrays, no padding,
/// hence valid for every bit pattern and fully initialised. Sealed because
/// [`read`] and [`AbiRecord::as_bytes`] rely on exactly that.
pub trait AbiRecord: sealed::Sealed + Copy + 'static {
    /// The record's bytes as the kernel lays them out.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: implementors have no padding (checked by tests/abi_layout.rs),
        // so all size_of::<Self>() bytes are initialised.
        unsafe {
            core::slice::from_raw_parts((self as *const Self).cast::<u8>(), size_of::<Self>())
        }
    }
}

impl sealed::Sealed for EventHeader {}
impl AbiRecord for EventHeader {}
impl sealed::Sealed for ProcessExecEvent {}
impl AbiRecord for ProcessExecEvent {}
impl sealed::Sealed for TlsDataHead {}
impl AbiRecord for TlsDataHead {}
impl sealed::Sealed for TlsDataEvent {}
impl AbiRecord for TlsDataEvent {}
impl sealed::Sealed for TlsLossEvent {}
impl AbiRecord for TlsLossEvent {}
impl sealed::Sealed for TlsConnEvent {}
impl AbiRecord for TlsConnEvent {}
impl sealed::Sealed for TlsHandshakeEvent {}
impl AbiRecord for TlsHandshakeEvent {}
impl sealed::Sealed for TlsCloseEvent {}
impl AbiRecord for TlsCloseEvent {}
impl sealed::Sealed for TlsStringEvent {}
impl AbiRecord for TlsStringEvent {}
impl sealed::Sealed for PacketEvent {}
impl AbiRecord for PacketEvent {}
impl sealed::Sealed for PacketIface {}
impl AbiRecord for PacketIface {}
impl sealed::Sealed for SocketEvent {}
impl AbiRecord for SocketEvent {}
impl sealed::Sealed for UnixConnEvent {}
impl AbiRecord for UnixConnEvent {}
impl sealed::Sealed for StopKey {}
impl AbiRecord for StopKey {}

/// Reinterprets the first `size_of::<T>()` bytes as `T`, at any alignment;
/// `None` when `bytes` is shorter. Values are not validated.
pub fn read<T: AbiRecord>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: the length was checked, every bit pattern is a valid T
    // (AbiRecord), and read_unaligned has no alignment requirement.
    Some(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_round_trips_and_rejects_short_input() {
        let mut event = ProcessExecEvent::default();
        event.header.kind = EventKind::ProcessExec as u32;
        event.header.size = size_of::<ProcessExecEvent>() as u32;
        event.ppid = 7;
        event.filename[..3].copy_from_slice(b"/x\0");
        let bytes = event.as_bytes();
        assert_eq!(read::<ProcessExecEvent>(bytes), Some(event));
        assert_eq!(read::<EventHeader>(bytes), Some(event.header));
        assert_eq!(read::<ProcessExecEvent>(&bytes[..bytes.len() - 1]), None);

        // Misaligned input must work: ring buffer slices carry no alignment promise.
        let mut shifted = vec![0u8; bytes.len() + 1];
        shifted[1..].copy_from_slice(bytes);
        assert_eq!(read::<ProcessExecEvent>(&shifted[1..]), Some(event));
    }

    #[test]
    fn kinds_map_from_raw() {
        assert_eq!(EventKind::from_raw(EVENT_KIND_INVALID), None);
        assert_eq!(EventKind::from_raw(1), Some(EventKind::ProcessExec));
        assert_eq!(EventKind::from_raw(u32::MAX), None);
    }
}
