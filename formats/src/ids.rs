//! Fixed numbers of the format. Record kind ids are never reused: a retired kind stays a gap.

/// pcapng block type of a copyable Custom Block. Copyable (not `0x40000BAD`) so that editcap and
/// mergecap keep spliff records when they rewrite a file.
pub const CUSTOM_BLOCK_COPYABLE: u32 = 0x0000_0BAD;

/// Private Enterprise Number written in every spliff Custom Block.
///
/// 32473 is the IANA number reserved for documentation and examples (RFC 5612); spliff has no
/// registered number of its own yet. It cannot collide with any real vendor's data, and every
/// record also starts with [`RECORD_MAGIC`], which is what readers must check.
pub const SPLIFF_PEN: u32 = 32473;

/// First four bytes of every spliff record: ASCII `SPLF`.
pub const RECORD_MAGIC: [u8; 4] = *b"SPLF";

/// Major version of the record encoding. A reader rejects records of another major version.
pub const FORMAT_MAJOR: u16 = 1;

/// Minor version written by this crate. Minor versions only append fields at the end of a body.
pub const FORMAT_MINOR: u16 = 2;

/// Length of the record header that precedes every record body.
pub const RECORD_HEADER_LEN: usize = 40;

/// Largest block this crate writes, and the largest Wireshark 4.0 reads (its `MAX_BLOCK_SIZE`).
pub const MAX_BLOCK_LEN: usize = 16 * 1024 * 1024;
