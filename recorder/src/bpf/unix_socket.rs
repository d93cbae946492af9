//! Unix stream sockets (`--unix`): their connection event, and attaching the
//! syscall programs that record them. Their bytes arrive as TLS data, loss
//! and close events keyed by the socket's kernel address (see
//! `spliff_abi.h`), so everything after decoding treats them as any other
//! connection.

use aya::maps::{Array, HashMap as BpfHashMap};
use spliff_recorder_ebpf::{
    abi::{EventKind, UNIX_PATH_MAX, UnixConnEvent},
    names,
};

use super::{
    BpfError, BpfPipeline, attach_raw_tracepoint,
    event::{DecodeError, comm_string, fixed, invalid},
    map_error, map_mut,
};

/// First sight of a selected unix stream socket in a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixConn {
    /// Time, `CLOCK_BOOTTIME`.
    pub ts_ns: u64,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// The socket's kernel address: the `ssl` of its data events.
    pub sk: u64,
    /// Comm of the calling thread.
    pub comm: String,
    /// File descriptor.
    pub fd: i32,
    /// This end's socket inode.
    pub inode: u64,
    /// The other end's socket inode, 0 unknown.
    pub peer_inode: u64,
    /// The peer process (`SO_PEERCRED`), 0 unknown.
    pub peer_pid: u32,
    /// 1 client (connected), 2 server (accepted).
    pub role: u8,
    /// Socket path; an abstract name starts with NUL; empty when unnamed.
    pub path: Vec<u8>,
}

pub(super) fn decode_unix_conn(record: &[u8]) -> Result<UnixConn, DecodeError> {
    let kind = EventKind::UnixConn;
    let raw: UnixConnEvent = fixed(record, kind)?;
    let len = usize::from(raw.path_len);
    if len > UNIX_PATH_MAX {
        return Err(invalid(kind, "path_len", len as u64));
    }
    Ok(UnixConn {
        ts_ns: raw.header.ts_ns,
        pid: raw.header.pid,
        tid: raw.header.tid,
        sk: raw.sk,
        comm: comm_string(&raw.comm),
        fd: raw.fd,
        inode: raw.inode,
        peer_inode: raw.peer_inode,
        peer_pid: raw.peer_pid,
        role: raw.role,
        path: raw.path[..len].to_vec(),
    })
}

/// Which unix stream sockets `--unix` records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnixSelection {
    /// Every one (`--unix any`).
    pub any: bool,
    /// Those whose path (an abstract name: NUL, then the name) is one of these.
    pub paths: Vec<Vec<u8>>,
}

impl BpfPipeline {
    /// Fills the kernel's selection and attaches the unix socket programs to
    /// the syscall tracepoints. Without this call they are not even loaded,
    /// so a capture without `--unix` pays nothing for them.
    pub fn attach_unix(&mut self, selection: &UnixSelection) -> Result<(), BpfError> {
        {
            let map = map_mut(&mut self.ebpf, names::UNIX_PATHS_MAP)?;
            let mut paths = BpfHashMap::<_, [u8; UNIX_PATH_MAX], u8>::try_from(map)
                .map_err(map_error(names::UNIX_PATHS_MAP))?;
            for path in &selection.paths {
                let mut key = [0u8; UNIX_PATH_MAX];
                let n = path.len().min(UNIX_PATH_MAX);
                key[..n].copy_from_slice(&path[..n]);
                paths
                    .insert(key, 1, 0)
                    .map_err(map_error(names::UNIX_PATHS_MAP))?;
            }
        }
        {
            let map = map_mut(&mut self.ebpf, names::UNIX_ANY_MAP)?;
            let mut any = Array::<_, u32>::try_from(map).map_err(map_error(names::UNIX_ANY_MAP))?;
            any.set(0, u32::from(selection.any), 0)
                .map_err(map_error(names::UNIX_ANY_MAP))?;
        }
        // Exit first: an entry saved before its exit program runs would only
        // wait in the LRU map.
        attach_raw_tracepoint(
            &mut self.ebpf,
            names::UNIX_SYS_EXIT_PROGRAM,
            names::SYS_EXIT_RAW_TRACEPOINT,
        )?;
        attach_raw_tracepoint(
            &mut self.ebpf,
            names::UNIX_SYS_ENTER_PROGRAM,
            names::SYS_ENTER_RAW_TRACEPOINT,
        )
    }
}

#[cfg(test)]
mod tests {
    use spliff_recorder_ebpf::abi::{AbiRecord as _, COMM_LEN, EventHeader};

    use super::*;
    use crate::bpf::{Event, decode};

    fn raw(path: &[u8], path_len: u16) -> UnixConnEvent {
        let mut event = UnixConnEvent {
            header: EventHeader {
                kind: EventKind::UnixConn as u32,
                size: size_of::<UnixConnEvent>() as u32,
                ts_ns: 5,
                pid: 10,
                tid: 11,
            },
            sk: 0xffff_8880_0000_1000,
            inode: 7,
            peer_inode: 8,
            peer_pid: 9,
            fd: 3,
            role: 2,
            reserved8: 0,
            path_len,
            reserved32: 0,
            path: [0; UNIX_PATH_MAX],
            comm: [0; COMM_LEN],
            reserved_tail: [0; 4],
        };
        event.path[..path.len()].copy_from_slice(path);
        event.comm[..4].copy_from_slice(b"dock");
        event
    }

    #[test]
    fn decodes_a_unix_connection_and_rejects_a_path_longer_than_sun_path() {
        let event = raw(b"\0abstract", 9);
        match decode(event.as_bytes()) {
            Ok(Event::UnixConn(c)) => {
                assert_eq!(c.path, b"\0abstract");
                assert_eq!((c.pid, c.tid, c.fd, c.role), (10, 11, 3, 2));
                assert_eq!((c.inode, c.peer_inode, c.peer_pid), (7, 8, 9));
                assert_eq!(c.comm, "dock");
            }
            other => panic!("{other:?}"),
        }
        let bad = raw(b"/x", (UNIX_PATH_MAX + 1) as u16);
        assert!(matches!(
            decode(bad.as_bytes()),
            Err(DecodeError::InvalidField {
                field: "path_len",
                ..
            })
        ));
        assert!(decode(&event.as_bytes()[..100]).is_err(), "short record");
    }
}
