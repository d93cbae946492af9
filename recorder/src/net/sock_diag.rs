//! Warm-up: the TCP sockets that exist when a capture starts, from the kernel's socket table
//! (NETLINK_SOCK_DIAG, inet_diag), with their owners from /proc/*/fd.
//!
//! sock_ops only reports sockets at connect, establishment and state changes, so a
//! connection opened before the capture is never reported by it; without warm-up its TLS
//! records would have no cookie to join on. The dump asks for every socket's cookie, which
//! also makes the kernel assign one to sockets that had none yet, so the TLS probes' fd walk
//! reads the same value later. Every network namespace some process uses is dumped (a
//! netlink socket lists the sockets of the namespace it was created in).

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    io,
    net::SocketAddr,
    os::fd::{AsRawFd as _, OwnedFd},
    os::unix::fs::MetadataExt as _,
    path::PathBuf,
    time::Duration,
};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
};
use netlink_sys::{
    Socket as NetlinkSocket, SocketAddr as NetlinkAddr, protocols::NETLINK_SOCK_DIAG,
};

use super::socket_table::{FiveTuple, SocketTable};

/// A dump that takes longer than this is a kernel that does not answer.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a dump failed.
#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    /// The netlink socket could not be opened or used.
    #[error("sock_diag netlink socket ({what}): {source}")]
    Socket {
        /// The operation.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The kernel refused the request.
    #[error("the kernel refused the sock_diag dump of {family} TCP sockets: {source}")]
    Refused {
        /// IPv4 or IPv6.
        family: &'static str,
        /// The error it sent.
        source: io::Error,
    },
    /// A reply could not be parsed.
    #[error("malformed sock_diag reply ({len} bytes at offset {offset}): {detail}")]
    Malformed {
        /// Where in the datagram.
        offset: usize,
        /// Datagram length.
        len: usize,
        /// What the parser said.
        detail: String,
    },
    /// Entering another network namespace failed.
    #[error("cannot enter the network namespace of pid {pid} ({path}): {source}")]
    Namespace {
        /// A process in it.
        pid: u32,
        /// Its ns file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// One TCP socket from the kernel's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagSocket {
    /// Socket cookie.
    pub cookie: u64,
    /// Protocol, local and remote address.
    pub tuple: FiveTuple,
    /// TCP state (1 established ...).
    pub state: u8,
    /// Inode of the socket file; 0 when no process holds it (orphaned).
    pub inode: u32,
}

/// What warm-up found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WarmUp {
    /// Network namespaces dumped.
    pub namespaces: usize,
    /// Sockets added to the table.
    pub sockets: usize,
    /// Of those, how many an owner process was found for.
    pub owned: usize,
    /// Namespaces that could not be dumped, with why.
    pub problems: Vec<String>,
}

/// Puts every connected TCP socket of every network namespace in use into `table`, with
/// its owner where a process holds it.
pub fn warm_up(table: &mut SocketTable) -> WarmUp {
    let mut report = WarmUp::default();
    let mut sockets = Vec::new();
    for (pid, path) in network_namespaces() {
        let dumped = match pid {
            None => dump_tcp(),
            Some(pid) => in_namespace(pid, path, dump_tcp),
        };
        match dumped {
            Ok(found) => {
                report.namespaces += 1;
                sockets.extend(found);
            }
            Err(error) => report.problems.push(error.to_string()),
        }
    }
    let inodes: HashSet<u32> = sockets
        .iter()
        .map(|s| s.inode)
        .filter(|&i| i != 0)
        .collect();
    let owners = socket_owners(&inodes);
    for socket in &sockets {
        let owner = owners.get(&socket.inode);
        let (pid, comm) = owner.map_or((0, ""), |(pid, comm)| (*pid, comm.as_str()));
        table.upsert(socket.tuple, socket.cookie, pid, comm);
        report.sockets += 1;
        report.owned += usize::from(owner.is_some());
    }
    report
}

