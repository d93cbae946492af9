//! Finding the TLS library files to hook: every file whose name matches a
//! row of the probe table (`spliff_recorder::probes`), and every program or
//! shared object a process maps that exports a row's functions (a TLS
//! library compiled in, as node's OpenSSL).
//!
//! Uprobes attach to a file (an inode), so one attachment covers every
//! process that maps it, now or later. Files are found in every process's
//! memory maps (through /proc/PID/root, so a container's own library is
//! reached by a path valid on the host) and in the dynamic linker's cache,
//! which covers libraries a process loads later (Python imports `ssl`
//! lazily). Files are deduplicated by (device, inode). What a file exports
//! is read once per file: a system maps thousands of files, mostly the same
//! few hundred in every process.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use spliff_recorder::{
    boringssl::{self, Offsets},
    probes::{self, LibrarySpec},
};

use super::{elf_exports, startup_times};

/// How a file was recognised as a TLS library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoundBy {
    /// Its name is the library's (`libssl.so.3`).
    FileName,
    /// It exports the library's functions (the library compiled in).
    Exports,
    /// Its code does what the library's functions do (stripped BoringSSL).
    Pattern,
}

impl FoundBy {
    /// For `--list-libs`.
    pub fn text(self) -> &'static str {
        match self {
            Self::FileName => "found by file name",
            Self::Exports => "found by exported symbols",
            Self::Pattern => "found by code pattern",
        }
    }
}

/// A library file to hook.
#[derive(Clone, Debug)]
pub struct LibraryFile {
    /// Path valid in the recorder's mount namespace.
    pub path: PathBuf,
    /// Which library it is.
    pub library: &'static LibrarySpec,
    /// How it was recognised.
    pub found_by: FoundBy,
    /// Where its functions are, when no symbol says so (found by pattern).
    pub offsets: Option<Offsets>,
    /// Why it is hooked: "ldconfig cache", "mapped by pid 12 (nginx)".
    pub reasons: Vec<String>,
}

/// (device, inode) of a file.
pub type FileId = (u64, u64);

/// Whether `--lib` selects `library`: stripped BoringSSL comes with OpenSSL.
pub fn is_wanted(wanted: &[&'static LibrarySpec], library: &LibrarySpec) -> bool {
    let kind = if library.kind == probes::BORINGSSL.kind {
        probes::OPENSSL.kind
    } else {
        library.kind
    };
    wanted.iter().any(|w| w.kind == kind)
}

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
    /// What each mapped file (by the device and inode its maps line names)
    /// exports a library of, so no file is read twice.
    exports: HashMap<(u64, u64), Option<&'static LibrarySpec>>,
    /// BoringSSL's functions in stripped programs, per file.
    boringssl: boringssl::Cache,
    /// Files with BoringSSL whose functions were not all identified, and
    /// why: not hooked, and said so.
    pub refused: BTreeMap<FileId, (PathBuf, String)>,
    /// Refusals not reported yet.
    unreported: Vec<String>,
    /// Program directories looked at for libraries beside the program.
    beside_scanned: HashSet<PathBuf>,
}

