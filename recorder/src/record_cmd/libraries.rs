//! Finding the libssl files to hook.
//!
//! Uprobes attach to a file (an inode), so one attachment covers every
//! process that maps it, now or later. Files are found in every process's
//! memory maps (through /proc/PID/root, so a container's own libssl is
//! reached by a path valid on the host) and in the dynamic linker's cache,
//! which covers libraries a process loads later (Python imports `ssl`
//! lazily). Files are deduplicated by (device, inode).

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::Command,
};

/// A library file to hook.
#[derive(Clone, Debug)]
pub struct LibraryFile {
    /// Path valid in the recorder's mount namespace.
    pub path: PathBuf,
    /// Why it is hooked: "ldconfig cache", "mapped by pid 12 (nginx)".
    pub reasons: Vec<String>,
}

/// (device, inode) of a file.
pub type FileId = (u64, u64);

/// Whether a file name is OpenSSL's libssl (`libssl.so`, `libssl.so.3`,
/// `libssl.so.1.1`), not NSS's `libssl3.so`.
pub fn is_libssl(name: &str) -> bool {
    name == "libssl.so" || name.starts_with("libssl.so.")
}

/// Collects library files by identity.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Found files.
    pub files: BTreeMap<FileId, LibraryFile>,
}

impl Discovery {
    fn add(&mut self, path: PathBuf, reason: String) -> Option<FileId> {
        let meta = fs::metadata(&path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let id = (meta.dev(), meta.ino());
        let entry = self.files.entry(id).or_insert_with(|| LibraryFile {
            path,
            reasons: Vec::new(),
        });
        // A bounded list of reasons: a libssl mapped by 500 processes need
        // not say so 500 times.
        if entry.reasons.contains(&reason) {
            // libssl.so and libssl.so.3 in the linker cache are one file.
        } else if entry.reasons.len() < 4 {
            entry.reasons.push(reason);
        } else if entry.reasons.len() == 4 {
            entry.reasons.push("and more processes".into());
        }
        Some(id)
    }

    /// libssl files in the dynamic linker cache (`ldconfig -p`).
    pub fn scan_ldconfig(&mut self) {
        let Ok(output) = Command::new("ldconfig").arg("-p").output() else {
            return;
        };
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some((left, path)) = line.split_once("=>") else {
                continue;
            };
            let name = left.split_whitespace().next().unwrap_or("");
            if is_libssl(name) {
                self.add(PathBuf::from(path.trim()), "dynamic linker cache".into());
            }
        }
    }

    /// libssl files mapped by every process.
    pub fn scan_all_processes(&mut self) {
        let Ok(dir) = fs::read_dir("/proc") else {
            return;
        };
        for entry in dir.flatten() {
            if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                self.scan_process(pid);
            }
        }
    }

    /// libssl files mapped by process `pid`; returns the new ones.
    pub fn scan_process(&mut self, pid: u32) -> Vec<FileId> {
        let mut new = Vec::new();
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
            return new;
        };
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        for path in mapped_libssl(&maps) {
            let known = self.files.len();
            let reason = format!("mapped by pid {pid} ({})", comm.trim());
            // Through the process's root: right for containers, and the
            // same inode as the host path otherwise.
            let host_path = if root_is_host(pid) {
                PathBuf::from(path)
            } else {
                root.join(path.trim_start_matches('/'))
            };
            if let Some(id) = self.add(host_path, reason)
                && self.files.len() > known
            {
                new.push(id);
            }
        }
        new
    }
}

/// Paths of libssl files in a /proc/PID/maps text.
pub fn mapped_libssl(maps: &str) -> Vec<&str> {
    let mut paths: Vec<&str> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| {
            path.starts_with('/')
                && Path::new(path)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_libssl)
        })
        .collect();
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// Whether process `pid` sees the same root directory as the recorder.
fn root_is_host(pid: u32) -> bool {
    match (
        fs::metadata(format!("/proc/{pid}/root/")),
        fs::metadata("/proc/self/root/"),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_libssl("libssl.so.3"));
        assert!(is_libssl("libssl.so.1.1"));
        assert!(is_libssl("libssl.so"));
        assert!(!is_libssl("libssl3.so"));
        assert!(!is_libssl("libssl.a"));
    }

    #[test]
    fn maps_parsing() {
        let maps = "7f00-7f01 r--p 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3\n\
                    7f01-7f02 r-xp 00001000 08:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3\n\
                    7f02-7f03 r--p 00000000 08:01 124 /usr/lib/x86_64-linux-gnu/libssl3.so\n\
                    7f03-7f04 rw-p 00000000 00:00 0 \n";
        assert_eq!(
            mapped_libssl(maps),
            vec!["/usr/lib/x86_64-linux-gnu/libssl.so.3"]
        );
    }
}
