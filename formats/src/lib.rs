//! The spliff trace format.
//!
//! A spliff trace is an ordinary pcapng file (readable by tshark, capinfos, editcap and mergecap)
//! in which the decrypted TLS plaintext and its metadata travel in pcapng Custom Blocks, and the
//! packet metadata seen by the network hooks travels in ordinary Enhanced Packet Blocks.
//! `docs/FORMAT.md` in the repository specifies every byte; this crate is its reference
//! implementation. It has no Linux-only dependency: traces are read on any OS.
//!
//! - [`TraceWriter`] writes a trace as a stream with bounded memory.
//! - [`TraceFile`] maps a trace into memory and [`TraceReader`] walks it without copying,
//!   reporting a torn tail (a file cut by SIGKILL or a full disk) instead of failing the file.
//! - [`Record`] and its kinds are the spliff records themselves.

mod error;
mod ids;
mod packet;
mod reader;
mod record;
mod wire;
mod writer;

pub use error::{BlockKind, ReadError, ReadErrorKind, WriteError};
pub use ids::{
    CUSTOM_BLOCK_COPYABLE, FORMAT_MAJOR, FORMAT_MINOR, MAX_BLOCK_LEN, RECORD_HEADER_LEN,
    RECORD_MAGIC, SPLIFF_PEN,
};
pub use packet::{Interface, InterfaceStats, Packet, PacketDirection};
pub use reader::{Entry, RecordAt, TraceFile, TraceReader};
pub use record::{
    CaptureId, CaptureInfo, ClockId, Connection, ConnectionCounters, ConnectionRole, Correlation,
    Direction, Handshake, HandshakeResult, HookKind, InterfaceEvent, InterfaceEventKind, Loss,
    LossCause, Process, Record, RecordKind, TlsData, TlsLibrary, Transport, UnixEndpoints,
};
pub use writer::{
    DEFAULT_MAX_PAYLOAD, RECORDS_INTERFACE_DESCRIPTION, RECORDS_INTERFACE_LINKTYPE,
    RECORDS_INTERFACE_NAME, SectionInfo, TraceWriter,
};
