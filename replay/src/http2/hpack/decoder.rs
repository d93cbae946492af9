//! HPACK decoding with the full dynamic table, for a direction seen from its first header
//! block. Validation and the error texts follow loona-hpack, which this replaced (its Huffman
//! decoder cost most of the replay time): a header block that failed before fails the same way
//! now, with the same words in the output.

use std::collections::VecDeque;

use super::huffman::{self, HuffmanError};
use super::static_table::STATIC_TABLE;

/// RFC 7541 §4.1: each entry costs its name and value length plus 32.
const ENTRY_OVERHEAD: usize = 32;

/// Why a header block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// An index names no static or dynamic table entry.
    #[error("Header index out of bounds")]
    IndexOutOfBounds,
    /// A prefixed integer is malformed.
    #[error("Integer decoding error: {0}")]
    Integer(IntegerError),
    /// A string literal is malformed.
    #[error("String decoding error: {0}")]
    String(StringError),
    /// A dynamic table size update above the allowed maximum.
    #[error("Dynamic table size exceeds the maximum size")]
    TableSizeTooLarge,
    /// The block ends with a dynamic table size update.
    #[error("Dynamic table size update at the end of a header block")]
    SizeUpdateAtEnd,
}

/// A malformed prefixed integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IntegerError {
    /// More continuation octets than any sane value needs.
    #[error("Too many octets in the integer encoding")]
    TooManyOctets,
    /// The block ends inside the integer.
    #[error("Not enough octets in the buffer")]
    NotEnoughOctets,
}

/// A malformed string literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StringError {
    /// The string runs past the end of the block.
    #[error("Not enough octets in the buffer")]
    NotEnoughOctets,
    /// Invalid Huffman coding.
    #[error("Huffman decoder error: {0}")]
    Huffman(HuffmanError),
}

/// A prefixed integer (RFC 7541 §5.1) at the start of `buf`: value and octets used. At most
/// four continuation octets, so the value stays far below overflow.
fn integer(buf: &[u8], prefix: u8) -> Result<(usize, usize), DecodeError> {
    let not_enough = DecodeError::Integer(IntegerError::NotEnoughOctets);
    let first = *buf.first().ok_or(not_enough)?;
    let mask = ((1u16 << prefix) - 1) as u8;
    let mut value = usize::from(first & mask);
    if value < usize::from(mask) {
        return Ok((value, 1));
    }
    let mut shift = 0;
    for (i, &b) in buf[1..].iter().enumerate() {
        value += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok((value, i + 2));
        }
        if i + 2 == 5 {
            return Err(DecodeError::Integer(IntegerError::TooManyOctets));
        }
    }
    Err(not_enough)
}

/// A string literal at the start of `buf`, decoded into `out` (cleared first): octets used.
fn string(buf: &[u8], out: &mut Vec<u8>) -> Result<usize, DecodeError> {
    let (len, used) = integer(buf, 7)?;
    let end = used
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or(DecodeError::String(StringError::NotEnoughOctets))?;
    let raw = &buf[used..end];
    out.clear();
    if buf[0] & 0x80 != 0 {
        huffman::decode_into(raw, out).map_err(|e| DecodeError::String(StringError::Huffman(e)))?;
    } else {
        out.extend_from_slice(raw);
    }
    Ok(end)
}

