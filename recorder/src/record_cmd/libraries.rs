//! Finding the TLS library files to hook: every file whose name matches a
//! row of the probe table (`spliff_recorder::probes`).
//!
//! Uprobes attach to a file (an inode), so one attachment covers every
//! process that maps it, now or later. Files are found in every process's
//! memory maps (through /proc/PID/root, so a container's own library is
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

use spliff_recorder::probes::{self, LibrarySpec};

/// A library file to hook.
#[derive(Clone, Debug)]
pub struct LibraryFile {
    /// Path valid in the recorder's mount namespace.
    pub path: PathBuf,
    /// Which library it is.
    pub library: &'static LibrarySpec,
    /// Why it is hooked: "ldconfig cache", "mapped by pid 12 (nginx)".
    pub reasons: Vec<String>,
}

/// (device, inode) of a file.
pub type FileId = (u64, u64);

/// The library among `wanted` that a file name belongs to.
fn wanted_library(wanted: &[&'static LibrarySpec], name: &str) -> Option<&'static LibrarySpec> {
    probes::library_of_file(name).filter(|l| wanted.iter().any(|w| w.kind == l.kind))
}

/// Collects library files by identity.
#[derive(Debug)]
pub struct Discovery {
    /// Found files.
    pub files: BTreeMap<FileId, LibraryFile>,
    /// The libraries looked for (`--lib`).
    wanted: Vec<&'static LibrarySpec>,
}

impl Discovery {
    /// Looks for files of the `wanted` libraries only.
    pub fn new(wanted: Vec<&'static LibrarySpec>) -> Self {
        Self {
            files: BTreeMap::new(),
            wanted,
        }
    }

    fn add(
        &mut self,
        path: PathBuf,
        library: &'static LibrarySpec,
        reason: String,
    ) -> Option<FileId> {
        let meta = fs::metadata(&path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let id = (meta.dev(), meta.ino());
        let entry = self.files.entry(id).or_insert_with(|| LibraryFile {
            path,
            library,
            reasons: Vec::new(),
        });
        // A bounded list of reasons: a library mapped by 500 processes need
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

    /// Library files in the dynamic linker cache (`ldconfig -p`).
    pub fn scan_ldconfig(&mut self) {
        let Ok(output) = Command::new("ldconfig").arg("-p").output() else {
            return;
        };
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some((left, path)) = line.split_once("=>") else {
                continue;
            };
            let name = left.split_whitespace().next().unwrap_or("");
            if let Some(library) = wanted_library(&self.wanted, name) {
                self.add(
                    PathBuf::from(path.trim()),
                    library,
                    "dynamic linker cache".into(),
                );
            }
        }
    }

    /// Library files mapped by every process.
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

    /// Library files mapped by process `pid`; returns the new ones.
    pub fn scan_process(&mut self, pid: u32) -> Vec<FileId> {
        let mut new = Vec::new();
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
            return new;
        };
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        for (path, library) in mapped_libraries(&maps, &self.wanted) {
            let known = self.files.len();
            let reason = format!("mapped by pid {pid} ({})", comm.trim());
            // Through the process's root: right for containers, and the
            // same inode as the host path otherwise.
            let host_path = if root_is_host(pid) {
                PathBuf::from(path)
            } else {
                root.join(path.trim_start_matches('/'))
            };
            if let Some(id) = self.add(host_path, library, reason)
                && self.files.len() > known
            {
                new.push(id);
            }
        }
        new
    }
}

/// Paths of the `wanted` libraries' files in a /proc/PID/maps text, with
/// their library.
pub fn mapped_libraries<'a>(
    maps: &'a str,
    wanted: &[&'static LibrarySpec],
) -> Vec<(&'a str, &'static LibrarySpec)> {
    let mut paths: Vec<(&str, &'static LibrarySpec)> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.starts_with('/'))
        .filter_map(|path| {
            let name = Path::new(path).file_name()?.to_str()?;
            Some((path, wanted_library(wanted, name)?))
        })
        .collect();
    paths.sort_unstable_by_key(|(path, _)| *path);
    paths.dedup_by_key(|(path, _)| *path);
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
    fn maps_parsing() {
        let maps = "7f00-7f01 r--p 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3\n\
                    7f01-7f02 r-xp 00001000 08:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3\n\
                    7f02-7f03 r--p 00000000 08:01 124 /usr/lib/x86_64-linux-gnu/libssl3.so\n\
                    7f03-7f04 r--p 00000000 08:01 125 /usr/lib/x86_64-linux-gnu/libgnutls.so.30\n\
                    7f04-7f05 rw-p 00000000 00:00 0 \n";
        let found = |wanted: &[&'static LibrarySpec]| -> Vec<&str> {
            mapped_libraries(maps, wanted)
                .into_iter()
                .map(|(path, _)| path)
                .collect()
        };
        assert_eq!(
            found(&[&probes::OPENSSL]),
            vec!["/usr/lib/x86_64-linux-gnu/libssl.so.3"]
        );
        assert_eq!(
            found(&probes::LIBRARIES.iter().collect::<Vec<_>>()),
            vec![
                "/usr/lib/x86_64-linux-gnu/libgnutls.so.30",
                "/usr/lib/x86_64-linux-gnu/libssl.so.3"
            ]
        );
    }
}