/// Every connected TCP socket (IPv4 and IPv6) of the current thread's network namespace.
pub fn dump_tcp() -> Result<Vec<DiagSocket>, SockDiagError> {
    let mut socket =
        NetlinkSocket::new(NETLINK_SOCK_DIAG).map_err(|source| SockDiagError::Socket {
            what: "open",
            source,
        })?;
    socket.bind_auto().map_err(|source| SockDiagError::Socket {
        what: "bind",
        source,
    })?;
    socket
        .connect(&NetlinkAddr::new(0, 0))
        .map_err(|source| SockDiagError::Socket {
            what: "connect",
            source,
        })?;
    set_recv_timeout(&socket, RECV_TIMEOUT).map_err(|source| SockDiagError::Socket {
        what: "SO_RCVTIMEO",
        source,
    })?;
    let mut sockets = Vec::new();
    for (family, name) in [(AF_INET, "IPv4"), (AF_INET6, "IPv6")] {
        request(&socket, family)?;
        receive(&socket, name, &mut sockets)?;
    }
    Ok(sockets)
}

fn request(socket: &NetlinkSocket, family: u8) -> Result<(), SockDiagError> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut packet = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            // Listening sockets have no peer, time-wait ones no owner and no future.
            states: StateFlags::all() - StateFlags::LISTEN - StateFlags::TIME_WAIT,
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket
        .send(&buf, 0)
        .map_err(|source| SockDiagError::Socket {
            what: "send",
            source,
        })?;
    Ok(())
}

fn receive(
    socket: &NetlinkSocket,
    family: &'static str,
    sockets: &mut Vec<DiagSocket>,
) -> Result<(), SockDiagError> {
    loop {
        let (datagram, _) = socket
            .recv_from_full()
            .map_err(|source| SockDiagError::Socket {
                what: "receive",
                source,
            })?;
        if datagram.is_empty() {
            return Err(SockDiagError::Malformed {
                offset: 0,
                len: 0,
                detail: "empty datagram before the end of the dump".into(),
            });
        }
        if parse_datagram(&datagram, family, sockets)? {
            return Ok(());
        }
    }
}

/// Parses the messages of one datagram into `sockets`; `true` once the dump is done.
fn parse_datagram(
    datagram: &[u8],
    family: &'static str,
    sockets: &mut Vec<DiagSocket>,
) -> Result<bool, SockDiagError> {
    let mut offset = 0;
    while offset < datagram.len() {
        let malformed = |detail: String| SockDiagError::Malformed {
            offset,
            len: datagram.len(),
            detail,
        };
        let message = NetlinkMessage::<SockDiagMessage>::deserialize(&datagram[offset..])
            .map_err(|e| malformed(e.to_string()))?;
        let length = message.header.length as usize;
        match message.payload {
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(error) => {
                return Err(SockDiagError::Refused {
                    family,
                    source: error.to_io(),
                });
            }
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                let id = &response.header.socket_id;
                let cookie = cookie(&id.cookie);
                if cookie != 0 {
                    sockets.push(DiagSocket {
                        cookie,
                        tuple: FiveTuple {
                            protocol: 6,
                            local: SocketAddr::new(id.source_address, id.source_port),
                            remote: SocketAddr::new(id.destination_address, id.destination_port),
                        },
                        state: response.header.state,
                        inode: response.header.inode,
                    });
                }
            }
            _ => {}
        }
        // A zero length would loop forever; netlink messages are 4-byte aligned.
        if length == 0 {
            return Err(malformed("message of length 0".into()));
        }
        offset += length.div_ceil(4) * 4;
    }
    Ok(false)
}

/// inet_diag's cookie: two u32 in host order, low half first.
fn cookie(raw: &[u8; 8]) -> u64 {
    let low = u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let high = u32::from_ne_bytes([raw[4], raw[5], raw[6], raw[7]]);
    u64::from(high) << 32 | u64::from(low)
}

