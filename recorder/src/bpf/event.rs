//! Decoding ring buffer records into owned events.
//!
//! Records come from the kernel programs, but they are still input: a stale
//! prebuilt object, a kernel bug or a future event kind must produce a
//! [`DecodeError`], never a panic or an out-of-bounds read.

use std::{ffi::OsStr, mem::size_of, os::unix::ffi::OsStrExt as _, path::PathBuf};

use spliff_recorder_ebpf::abi::{
    self, AbiRecord, CONN_HAS_FD, CONN_HAS_ROLE, CONN_HAS_SOCKET, DATA_CHUNK, DIR_EGRESS,
    DIR_INGRESS, EXEC_FILENAME_TRUNCATED, EXEC_FILENAME_UNREADABLE, EXEC_FORKED, EXEC_STOPPED,
    EventHeader, EventKind, ProcessExecEvent, STRING_MAX, TLS_DATA_HEADER_LEN, TlsCloseEvent,
    TlsConnEvent, TlsDataHead, TlsHandshakeEvent, TlsLossEvent, TlsStringEvent,
};
use spliff_recorder_ebpf::abi::{
    SOCKET_ACTIVE_ESTABLISHED, SOCKET_CONNECT, SOCKET_HAS_OWNER, SOCKET_PASSIVE_ESTABLISHED,
    SOCKET_STATE, SocketEvent,
};

/// An event from the kernel programs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A process completed `execve()`.
    ProcessExec(ProcessExec),
    /// Plaintext of a TLS read or write, or one piece of it.
    TlsData(TlsData),
    /// Bytes of a TLS stream the kernel could not copy.
    TlsLoss(TlsLoss),
    /// Socket and/or role of a connection.
    TlsConn(TlsConn),
    /// A handshake call returned.
    TlsHandshake(TlsHandshake),
    /// `SSL_shutdown` or `SSL_free`.
    TlsClose(TlsClose),
    /// SNI or ALPN of a connection.
    TlsString(TlsString),
    /// A TCP socket seen by sock_ops.
    TcpSocket(TcpSocket),
    /// First sight of a selected unix stream socket (`--unix`).
    UnixConn(super::UnixConn),
}

impl Event {
    /// `CLOCK_BOOTTIME` timestamp and (pid, tid) of the event.
    pub fn origin(&self) -> (u64, u32, u32) {
        match self {
            Self::ProcessExec(e) => (e.ts_boot_ns, e.pid, e.tid),
            Self::TlsData(e) => (e.ts_ns, e.pid, e.tid),
            Self::TlsLoss(e) => (e.ts_ns, e.pid, e.tid),
            Self::TlsConn(e) => (e.ts_ns, e.pid, e.tid),
            Self::TlsHandshake(e) => (e.ts_ns, e.pid, e.tid),
            Self::TlsClose(e) => (e.ts_ns, e.pid, e.tid),
            Self::TlsString(e) => (e.ts_ns, e.pid, e.tid),
            Self::TcpSocket(e) => (e.ts_ns, e.pid, 0),
            Self::UnixConn(e) => (e.ts_ns, e.pid, e.tid),
        }
    }
}

/// Direction of plaintext, from the process's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsDirection {
    /// Written by the process (`SSL_write`).
    Egress,
    /// Read by the process (`SSL_read`).
    Ingress,
}

/// Plaintext (kind `TlsData`). `ssl` is the `SSL *` in process `pid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsData {
    /// Entry (writes) or return (reads), `CLOCK_BOOTTIME`.
    pub ts_ns: u64,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// `SSL *`.
    pub ssl: u64,
    /// Direction.
    pub direction: TlsDirection,
    /// Offset of `payload[0]` in the kernel's stream count.
    pub stream_offset: u64,
    /// The bytes (at most `DATA_CHUNK`).
    pub payload: Vec<u8>,
}

/// Why the kernel could not copy bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsLossCause {
    /// Beyond the per-call copy limit.
    Truncated,
    /// The user memory could not be read.
    ReadFault,
    /// The ring buffer was full.
    RingBuffer,
}

