//! Errors of the reader and writer. Every read error names the byte offset of the block and the
//! kind of block, so a user can find the place with `xxd -s OFFSET`.

use std::fmt;

use crate::ids::FORMAT_MAJOR;
use crate::record::RecordKind;

/// The kind of block an error or entry refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// The file as a whole (open, map, first block).
    File,
    /// Section Header Block.
    SectionHeader,
    /// Interface Description Block.
    InterfaceDescription,
    /// Enhanced Packet Block.
    EnhancedPacket,
    /// Interface Statistics Block.
    InterfaceStatistics,
    /// A spliff record of a known kind.
    SpliffRecord(RecordKind),
    /// A spliff record whose kind could not be read, or is not known to this version.
    SpliffRecordUnknown(u16),
    /// A Custom Block that is not spliff's, or whose content could not be identified.
    Custom,
    /// Any other block type.
    Other(u32),
}

impl BlockKind {
    pub(crate) fn from_type(block_type: u32) -> Self {
        match block_type {
            0x0A0D_0D0A => Self::SectionHeader,
            0x0000_0001 => Self::InterfaceDescription,
            0x0000_0006 => Self::EnhancedPacket,
            0x0000_0005 => Self::InterfaceStatistics,
            0x0000_0BAD | 0x4000_0BAD => Self::Custom,
            t => Self::Other(t),
        }
    }
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File => f.write_str("file"),
            Self::SectionHeader => f.write_str("section header block"),
            Self::InterfaceDescription => f.write_str("interface description block"),
            Self::EnhancedPacket => f.write_str("enhanced packet block"),
            Self::InterfaceStatistics => f.write_str("interface statistics block"),
            Self::SpliffRecord(k) => write!(f, "spliff {} record", k.name()),
            Self::SpliffRecordUnknown(k) => write!(f, "spliff record of kind {k}"),
            Self::Custom => f.write_str("custom block"),
            Self::Other(t) => write!(f, "block of type {t:#010x}"),
        }
    }
}

/// What went wrong while reading.
#[derive(Debug, thiserror::Error)]
pub enum ReadErrorKind {
    /// The file could not be opened or mapped.
    #[error("cannot read the file: {0}")]
    Io(std::io::Error),
    /// The file does not start with a pcapng Section Header Block.
    #[error("not a pcapng file ({0}); spliff traces are pcapng, as written by `spliff record`")]
    NotPcapng(String),
    /// The file ends inside a block: the capture was cut (SIGKILL, full disk). Every block
    /// before this offset was read.
    #[error(
        "the file ends inside this block ({available} of {needed} bytes present): the capture \
         was cut short; every block before this offset is intact"
    )]
    TornTail {
        /// Bytes the block needs.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// pcapng framing is broken (length fields disagree, misaligned block); nothing after this
    /// offset can be located reliably.
    #[error("broken pcapng framing: {0}; blocks after this offset cannot be located")]
    Framing(String),
    /// A well-framed standard block whose content is invalid; it was skipped.
    #[error("invalid block content: {0}; the block was skipped")]
    Content(String),
    /// A record field runs past the end of its body.
    #[error(
        "field `{field}` at record byte {at} needs {needed} bytes but only {left} are left; \
         the record was skipped"
    )]
    Truncated {
        /// Field name as in docs/FORMAT.md.
        field: &'static str,
        /// Offset of the field inside the custom data.
        at: usize,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left.
        left: usize,
    },
    /// A record field holds a value the format does not allow.
    #[error("field `{field}` has the invalid value {value}; the record was skipped")]
    BadValue {
        /// Field name as in docs/FORMAT.md.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// The record was written by an incompatible major version of the format.
    #[error(
        "record format version {major}.{minor} is not readable by this spliff (reads \
         {FORMAT_MAJOR}.x); upgrade spliff to read it"
    )]
    UnsupportedVersion {
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
}

/// A read error, located: the byte offset of the block in the file and the block's kind.
///
/// Its message already contains the kind's (and an I/O error's) text, so it exposes no
/// `source()`: a cause chain printer would otherwise repeat it.
#[derive(Debug, thiserror::Error)]
#[error("{block} at byte offset {offset}: {kind}")]
pub struct ReadError {
    /// Offset of the start of the block in the file.
    pub offset: u64,
    /// Kind of the block.
    pub block: BlockKind,
    /// What went wrong.
    pub kind: ReadErrorKind,
}

impl ReadError {
    /// True when the reader cannot go on after this error (broken framing, torn tail, no
    /// pcapng at all); false when only this block was skipped.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.kind,
            ReadErrorKind::Io(_)
                | ReadErrorKind::NotPcapng(_)
                | ReadErrorKind::TornTail { .. }
                | ReadErrorKind::Framing(_)
        )
    }
}

/// What went wrong while writing.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The underlying writer failed (disk full, closed pipe).
    #[error("writing the trace failed: {0}")]
    Io(#[from] std::io::Error),
    /// pcap-file refused a standard block.
    #[error("cannot encode {block}: {message}")]
    Encode {
        /// Which block.
        block: BlockKind,
        /// pcap-file's message.
        message: String,
    },
    /// A value is larger than one block can hold.
    #[error("{what} is {len} bytes, more than the {max} one block can hold")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A packet names an interface that was never added.
    #[error("packet for interface {0}, but only interfaces 0..{1} were added")]
    NoSuchInterface(u32, u32),
}

/// pcap-file's messages are terse at the top ("Invalid raw block format") and precise in their
/// sources; joining the chain gives the user both.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}
