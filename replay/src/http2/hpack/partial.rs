//! HPACK decoding for a direction whose dynamic table is (partly) unknown.
//!
//! After a capture starts mid-connection, or bytes are lost, the encoder's
//! dynamic table holds entries we never saw. What stays provable:
//!
//! * Every entry inserted since then sits at the *front* of the encoder's
//!   table, newest first, exactly as we record it: insertion pushes to the
//!   front and eviction only removes from the back. So dynamic index `d` names
//!   our `d`-th recorded insertion whenever the encoder references it (a
//!   conforming encoder never references an evicted entry).
//! * Anything beyond our recorded insertions is unknown ("the tail").
//!
//! The table tracks insertions even inside blocks it cannot fully decode, with
//! a placeholder when an inserted entry's name itself was unknown; otherwise
//! later indices would shift and a guessed header could come out. Eviction is
//! applied only when certain, using lower bounds on entry sizes against the
//! largest size the table can have, so memory stays bounded and no entry the
//! encoder still holds is ever dropped.

use std::collections::VecDeque;
use std::fmt;

use super::huffman;
use super::static_table::STATIC_TABLE;
use crate::exchange::Header;

/// A table entry: name and value.
type Entry = (Vec<u8>, Vec<u8>);

/// RFC 7541 §4.1: each entry costs its name and value length plus 32.
const ENTRY_OVERHEAD: usize = 32;

#[derive(Debug, Clone)]
struct Slot {
    /// `None` for an insertion whose name referenced an unknown entry.
    entry: Option<Entry>,
    /// Exact size when `entry` is known, a lower bound otherwise.
    size_lo: usize,
}

/// What decoding one header block achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every field resolved: this is exactly the list the sender encoded.
    Complete(Vec<Header>),
    /// Some field referenced an entry we do not know; the table was still
    /// updated for everything the block inserted.
    Unresolved(String),
    /// Not valid HPACK, or it contradicts what we know; the table is unknown
    /// again.
    Malformed(String),
}

/// A dynamic table whose older part may be unknown.
pub(crate) struct PartialTable {
    slots: VecDeque<Slot>,
    tail_unknown: bool,
    /// The table's maximum size, once a size update told us.
    max_size: Option<usize>,
    /// Largest maximum the encoder may choose (SETTINGS_HEADER_TABLE_SIZE); with
    /// `bound_known` false, only the most bytes of entries kept in memory.
    bound: usize,
    /// Whether every SETTINGS the decoding peer sent was seen. When not (a capture joined
    /// after SETTINGS were exchanged), the peer may have announced any size: every size update
    /// is accepted, nothing is evicted unless a size update proves it, and entries past
    /// `bound` bytes are forgotten (unknown, not absent).
    bound_known: bool,
}

impl fmt::Debug for PartialTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartialTable")
            .field("slots", &self.slots)
            .field("tail_unknown", &self.tail_unknown)
            .field("max_size", &self.max_size)
            .field("bound", &self.bound)
            .field("bound_known", &self.bound_known)
            .finish()
    }
}

impl PartialTable {
    /// A table about which nothing is known.
    pub(crate) fn unknown(bound: usize) -> PartialTable {
        PartialTable {
            slots: VecDeque::new(),
            tail_unknown: true,
            max_size: None,
            bound,
            bound_known: true,
        }
    }

    /// A table about which nothing is known, not even the largest size the encoder may
    /// choose (see `bound_known`); at most `memory` bytes of entries are kept.
    pub(crate) fn unknown_bound(memory: usize) -> PartialTable {
        PartialTable {
            bound_known: false,
            ..PartialTable::unknown(memory)
        }
    }

    /// An empty, fully known table, as at the start of a connection.
    #[cfg(test)]
    pub(crate) fn empty(max_size: usize, bound: usize) -> PartialTable {
        PartialTable {
            tail_unknown: false,
            max_size: Some(max_size),
            ..PartialTable::unknown(bound)
        }
    }

    /// Whether every entry the encoder may reference is known.
    #[cfg(test)]
    pub(crate) fn fully_known(&self) -> bool {
        !self.tail_unknown && self.slots.iter().all(|s| s.entry.is_some())
    }

    /// Entries we know, newest first (tests compare them with the RFC).
    #[cfg(test)]
    pub(crate) fn known_entries(&self) -> Vec<Option<Entry>> {
        self.slots.iter().map(|s| s.entry.clone()).collect()
    }

