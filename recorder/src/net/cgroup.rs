//! A cgroup v2 directory to attach sock_ops to: the root of a mounted cgroup2 hierarchy, or
//! of one mounted privately for the capture when the host mounts none (cgroup v1 hosts).
//!
//! There is only one cgroup v2 hierarchy per kernel, mounted or not; on a v1 host every
//! process sits in its root, so a program attached there sees every TCP socket. The
//! attachment holds the cgroup itself, not the mount: a private mount is undone right after
//! attaching ([`Cgroup2Root::release`]), and on every other path by `Drop`, so a capture
//! leaves nothing mounted behind (only a SIGKILL between mount and attach could, and the
//! next capture cleans such a leftover up).

use std::{
    ffi::CString,
    fs::File,
    io,
    os::{
        fd::{AsFd, BorrowedFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
};

/// Where private mounts go: one directory per recorder process.
const PRIVATE_MOUNT_BASE: &str = "/run/spliff";

/// Why no cgroup v2 directory could be had.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// /proc/self/mountinfo could not be read.
    #[error("cannot read /proc/self/mountinfo to find a cgroup2 mount: {source}")]
    MountInfo {
        /// The error.
        source: io::Error,
    },
    /// The directory for the private mount could not be created.
    #[error("cannot create {path} for a private cgroup2 mount: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// mount(2) failed.
    #[error(
        "cannot mount a cgroup2 hierarchy on {path}: {source} (needs root / CAP_SYS_ADMIN and a \
         kernel with cgroup v2; or mount one yourself: mount -t cgroup2 none /sys/fs/cgroup/unified)"
    )]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The root directory could not be opened.
    #[error("cannot open the cgroup2 root {path}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// An open cgroup v2 root directory, mounted privately or not.
#[derive(Debug)]
pub struct Cgroup2Root {
    dir: Option<File>,
    path: PathBuf,
    private: bool,
}

impl Cgroup2Root {
    /// The root of the first cgroup2 mount that shows the whole hierarchy, else a private
    /// mount under /run/spliff.
    pub fn open() -> Result<Self, CgroupError> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|source| CgroupError::MountInfo { source })?;
        remove_stale_private_mounts(&mountinfo);
        if let Some(path) = cgroup2_mounts(&mountinfo).into_iter().next() {
            let dir = File::open(&path).map_err(|source| CgroupError::Open {
                path: path.clone(),
                source,
            })?;
            return Ok(Self {
                dir: Some(dir),
                path,
                private: false,
            });
        }
        let path = Path::new(PRIVATE_MOUNT_BASE).join(format!("cgroup2-{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|source| CgroupError::CreateDir {
            path: path.clone(),
            source,
        })?;
        if let Err(source) = mount_cgroup2(&path) {
            let _ = std::fs::remove_dir(&path);
            return Err(CgroupError::Mount { path, source });
        }
        // From here on Drop unmounts, whatever fails.
        let mut root = Self {
            dir: None,
            path,
            private: true,
        };
        root.dir = Some(File::open(&root.path).map_err(|source| CgroupError::Open {
            path: root.path.clone(),
            source,
        })?);
        Ok(root)
    }

    /// The directory, to attach programs to.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.dir.as_ref().map(AsFd::as_fd)
    }

    /// Where it is (or was) mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether spliff mounted it.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Closes the directory and undoes a private mount. Attachments made through it stay.
    pub fn release(mut self) -> io::Result<()> {
        self.cleanup()
    }

    fn cleanup(&mut self) -> io::Result<()> {
        // The open directory would keep the mount busy.
        self.dir = None;
        if !std::mem::take(&mut self.private) {
            return Ok(());
        }
        let result = unmount(&self.path);
        let _ = std::fs::remove_dir(&self.path);
        // Only when empty: other recorders may use it.
        let _ = std::fs::remove_dir(PRIVATE_MOUNT_BASE);
        result
    }
}

impl Drop for Cgroup2Root {
    fn drop(&mut self) {
        if let Err(error) = self.cleanup() {
            eprintln!(
                "spliff: warning: cannot unmount the private cgroup2 hierarchy at {}: {error}; \
                 unmount it with `umount {}`",
                self.path.display(),
                self.path.display()
            );
        }
    }
}

/// Mount points of cgroup2 mounts whose root is the hierarchy's root (a bind mount of a
/// sub-cgroup would show only part of the sockets), private mounts of other recorders left
/// out.
fn cgroup2_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(parse_mount)
        .filter(|m| m.fstype == "cgroup2" && m.root == "/")
        .map(|m| m.mount_point)
        .filter(|p| !p.starts_with(PRIVATE_MOUNT_BASE))
        .collect()
}

/// Private mounts of recorders that are gone (killed before they could unmount).
fn remove_stale_private_mounts(mountinfo: &str) {
    for mount in mountinfo.lines().filter_map(parse_mount) {
        if mount.fstype != "cgroup2" {
            continue;
        }
        let Some(pid) = mount
            .mount_point
            .strip_prefix(PRIVATE_MOUNT_BASE)
            .ok()
            .and_then(|rest| rest.to_str()?.strip_prefix("cgroup2-")?.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = unmount(&mount.mount_point);
            let _ = std::fs::remove_dir(&mount.mount_point);
        }
    }
}

struct Mount {
    root: String,
    mount_point: PathBuf,
    fstype: String,
}

/// One line of /proc/self/mountinfo: `id parent major:minor root mount-point options
/// [optional fields...] - fstype source super-options`.
fn parse_mount(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split(' ');
    let root = unescape(fields.nth(3)?);
    let mount_point = PathBuf::from(unescape(fields.next()?));
    let fstype = after.split(' ').next()?.to_string();
    Some(Mount {
        root,
        mount_point,
        fstype,
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space and so on).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = bytes
                .get(i + 1..i + 4)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
}

fn mount_cgroup2(path: &Path) -> io::Result<()> {
    let target = c_path(path)?;
    let fstype = c"cgroup2";
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // SAFETY: NUL-terminated strings that outlive the call; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn unmount(path: &Path) -> io::Result<()> {
    let target = c_path(path)?;
    // Lazy: a process that wandered into the directory must not keep it mounted for good.
    // SAFETY: a NUL-terminated string that outlives the call.
    let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:38 /system.slice /mnt/part rw shared:5 - cgroup2 cgroup2 rw
51 23 0:38 / /run/spliff/cgroup2-1 rw - cgroup2 none rw
52 23 0:38 / /mnt/with\\040space rw master:1 - cgroup2 none rw
";

    #[test]
    fn finds_whole_hierarchy_cgroup2_mounts_only() {
        assert_eq!(
            cgroup2_mounts(MOUNTINFO),
            vec![
                PathBuf::from("/sys/fs/cgroup/unified"),
                PathBuf::from("/mnt/with space")
            ]
        );
        assert!(cgroup2_mounts(&MOUNTINFO.replace("cgroup2", "cgroup")).is_empty());
    }

    #[test]
    fn malformed_mountinfo_lines_are_skipped() {
        for line in ["", "garbage", "1 2 3 - cgroup2", "\\\\\\ - x"] {
            assert!(cgroup2_mounts(line).is_empty(), "{line}");
        }
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("a\\999b"), "a\\999b");
    }
}