/// Lost bytes (kind `TlsLoss`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsLoss {
    /// Time, `CLOCK_BOOTTIME`.
    pub ts_ns: u64,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// `SSL *`.
    pub ssl: u64,
    /// Direction.
    pub direction: TlsDirection,
    /// First missing byte.
    pub stream_offset: u64,
    /// Missing bytes.
    pub length: u64,
    /// Why.
    pub cause: TlsLossCause,
}

/// Socket of a connection as seen from its process (kind `TlsConn`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConn {
    /// Time, `CLOCK_BOOTTIME`.
    pub ts_ns: u64,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// `SSL *`.
    pub ssl: u64,
    /// Comm of the calling thread.
    pub comm: String,
    /// File descriptor, when known.
    pub fd: Option<i32>,
    /// Socket cookie, 0 unknown.
    pub socket_cookie: u64,
    /// IP protocol (6 TCP), 0 unknown.
    pub protocol: u8,
    /// Local and remote address, when the fd is an IP socket.
    pub addresses: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
    /// 1 client, 2 server, when known.
    pub role: Option<u8>,
    /// Whose probes saw it (`SPLIFF_LIB_*`, equal to the trace format's
    /// `tls_library`), when known.
    pub library: Option<u8>,
}

/// A handshake call returned (kind `TlsHandshake`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsHandshake {
    /// Return time, `CLOCK_BOOTTIME`.
    pub ts_ns: u64,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// `SSL *`.
    pub ssl: u64,
    /// Entry of the first handshake call of the connection.
    pub start_ns: u64,
    /// Return value.
    pub ret: i32,
}

/// `SSL_shutdown` (`freed` false) or `SSL_free` (kind `TlsClose`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsClose {
    /// Time, `CLOCK_BOOTTIME`.
    pub ts_ns: u64,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// `SSL *`.
    pub ssl: u64,
    /// `SSL_free`: the (pid, ssl) pair ends here.
    pub freed: bool,
    /// Kernel stream positions at close (egress, ingress).
    pub end_offsets: [u64; 2],
}

/// Which string a [`TlsString`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsStringKind {
    /// Server name indication.
    Sni,
    /// Negotiated ALPN protocol.
    Alpn,
}

/// SNI or ALPN (kind `TlsString`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsString {
    /// Time, `CLOCK_BOOTTIME`.
    pub ts_ns: u64,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// `SSL *`.
    pub ssl: u64,
    /// Which string.
    pub kind: TlsStringKind,
    /// The bytes.
    pub value: Vec<u8>,
}

/// A process completed `execve()` (tracepoint `sched/sched_process_exec`).
/// Ids are from the initial pid and user namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessExec {
    /// `CLOCK_BOOTTIME` nanoseconds at the exec.
    pub ts_boot_ns: u64,
    /// The process (tgid) that exec'd; unchanged by exec.
    pub pid: u32,
    /// The thread that exec'd; equals `pid` once exec has completed.
    pub tid: u32,
    /// The real parent's tgid.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// The new command name (at most 15 bytes, lossily decoded).
    pub comm: String,
    /// The path given to `execve()`, possibly relative; see the flags below.
    pub filename: PathBuf,
    /// `filename` holds only the start of a longer path.
    pub filename_truncated: bool,
    /// The kernel could not copy the path; `filename` is empty.
    pub filename_unreadable: bool,
    /// The kernel stopped the process (`SIGSTOP`) before its first
    /// instruction; whoever reads this must send it `SIGCONT`
    /// ([`PipelineOptions::stop_on_exec_comm`](crate::bpf::PipelineOptions)).
    pub stopped: bool,
    /// Not an exec: a selected process forked `pid` without exec (the child
    /// already runs; `filename` is empty).
    pub forked: bool,
}

