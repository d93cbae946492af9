//! Creating a trace file as root without being turned against the file system.
//!
//! The recorder runs as root and writes other processes' secrets, often into shared
//! directories such as /tmp. So, like dumpcap rather than a plain `open(O_TRUNC)`:
//! - a trace is always a new inode, created `O_EXCL | O_NOFOLLOW` with mode 0600 (never
//!   readable by anyone else, not even for a moment; a reader holding the old file open sees
//!   none of it);
//! - an existing path is replaced only if it is a regular file of the trace's owner with one
//!   link: a symlink, a device, another user's file (a trap pre-created in /tmp) is refused;
//! - the new trace is written under a temporary name beside the target and renamed over it
//!   only when recording starts, so a run that fails first leaves the old file as it was and
//!   removes only what it created;
//! - an exclusive `flock` on the trace (and, until the rename, on the file it replaces) makes
//!   a second recorder with the same `-o` fail instead of corrupting the first one's file.

use std::{
    ffi::OsString,
    fs::{File, OpenOptions},
    io,
    os::{
        fd::AsRawFd as _,
        unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
};

/// Who the trace belongs to (the `-Z` user, or the recorder's own uid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

/// Why a trace file could not be created.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The path is a symbolic link.
    #[error(
        "{} is a symbolic link; spliff never writes a trace through a link (as root it could \
         point anywhere). Remove the link or choose another path with -o",
        path.display()
    )]
    Symlink {
        /// The path given.
        path: PathBuf,
    },
    /// The path exists and is not a regular file.
    #[error(
        "{} is a {kind}, not a regular file; spliff writes traces only to regular files. \
         Choose another path with -o",
        path.display()
    )]
    NotRegular {
        /// The path given.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The file belongs to someone else.
    #[error(
        "{} belongs to uid {found}, and the trace would belong to uid {owner}; spliff does not \
         write into a file someone else created (in a shared directory it may be a trap). \
         Remove it or choose another path with -o",
        path.display()
    )]
    ForeignOwner {
        /// The path given.
        path: PathBuf,
        /// Its owner.
        found: u32,
        /// The trace's owner.
        owner: u32,
    },
    /// The file has other hard links.
    #[error(
        "{} has {links} hard links; replacing it would leave the other names in place and \
         writing into it would change them too. Remove it or choose another path with -o",
        path.display()
    )]
    HardLinked {
        /// The path given.
        path: PathBuf,
        /// Its link count.
        links: u64,
    },
    /// Another process holds the file's lock.
    #[error(
        "{} is being written by another process (it holds the file's lock: another spliff \
         record?). Stop that one first or choose another path with -o",
        path.display()
    )]
    Locked {
        /// The path given.
        path: PathBuf,
    },
    /// `-o -` with standard output on a terminal.
    #[error(
        "-o - writes the binary trace to standard output, which is a terminal; pipe it \
         (spliff record -o - | spliff replay -) or redirect it to a file"
    )]
    Terminal,
    /// The path changed while it was being checked.
    #[error(
        "{} changed while spliff was checking it (replaced or removed by another process); \
         nothing was written. Try again, in a directory only you can write to",
        path.display()
    )]
    Raced {
        /// The path given.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was attempted.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> OutputError + use<> {
    let path = path.to_owned();
    move |source| OutputError::Io {
        action,
        path,
        source,
    }
}

/// `-o -`: the trace goes to standard output, as a stream (a pipe, or a file the shell
/// opened). A terminal is refused: a binary trace would only garble it.
pub fn stdout_trace() -> Result<File, OutputError> {
    use std::io::IsTerminal as _;
    use std::os::fd::AsFd as _;
    let stdout = io::stdout();
    let path = PathBuf::from("standard output");
    if stdout.is_terminal() {
        return Err(OutputError::Terminal);
    }
    let fd = stdout
        .as_fd()
        .try_clone_to_owned()
        .map_err(io_error("use", &path))?;
    Ok(File::from(fd))
}

/// A trace file being created: written under a staging name (or directly at the target when
/// nothing was there), put in place by [`TraceOutput::commit`], removed on drop before that.
#[derive(Debug)]
pub struct TraceOutput {
    file: File,
    target: PathBuf,
    /// The temporary name, while an existing file waits to be replaced.
    staging: Option<PathBuf>,
    /// The file being replaced, opened and locked so that no other recorder takes it meanwhile.
    replaced: Option<File>,
    committed: bool,
}