/// Decoder state for one direction: the dynamic table and its limits.
#[derive(Debug)]
pub(crate) struct Decoder {
    /// Newest first.
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max_size: usize,
    /// Largest size a table size update may ask for.
    max_allowed: usize,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Decoder {
    /// A decoder at the start of a connection, with a `max_size` table that updates may grow
    /// up to `max_allowed`.
    pub(crate) fn new(max_size: usize, max_allowed: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size,
            max_allowed,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), DecodeError> {
        let i = index.checked_sub(1).ok_or(DecodeError::IndexOutOfBounds)?;
        if let Some(&(n, v)) = STATIC_TABLE.get(i) {
            return Ok((n, v));
        }
        self.table
            .get(i - STATIC_TABLE.len())
            .map(|(n, v)| (&n[..], &v[..]))
            .ok_or(DecodeError::IndexOutOfBounds)
    }

    fn evict_to(&mut self, max: usize) {
        while self.size > max {
            let Some((n, v)) = self.table.pop_back() else {
                break;
            };
            self.size -= n.len() + v.len() + ENTRY_OVERHEAD;
        }
    }

    /// A literal field (`prefix`: 6 with indexing, 4 without): fills `self.name` and
    /// `self.value`, returns the octets used.
    fn literal(&mut self, buf: &[u8], prefix: u8) -> Result<usize, DecodeError> {
        let (index, mut used) = integer(buf, prefix)?;
        let mut name = std::mem::take(&mut self.name);
        if index == 0 {
            used += string(&buf[used..], &mut name)?;
        } else {
            let (n, _) = self.entry(index)?;
            name.clear();
            name.extend_from_slice(n);
        }
        self.name = name;
        let mut value = std::mem::take(&mut self.value);
        let r = string(&buf[used..], &mut value);
        self.value = value;
        Ok(used + r?)
    }

    /// Decodes one header block, calling `field` for every field in order. Fields before an
    /// error have been passed on; the table is then in an unspecified state.
    pub(crate) fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        let mut at = 0;
        let mut last_was_size_update = false;
        while at < block.len() {
            let buf = &block[at..];
            let first = buf[0];
            last_was_size_update = false;
            at += if first & 0x80 != 0 {
                let (index, used) = integer(buf, 7)?;
                let (n, v) = self.entry(index)?;
                field(n, v);
                used
            } else if first & 0x40 != 0 {
                let used = self.literal(buf, 6)?;
                field(&self.name, &self.value);
                let (name, value) = (self.name.clone(), self.value.clone());
                self.size += name.len() + value.len() + ENTRY_OVERHEAD;
                self.table.push_front((name, value));
                self.evict_to(self.max_size);
                used
            } else if first & 0x20 != 0 {
                last_was_size_update = true;
                let (size, used) = integer(buf, 5)?;
                if size > self.max_allowed {
                    return Err(DecodeError::TableSizeTooLarge);
                }
                self.max_size = size;
                self.evict_to(size);
                used
            } else {
                let used = self.literal(buf, 4)?;
                field(&self.name, &self.value);
                used
            };
        }
        if last_was_size_update {
            return Err(DecodeError::SizeUpdateAtEnd);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn ours(d: &mut Decoder, block: &[u8]) -> Result<Fields, String> {
        let mut out = Vec::new();
        d.decode(block, |n, v| out.push((n.to_vec(), v.to_vec())))
            .map(|()| out)
            .map_err(|e| e.to_string())
    }

    fn theirs(d: &mut loona_hpack::Decoder<'_>, block: &[u8]) -> Result<Fields, String> {
        let mut out = Vec::new();
        d.decode_with_cb(block, |n, v| out.push((n.into_owned(), v.into_owned())))
            .map(|()| out)
            .map_err(|e| e.to_string())
    }

    fn field() -> impl Strategy<Value = Vec<u8>> {
        // Valid representations mixed with arbitrary bytes, so both the happy path and every
        // error path are reached, with a dynamic table that keeps changing.
        prop_oneof![
            (0u8..0x7f).prop_map(|i| vec![0x80 | i]),
            (0u8..70, proptest::collection::vec(b'a'..=b'z', 0..40)).prop_map(|(i, v)| {
                let mut f = vec![0x40 | i.min(0x3e), v.len() as u8];
                f.extend(v);
                f
            }),
            (0u8..60, proptest::collection::vec(any::<u8>(), 0..20)).prop_map(|(i, v)| {
                let mut f = vec![i & 0x0f, 0x80 | v.len() as u8];
                f.extend(v);
                f
            }),
            (0u8..31).prop_map(|s| vec![0x20 | s]),
            proptest::collection::vec(any::<u8>(), 1..8),
        ]
    }

    proptest! {
        /// Same fields, same table, same errors as loona-hpack, block after block.
        #[test]
        fn agrees_with_loona_hpack(
            blocks in proptest::collection::vec(
                proptest::collection::vec(field(), 0..12).prop_map(|f| f.concat()), 1..6),
            table in prop_oneof![Just(4096usize), 0usize..300],
        ) {
            let mut a = Decoder::new(table, 4096);
            let mut b = loona_hpack::Decoder::new();
            b.set_max_allowed_table_size(4096);
            b.set_max_table_size(table);
            for block in &blocks {
                let (x, y) = (ours(&mut a, block), theirs(&mut b, block));
                prop_assert_eq!(&x, &y);
                if x.is_err() {
                    break;
                }
            }
        }
    }
}