/// How a file was recognised: the library, how, and where its functions
/// are when no symbol names them.
type Recognised = (&'static LibrarySpec, FoundBy, Option<Offsets>);

/// Smaller files are not searched for stripped BoringSSL: its TLS code
/// alone is larger.
const MIN_BORINGSSL_FILE_BYTES: u64 = 1 << 20;

impl Discovery {
    /// Looks for files of the `wanted` libraries only; `boringssl` keeps
    /// what the stripped BoringSSL search found (in memory, or on disk too).
    pub fn new(wanted: Vec<&'static LibrarySpec>, boringssl: boringssl::Cache) -> Self {
        Self {
            files: BTreeMap::new(),
            wanted,
            exports: HashMap::new(),
            boringssl,
            refused: BTreeMap::new(),
            unreported: Vec::new(),
            beside_scanned: HashSet::new(),
        }
    }

    fn add(
        &mut self,
        path: PathBuf,
        (library, found_by, offsets): Recognised,
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
            found_by,
            offsets,
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
                    (library, FoundBy::FileName, None),
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

    /// The program `-- CMD` runs, before it runs: its own TLS must be
    /// hooked before its first instruction.
    pub fn scan_program(&mut self, path: &Path) {
        let Ok(meta) = fs::metadata(path) else {
            return;
        };
        let key = (meta.dev(), meta.ino());
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(found) = self.recognise(name, key, path) {
            self.add(path.to_path_buf(), found, "the recorded command".into());
        }
        if let Some(dir) = fs::canonicalize(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            self.scan_beside(&dir, "beside the recorded command");
        }
    }

    /// Library files named like a wanted library in `dir`, a program's
    /// directory, once per directory; returns the new ones. Applications
    /// that bring their own copy keep it there and load it late, by dlopen,
    /// from a directory the linker cache does not know (Firefox's
    /// libssl3.so in /usr/lib/firefox-esr): it must be hooked before that.
    /// By name only: such a directory can hold hundreds of large files.
    fn scan_beside(&mut self, dir: &Path, reason: &str) -> Vec<FileId> {
        let mut new = Vec::new();
        if !self.beside_scanned.insert(dir.to_path_buf()) {
            return new;
        }
        let Ok(entries) = fs::read_dir(dir) else {
            return new;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(library) = name.to_str().and_then(|n| wanted_library(&self.wanted, n)) else {
                continue;
            };
            let known = self.files.len();
            if let Some(id) = self.add(
                entry.path(),
                (library, FoundBy::FileName, None),
                reason.into(),
            ) && self.files.len() > known
            {
                new.push(id);
            }
        }
        new
    }

    /// Library files mapped by process `pid`; returns the new ones.
    pub fn scan_process(&mut self, pid: u32) -> Vec<FileId> {
        let mut new = Vec::new();
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
            return new;
        };
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let host = root_is_host(pid);
        for file in mapped_files(&maps) {
            // Through the process's root: right for containers, and the
            // same inode as the host path otherwise.
            let host_path = if host {
                PathBuf::from(file.path)
            } else {
                root.join(file.path.trim_start_matches('/'))
            };
            let name = Path::new(file.path)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("");
            let Some(found) = self.recognise(name, file.key, &host_path) else {
                continue;
            };
            let known = self.files.len();
            let reason = format!("mapped by pid {pid} ({})", comm.trim());
            if let Some(id) = self.add(host_path, found, reason)
                && self.files.len() > known
            {
                new.push(id);
            }
        }
        // /proc/PID/exe names the program without symbolic links, in the
        // process's own root.
        if let Some(dir) = fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
        {
            let dir = if host {
                dir
            } else {
                root.join(dir.strip_prefix("/").unwrap_or(&dir))
            };
            let reason = format!("beside the program of pid {pid} ({})", comm.trim());
            new.extend(self.scan_beside(&dir, &reason));
        }
        new
    }

    /// The wanted library a file is of, by its name or else by what it
    /// exports (read once per `key`).
    fn recognise(&mut self, name: &str, key: (u64, u64), path: &Path) -> Option<Recognised> {
        if let Some(library) = wanted_library(&self.wanted, name) {
            return Some((library, FoundBy::FileName, None));
        }
        let exported = *self
            .exports
            .entry(key)
            .or_insert_with(|| library_by_exports(path));
        if let Some(library) = exported {
            // Not held at its next exec for a search it does not need.
            self.boringssl.skip(path);
            return self
                .wanted
                .iter()
                .any(|w| w.kind == library.kind)
                .then_some((library, FoundBy::Exports, None));
        }
        self.stripped_boringssl(key, path)
    }

    /// Refusals not reported yet, as warnings to print.
    pub fn new_refusals(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unreported)
    }

    /// Whether the program at `path` is still to be searched for stripped
    /// BoringSSL (a search of a large program takes a moment).
    pub fn is_unsearched(&self, path: &Path) -> bool {
        fs::metadata(path)
            .is_ok_and(|meta| self.searches_boringssl(&meta) && !self.boringssl.knows(&meta))
    }

    /// BoringSSL is looked for with OpenSSL (its fork: `--lib openssl` or
    /// `all`), in files large enough to hold it.
    fn searches_boringssl(&self, meta: &fs::Metadata) -> bool {
        is_wanted(&self.wanted, &probes::BORINGSSL)
            && meta.is_file()
            && meta.len() >= MIN_BORINGSSL_FILE_BYTES
    }

    /// BoringSSL in a stripped program.
    fn stripped_boringssl(&mut self, key: (u64, u64), path: &Path) -> Option<Recognised> {
        if !self.searches_boringssl(&fs::metadata(path).ok()?) {
            return None;
        }
        let timed = startup_times::enabled()
            .then(|| fs::metadata(path).ok())
            .flatten()
            .filter(|meta| !self.boringssl.knows(meta))
            .map(|_| std::time::Instant::now());
        let found = self.boringssl.inspect(path);
        if let Some(started) = timed {
            // How the search and its cache are measured (docs/BENCHMARKS.md).
            eprintln!(
                "spliff: {}: looked for stripped BoringSSL in {:.1} ms",
                path.display(),
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
        self.report_cache_events();
        match &*found {
            boringssl::Found::NotBoringSsl => None,
            boringssl::Found::Hookable(offsets) => {
                Some((&probes::BORINGSSL, FoundBy::Pattern, Some(*offsets)))
            }
            boringssl::Found::Refused(why) => {
                if !self.refused.contains_key(&key) {
                    self.unreported.push(format!(
                        "{} has BoringSSL compiled in but is not hooked: {why} (a probe \
                         placed by guess would corrupt the program)",
                        path.display()
                    ));
                    self.refused.insert(key, (path.to_path_buf(), why.clone()));
                }
                None
            }
        }
    }
}

impl Discovery {
    /// A hit is said at once (the test of the cache and the bench look for
    /// it); warnings go with the refusals.
    fn report_cache_events(&mut self) {
        for event in self.boringssl.take_events() {
            match event {
                boringssl::CacheEvent::Hit { path, entry, took } => eprintln!(
                    "spliff: {}: stripped BoringSSL found in cache {} (offsets verified in \
                     {:.1} ms)",
                    path.display(),
                    entry.display(),
                    took.as_secs_f64() * 1000.0
                ),
                boringssl::CacheEvent::Warning(warning) => self.unreported.push(warning),
            }
        }
    }
}

/// The library whose functions the file at `path` exports, if any.
pub fn library_by_exports(path: &Path) -> Option<&'static LibrarySpec> {
    let names: Vec<&'static str> = probes::export_names().collect();
    let found = elf_exports::exported_functions(path, &names);
    probes::library_of_exports(|name| found.contains(&name))
}

/// One file in a /proc/PID/maps text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedFile<'a> {
    /// As the process sees it.
    pub path: &'a str,
    /// Device and inode as the maps line gives them: the same file has the
    /// same key in every process, without a `stat` of its own.
    pub key: (u64, u64),
}

