//! One pass over x86-64 machine code, by opcode bytes rather than by
//! decoding: the targets of `call rel32` instructions and the addresses of
//! `lea r64, [rip+disp32]` instructions that load one of a few addresses.
//!
//! A separate crate so that it is optimised in debug builds too (the
//! workspace's dev profile says so): the recorder runs it over a browser's
//! 240 MB of code when the browser starts, where an unoptimised pass takes
//! seconds. Byte patterns are candidates only: the caller decodes whatever
//! it keeps before relying on it.

use std::ops::Range;

const CALL_REL32: u8 = 0xe8;
const LEA: u8 = 0x8d;

/// What one pass collects.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    /// Addresses of `lea` instructions (REX.W prefix included) whose
    /// RIP-relative operand is one of the wanted addresses.
    pub loads: Vec<u64>,
    /// Targets of `call rel32` inside the code range and aligned to
    /// `target_alignment`.
    pub call_targets: Vec<u64>,
}

impl Found {
    /// Sorts both lists and removes repeats (in this optimised crate: a
    /// sort of a browser's calls is slow unoptimised).
    pub fn sort(&mut self) {
        self.loads.sort_unstable();
        self.loads.dedup();
        self.call_targets.sort_unstable();
        self.call_targets.dedup();
    }
}

/// What to look for.
#[derive(Debug, Clone)]
pub struct Wanted<'a> {
    /// Addresses whose `lea` loads are wanted.
    pub loaded: &'a [u64],
    /// Call targets outside are dropped (they are not code).
    pub code: Range<u64>,
    /// Call targets not on a multiple of this are dropped (a power of two).
    pub target_alignment: u64,
}

/// Bytes a pattern may reach past its first byte: `bytes` should extend
/// this far past the `owned` part so that no pattern is cut.
pub const OVERLAP: usize = 7;

/// Scans `bytes`, the code at `address`, for patterns that start in its
/// first `owned` bytes (the rest is the start of the next piece, seen again
/// there) and adds them to `found`.
pub fn scan(bytes: &[u8], address: u64, owned: usize, wanted: &Wanted<'_>, found: &mut Found) {
    let mask = wanted.target_alignment.saturating_sub(1);
    // A plain loop: the two opcodes are one byte in 25 of code, too dense
    // for a memchr-style search to pay off.
    for at in 0..bytes.len() {
        if !matches!(bytes[at], CALL_REL32 | LEA) {
            continue;
        }
        let Some(rel) = bytes.get(at + 1..at + 5) else {
            break;
        };
        let here = address + at as u64;
        if bytes[at] == CALL_REL32 {
            if at >= owned {
                continue;
            }
            let target = relative(here + 5, rel);
            if target & mask == 0 && wanted.code.contains(&target) {
                found.call_targets.push(target);
            }
        } else if at >= 1
            && at - 1 < owned
            && matches!(bytes[at - 1], 0x48 | 0x4c)
            && rel[0] & 0xc7 == 0x05
            && let Some(disp) = bytes.get(at + 2..at + 6)
            && wanted.loaded.contains(&relative(here + 6, disp))
        {
            found.loads.push(here - 1);
        }
    }
}

/// Where `needle` starts in the first `owned` bytes of `bytes` (it may end
/// past them).
pub fn find_all(bytes: &[u8], needle: &[u8], owned: usize) -> Vec<usize> {
    let Some(&first) = needle.first() else {
        return Vec::new();
    };
    (0..owned.min(bytes.len()))
        .filter(|&at| bytes[at] == first && bytes[at..].starts_with(needle))
        .collect()
}

fn relative(next: u64, disp: &[u8]) -> u64 {
    let disp = i32::from_le_bytes([disp[0], disp[1], disp[2], disp[3]]);
    next.wrapping_add_signed(i64::from(disp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(loaded: &[u64]) -> Wanted<'_> {
        Wanted {
            loaded,
            code: 0x1000..0x2000,
            target_alignment: 16,
        }
    }

    #[test]
    fn finds_a_string_starting_in_the_owned_part() {
        let bytes = b"xab\0ab\0a";
        assert_eq!(find_all(bytes, b"ab\0", 5), vec![1, 4]);
        assert_eq!(find_all(bytes, b"ab\0", 4), vec![1]);
        assert_eq!(find_all(bytes, b"", 9), Vec::<usize>::new());
    }

    #[test]
    fn finds_calls_and_loads() {
        // 0x1000: call 0x1010 ; 0x1005: lea rcx, [rip+0x100] (0x110c) ;
        // 0x100c: lea r9, [rip-0x20] (0xff3: not wanted)
        let code = [
            0xe8, 0x0b, 0, 0, 0, 0x48, 0x8d, 0x0d, 0, 1, 0, 0, 0x4c, 0x8d, 0x0d, 0xe0, 0xff, 0xff,
            0xff,
        ];
        let mut found = Found::default();
        scan(&code, 0x1000, code.len(), &wanted(&[0x110c]), &mut found);
        assert_eq!(found.call_targets, vec![0x1010]);
        assert_eq!(found.loads, vec![0x1005]);
    }

    #[test]
    fn drops_unaligned_and_outside_targets_and_patterns_not_owned() {
        // call 0x1011 (unaligned); call 0x3000 (outside)
        let code = [
            0xe8, 0x0c, 0, 0, 0, 0xe8, 0xf6, 0x1f, 0, 0, 0xe8, 0, 0, 0, 0,
        ];
        let mut found = Found::default();
        scan(&code, 0x1000, 10, &wanted(&[]), &mut found);
        assert!(found.call_targets.is_empty());
        // A pattern cut at the end is ignored, not a panic.
        scan(&code[..3], 0x1000, 3, &wanted(&[]), &mut found);
        assert!(found.call_targets.is_empty());
    }
}
