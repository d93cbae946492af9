//! Decoding ring buffer records into owned events.
//!
//! Records come from the kernel programs, but they are still input: a stale
//! prebuilt object, a kernel bug or a future event kind must produce a
//! [`DecodeError`], never a panic or an out-of-bounds read.

use std::{ffi::OsStr, mem::size_of, os::unix::ffi::OsStrExt as _, path::PathBuf};

use spliff_recorder_ebpf::abi::{
    self, EXEC_FILENAME_TRUNCATED, EXEC_FILENAME_UNREADABLE, EventHeader, EventKind,
    ProcessExecEvent,
};

/// An event from the kernel programs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A process completed `execve()`.
    ProcessExec(ProcessExec),
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
    /// `filename_len` points past the filename buffer.
    #[error("exec event filename_len {len} exceeds the {max}-byte filename buffer")]
    FilenameLength {
        /// `filename_len`.
        len: u32,
        /// Usable bytes in the buffer (without the NUL).
        max: usize,
    },
}

/// Decodes one ring buffer record.
pub fn decode(record: &[u8]) -> Result<Event, DecodeError> {
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
    match EventKind::from_raw(header.kind) {
        Some(EventKind::ProcessExec) => decode_exec(record).map(Event::ProcessExec),
        None => Err(DecodeError::UnknownKind {
            kind: header.kind,
            len,
        }),
    }
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
