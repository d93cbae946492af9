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
}

impl EventKind {
    /// The kind for a raw header value, `None` for 0 and for kinds this build
    /// does not know.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::ProcessExec),
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
}

/// `SPLIFF_STAT_COUNT`: number of counters in `spliff_stats`.
pub const STAT_COUNT: u32 = 1;

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
