//! The HPACK Huffman code (RFC 7541 Appendix B), decoded a table lookup at a time.
//!
//! The code is canonical (codes of one length are consecutive, in symbol order), so the RFC's
//! table is fully described by the code length of each symbol. Codes of up to [`FAST_BITS`]
//! bits, which cover all printable ASCII, resolve in one lookup; longer ones by the canonical
//! first-code-per-length search. Errors and their order are those of a bit-by-bit decoder, so
//! the reasons written for a bad string do not depend on which decoder produced them.

use std::sync::OnceLock;

/// Code length of every symbol (0..=255, then EOS = 256), RFC 7541 Appendix B.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const EOS: u16 = 256;
const MAX_LEN: u32 = 30;
/// Bits resolved by one lookup in the fast table.
const FAST_BITS: u32 = 12;

/// Why a Huffman string is invalid. The texts are those HPACK decoders commonly print, and
/// the ones earlier spliff versions wrote into HAR notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HuffmanError {
    /// More than 7 bits left over after the last symbol (RFC 7541 §5.2).
    #[error("Padding too large")]
    PaddingTooLarge,
    /// Left-over bits that are not a prefix of EOS (RFC 7541 §5.2).
    #[error("Invalid padding")]
    InvalidPadding,
    /// The EOS symbol inside the string (RFC 7541 §5.2).
    #[error("EOS in string")]
    EosInString,
}

struct Tables {
    /// Indexed by the next FAST_BITS bits: `symbol | len << 9`, 0 when the code is longer.
    fast: Vec<u16>,
    /// Indexed like `fast`: two symbols whose codes both fit in those bits,
    /// `first | second << 8 | total length << 16`, 0 when they do not.
    pair: Vec<u32>,
    /// Per length: first canonical code, and index of its symbol in `sorted`.
    first_code: [u32; MAX_LEN as usize + 1],
    first_index: [u16; MAX_LEN as usize + 1],
    count: [u16; MAX_LEN as usize + 1],
    /// Symbols ordered by (length, symbol): canonical code order.
    sorted: Vec<u16>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut sorted: Vec<u16> = (0..=EOS).collect();
        sorted.sort_by_key(|&s| (CODE_LENGTHS[usize::from(s)], s));
        let mut t = Tables {
            fast: vec![0; 1 << FAST_BITS],
            pair: vec![0; 1 << FAST_BITS],
            first_code: [0; MAX_LEN as usize + 1],
            first_index: [0; MAX_LEN as usize + 1],
            count: [0; MAX_LEN as usize + 1],
            sorted,
        };
        let mut code = 0u32;
        let mut prev_len = 0u32;
        for (i, &sym) in t.sorted.iter().enumerate() {
            let len = u32::from(CODE_LENGTHS[usize::from(sym)]);
            if i > 0 {
                code += 1;
            }
            code <<= len - prev_len;
            prev_len = len;
            let l = len as usize;
            if t.count[l] == 0 {
                t.first_code[l] = code;
                t.first_index[l] = i as u16;
            }
            t.count[l] += 1;
            if len <= FAST_BITS {
                let shift = FAST_BITS - len;
                let base = (code << shift) as usize;
                for slot in &mut t.fast[base..base + (1 << shift)] {
                    *slot = sym | (len as u16) << 9;
                }
            }
        }
        let mask = (1usize << FAST_BITS) - 1;
        for idx in 0..1usize << FAST_BITS {
            let first = t.fast[idx];
            if first == 0 {
                continue;
            }
            let len1 = usize::from(first >> 9);
            // The bits after the first code, shifted up; the low len1 bits are unknown.
            let second = t.fast[(idx << len1) & mask];
            let len2 = usize::from(second >> 9);
            if second != 0 && len1 + len2 <= FAST_BITS as usize {
                t.pair[idx] = u32::from(first & 0xff)
                    | u32::from(second & 0xff) << 8
                    | ((len1 + len2) as u32) << 16;
            }
        }
        t
    })
}

/// Symbol and code length of the code at the top of `window` (the next [`MAX_LEN`] bits,
/// right-aligned; bits past the end of the input are ones, which cannot complete a shorter
/// code than the real bits would).
#[inline]
fn lookup(t: &Tables, window: u32) -> (u16, u32) {
    let e = t.fast[(window >> (MAX_LEN - FAST_BITS)) as usize];
    if e != 0 {
        return (e & 0x1ff, u32::from(e >> 9));
    }
    for len in FAST_BITS + 1..=MAX_LEN {
        let code = window >> (MAX_LEN - len);
        let l = len as usize;
        let offset = code.wrapping_sub(t.first_code[l]);
        if offset < u32::from(t.count[l]) {
            return (
                t.sorted[usize::from(t.first_index[l]) + offset as usize],
                len,
            );
        }
    }
    // The code is complete: every 30-bit window starts with some code.
    unreachable!("HPACK Huffman code is complete")
}

