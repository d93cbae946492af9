//! TLS stacks compiled into a program that spliff does not hook, recognised
//! by the source paths their panic messages and symbols carry (present in
//! stripped builds too), so that a process using one is named in the
//! end-of-capture report and `--list-libs` instead of leaving an empty
//! trace unexplained.

use std::{fs::File, path::Path};

/// (name shown, bytes every build of it carries).
const UNSUPPORTED: &[(&str, &[u8])] = &[
    // Cargo's registry path of the crate: `.../rustls-0.23.37/src/conn.rs`.
    ("rustls", b"/rustls-"),
];

/// Larger programs are not searched (the report is not worth reading
/// gigabytes for).
const MAX_PROGRAM_BYTES: u64 = 1 << 30;

/// The unsupported TLS stack compiled into the program at `path`, if any.
pub fn unsupported_in(path: &Path) -> Option<&'static str> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len == 0 || len > MAX_PROGRAM_BYTES {
        return None;
    }
    // SAFETY: read-only mapping of a program file; a file truncated
    // meanwhile can raise SIGBUS, as for any reader of mapped programs,
    // and programs being run are not truncated (ETXTBSY).
    let bytes = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    UNSUPPORTED
        .iter()
        .find(|(_, marker)| memchr::memmem::find(&bytes, marker).is_some())
        .map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_carrying_rustls_paths_is_named_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let with = dir.path().join("with");
        let mut bytes = vec![0x7f, b'E', b'L', b'F'];
        bytes.extend_from_slice(b"\0/root/.cargo/registry/src/x/rustls-0.23.37/src/conn.rs\0");
        std::fs::write(&with, &bytes).unwrap();
        assert_eq!(unsupported_in(&with), Some("rustls"));
        let without = dir.path().join("without");
        std::fs::write(&without, b"\x7fELF rustlsnot a path").unwrap();
        assert_eq!(unsupported_in(&without), None);
        assert_eq!(unsupported_in(&dir.path().join("missing")), None);
    }
}
