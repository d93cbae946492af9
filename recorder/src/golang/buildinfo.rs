//! The Go version a binary was built with, from its `.go.buildinfo`
//! section (the linker writes it since Go 1.13; `go version FILE` reads it
//! the same way).

/// Magic at the start of the section.
const MAGIC: &[u8] = b"\xff Go buildinf:";
/// Flag: version and module info are inline varint-prefixed strings (1.18+).
const FLAG_INLINE: u8 = 0x2;

/// The version string ("go1.19.8"), or `None` when the section is not one
/// this reads. `read_at(address, len)` returns memory of the binary at a
/// virtual address (pre-1.18 sections point to the string).
pub fn version(section: &[u8], read_at: impl Fn(u64, usize) -> Option<Vec<u8>>) -> Option<String> {
    let header = section.get(..32)?;
    if !header.starts_with(MAGIC) {
        return None;
    }
    let ptr_size = usize::from(header[14]);
    let flags = header[15];
    let bytes = if flags & FLAG_INLINE != 0 {
        inline_string(section.get(32..)?)?.to_vec()
    } else {
        // A pointer to a Go string header (data pointer, length).
        if ptr_size != 8 || flags & 1 != 0 {
            return None;
        }
        let pointer = u64::from_le_bytes(header.get(16..24)?.try_into().ok()?);
        let string = read_at(pointer, 16)?;
        let data = u64::from_le_bytes(string.get(..8)?.try_into().ok()?);
        let len = u64::from_le_bytes(string.get(8..16)?.try_into().ok()?);
        if len > 64 {
            return None;
        }
        read_at(data, usize::try_from(len).ok()?)?
    };
    let version = String::from_utf8(bytes).ok()?;
    version.starts_with("go").then_some(version)
}

/// A uvarint-length-prefixed string at the start of `data`.
fn inline_string(data: &[u8]) -> Option<&[u8]> {
    let mut len: u64 = 0;
    for (i, &byte) in data.iter().enumerate().take(10) {
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let start = i + 1;
            let end = start.checked_add(usize::try_from(len).ok()?)?;
            return data.get(start..end);
        }
    }
    None
}

/// (major, minor) of "go1.19.8", "go1.21rc2", "go1.22.0 X:boringcrypto".
pub fn parse(version: &str) -> Option<(u32, u32)> {
    let rest = version.strip_prefix("go")?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_version() {
        let mut section = MAGIC.to_vec();
        section.extend_from_slice(&[8, 2]);
        section.resize(32, 0);
        section.push(8);
        section.extend_from_slice(b"go1.19.8");
        assert_eq!(version(&section, |_, _| None).as_deref(), Some("go1.19.8"));
        section.truncate(36);
        assert_eq!(version(&section, |_, _| None), None);
    }

    #[test]
    fn versions() {
        assert_eq!(parse("go1.19.8"), Some((1, 19)));
        assert_eq!(parse("go1.21rc2"), Some((1, 21)));
        assert_eq!(parse("devel"), None);
    }
}
