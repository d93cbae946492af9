//! A trace byte stream, as a writer produces it in arbitrary chunks, cut into whole pcapng
//! blocks and sorted by what the live view needs of them.
//!
//! spliff writes little-endian sections only (docs/FORMAT.md); a stream in another byte order,
//! or a block length that cannot be, stops the splitter with an error naming the offset.

use spliff_formats::{CUSTOM_BLOCK_COPYABLE, MAX_BLOCK_LEN, RecordKind};

const SHB_TYPE: u32 = 0x0A0D_0D0A;
const CUSTOM_NON_COPYABLE: u32 = 0x4000_0BAD;
/// Where a spliff record's kind sits in its Custom Block (block header 8, PEN 4, record
/// header offset 8).
const KIND_AT: usize = 20;

/// What a block is, as far as the live view cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockClass {
    /// A Section Header Block.
    Section,
    /// A spliff record of this kind (or of an unknown kind: `None`).
    Record(Option<RecordKind>),
    /// Anything else (interfaces, packets, statistics): the view does not use it.
    Other,
}

/// A malformed stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace stream at byte {offset}: {what}")]
pub struct StreamError {
    /// Offset of the bad block in the stream.
    pub offset: u64,
    /// What is wrong with it.
    pub what: String,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The class of a whole block.
pub fn classify(block: &[u8]) -> BlockClass {
    match u32_at(block, 0) {
        SHB_TYPE => BlockClass::Section,
        CUSTOM_BLOCK_COPYABLE | CUSTOM_NON_COPYABLE if block.len() >= KIND_AT + 2 => {
            let kind = u16::from_le_bytes([block[KIND_AT], block[KIND_AT + 1]]);
            BlockClass::Record(RecordKind::from_id(kind))
        }
        _ => BlockClass::Other,
    }
}

/// Cuts a byte stream into blocks.
#[derive(Debug, Default)]
pub struct BlockSplitter {
    partial: Vec<u8>,
    consumed: u64,
    failed: Option<StreamError>,
}

impl BlockSplitter {
    /// Feeds `bytes` and hands every block they complete to `each`.
    pub fn push(&mut self, bytes: &[u8], mut each: impl FnMut(&[u8])) -> Result<(), StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.partial.extend_from_slice(bytes);
        let mut at = 0;
        while self.partial.len() - at >= 8 {
            let len = u32_at(&self.partial, at + 4) as usize;
            if len < 12 || !len.is_multiple_of(4) || len > MAX_BLOCK_LEN {
                let e = StreamError {
                    offset: self.consumed + at as u64,
                    what: format!("block length {len} is not a valid pcapng block length"),
                };
                self.failed = Some(e.clone());
                return Err(e);
            }
            if self.partial.len() - at < len {
                break;
            }
            each(&self.partial[at..at + len]);
            at += len;
        }
        self.partial.drain(..at);
        self.consumed += at as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cut_anywhere_come_out_whole() {
        let mut stream = Vec::new();
        for len in [12u32, 16, 28] {
            stream.extend_from_slice(&6u32.to_le_bytes());
            stream.extend_from_slice(&len.to_le_bytes());
            stream.resize(stream.len() + len as usize - 12, 7);
            stream.extend_from_slice(&len.to_le_bytes());
        }
        let mut s = BlockSplitter::default();
        let mut lens = Vec::new();
        for chunk in stream.chunks(5) {
            s.push(chunk, |b| lens.push(b.len())).expect("valid");
        }
        assert_eq!(lens, vec![12, 16, 28]);
    }

    #[test]
    fn a_bad_length_is_an_error_with_its_offset() {
        let mut block = 6u32.to_le_bytes().to_vec();
        block.extend_from_slice(&13u32.to_le_bytes());
        let err = BlockSplitter::default().push(&block, |_| {}).unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(err.what.contains("13"), "{err}");
    }
}