impl TraceOutput {
    /// Creates a trace for `path`, owned by `owner`, mode 0600, locked. An existing regular
    /// file of `owner` stays untouched until [`commit`](Self::commit).
    pub fn create(path: &Path, owner: Owner) -> Result<Self, OutputError> {
        // Two tries: a file that appears between the look and the O_EXCL create is looked at
        // once more, then it is a race.
        for _ in 0..2 {
            match std::fs::symlink_metadata(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => match create_new(path, owner) {
                    Ok(file) => return Ok(Self::new(file, path, None, None)),
                    Err(OutputError::Io { source, .. })
                        if source.kind() == io::ErrorKind::AlreadyExists =>
                    {
                        continue;
                    }
                    Err(error) => return Err(error),
                },
                Err(e) => return Err(io_error("look at", path)(e)),
                Ok(meta) => {
                    check_replaceable(path, &meta, owner)?;
                    let replaced = lock_existing(path, &meta)?;
                    let staging = staging_path(path);
                    let file = create_new(&staging, owner)?;
                    return Ok(Self::new(file, path, Some(staging), Some(replaced)));
                }
            }
        }
        Err(OutputError::Raced {
            path: path.to_owned(),
        })
    }

    fn new(file: File, target: &Path, staging: Option<PathBuf>, replaced: Option<File>) -> Self {
        Self {
            file,
            target: target.to_owned(),
            staging,
            replaced,
            committed: false,
        }
    }

    /// The trace file (a handle of its own, sharing the lock's open file description).
    pub fn file(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Recording started: the trace takes the target's name (replacing the old file
    /// atomically) and is kept whatever happens next.
    pub fn commit(&mut self) -> Result<(), OutputError> {
        if let Some(staging) = self.staging.take() {
            // rename(2) replaces the directory entry itself and never follows a link that may
            // have been put there since the check.
            std::fs::rename(&staging, &self.target).map_err(|e| {
                self.staging = Some(staging);
                io_error("put the trace in place at", &self.target)(e)
            })?;
        }
        self.replaced = None;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TraceOutput {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let ours = self.staging.as_deref().unwrap_or(&self.target);
        // Only the inode this run created: the name may have been replaced meanwhile.
        if let (Ok(on_disk), Ok(created)) = (std::fs::symlink_metadata(ours), self.file.metadata())
            && on_disk.dev() == created.dev()
            && on_disk.ino() == created.ino()
        {
            let _ = std::fs::remove_file(ours);
        }
    }
}

/// Creates `path` as a new regular file: never through a link, never an existing file, mode
/// 0600 from the first moment, owned by `owner`, exclusively locked.
fn create_new(path: &Path, owner: Owner) -> Result<File, OutputError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_error("create", path))?;
    let remove = |error| {
        let _ = std::fs::remove_file(path);
        error
    };
    // The umask can only take bits away; set exactly 0600 anyway, before the file changes
    // hands.
    let fd = file.as_raw_fd();
    // SAFETY: fchmod/fchown on a file descriptor this function owns.
    let chmod = unsafe { libc::fchmod(fd, 0o600) };
    if chmod != 0 {
        return Err(remove(io_error("set mode 0600 on", path)(
            io::Error::last_os_error(),
        )));
    }
    // SAFETY: as above.
    if unsafe { libc::geteuid() } != owner.uid
        && unsafe { libc::fchown(fd, owner.uid, owner.gid) } != 0
    {
        return Err(remove(io_error("give the trace to its owner:", path)(
            io::Error::last_os_error(),
        )));
    }
    if !try_lock(&file).map_err(|e| remove(io_error("lock", path)(e)))? {
        return Err(remove(OutputError::Locked {
            path: path.to_owned(),
        }));
    }
    Ok(file)
}

/// Whether the existing `path` may be replaced by a trace of `owner`.
fn check_replaceable(
    path: &Path,
    meta: &std::fs::Metadata,
    owner: Owner,
) -> Result<(), OutputError> {
    let path = path.to_owned();
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(OutputError::Symlink { path });
    }
    if !kind.is_file() {
        return Err(OutputError::NotRegular {
            path,
            kind: file_kind(meta),
        });
    }
    if meta.uid() != owner.uid {
        return Err(OutputError::ForeignOwner {
            path,
            found: meta.uid(),
            owner: owner.uid,
        });
    }
    if meta.nlink() > 1 {
        return Err(OutputError::HardLinked {
            path,
            links: meta.nlink(),
        });
    }
    Ok(())
}