/// A ring buffer record that does not hold a valid event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not even an event header.
    #[error("kernel record of {len} bytes is shorter than the {min}-byte event header")]
    TooShort {
        /// Bytes delivered.
        len: usize,
        /// Header size.
        min: usize,
    },
    /// The header's `size` disagrees with what the ring buffer delivered.
    #[error("kernel record header declares {declared} bytes but {len} were delivered")]
    SizeMismatch {
        /// `header.size`.
        declared: u32,
        /// Bytes delivered.
        len: usize,
    },
    /// A kind this build does not know (or 0).
    #[error("kernel record has unknown event kind {kind} ({len} bytes)")]
    UnknownKind {
        /// `header.kind`.
        kind: u32,
        /// Bytes delivered.
        len: usize,
    },
    /// A known kind with the wrong size: the object and this code disagree on
    /// the ABI (e.g. a stale prebuilt object).
    #[error(
        "{kind:?} event is {len} bytes, this build expects {expected}: the BPF object does not \
         match this build of spliff"
    )]
    WrongSize {
        /// The event kind.
        kind: EventKind,
        /// Bytes delivered.
        len: usize,
        /// `size_of` of the Rust mirror.
        expected: usize,
    },
    /// A field of a TLS event holds a value this build does not accept.
    #[error("{kind:?} event has invalid {field} = {value}")]
    InvalidField {
        /// The event kind.
        kind: EventKind,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// `filename_len` points past the filename buffer.
    #[error("exec event filename_len {len} exceeds the {max}-byte filename buffer")]
    FilenameLength {
        /// `filename_len`.
        len: u32,
        /// Usable bytes in the buffer (without the NUL).
        max: usize,
    },
}

/// Which sock_ops callback reported a [`TcpSocket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketOp {
    /// `connect()`, in the owner's context.
    Connect,
    /// The client's handshake completed.
    ActiveEstablished,
    /// An accepted socket's handshake completed.
    PassiveEstablished,
    /// A TCP state change from `old` to `new` (kernel TCP state numbers; 7 is close).
    State {
        /// State before.
        old: u8,
        /// State after.
        new: u8,
    },
}

/// A TCP socket as sock_ops saw it (kind `Socket`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSocket {
    /// Time, `CLOCK_BOOTTIME`.
    pub ts_ns: u64,
    /// Owning process; 0 when the callback ran outside the owner's context.
    pub pid: u32,
    /// Owner's comm; empty when `pid` is 0.
    pub comm: String,
    /// Kernel socket cookie (never 0 from a valid record).
    pub cookie: u64,
    /// What happened.
    pub op: SocketOp,
    /// IP protocol (6).
    pub protocol: u8,
    /// The socket's own address.
    pub local: std::net::SocketAddr,
    /// The peer's address.
    pub remote: std::net::SocketAddr,
}

/// The header of a ring record whose declared size is what the ring delivered: every ring's
/// decoder starts here, before it trusts anything else in the record.
pub(crate) fn checked_header(record: &[u8]) -> Result<EventHeader, DecodeError> {
    let len = record.len();
    let header: EventHeader = abi::read(record).ok_or(DecodeError::TooShort {
        len,
        min: size_of::<EventHeader>(),
    })?;
    if usize::try_from(header.size).ok() != Some(len) {
        return Err(DecodeError::SizeMismatch {
            declared: header.size,
            len,
        });
    }
    Ok(header)
}

