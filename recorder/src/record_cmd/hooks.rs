//! Attaching the probe table's programs to library files: which libraries
//! `--lib` selects, which files are hooked (every process, or per process),
//! and detaching the uprobes of processes that are gone.

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroU32,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use spliff_recorder::{
    boringssl,
    bpf::{BpfPipeline, UprobeLink},
    method_table,
    probes::{self, LibrarySpec, Probe},
};

use super::{
    libraries::{Discovery, FileId, LibraryFile},
    process_info::start_time,
};
use crate::cli::Library;

/// The probe table's rows that `--lib` selects.
pub fn wanted_libraries(libs: &[Library]) -> Vec<&'static LibrarySpec> {
    let wants = |lib: &LibrarySpec| {
        libs.iter().any(|l| match l {
            Library::All => true,
            Library::Openssl => lib.kind == probes::OPENSSL.kind,
            Library::Gnutls => lib.kind == probes::GNUTLS.kind,
            Library::Wolfssl => lib.kind == probes::WOLFSSL.kind,
            Library::Nss => lib.kind == probes::NSS.kind,
        })
    };
    probes::LIBRARIES.iter().filter(|l| wants(l)).collect()
}

/// Every file of the `wanted` libraries in the linker cache or mapped by a
/// process; the stripped BoringSSL search's results on disk unless
/// `no_cache` (--no-cache).
pub fn discover(wanted: Vec<&'static LibrarySpec>, no_cache: bool) -> Discovery {
    let mut discovery = Discovery::new(wanted, boringssl_cache(no_cache));
    discovery.scan_ldconfig();
    discovery.scan_all_processes();
    discovery
}

/// Where the stripped BoringSSL search's results are kept.
pub fn boringssl_cache(no_cache: bool) -> boringssl::Cache {
    if no_cache {
        boringssl::Cache::default()
    } else {
        boringssl::Cache::with_disk(boringssl::DiskCache::system())
    }
}