    fn forget(&mut self) {
        self.slots.clear();
        self.tail_unknown = true;
        self.max_size = None;
    }

    /// Decodes one complete header block, updating the table.
    pub(crate) fn decode(&mut self, block: &[u8], max_list_bytes: usize) -> Outcome {
        match self.decode_fields(block, max_list_bytes) {
            Ok((headers, None)) => Outcome::Complete(headers),
            Ok((_, Some(why))) => Outcome::Unresolved(why),
            Err(why) => {
                self.forget();
                Outcome::Malformed(why)
            }
        }
    }

    fn decode_fields(
        &mut self,
        block: &[u8],
        max_list_bytes: usize,
    ) -> Result<(Vec<Header>, Option<String>), String> {
        let mut at = 0;
        let mut headers = Vec::new();
        let mut list_bytes = 0usize;
        let mut unresolved: Option<String> = None;
        let mut note = |why: String| {
            if unresolved.is_none() {
                unresolved = Some(why);
            }
        };
        while let Some(&first) = block.get(at) {
            let field = if first & 0x80 != 0 {
                // Indexed field.
                let index = integer(block, &mut at, 7)?;
                match self.lookup(index)? {
                    Some(entry) => Some(entry),
                    None => {
                        note(format!("references unknown dynamic table entry {index}"));
                        None
                    }
                }
            } else if first & 0x40 != 0 {
                let (name, value) = self.literal(block, &mut at, 6)?;
                let size_lo = name.as_ref().map_or(0, Vec::len) + value.len() + ENTRY_OVERHEAD;
                let entry = name.map(|n| (n, value));
                self.insert(Slot {
                    entry: entry.clone(),
                    size_lo,
                });
                if entry.is_none() {
                    note("literal names an unknown dynamic table entry".into());
                }
                entry
            } else if first & 0x20 != 0 {
                let size = integer(block, &mut at, 5)?;
                if self.bound_known && size > self.bound {
                    return Err(format!(
                        "dynamic table size update to {size} exceeds the allowed {}",
                        self.bound
                    ));
                }
                self.max_size = Some(size);
                self.evict(size);
                self.cap_memory();
                continue;
            } else {
                // Literal without indexing (0000) or never indexed (0001).
                let (name, value) = self.literal(block, &mut at, 4)?;
                if name.is_none() {
                    note("literal names an unknown dynamic table entry".into());
                }
                name.map(|n| (n, value))
            };
            if let Some((name, value)) = field {
                list_bytes = list_bytes.saturating_add(name.len() + value.len() + ENTRY_OVERHEAD);
                if list_bytes > max_list_bytes {
                    note(format!(
                        "decoded header list exceeds {max_list_bytes} bytes"
                    ));
                } else {
                    headers.push(Header { name, value });
                }
            }
        }
        Ok((headers, unresolved))
    }

    /// `Ok(None)` when the entry exists but is unknown to us.
    fn lookup(&self, index: usize) -> Result<Option<Entry>, String> {
        if index == 0 {
            return Err("index 0 is not a valid table index".into());
        }
        if let Some(&(name, value)) = STATIC_TABLE.get(index - 1) {
            return Ok(Some((name.to_vec(), value.to_vec())));
        }
        let dynamic = index - 1 - STATIC_TABLE.len();
        match self.slots.get(dynamic) {
            Some(slot) => Ok(slot.entry.clone()),
            None if self.tail_unknown => Ok(None),
            None => Err(format!("index {index} is beyond the dynamic table")),
        }
    }