fn set_recv_timeout(socket: &NetlinkSocket, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    };
    // SAFETY: a valid fd and a timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Network namespaces in use: `None` for the recorder's own, else one process in each other
/// one and its ns file.
fn network_namespaces() -> Vec<(Option<u32>, PathBuf)> {
    let own = std::fs::metadata("/proc/self/ns/net").map(|m| m.ino()).ok();
    let mut seen: HashSet<u64> = own.into_iter().collect();
    let mut namespaces = vec![(None, PathBuf::from("/proc/self/ns/net"))];
    for pid in pids() {
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        if let Ok(meta) = std::fs::metadata(&path)
            && seen.insert(meta.ino())
        {
            namespaces.push((Some(pid), path));
        }
    }
    namespaces
}

/// Runs `f` on a thread that entered the network namespace at `path` (only that thread
/// moves; the recorder stays where it is).
fn in_namespace<T: Send + 'static>(
    pid: u32,
    path: PathBuf,
    f: fn() -> Result<T, SockDiagError>,
) -> Result<T, SockDiagError> {
    let error_path = path.clone();
    let namespace_error = move |source| SockDiagError::Namespace {
        pid,
        path: error_path.clone(),
        source,
    };
    let file = File::open(&path).map_err(&namespace_error)?;
    let fd = OwnedFd::from(file);
    std::thread::spawn(move || {
        // SAFETY: a valid namespace fd; setns only affects this thread.
        if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(namespace_error(io::Error::last_os_error()));
        }
        f()
    })
    .join()
    .unwrap_or_else(|_| {
        Err(SockDiagError::Socket {
            what: "namespace thread",
            source: io::Error::other("panicked"),
        })
    })
}

fn pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Owner (pid, comm) of each socket inode in `wanted`, from /proc/*/fd. A socket shared by
/// several processes (fork) goes to the lowest pid, usually the one that made it.
pub fn socket_owners(wanted: &HashSet<u32>) -> HashMap<u32, (u32, String)> {
    let mut owners: HashMap<u32, (u32, String)> = HashMap::new();
    if wanted.is_empty() {
        return owners;
    }
    let mut pids = pids();
    pids.sort_unstable();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let mut comm = None;
        for fd in fds.filter_map(Result::ok) {
            let Some(inode) = std::fs::read_link(fd.path())
                .ok()
                .and_then(|target| socket_inode(target.to_str()?))
            else {
                continue;
            };
            if !wanted.contains(&inode) || owners.contains_key(&inode) {
                continue;
            }
            let comm = comm.get_or_insert_with(|| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim_end_matches('\n').to_string())
                    .unwrap_or_default()
            });
            owners.insert(inode, (pid, comm.clone()));
        }
        if owners.len() == wanted.len() {
            break;
        }
    }
    owners
}

/// The inode of an fd link target `socket:[12345]`.
fn socket_inode(target: &str) -> Option<u32> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links_give_inodes() {
        assert_eq!(socket_inode("socket:[4026]"), Some(4026));
        for other in [
            "pipe:[1]",
            "socket:[]",
            "socket:[x]",
            "/dev/null",
            "socket:[1",
        ] {
            assert_eq!(socket_inode(other), None, "{other}");
        }
    }

    #[test]
    fn cookies_are_low_half_first() {
        let mut raw = [0u8; 8];
        raw[..4].copy_from_slice(&0x89ab_cdefu32.to_ne_bytes());
        raw[4..].copy_from_slice(&0x0123_4567u32.to_ne_bytes());
        assert_eq!(cookie(&raw), 0x0123_4567_89ab_cdef);
    }

    #[test]
    fn garbage_datagrams_are_errors_not_panics() {
        let mut sockets = Vec::new();
        for datagram in [
            &[0u8; 3][..],
            &[0u8; 16][..],
            &[0xffu8; 40][..],
            &[16, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        ] {
            let _ = parse_datagram(datagram, "IPv4", &mut sockets);
        }
        assert!(sockets.is_empty());
    }
}