/// Opens the file that `meta` describes (without following a link, without blocking on a
/// FIFO swapped in meanwhile) and takes its lock: a recorder writing it holds the lock.
fn lock_existing(path: &Path, meta: &std::fs::Metadata) -> Result<File, OutputError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_error("open", path))?;
    let opened = file.metadata().map_err(io_error("look at", path))?;
    if opened.dev() != meta.dev() || opened.ino() != meta.ino() || !opened.is_file() {
        return Err(OutputError::Raced {
            path: path.to_owned(),
        });
    }
    if !try_lock(&file).map_err(io_error("lock", path))? {
        return Err(OutputError::Locked {
            path: path.to_owned(),
        });
    }
    Ok(file)
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when another open file holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a valid descriptor; no memory arguments.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(error)
    }
}

/// `.NAME.spliff-PID` beside the target: same directory, so the rename is atomic; hidden and
/// named after the recorder, so a leftover says where it came from.
fn staging_path(target: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(format!(".spliff-{}", std::process::id()));
    target.with_file_name(name)
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let kind = meta.file_type();
    if kind.is_dir() {
        "directory"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;

    fn me() -> Owner {
        // SAFETY: getuid/getgid cannot fail.
        unsafe {
            Owner {
                uid: libc::geteuid(),
                gid: libc::getegid(),
            }
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "spliff-output-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_trace_is_0600_and_gone_when_recording_never_started() {
        let dir = temp_dir("new");
        let path = dir.join("t.pcapng");
        let output = TraceOutput::create(&path, me()).unwrap();
        assert_eq!(mode(&path), 0o600);
        drop(output);
        assert!(!path.exists(), "a trace never committed is removed");

        let mut output = TraceOutput::create(&path, me()).unwrap();
        output.commit().unwrap();
        drop(output);
        assert!(path.exists(), "a committed trace stays");
    }

    #[test]
    fn an_existing_file_is_kept_until_commit_then_replaced_by_a_new_inode() {
        let dir = temp_dir("replace");
        let path = dir.join("t.pcapng");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let old_ino = std::fs::metadata(&path).unwrap().ino();
        // A reader that opened the old file must never see the new trace.
        let mut reader = File::open(&path).unwrap();

        let output = TraceOutput::create(&path, me()).unwrap();
        output.file().unwrap().write_all(b"new").unwrap();
        drop(output);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"old",
            "failure keeps the old file"
        );
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no staging file left"
        );

        let mut output = TraceOutput::create(&path, me()).unwrap();
        output.file().unwrap().write_all(b"new").unwrap();
        output.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), old_ino);
        let mut seen = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut seen).unwrap();
        assert_eq!(seen, b"old");
    }

    #[test]
    fn links_devices_and_other_files_are_refused_untouched() {
        let dir = temp_dir("refuse");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.join("link.pcapng");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(matches!(
            TraceOutput::create(&link, me()),
            Err(OutputError::Symlink { .. })
        ));
        let hard = dir.join("hard.pcapng");
        std::fs::hard_link(&victim, &hard).unwrap();
        assert!(matches!(
            TraceOutput::create(&hard, me()),
            Err(OutputError::HardLinked { links: 2, .. })
        ));
        assert!(matches!(
            TraceOutput::create(&dir, me()),
            Err(OutputError::NotRegular {
                kind: "directory",
                ..
            })
        ));
        let other = Owner {
            uid: me().uid + 1,
            gid: me().gid,
        };
        let error = TraceOutput::create(&victim, other).unwrap_err();
        assert!(matches!(error, OutputError::ForeignOwner { .. }), "{error}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
    }

    #[test]
    fn a_second_writer_is_refused_before_and_after_commit() {
        let dir = temp_dir("lock");
        let path = dir.join("t.pcapng");
        let mut first = TraceOutput::create(&path, me()).unwrap();
        assert!(matches!(
            TraceOutput::create(&path, me()),
            Err(OutputError::Locked { .. })
        ));
        first.commit().unwrap();
        assert!(matches!(
            TraceOutput::create(&path, me()),
            Err(OutputError::Locked { .. })
        ));
        drop(first);
        let mut third = TraceOutput::create(&path, me()).unwrap();
        third.commit().unwrap();
    }
}