/// What the libraries `wanted` would need to be found: "libssl.so*
/// (Debian: libssl3)".
pub fn looked_for(wanted: &[&'static LibrarySpec]) -> String {
    wanted
        .iter()
        .map(|l| format!("{} (Debian: {})", l.file_names_text(), l.package))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Attaches every probe of `file`'s library to it (by symbol, or at the
/// offsets found for it); returns the attached lines and links. Fails only
/// when a required probe cannot be attached (what was attached is detached
/// again then).
fn attach_library(
    pipeline: &mut BpfPipeline,
    slots: &mut SlotOffsets,
    file: &LibraryFile,
    pid: Option<NonZeroU32>,
) -> anyhow::Result<(Vec<String>, Vec<UprobeLink>)> {
    let (library, path) = (file.library, file.path.as_path());
    let mut attached = Vec::new();
    let mut links = Vec::new();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    for probe in library.probes.iter().filter(|p| p.applies_to(name)) {
        let (result, at) = match &file.offsets {
            Some(offsets) => match offsets.of(probe.symbol) {
                Some(offset) => (
                    pipeline
                        .attach_uprobe_at(probe.program, path, offset, pid)
                        .map_err(anyhow::Error::from),
                    format!(" (offset {offset:#x}, {})", file.found_by.text()),
                ),
                // An optional function that was not found.
                None if !probe.required => continue,
                None => anyhow::bail!("{} not found in {}", probe.symbol, path.display()),
            },
            None => (
                attach_probe(pipeline, slots, probe, path, pid),
                String::new(),
            ),
        };
        match result {
            Ok(link) => {
                links.push(link);
                attached.push(format!(
                    "{} {}{at} {}",
                    if probe.is_return {
                        "uretprobe"
                    } else {
                        "uprobe"
                    },
                    probe.target_text(),
                    path.display()
                ));
            }
            Err(error) if probe.required => {
                for link in links {
                    pipeline.detach_uprobe(link);
                }
                return Err(error).with_context(|| {
                    format!(
                        "{} is not a usable {} library",
                        path.display(),
                        library.display
                    )
                });
            }
            // Optional functions are missing in some versions (OpenSSL's
            // _ex functions came with 1.1.1).
            Err(_) => {}
        }
    }
    Ok((attached, links))
}

/// Attaches one probe: on its symbol, or on the function a method table
/// holds (found in the file).
fn attach_probe(
    pipeline: &mut BpfPipeline,
    slots: &mut SlotOffsets,
    probe: &Probe,
    path: &Path,
    pid: Option<NonZeroU32>,
) -> anyhow::Result<UprobeLink> {
    let Some(at) = probe.table_slot else {
        return Ok(pipeline.attach_uprobe(probe.program, probe.symbol, path, pid)?);
    };
    // Per file, not per process: per-process mode attaches the same file
    // for every process it selects.
    let offset = slots
        .entry((path.to_path_buf(), probe.symbol, at.slot))
        .or_insert_with(|| {
            method_table::function_offset(path, probe.symbol, at).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{}: a function of {}'s table", path.display(), probe.symbol))?;
    Ok(pipeline.attach_uprobe_at(probe.program, path, offset, pid)?)
}

/// Where the functions of method tables are, by (file, getter, slot), once
/// found.
type SlotOffsets = HashMap<(PathBuf, &'static str, u64), Result<u64, String>>;
/// What is attached where.
#[derive(Debug, Default)]
pub struct Hooks {
    /// Attach per process rather than per file.
    pub per_process: bool,
    /// Files attached for every process.
    pub files: HashSet<FileId>,
    /// (pid, file) pairs attached in per-process mode.
    pairs: HashSet<(u32, FileId)>,
    /// Files that are not usable libraries (reported once, not retried).
    failed: HashSet<FileId>,
    /// One line per attached probe, for the capture info record (only
    /// until it is written: per-process attachments go on all capture long).
    pub lines: Vec<String>,
    /// Whether to keep collecting `lines`.
    keep_lines: bool,
    /// Per-process mode: each process's start time (to tell a reused pid)
    /// and its uprobes, detached once it is gone, so a capture of many
    /// short-lived processes does not run out of file descriptors.
    processes: HashMap<u32, (Option<u64>, Vec<UprobeLink>)>,
    /// Uprobes attached for every process.
    file_links: Vec<UprobeLink>,
    /// Uprobes of gone processes still to detach. A detach blocks for tens
    /// of milliseconds (the kernel waits for an RCU grace period), so only
    /// a few are done per loop turn: a stopped process must not wait long.
    to_detach: Vec<UprobeLink>,
    /// The file offsets of method table functions found so far.
    slot_offsets: SlotOffsets,
    /// Go executables (hooked per file in every mode: the kernel's scope
    /// filter keeps other processes running them out).
    pub go: super::go_programs::GoPrograms,
}

impl Hooks {
    /// Hooks the Go program at `path`, if it is one.
    pub fn hook_go_file(
        &mut self,
        pipeline: &mut BpfPipeline,
        path: &Path,
        problems: &mut Vec<String>,
    ) {
        let attached = self.go.hook_file(pipeline, path);
        self.keep_go(attached, problems);
    }

    /// Hooks the executable of `pid`, if it is a Go program.
    pub fn hook_go_process(
        &mut self,
        pipeline: &mut BpfPipeline,
        pid: u32,
        problems: &mut Vec<String>,
    ) {
        let attached = self.go.hook_process(pipeline, pid);
        self.keep_go(attached, problems);
    }

    fn keep_go(
        &mut self,
        attached: anyhow::Result<super::go_programs::Attached>,
        problems: &mut Vec<String>,
    ) {
        match attached {
            Ok(attached) => {
                if self.keep_lines {
                    self.lines.extend(attached.lines);
                }
                self.file_links.extend(attached.links);
            }
            Err(error) => problems.push(format!("{error:#}")),
        }
    }

    /// Nothing attached yet; attach per process or per file. Lines are kept
    /// for the capture info record until `take_lines`.
    pub fn new(per_process: bool) -> Self {
        Self {
            per_process,
            keep_lines: true,
            ..Self::default()
        }
    }

    /// The attached probes' lines so far; no more are kept from now on.
    pub fn take_lines(&mut self) -> Vec<String> {
        self.keep_lines = false;
        std::mem::take(&mut self.lines)
    }

    /// Attaches `file` (for `pid` only, or every process) unless done.
    pub fn hook(
        &mut self,
        pipeline: &mut BpfPipeline,
        id: FileId,
        file: &LibraryFile,
        pid: Option<u32>,
    ) -> anyhow::Result<bool> {
        let new = match pid {
            Some(pid) => !self.pairs.contains(&(pid, id)),
            None => !self.files.contains(&id),
        };
        if !new || self.failed.contains(&id) {
            return Ok(false);
        }
        let (lines, links) = match attach_library(
            pipeline,
            &mut self.slot_offsets,
            file,
            pid.and_then(NonZeroU32::new),
        ) {
            Ok(attached) => attached,
            // The process exited meanwhile, or is exiting (the kernel
            // refuses it with ESRCH while /proc still shows it: Firefox
            // forks short-lived helpers): says nothing about the file.
            Err(error)
                if pid
                    .is_some_and(|pid| start_time(pid).is_none() || is_no_such_process(&error)) =>
            {
                return Ok(false);
            }
            Err(error) => {
                self.failed.insert(id);
                return Err(error);
            }
        };
        let lines = lines.into_iter().filter(|_| self.keep_lines);
        match pid {
            Some(pid) => {
                self.pairs.insert((pid, id));
                self.lines.extend(lines.map(|l| format!("{l} pid {pid}")));
                self.processes
                    .entry(pid)
                    .or_insert_with(|| (start_time(pid), Vec::new()))
                    .1
                    .extend(links);
            }
            None => {
                self.files.insert(id);
                self.lines.extend(lines);
                // File-wide uprobes stay until the capture ends (detach_all).
                self.file_links.extend(links);
            }
        }
        Ok(true)
    }

    /// Detaches every uprobe, concurrently: at the end of a capture, where
    /// one by one (as dropping the pipeline would) takes seconds.
    pub fn detach_all(&mut self, pipeline: &mut BpfPipeline) {
        let mut links = std::mem::take(&mut self.file_links);
        links.append(&mut self.to_detach);
        for (_, (_, process_links)) in self.processes.drain() {
            links.extend(process_links);
        }
        self.pairs.clear();
        self.files.clear();
        pipeline.detach_uprobes(links);
    }

    /// Forgets `pid`; its uprobes are detached later (`detach_some`).
    pub fn forget(&mut self, pid: u32) {
        if let Some((_, links)) = self.processes.remove(&pid) {
            self.to_detach.extend(links);
        }
        self.pairs.retain(|&(p, _)| p != pid);
    }

    /// Detaches at most `n` uprobes of gone processes.
    pub fn detach_some(&mut self, pipeline: &mut BpfPipeline, n: usize) {
        for _ in 0..n {
            match self.to_detach.pop() {
                Some(link) => {
                    pipeline.detach_uprobe(link);
                }
                None => break,
            }
        }
    }

    /// Per-process mode: detaches the uprobes of processes that are gone
    /// (their pid no longer exists or belongs to a newer process).
    pub fn sweep(&mut self) {
        let gone: Vec<u32> = self
            .processes
            .iter()
            .filter(|(pid, (started, _))| {
                let now = start_time(**pid);
                now.is_none() || now != *started
            })
            .map(|(pid, _)| *pid)
            .collect();
        for pid in gone {
            self.forget(pid);
        }
    }

    /// Per-process mode: attaches every known library file for `pid`
    /// (also files it has not mapped yet: it may dlopen them later).
    pub fn hook_process(
        &mut self,
        pipeline: &mut BpfPipeline,
        discovery: &Discovery,
        pid: u32,
        problems: &mut Vec<String>,
    ) {
        let started = start_time(pid);
        if started.is_none() {
            // Gone (a late rescan): nothing to attach to.
            return;
        }
        // A reused pid: the old uprobes were bound to the old process.
        if let Some((known, _)) = self.processes.get(&pid)
            && *known != started
        {
            self.forget(pid);
        }
        for (id, lib) in &discovery.files {
            if let Err(error) = self.hook(pipeline, *id, lib, Some(pid)) {
                problems.push(format!("{error:#}"));
            }
        }
    }
}

/// Whether `error` comes from the kernel refusing a process that is gone
/// (ESRCH).
fn is_no_such_process(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::ESRCH))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esrch_anywhere_in_the_chain_is_a_gone_process() {
        let gone = anyhow::Error::from(std::io::Error::from_raw_os_error(libc::ESRCH))
            .context("cannot attach")
            .context("not a usable NSS library");
        assert!(is_no_such_process(&gone));
        let missing = anyhow::Error::from(std::io::Error::from_raw_os_error(libc::ENOENT))
            .context("cannot attach");
        assert!(!is_no_such_process(&missing));
        assert!(!is_no_such_process(&anyhow::anyhow!("PR_Write not found")));
    }
}
