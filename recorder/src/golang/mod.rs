//! Go programs: finding `crypto/tls` in a Go executable and where to hook it.
//!
//! Go links its TLS into every binary, so there is no library file to find:
//! each Go executable is its own "library". For one file this finds the Go
//! version, the hooked functions (by `.symtab`, else by `.gopclntab` for
//! stripped binaries) and, per function, the file offsets of its entry and
//! of every RET instruction (see `ret_offsets`). Only x86-64 binaries of Go
//! 1.17 or later (register ABI) are accepted; anything else is refused with
//! the reason, never hooked by guess.

mod buildinfo;
mod elf;
mod pclntab;
mod ret_offsets;

use std::{collections::HashMap, fs, os::unix::fs::MetadataExt as _, path::Path, sync::Arc};

pub use buildinfo::parse as parse_version;
pub use ret_offsets::{RetError, ret_offsets};

/// Oldest Go with the register ABI on amd64, which the kernel programs read.
pub const MIN_VERSION: (u32, u32) = (1, 17);

/// Where a hooked function was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The ELF symbol table.
    Symtab,
    /// Go's function table (stripped binaries).
    Pclntab,
}

/// One function to hook.
#[derive(Clone, Debug)]
pub struct GoFunction {
    /// Go's name, `crypto/tls.(*Conn).Write`.
    pub name: &'static str,
    /// File offset of the first instruction.
    pub entry: u64,
    /// File offsets of its RET instructions.
    pub rets: Vec<u64>,
    /// How it was found.
    pub source: Source,
}

/// A Go executable with `crypto/tls` in it.
#[derive(Clone, Debug)]
pub struct GoBinary {
    /// "go1.19.8".
    pub version: String,
    /// Found functions, in [`FUNCTIONS`] order (missing optional ones left out).
    pub functions: Vec<GoFunction>,
}

impl GoBinary {
    /// The function `name`, if found.
    pub fn function(&self, name: &str) -> Option<&GoFunction> {
        self.functions.iter().find(|f| f.name == name)
    }
}

/// `(*Conn).Write`: plaintext written.
pub const WRITE: &str = "crypto/tls.(*Conn).Write";
/// `(*Conn).Read`: plaintext read.
pub const READ: &str = "crypto/tls.(*Conn).Read";
/// Client handshake: role and timing.
pub const CLIENT_HANDSHAKE: &str = "crypto/tls.(*Conn).clientHandshake";
/// Server handshake: role and timing.
pub const SERVER_HANDSHAKE: &str = "crypto/tls.(*Conn).serverHandshake";
/// Close: the connection's end.
pub const CLOSE: &str = "crypto/tls.(*Conn).Close";
/// The server's ALPN choice (Go 1.17+).
pub const NEGOTIATE_ALPN: &str = "crypto/tls.negotiateALPN";
/// The connection's state, ALPN included, as the application asks for it.
pub const CONNECTION_STATE: &str = "crypto/tls.(*Conn).ConnectionState";

/// Every hooked function; the first two are required.
pub const FUNCTIONS: &[&str] = &[
    WRITE,
    READ,
    CLIENT_HANDSHAKE,
    SERVER_HANDSHAKE,
    CLOSE,
    NEGOTIATE_ALPN,
    CONNECTION_STATE,
];

/// Entry program and RET program per hooked function (`None`: no probe there): what
/// `spliff record` attaches, and where the benchmark's no-op probes go.
pub const PROBES: &[(&str, Option<&str>, Option<&str>)] = &[
    (
        WRITE,
        Some("spliff_go_write_entry"),
        Some("spliff_go_data_return"),
    ),
    (
        READ,
        Some("spliff_go_read_entry"),
        Some("spliff_go_data_return"),
    ),
    (
        CLIENT_HANDSHAKE,
        Some("spliff_go_client_hs_entry"),
        Some("spliff_go_hs_return"),
    ),
    (
        SERVER_HANDSHAKE,
        Some("spliff_go_server_hs_entry"),
        Some("spliff_go_hs_return"),
    ),
    (CLOSE, Some("spliff_go_close_entry"), None),
    (NEGOTIATE_ALPN, None, Some("spliff_go_alpn_return")),
    (
        CONNECTION_STATE,
        Some("spliff_go_state_entry"),
        Some("spliff_go_state_return"),
    ),
];