    /// A literal field: `(name if known, value)`.
    fn literal(
        &mut self,
        block: &[u8],
        at: &mut usize,
        prefix: u8,
    ) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
        let name_index = integer(block, at, prefix)?;
        let name = if name_index == 0 {
            Some(self.string(block, at)?)
        } else {
            self.lookup(name_index)?.map(|(n, _)| n)
        };
        let value = self.string(block, at)?;
        Ok((name, value))
    }

    fn string(&mut self, block: &[u8], at: &mut usize) -> Result<Vec<u8>, String> {
        let huffman = block.get(*at).ok_or("truncated string")? & 0x80 != 0;
        let len = integer(block, at, 7)?;
        let end = at
            .checked_add(len)
            .filter(|&e| e <= block.len())
            .ok_or("string runs past the end of the block")?;
        let raw = &block[*at..end];
        *at = end;
        if huffman {
            huffman::decode(raw).map_err(|e| format!("invalid Huffman string: {e}"))
        } else {
            Ok(raw.to_vec())
        }
    }

    fn effective_max(&self) -> usize {
        match self.max_size {
            Some(max) => max,
            None if self.bound_known => self.bound,
            // The encoder's table may be as large as any setting the peer could have sent.
            None => usize::MAX,
        }
    }

    /// Without a known bound, memory is what limits the entries kept: the oldest beyond
    /// `bound` bytes are forgotten, and the tail is unknown again (the encoder may still
    /// hold them).
    fn cap_memory(&mut self) {
        if self.bound_known {
            return;
        }
        let mut sum = 0usize;
        let keep = self
            .slots
            .iter()
            .position(|slot| {
                sum = sum.saturating_add(slot.size_lo);
                sum > self.bound
            })
            .unwrap_or(self.slots.len());
        if keep < self.slots.len() {
            self.slots.truncate(keep);
            self.tail_unknown = true;
        }
    }

    fn insert(&mut self, slot: Slot) {
        let max = self.effective_max();
        if slot.size_lo > max {
            // RFC 7541 §4.4: an entry larger than the table empties it.
            self.slots.clear();
            self.tail_unknown = false;
            return;
        }
        self.slots.push_front(slot);
        self.evict(max);
        self.cap_memory();
    }

    fn evict(&mut self, max: usize) {
        let mut sum = 0usize;
        let mut keep = self.slots.len();
        for (i, slot) in self.slots.iter().enumerate() {
            sum += slot.size_lo;
            if sum > max {
                keep = i;
                break;
            }
        }
        if keep < self.slots.len() {
            // Those entries are certainly gone, and the unknown tail, being
            // older, went first.
            self.slots.truncate(keep);
            self.tail_unknown = false;
        } else if sum + ENTRY_OVERHEAD > max {
            // Not even the smallest possible entry fits behind ours.
            self.tail_unknown = false;
        }
    }
}