/// Decodes one ring buffer record.
pub fn decode(record: &[u8]) -> Result<Event, DecodeError> {
    let len = record.len();
    let header = checked_header(record)?;
    match EventKind::from_raw(header.kind) {
        Some(EventKind::ProcessExec) => decode_exec(record).map(Event::ProcessExec),
        Some(EventKind::TlsData) => decode_data(record).map(Event::TlsData),
        Some(kind @ EventKind::TlsLoss) => {
            let raw: TlsLossEvent = fixed(record, kind)?;
            let cause = match raw.cause {
                abi::LOSS_TRUNCATED => TlsLossCause::Truncated,
                abi::LOSS_READ_FAULT => TlsLossCause::ReadFault,
                abi::LOSS_RINGBUF => TlsLossCause::RingBuffer,
                other => return Err(invalid(kind, "cause", other.into())),
            };
            Ok(Event::TlsLoss(TlsLoss {
                ts_ns: raw.header.ts_ns,
                pid: raw.header.pid,
                tid: raw.header.tid,
                ssl: raw.ssl,
                direction: direction(kind, raw.direction)?,
                stream_offset: raw.stream_offset,
                length: raw.length,
                cause,
            }))
        }
        Some(kind @ EventKind::TlsConn) => {
            let raw: TlsConnEvent = fixed(record, kind)?;
            Ok(Event::TlsConn(decode_conn(&raw)))
        }
        Some(kind @ EventKind::TlsHandshake) => {
            let raw: TlsHandshakeEvent = fixed(record, kind)?;
            Ok(Event::TlsHandshake(TlsHandshake {
                ts_ns: raw.header.ts_ns,
                pid: raw.header.pid,
                tid: raw.header.tid,
                ssl: raw.ssl,
                start_ns: raw.start_ns,
                ret: raw.ret,
            }))
        }
        Some(kind @ EventKind::TlsClose) => {
            let raw: TlsCloseEvent = fixed(record, kind)?;
            let freed = match raw.reason {
                abi::CLOSE_SHUTDOWN => false,
                abi::CLOSE_FREE => true,
                other => return Err(invalid(kind, "reason", other.into())),
            };
            Ok(Event::TlsClose(TlsClose {
                ts_ns: raw.header.ts_ns,
                pid: raw.header.pid,
                tid: raw.header.tid,
                ssl: raw.ssl,
                freed,
                end_offsets: [raw.end_offset_egress, raw.end_offset_ingress],
            }))
        }
        Some(kind @ EventKind::TlsString) => {
            let raw: TlsStringEvent = fixed(record, kind)?;
            let which = match raw.kind {
                abi::STRING_SNI => TlsStringKind::Sni,
                abi::STRING_ALPN => TlsStringKind::Alpn,
                other => return Err(invalid(kind, "kind", other.into())),
            };
            let len = usize::try_from(raw.len)
                .ok()
                .filter(|&n| n <= STRING_MAX)
                .ok_or(invalid(kind, "len", raw.len.into()))?;
            Ok(Event::TlsString(TlsString {
                ts_ns: raw.header.ts_ns,
                pid: raw.header.pid,
                tid: raw.header.tid,
                ssl: raw.ssl,
                kind: which,
                value: raw.value[..len].to_vec(),
            }))
        }
        Some(kind @ EventKind::Socket) => {
            let raw: SocketEvent = fixed(record, kind)?;
            decode_socket(&raw).map(Event::TcpSocket)
        }
        Some(EventKind::UnixConn) => {
            super::unix_socket::decode_unix_conn(record).map(Event::UnixConn)
        }
        // Packets have their own ring (packet_hooks::PacketRing); one here
        // is as wrong as an unknown kind.
        Some(EventKind::Packet) | None => Err(DecodeError::UnknownKind {
            kind: header.kind,
            len,
        }),
    }
}

pub(super) fn invalid(kind: EventKind, field: &'static str, value: u64) -> DecodeError {
    DecodeError::InvalidField { kind, field, value }
}

/// A fixed-size record of `kind`: exactly `size_of::<T>()` bytes.
pub(super) fn fixed<T: AbiRecord>(record: &[u8], kind: EventKind) -> Result<T, DecodeError> {
    let expected = size_of::<T>();
    if record.len() != expected {
        return Err(DecodeError::WrongSize {
            kind,
            len: record.len(),
            expected,
        });
    }
    abi::read(record).ok_or(DecodeError::WrongSize {
        kind,
        len: record.len(),
        expected,
    })
}

fn direction(kind: EventKind, raw: u8) -> Result<TlsDirection, DecodeError> {
    match raw {
        DIR_EGRESS => Ok(TlsDirection::Egress),
        DIR_INGRESS => Ok(TlsDirection::Ingress),
        other => Err(invalid(kind, "direction", other.into())),
    }
}

/// Data records are variable-sized: the fixed head, then `data_len` bytes.
fn decode_data(record: &[u8]) -> Result<TlsData, DecodeError> {
    let kind = EventKind::TlsData;
    let head: TlsDataHead = abi::read(record).ok_or(DecodeError::WrongSize {
        kind,
        len: record.len(),
        expected: TLS_DATA_HEADER_LEN,
    })?;
    let len = usize::try_from(head.data_len)
        .ok()
        .filter(|&n| n <= DATA_CHUNK)
        .ok_or(invalid(kind, "data_len", head.data_len.into()))?;
    let payload = record
        .get(TLS_DATA_HEADER_LEN..)
        .filter(|rest| rest.len() == len)
        .ok_or(DecodeError::WrongSize {
            kind,
            len: record.len(),
            expected: TLS_DATA_HEADER_LEN + len,
        })?;
    Ok(TlsData {
        ts_ns: head.header.ts_ns,
        pid: head.header.pid,
        tid: head.header.tid,
        ssl: head.ssl,
        direction: direction(kind, head.direction)?,
        stream_offset: head.stream_offset,
        payload: payload.to_vec(),
    })
}