/// Why a file is not a hookable Go program.
#[derive(Debug, thiserror::Error)]
pub enum GoError {
    /// Reading the file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not an ELF file this reads.
    #[error("not an x86-64 ELF executable ({0})")]
    NotElf(String),
    /// A Go program without a readable version.
    #[error("Go program of unknown version (no readable .go.buildinfo)")]
    UnknownVersion,
    /// Older than the register ABI.
    #[error("{0} predates the register ABI (Go 1.17) that spliff's Go probes read")]
    TooOld(String),
    /// A required function is not in the binary (no crypto/tls linked in).
    #[error("{0} not found (no crypto/tls in this program)")]
    Missing(&'static str),
    /// A function was found but cannot be hooked safely.
    #[error("{name}: {reason}")]
    Unhookable {
        /// The function.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

/// Whether `path` looks like a Go executable at all (cheap: section names
/// only), and if so its version. `None`: not Go (or not readable as ELF).
pub fn go_version(path: &Path) -> Option<String> {
    if !elf::looks_like_go(path) {
        return None;
    }
    let data = fs::read(path).ok()?;
    let file = elf::Elf::parse(&data).ok()?;
    file.go_version()
}

/// Inspects a Go executable. `Ok(None)`: not a Go program.
pub fn inspect(path: &Path) -> Result<Option<GoBinary>, GoError> {
    // Every process's executable is looked at: most are not Go, and are
    // not read whole for that.
    if !elf::looks_like_go(path) {
        return Ok(None);
    }
    let data = fs::read(path).map_err(|source| GoError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let Ok(file) = elf::Elf::parse(&data) else {
        return Ok(None);
    };
    if !file.is_go() {
        return Ok(None);
    }
    let version = file.go_version().ok_or(GoError::UnknownVersion)?;
    match parse_version(&version) {
        Some(v) if v >= MIN_VERSION => {}
        _ => return Err(GoError::TooOld(version)),
    }
    let mut functions = Vec::new();
    for (i, &name) in FUNCTIONS.iter().enumerate() {
        // The optional ones only add metadata: one that cannot be hooked
        // safely is left out, the program is still recorded.
        let required = i < 2;
        match file.function(name) {
            Ok(Some(function)) => functions.push(function),
            Ok(None) if required => return Err(GoError::Missing(name)),
            Err(error) if required => return Err(error),
            Ok(None) | Err(_) => {}
        }
    }
    Ok(Some(GoBinary { version, functions }))
}

/// (device, inode, modification time, size): a rebuilt binary at the same
/// path is inspected again.
type FileKey = (u64, u64, i64, u64);

/// Inspections by file, so a program started a thousand times is decoded
/// once.
#[derive(Debug, Default)]
pub struct Cache {
    files: HashMap<FileKey, Arc<Result<Option<GoBinary>, GoError>>>,
}

impl Cache {
    /// [`inspect`], remembered per file.
    pub fn inspect(&mut self, path: &Path) -> Arc<Result<Option<GoBinary>, GoError>> {
        let Ok(meta) = fs::metadata(path) else {
            return Arc::new(inspect(path));
        };
        let key = (meta.dev(), meta.ino(), meta.mtime(), meta.size());
        self.files
            .entry(key)
            .or_insert_with(|| Arc::new(inspect(path)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_programs_are_not_go() {
        // This test binary: ELF, x86-64 or not, but not Go's.
        let exe = std::env::current_exe().unwrap();
        assert!(matches!(inspect(&exe), Ok(None)));
        assert_eq!(go_version(&exe), None);
        assert!(matches!(inspect(Path::new("/nonexistent")), Ok(None)));
    }
}
