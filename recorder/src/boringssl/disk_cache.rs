//! The BoringSSL search's results kept on disk between captures, so that a
//! browser's first exec is not held for a whole search in every capture.
//!
//! The recorder runs as root and a uprobe at a wrong offset corrupts the
//! program, so an entry is only ever a hint: the caller re-verifies every
//! offset against the program's bytes before using it. The directory and
//! its files must belong to root and be writable by nobody else (a file an
//! unprivileged user could write would steer root's probes); anything else
//! is refused, never repaired or followed. Entries are small versioned text
//! files named after the program's GNU build-id, also holding its size and
//! mtime (a rebuilt or replaced file does not match); any parsing error
//! makes the entry unknown, and the program is searched again.

use std::{
    fs::{self, DirBuilder, File, OpenOptions},
    io::{self, Read as _, Write as _},
    os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use super::{Extent, Identified};

/// Where entries are kept by default.
pub const DEFAULT_DIR: &str = "/var/cache/spliff";

/// The first line of every entry; another version is not read.
const HEADER: &str = "spliff-boringssl-cache 1";

/// Entries are a few hundred bytes: anything larger is not one.
const MAX_ENTRY_BYTES: u64 = 4096;

/// Build-ids are 20 bytes (SHA-1) in practice; longer ones make no entry.
const MAX_BUILD_ID_BYTES: usize = 64;

/// What identifies the program an entry was written for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub build_id: Vec<u8>,
    pub size: u64,
    /// Seconds and nanoseconds.
    pub mtime: (i64, i64),
}

impl Identity {
    /// `None` without a usable build-id (such a file is never cached:
    /// device and inode alone do not survive a reinstall, and size and
    /// mtime alone identify nothing).
    pub fn new(build_id: Option<&[u8]>, meta: &fs::Metadata) -> Option<Self> {
        let build_id = build_id.filter(|id| !id.is_empty() && id.len() <= MAX_BUILD_ID_BYTES)?;
        Some(Self {
            build_id: build_id.to_vec(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        })
    }

    fn hex(&self) -> String {
        self.build_id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why the cache was not used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The directory or a file in it could be written by someone other
    /// than its owner, or is not what it should be.
    #[error(
        "not using the BoringSSL search cache {path}: {problem}; remove it (spliff recreates \
         the directory owned by root, mode 0700) or record with --no-cache"
    )]
    Unsafe { path: PathBuf, problem: String },
    #[error(
        "the BoringSSL search cache {path} could not be {action}: {source} (record with \
         --no-cache to do without it)"
    )]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

/// A directory of entries, owned by `owner` (root, except in tests).
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    owner: u32,
    /// The directory was checked and is safe to use.
    checked: bool,
}

impl DiskCache {
    /// The cache in [`DEFAULT_DIR`], owned by root.
    pub fn system() -> Self {
        Self::new(PathBuf::from(DEFAULT_DIR), 0)
    }

    pub fn new(dir: PathBuf, owner: u32) -> Self {
        Self {
            dir,
            owner,
            checked: false,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the entry for `identity`.
    pub fn entry_path(&self, identity: &Identity) -> PathBuf {
        self.dir.join(format!("boringssl-{}", identity.hex()))
    }

    /// The entry for `identity`; `Ok(None)` when there is none or it does
    /// not parse or belongs to another file (searched again, then
    /// overwritten).
    pub fn load(&mut self, identity: &Identity) -> Result<Option<Identified>, CacheError> {
        if !self.check_dir(false)? {
            return Ok(None);
        }
        let path = self.entry_path(identity);
        let text = match self.read_entry(&path)? {
            Some(text) => text,
            None => return Ok(None),
        };
        Ok(parse(&text, identity).ok())
    }

    /// Writes the entry for `identity` atomically (a reader sees the old
    /// entry or the new one, never part of one).
    pub fn store(&mut self, identity: &Identity, found: &Identified) -> Result<(), CacheError> {
        self.check_dir(true)?;
        let path = self.entry_path(identity);
        let temp = self.dir.join(format!(
            ".boringssl-{}.{}.tmp",
            identity.hex(),
            std::process::id()
        ));
        let io = |action, source| CacheError::Io {
            path: path.clone(),
            action,
            source,
        };
        let written = write_new(&temp, format(identity, found).as_bytes())
            .and_then(|()| fs::rename(&temp, &path));
        if let Err(error) = written {
            let _ = fs::remove_file(&temp);
            return Err(io("written", error));
        }
        Ok(())
    }

    /// Removes the entry for `identity` (its offsets no longer verify).
    pub fn remove(&mut self, identity: &Identity) {
        let _ = fs::remove_file(self.entry_path(identity));
    }

    /// Refuses a directory that is a symlink, not a directory, not owned by
    /// the owner or writable by others; creates it (mode 0700) when
    /// `create` and it is missing. `false`: missing (nothing cached yet).
    fn check_dir(&mut self, create: bool) -> Result<bool, CacheError> {
        if self.checked {
            return Ok(true);
        }
        let meta = match fs::symlink_metadata(&self.dir) {
            Err(error) if error.kind() == io::ErrorKind::NotFound && !create => return Ok(false),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&self.dir)
                    .map_err(|source| self.io_error("created", source))?;
                fs::symlink_metadata(&self.dir)
            }
            other => other,
        }
        .map_err(|source| self.io_error("read", source))?;
        check_owned(&self.dir, &meta, self.owner, true)?;
        self.checked = true;
        Ok(true)
    }