fn decode_conn(raw: &TlsConnEvent) -> TlsConn {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    const AF_INET: u16 = 2;
    const AF_INET6: u16 = 10;
    let ip = |bytes: &[u8; 16]| match raw.family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*bytes))),
        _ => None,
    };
    let addresses = if raw.flags & CONN_HAS_SOCKET != 0 {
        ip(&raw.local_addr)
            .zip(ip(&raw.remote_addr))
            .map(|(local, remote)| {
                (
                    SocketAddr::new(local, raw.local_port),
                    SocketAddr::new(remote, raw.remote_port),
                )
            })
    } else {
        None
    };
    let comm_len = raw
        .comm
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(raw.comm.len());
    TlsConn {
        ts_ns: raw.header.ts_ns,
        pid: raw.header.pid,
        tid: raw.header.tid,
        ssl: raw.ssl,
        comm: String::from_utf8_lossy(&raw.comm[..comm_len]).into_owned(),
        fd: (raw.flags & CONN_HAS_FD != 0 && raw.fd >= 0).then_some(raw.fd),
        socket_cookie: if raw.flags & CONN_HAS_SOCKET != 0 {
            raw.socket_cookie
        } else {
            0
        },
        protocol: if raw.flags & CONN_HAS_SOCKET != 0 {
            u8::try_from(raw.protocol).unwrap_or(0)
        } else {
            0
        },
        addresses,
        role: (raw.flags & CONN_HAS_ROLE != 0 && raw.role != 0).then_some(raw.role),
        library: (raw.library != 0).then_some(raw.library),
    }
}

fn decode_socket(raw: &SocketEvent) -> Result<TcpSocket, DecodeError> {
    let kind = EventKind::Socket;
    let op = match raw.op {
        SOCKET_CONNECT => SocketOp::Connect,
        SOCKET_ACTIVE_ESTABLISHED => SocketOp::ActiveEstablished,
        SOCKET_PASSIVE_ESTABLISHED => SocketOp::PassiveEstablished,
        SOCKET_STATE => SocketOp::State {
            old: raw.old_state,
            new: raw.new_state,
        },
        other => return Err(invalid(kind, "op", other.into())),
    };
    if raw.cookie == 0 {
        return Err(invalid(kind, "cookie", 0));
    }
    let (local, remote) = ip_pair(raw.family, &raw.local_addr, &raw.remote_addr).ok_or(invalid(
        kind,
        "family",
        raw.family.into(),
    ))?;
    let protocol =
        u8::try_from(raw.protocol).map_err(|_| invalid(kind, "protocol", raw.protocol.into()))?;
    let owner = raw.flags & SOCKET_HAS_OWNER != 0;
    Ok(TcpSocket {
        ts_ns: raw.header.ts_ns,
        pid: if owner { raw.header.pid } else { 0 },
        comm: if owner {
            comm_string(&raw.comm)
        } else {
            String::new()
        },
        cookie: raw.cookie,
        op,
        protocol,
        local: std::net::SocketAddr::new(local, raw.local_port),
        remote: std::net::SocketAddr::new(remote, raw.remote_port),
    })
}

/// Local and remote IP of an ABI address pair (IPv4 in the first 4 bytes).
fn ip_pair(
    family: u16,
    local: &[u8; 16],
    remote: &[u8; 16],
) -> Option<(std::net::IpAddr, std::net::IpAddr)> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = |bytes: &[u8; 16]| match family {
        2 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        10 => Some(IpAddr::V6(Ipv6Addr::from(*bytes))),
        _ => None,
    };
    ip(local).zip(ip(remote))
}

pub(super) fn comm_string(comm: &[u8]) -> String {
    let len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..len]).into_owned()
}