/// Every file a /proc/PID/maps text maps, once each, by path.
pub fn mapped_files(maps: &str) -> Vec<MappedFile<'_>> {
    let mut files: Vec<MappedFile<'_>> = maps.lines().filter_map(mapped_file).collect();
    files.sort_unstable_by_key(|f| f.path);
    files.dedup_by_key(|f| f.path);
    files
}

/// The file of one maps line ("start-end perms offset dev inode path").
fn mapped_file(line: &str) -> Option<MappedFile<'_>> {
    let mut fields = line.split_whitespace();
    let dev = fields.nth(3)?;
    let inode: u64 = fields.next()?.parse().ok()?;
    let path = fields.next().filter(|p| p.starts_with('/'))?;
    let (major, minor) = dev.split_once(':')?;
    let major = u64::from_str_radix(major, 16).ok()?;
    let minor = u64::from_str_radix(minor, 16).ok()?;
    Some(MappedFile {
        path,
        key: (major << 32 | minor, inode),
    })
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
                    7f02-7f03 r--p 00000000 fd:1a 124 /usr/bin/node\n\
                    7f03-7f04 r--p 00000000 08:01 125 /memfd:x (deleted)\n\
                    7f04-7f05 rw-p 00000000 00:00 0 \n\
                    7f05-7f06 rw-p 00000000 00:00 0 [heap]\n\
                    7f06-7f07 rw-p 00000000 zz:00 0 /bad/device\n";
        assert_eq!(
            mapped_files(maps),
            vec![
                // Gone files keep a path: reading it fails, which is all.
                MappedFile {
                    path: "/memfd:x",
                    key: (8 << 32 | 1, 125)
                },
                MappedFile {
                    path: "/usr/bin/node",
                    key: (0xfd << 32 | 0x1a, 124)
                },
                MappedFile {
                    path: "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                    key: (8 << 32 | 1, 123)
                },
            ]
        );
    }
}