    fn io_error(&self, action: &'static str, source: io::Error) -> CacheError {
        CacheError::Io {
            path: self.dir.clone(),
            action,
            source,
        }
    }

    /// The entry's text; `None` when there is none or it is too large to
    /// be one.
    fn read_entry(&self, path: &Path) -> Result<Option<String>, CacheError> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path);
        let file = match file {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                return Err(unsafe_path(path, "is a symbolic link"));
            }
            Err(source) => {
                return Err(CacheError::Io {
                    path: path.to_path_buf(),
                    action: "read",
                    source,
                });
            }
        };
        let meta = file.metadata().map_err(|source| CacheError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        })?;
        check_owned(path, &meta, self.owner, false)?;
        if meta.len() > MAX_ENTRY_BYTES {
            return Ok(None);
        }
        let mut text = String::new();
        match file.take(MAX_ENTRY_BYTES).read_to_string(&mut text) {
            Ok(_) => Ok(Some(text)),
            // Not UTF-8: not an entry.
            Err(error) if error.kind() == io::ErrorKind::InvalidData => Ok(None),
            Err(source) => Err(CacheError::Io {
                path: path.to_path_buf(),
                action: "read",
                source,
            }),
        }
    }
}

fn unsafe_path(path: &Path, problem: impl Into<String>) -> CacheError {
    CacheError::Unsafe {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// A directory (`is_dir`) or regular file owned by `owner` that nobody
/// else can write.
fn check_owned(
    path: &Path,
    meta: &fs::Metadata,
    owner: u32,
    is_dir: bool,
) -> Result<(), CacheError> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(unsafe_path(path, "is a symbolic link"));
    }
    if (is_dir && !kind.is_dir()) || (!is_dir && !kind.is_file()) {
        let wanted = if is_dir {
            "a directory"
        } else {
            "a regular file"
        };
        return Err(unsafe_path(path, format!("is not {wanted}")));
    }
    if meta.uid() != owner {
        return Err(unsafe_path(
            path,
            format!("is owned by uid {}, not {owner}", meta.uid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_path(
            path,
            format!(
                "is group- or world-writable (mode {:o})",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Creates `path` (never through a symlink, never over a file) with
/// `bytes`, mode 0600, on disk before it is renamed into place.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The names of the functions in an entry, in its order.
const ROLES: [&str; 6] = [
    "SSL_do_handshake",
    "ssl_read_impl",
    "SSL_write",
    "SSL_read",
    "SSL_peek",
    "SSL_new",
];

fn format(identity: &Identity, found: &Identified) -> String {
    let mut text = format!(
        "{HEADER}\nbuild-id {}\nsize {}\nmtime {} {}\n",
        identity.hex(),
        identity.size,
        identity.mtime.0,
        identity.mtime.1
    );
    for name in ROLES {
        if let Some(extent) = found.extent(name) {
            text.push_str(&format!("{name} {:#x} {:#x}\n", extent.start, extent.len));
        }
    }
    text.push_str("end\n");
    text
}

/// The entry in `text`, if it is one written for `identity`.
fn parse(text: &str, identity: &Identity) -> Result<Identified, String> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err("not an entry of this version".into());
    }
    let expected = [
        format!("build-id {}", identity.hex()),
        format!("size {}", identity.size),
        format!("mtime {} {}", identity.mtime.0, identity.mtime.1),
    ];
    for line in expected {
        if lines.next() != Some(line.as_str()) {
            return Err("written for another file".into());
        }
    }
    let mut extents: Vec<(&str, Extent)> = Vec::new();
    for line in lines.by_ref() {
        if line == "end" {
            return (lines.next().is_none())
                .then(|| Identified::from_extents(&extents))
                .flatten()
                .ok_or_else(|| "incomplete".to_string());
        }
        extents.push(parse_function(line).ok_or("a malformed line")?);
    }
    Err("truncated".into())
}

/// `NAME START LEN`, in hexadecimal.
fn parse_function(line: &str) -> Option<(&str, Extent)> {
    let mut words = line.split(' ');
    let word = words.next()?;
    let name = ROLES.into_iter().find(|&r| r == word)?;
    let number = |word: Option<&str>| u64::from_str_radix(word?.strip_prefix("0x")?, 16).ok();
    let start = number(words.next())?;
    let len = number(words.next())?;
    words
        .next()
        .is_none()
        .then_some((name, Extent { start, len }))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn identified() -> Identified {
        let e = |start| Extent { start, len: 0x80 };
        Identified {
            ssl_do_handshake: e(0x1000),
            ssl_read_impl: e(0x1100),
            ssl_write: e(0x1200),
            ssl_read: e(0x1300),
            ssl_peek: e(0x1400),
            ssl_new: Some(e(0x1500)),
        }
    }

    fn identity(id: &[u8]) -> Identity {
        Identity {
            build_id: id.to_vec(),
            size: 297_000_000,
            mtime: (1_765_000_000, 123),
        }
    }

    /// A cache in a fresh directory owned by whoever runs the test.
    fn cache() -> (tempfile::TempDir, DiskCache) {
        let dir = tempfile::tempdir().unwrap();
        let owner = fs::metadata(dir.path()).unwrap().uid();
        let cache = DiskCache::new(dir.path().join("cache"), owner);
        (dir, cache)
    }

    #[test]
    fn round_trip_and_the_directory_is_private() {
        let (_dir, mut cache) = cache();
        let id = identity(&[0xab; 20]);
        assert_eq!(cache.load(&id).unwrap(), None);
        cache.store(&id, &identified()).unwrap();
        assert_eq!(cache.load(&id).unwrap(), Some(identified()));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(cache.dir()), 0o700);
        assert_eq!(mode(&cache.entry_path(&id)), 0o600);
        let mut without_new = identified();
        without_new.ssl_new = None;
        cache.store(&id, &without_new).unwrap();
        assert_eq!(cache.load(&id).unwrap(), Some(without_new));
        // No temporary file is left.
        assert_eq!(fs::read_dir(cache.dir()).unwrap().count(), 1);
    }

    #[test]
    fn another_build_id_size_or_mtime_is_not_found() {
        let (_dir, mut cache) = cache();
        let id = identity(&[1; 20]);
        cache.store(&id, &identified()).unwrap();
        assert_eq!(cache.load(&identity(&[2; 20])).unwrap(), None);
        // The same build-id, another file: the entry is not its.
        for other in [
            Identity {
                size: 1,
                ..id.clone()
            },
            Identity {
                mtime: (1, 0),
                ..id.clone()
            },
        ] {
            assert_eq!(cache.load(&other).unwrap(), None);
        }
        // Even copied under the other's name.
        let wrong = identity(&[3; 20]);
        fs::copy(cache.entry_path(&id), cache.entry_path(&wrong)).unwrap();
        assert_eq!(cache.load(&wrong).unwrap(), None);
    }

    #[test]
    fn corrupt_or_truncated_entries_are_ignored() {
        let (_dir, mut cache) = cache();
        let id = identity(&[7; 20]);
        cache.store(&id, &identified()).unwrap();
        let path = cache.entry_path(&id);
        let good = fs::read(&path).unwrap();
        for len in 0..good.len() - 1 {
            fs::write(&path, &good[..len]).unwrap();
            assert_eq!(cache.load(&id).unwrap(), None, "{len} bytes");
        }
        for at in 0..good.len() {
            let mut changed = good.clone();
            changed[at] ^= 0x55;
            fs::write(&path, &changed).unwrap();
            // Never a panic; a change in a number may still parse (it is
            // verified against the program before use).
            let _ = cache.load(&id);
        }
        fs::write(&path, good.repeat(20)).unwrap();
        assert_eq!(cache.load(&id).unwrap(), None);
        fs::write(&path, [0xff, 0xfe, 0]).unwrap();
        assert_eq!(cache.load(&id).unwrap(), None);
    }

    #[test]
    fn a_writable_directory_or_file_is_refused() {
        let (_dir, mut cache) = cache();
        let id = identity(&[9; 20]);
        cache.store(&id, &identified()).unwrap();
        let path = cache.entry_path(&id);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o620)).unwrap();
        let error = cache.load(&id).unwrap_err().to_string();
        assert!(
            error.contains("group- or world-writable") && error.contains(&*path.to_string_lossy()),
            "{error}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(cache.dir(), fs::Permissions::from_mode(0o770)).unwrap();
        let mut fresh = DiskCache::new(cache.dir().to_path_buf(), cache.owner);
        let error = fresh.load(&id).unwrap_err();
        assert!(matches!(error, CacheError::Unsafe { .. }), "{error}");
        assert!(fresh.store(&id, &identified()).is_err());
        // Another owner.
        fs::set_permissions(cache.dir(), fs::Permissions::from_mode(0o700)).unwrap();
        let mut other = DiskCache::new(cache.dir().to_path_buf(), cache.owner + 1);
        assert!(matches!(other.load(&id), Err(CacheError::Unsafe { .. })));
    }

    #[test]
    fn symbolic_links_are_refused() {
        let (dir, mut cache) = cache();
        let id = identity(&[5; 20]);
        cache.store(&id, &identified()).unwrap();
        // The entry a symlink to a good entry.
        let real = dir.path().join("elsewhere");
        fs::rename(cache.entry_path(&id), &real).unwrap();
        std::os::unix::fs::symlink(&real, cache.entry_path(&id)).unwrap();
        let error = cache.load(&id).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
        // The directory a symlink to a good directory.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(cache.dir(), &link).unwrap();
        let mut linked = DiskCache::new(link, cache.owner);
        assert!(matches!(linked.load(&id), Err(CacheError::Unsafe { .. })));
        assert!(matches!(
            linked.store(&id, &identified()),
            Err(CacheError::Unsafe { .. })
        ));
    }
}