/// RFC 7541 §5.1 integer with an N-bit prefix. Values are capped well below
/// anything that could overflow: five continuation bytes at most.
fn integer(block: &[u8], at: &mut usize, prefix: u8) -> Result<usize, String> {
    let first = *block.get(*at).ok_or("truncated integer")?;
    *at += 1;
    let max_prefix = (1u32 << prefix) - 1;
    let mut value = u64::from(u32::from(first) & max_prefix);
    if value < u64::from(max_prefix) {
        return Ok(value as usize);
    }
    let mut shift = 0u32;
    loop {
        let b = *block.get(*at).ok_or("truncated integer")?;
        *at += 1;
        value += u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return usize::try_from(value).map_err(|_| "integer too large".to_string());
        }
        shift += 7;
        if shift > 28 {
            return Err("integer encoding too long".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: usize = 1 << 20;

    fn h(n: &str, v: &str) -> Header {
        Header::new(n, v)
    }

    /// A literal with incremental indexing, new name, `len` (< 127) bytes of value.
    fn insert_block(name: &str, len: usize) -> Vec<u8> {
        let mut b = vec![0x40, name.len() as u8];
        b.extend_from_slice(name.as_bytes());
        b.push(len as u8);
        b.extend(std::iter::repeat_n(b'v', len));
        b
    }

    #[test]
    fn an_unknown_bound_accepts_any_size_and_forgets_rather_than_evicts() {
        // 200 bytes of memory: two 100-byte entries (32 + 4 + 64) do not both fit.
        let mut t = PartialTable::unknown_bound(200);
        // A size update far above the memory cap: the peer may have announced it.
        assert!(matches!(
            t.decode(&[0x3f, 0xe1, 0xff, 0x03], BIG),
            Outcome::Complete(_)
        ));
        for name in ["aaaa", "bbbb", "cccc"] {
            assert!(matches!(
                t.decode(&insert_block(name, 64), BIG),
                Outcome::Complete(_)
            ));
        }
        assert_eq!(t.known_entries().len(), 2);
        // The forgotten entry is unknown, not absent: a reference is unresolved, not invalid.
        assert!(matches!(
            t.decode(&[0x80 | 64], BIG),
            Outcome::Unresolved(_)
        ));
        // With a known 4096 bound the same size update is invalid.
        let mut known = PartialTable::unknown(4096);
        assert!(matches!(
            known.decode(&[0x3f, 0xe1, 0xff, 0x03], BIG),
            Outcome::Malformed(_)
        ));
    }

    #[test]
    fn integers_follow_rfc_examples() {
        // C.1.1 / C.1.2 / C.1.3
        let mut at = 0;
        assert_eq!(integer(&[0x0a], &mut at, 5), Ok(10));
        let mut at = 0;
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], &mut at, 5), Ok(1337));
        assert_eq!(at, 3);
        let mut at = 0;
        assert_eq!(integer(&[0x2a], &mut at, 8), Ok(42));
        let mut at = 0;
        assert!(integer(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], &mut at, 5).is_err());
        let mut at = 0;
        assert!(integer(&[0x1f, 0xff], &mut at, 5).is_err());
    }

    #[test]
    fn static_only_blocks_decode_without_context() {
        let mut t = PartialTable::unknown(4096);
        // :method GET, :path /, literal without indexing "custom-key: custom-header"
        let mut block = vec![0x82, 0x84, 0x00, 0x0a];
        block.extend_from_slice(b"custom-key");
        block.push(0x0d);
        block.extend_from_slice(b"custom-header");
        assert_eq!(
            t.decode(&block, BIG),
            Outcome::Complete(vec![
                h(":method", "GET"),
                h(":path", "/"),
                h("custom-key", "custom-header")
            ])
        );
    }

    #[test]
    fn unknown_references_are_unresolved_but_insertions_still_count() {
        let mut t = PartialTable::unknown(4096);
        // 0xbe = index 62 (unknown), then insert "x: 1" with literal name.
        let block = [0xbe, 0x40, 0x01, b'x', 0x01, b'1'];
        assert!(matches!(t.decode(&block, BIG), Outcome::Unresolved(_)));
        // Index 62 now is "x: 1" for sure, index 63 is still unknown.
        assert_eq!(t.decode(&[0xbe], BIG), Outcome::Complete(vec![h("x", "1")]));
        assert!(matches!(t.decode(&[0xbf], BIG), Outcome::Unresolved(_)));
        // Insertion with an unknown name keeps indices aligned via a placeholder.
        assert!(matches!(
            t.decode(&[0x7f, 0x02, 0x01, b'v'], BIG),
            Outcome::Unresolved(_)
        ));
        assert!(matches!(t.decode(&[0xbe], BIG), Outcome::Unresolved(_)));
        assert_eq!(t.decode(&[0xbf], BIG), Outcome::Complete(vec![h("x", "1")]));
    }

    #[test]
    fn size_update_to_zero_restores_full_knowledge() {
        let mut t = PartialTable::unknown(4096);
        assert!(!t.fully_known());
        assert_eq!(
            t.decode(&[0x20, 0x82], BIG),
            Outcome::Complete(vec![h(":method", "GET")])
        );
        assert!(t.fully_known());
        // Referencing beyond a fully known table is malformed, and forgets.
        assert!(matches!(t.decode(&[0xbe], BIG), Outcome::Malformed(_)));
        assert!(!t.fully_known());
    }

    #[test]
    fn filling_the_bound_evicts_the_unknown_tail() {
        let mut t = PartialTable::unknown(100);
        // One entry of 1+60+32 = 93 bytes: no 32-byte entry fits behind it.
        let mut block = vec![0x40, 0x01, b'a', 60];
        block.extend_from_slice(&[b'v'; 60]);
        assert!(matches!(t.decode(&block, BIG), Outcome::Complete(_)));
        assert!(t.fully_known());
    }

    #[test]
    fn oversized_update_and_garbage_are_malformed() {
        let mut t = PartialTable::unknown(4096);
        // Size update to 8192 > bound.
        assert!(matches!(
            t.decode(&[0x3f, 0xe1, 0x3f], BIG),
            Outcome::Malformed(_)
        ));
        assert!(matches!(t.decode(&[0x80], BIG), Outcome::Malformed(_)));
        assert!(matches!(
            t.decode(&[0x00, 0x85, 0xff], BIG),
            Outcome::Malformed(_)
        ));
    }

    #[test]
    fn header_list_cap_drops_instead_of_amplifying() {
        let mut t = PartialTable::empty(4096, 4096);
        let mut block = vec![0x40, 0x01, b'a', 100];
        block.extend_from_slice(&[b'v'; 100]);
        block.extend(std::iter::repeat_n(0xbe, 1000));
        assert!(matches!(t.decode(&block, 10_000), Outcome::Unresolved(_)));
    }
}