fn decode_exec(record: &[u8]) -> Result<ProcessExec, DecodeError> {
    let expected = size_of::<ProcessExecEvent>();
    let wrong_size = DecodeError::WrongSize {
        kind: EventKind::ProcessExec,
        len: record.len(),
        expected,
    };
    if record.len() != expected {
        return Err(wrong_size);
    }
    let raw: ProcessExecEvent = abi::read(record).ok_or(wrong_size)?;

    // One byte of the buffer is always the NUL.
    let max = raw.filename.len() - 1;
    let filename = usize::try_from(raw.filename_len)
        .ok()
        .filter(|&n| n <= max)
        .and_then(|n| raw.filename.get(..n))
        .ok_or(DecodeError::FilenameLength {
            len: raw.filename_len,
            max,
        })?;
    let comm_len = raw
        .comm
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(raw.comm.len());

    Ok(ProcessExec {
        ts_boot_ns: raw.header.ts_ns,
        pid: raw.header.pid,
        tid: raw.header.tid,
        ppid: raw.ppid,
        uid: raw.uid,
        comm: String::from_utf8_lossy(&raw.comm[..comm_len]).into_owned(),
        filename: PathBuf::from(OsStr::from_bytes(filename)),
        filename_truncated: raw.flags & EXEC_FILENAME_TRUNCATED != 0,
        filename_unreadable: raw.flags & EXEC_FILENAME_UNREADABLE != 0,
        stopped: raw.flags & EXEC_STOPPED != 0,
        forked: raw.flags & EXEC_FORKED != 0,
    })
}

#[cfg(test)]
mod tests {
    use spliff_recorder_ebpf::abi::{AbiRecord as _, FILENAME_MAX};

    use super::*;

    fn exec_record(filename: &[u8]) -> ProcessExecEvent {
        let mut raw = ProcessExecEvent {
            header: EventHeader {
                kind: EventKind::ProcessExec as u32,
                size: size_of::<ProcessExecEvent>() as u32,
                ts_ns: 42,
                pid: 100,
                tid: 100,
            },
            ppid: 1,
            uid: 1000,
            filename_len: filename.len() as u32,
            ..ProcessExecEvent::default()
        };
        raw.comm[..4].copy_from_slice(b"true");
        raw.filename[..filename.len()].copy_from_slice(filename);
        raw
    }

    #[test]
    fn decodes_an_exec_record() {
        let raw = exec_record(b"/bin/true");
        let Ok(Event::ProcessExec(exec)) = decode(raw.as_bytes()) else {
            panic!("valid record rejected");
        };
        assert_eq!(
            exec,
            ProcessExec {
                ts_boot_ns: 42,
                pid: 100,
                tid: 100,
                ppid: 1,
                uid: 1000,
                comm: "true".into(),
                filename: "/bin/true".into(),
                filename_truncated: false,
                filename_unreadable: false,
                stopped: false,
                forked: false,
            }
        );
    }

    #[test]
    fn full_comm_without_nul_and_flags_are_kept() {
        let mut raw = exec_record(b"x");
        raw.comm = *b"0123456789abcdef";
        raw.flags = EXEC_FILENAME_TRUNCATED | 0x8000_0000;
        let Ok(Event::ProcessExec(exec)) = decode(raw.as_bytes()) else {
            panic!("valid record rejected");
        };
        assert_eq!(exec.comm, "0123456789abcdef");
        assert!(exec.filename_truncated && !exec.filename_unreadable);
        assert!(!exec.stopped && !exec.forked);
        raw.flags = EXEC_STOPPED;
        let Ok(Event::ProcessExec(exec)) = decode(raw.as_bytes()) else {
            panic!("valid record rejected");
        };
        assert!(exec.stopped && !exec.forked);
        raw.flags = EXEC_FORKED;
        let Ok(Event::ProcessExec(exec)) = decode(raw.as_bytes()) else {
            panic!("valid record rejected");
        };
        assert!(exec.forked && !exec.stopped);
    }