/// Decodes a Huffman-coded string, appending the octets to `out`.
pub(crate) fn decode_into(input: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    const WINDOW_MASK: u32 = (1 << MAX_LEN) - 1;
    let t = tables();
    // Codes are at least 5 bits: at most 8 symbols per 5 input bytes. Writing into a sized
    // buffer, cut to length at the end, keeps capacity checks out of the loop.
    let start = out.len();
    out.resize(start + input.len() * 8 / 5 + 2, 0);
    let buf = &mut out[start..];
    let mut n = 0usize;
    // The low `nbits` bits of `acc` are the next input bits; bits above them are stale.
    let mut acc: u64 = 0;
    let mut nbits: u32 = 0;
    let mut rest = input;
    let result = loop {
        if nbits <= 31
            && let Some((four, tail)) = rest.split_first_chunk::<4>()
        {
            acc = acc << 32 | u64::from(u32::from_be_bytes(*four));
            nbits += 32;
            rest = tail;
        }
        while nbits <= 56
            && let Some((&b, tail)) = rest.split_first()
        {
            acc = acc << 8 | u64::from(b);
            nbits += 8;
            rest = tail;
        }
        if nbits < MAX_LEN {
            // The input is exhausted.
            break Ok(());
        }
        // At least one full window of real bits: no padding to worry about.
        let mut eos = false;
        while nbits >= MAX_LEN {
            let window = (acc >> (nbits - MAX_LEN)) as u32 & WINDOW_MASK;
            let pair = t.pair[(window >> (MAX_LEN - FAST_BITS)) as usize];
            if pair != 0 {
                buf[n] = pair as u8;
                buf[n + 1] = (pair >> 8) as u8;
                n += 2;
                nbits -= pair >> 16;
                continue;
            }
            let (sym, len) = lookup(t, window);
            if sym == EOS {
                eos = true;
                break;
            }
            buf[n] = sym as u8;
            n += 1;
            nbits -= len;
        }
        if eos {
            break Err(HuffmanError::EosInString);
        }
    };
    let result = result.and_then(|()| {
        acc &= (1u64 << nbits) - 1;
        // The tail: fewer than MAX_LEN bits, padded with ones past the end; only a code that
        // fits in the real bits is kept.
        while nbits > 0 {
            let window =
                ((acc << (MAX_LEN - nbits)) as u32 | ((1 << (MAX_LEN - nbits)) - 1)) & WINDOW_MASK;
            let (sym, len) = lookup(t, window);
            if len > nbits {
                break;
            }
            if sym == EOS {
                return Err(HuffmanError::EosInString);
            }
            buf[n] = sym as u8;
            n += 1;
            nbits -= len;
            acc &= (1u64 << nbits) - 1;
        }
        // Left over: fewer bits than the code they start. They must be at most 7 and all ones
        // (the most significant bits of EOS).
        if nbits > 7 {
            return Err(HuffmanError::PaddingTooLarge);
        }
        if acc != (1u64 << nbits) - 1 {
            return Err(HuffmanError::InvalidPadding);
        }
        Ok(())
    });
    out.truncate(start + n);
    result
}

/// Decodes a Huffman-coded string.
pub(crate) fn decode(input: &[u8]) -> Result<Vec<u8>, HuffmanError> {
    let mut out = Vec::new();
    decode_into(input, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Canonical code of each symbol, rebuilt independently of the decoder's tables.
    fn encode(data: &[u8]) -> Vec<u8> {
        let t = tables();
        let mut code_of = [(0u32, 0u32); 257];
        for l in 1..=MAX_LEN as usize {
            for k in 0..t.count[l] {
                let sym = t.sorted[usize::from(t.first_index[l] + k)];
                code_of[usize::from(sym)] = (t.first_code[l] + u32::from(k), l as u32);
            }
        }
        let mut out = Vec::new();
        let mut acc = 0u64;
        let mut n = 0;
        for &b in data {
            let (c, l) = code_of[usize::from(b)];
            acc = acc << l | u64::from(c);
            n += l;
            while n >= 8 {
                out.push((acc >> (n - 8)) as u8);
                n -= 8;
            }
        }
        if n > 0 {
            out.push(((acc << (8 - n)) | ((1 << (8 - n)) - 1)) as u8);
        }
        out
    }

    #[test]
    fn rfc7541_examples() {
        // C.4.1: "www.example.com".
        let wire = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(decode(&wire).unwrap(), b"www.example.com");
        // C.4.2: "no-cache".
        assert_eq!(
            decode(&[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf]).unwrap(),
            b"no-cache"
        );
        assert_eq!(decode(&[]).unwrap(), b"");
    }

    #[test]
    fn padding_and_eos_errors() {
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(HuffmanError::EosInString)
        );
        assert_eq!(decode(&[0xff]), Err(HuffmanError::PaddingTooLarge));
        // '0' is 00000: three bits left over that are zeros.
        assert_eq!(decode(&[0x00]), Err(HuffmanError::InvalidPadding));
    }

    proptest! {
        #[test]
        fn round_trips(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(decode(&encode(&data)).unwrap(), data);
        }

        /// Same octets, same errors as loona-hpack's bit-by-bit decoder, on any input.
        #[test]
        fn agrees_with_a_bit_by_bit_decoder(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let theirs = loona_hpack::huffman::HuffmanDecoder::new().decode(&data);
            let ours = decode(&data);
            match (ours, theirs) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => prop_assert!(false, "ours {a:?}, loona {b:?}"),
            }
        }
    }
}