    #[test]
    fn rejects_malformed_records() {
        let raw = exec_record(b"/bin/true");
        let bytes = raw.as_bytes();
        let len = bytes.len();

        assert_eq!(
            decode(&bytes[..10]),
            Err(DecodeError::TooShort { len: 10, min: 24 })
        );
        assert_eq!(
            decode(&bytes[..len - 8]),
            Err(DecodeError::SizeMismatch {
                declared: len as u32,
                len: len - 8
            })
        );

        let mut unknown = raw;
        unknown.header.kind = 0;
        assert!(matches!(
            decode(unknown.as_bytes()),
            Err(DecodeError::UnknownKind { kind: 0, .. })
        ));

        // A consistent header but an exec body of the wrong size.
        let mut short = bytes[..len - 8].to_vec();
        short[4..8].copy_from_slice(&((len - 8) as u32).to_ne_bytes());
        assert!(matches!(
            decode(&short),
            Err(DecodeError::WrongSize { expected, .. }) if expected == len
        ));

        for bad in [FILENAME_MAX as u32, u32::MAX] {
            let mut overlong = raw;
            overlong.filename_len = bad;
            assert_eq!(
                decode(overlong.as_bytes()),
                Err(DecodeError::FilenameLength {
                    len: bad,
                    max: FILENAME_MAX - 1
                })
            );
        }
    }

    fn socket_record() -> SocketEvent {
        let mut raw = SocketEvent {
            header: EventHeader {
                kind: EventKind::Socket as u32,
                size: size_of::<SocketEvent>() as u32,
                ts_ns: 7,
                pid: 300,
                tid: 301,
            },
            cookie: 0x1234,
            op: SOCKET_CONNECT,
            new_state: 2,
            flags: SOCKET_HAS_OWNER,
            family: 2,
            protocol: 6,
            local_port: 40000,
            remote_port: 443,
            ..SocketEvent::default()
        };
        raw.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        raw.remote_addr[..4].copy_from_slice(&[127, 0, 0, 2]);
        raw.comm[..4].copy_from_slice(b"curl");
        raw
    }

    #[test]
    fn decodes_socket_records_and_drops_the_owner_outside_its_context() {
        let raw = socket_record();
        let Ok(Event::TcpSocket(socket)) = decode(raw.as_bytes()) else {
            panic!("valid record rejected");
        };
        assert_eq!(
            socket,
            TcpSocket {
                ts_ns: 7,
                pid: 300,
                comm: "curl".into(),
                cookie: 0x1234,
                op: SocketOp::Connect,
                protocol: 6,
                local: "127.0.0.1:40000".parse().unwrap(),
                remote: "127.0.0.2:443".parse().unwrap(),
            }
        );
        let mut passive = raw;
        passive.op = SOCKET_STATE;
        passive.old_state = 1;
        passive.new_state = 7;
        passive.flags = 0;
        passive.family = 10;
        passive.local_addr = std::net::Ipv6Addr::LOCALHOST.octets();
        passive.remote_addr = std::net::Ipv6Addr::LOCALHOST.octets();
        let Ok(Event::TcpSocket(socket)) = decode(passive.as_bytes()) else {
            panic!("valid record rejected");
        };
        assert_eq!((socket.pid, socket.comm.as_str()), (0, ""));
        assert_eq!(socket.op, SocketOp::State { old: 1, new: 7 });
        assert_eq!(socket.local, "[::1]:40000".parse().unwrap());
    }

    #[test]
    fn rejects_socket_records_with_bad_fields() {
        for (field, mutate) in [
            (
                "op",
                (|r: &mut SocketEvent| r.op = 0) as fn(&mut SocketEvent),
            ),
            ("cookie", |r| r.cookie = 0),
            ("family", |r| r.family = 1),
            ("protocol", |r| r.protocol = 300),
        ] {
            let mut raw = socket_record();
            mutate(&mut raw);
            assert!(
                matches!(
                    decode(raw.as_bytes()),
                    Err(DecodeError::InvalidField { field: f, .. }) if f == field
                ),
                "{field}"
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Cheap deterministic fuzz: every prefix of a valid record, each byte
        // of it flipped, and a few fill patterns.
        let raw = exec_record(b"/usr/bin/env");
        let bytes = raw.as_bytes().to_vec();
        for end in 0..=bytes.len() {
            let _ = decode(&bytes[..end]);
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0xff;
            let _ = decode(&flipped);
        }
        for fill in [0x00, 0x01, 0x7f, 0xff] {
            let _ = decode(&vec![fill; bytes.len()]);
        }
    }
}
