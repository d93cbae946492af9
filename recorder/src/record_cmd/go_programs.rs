//! Go programs to hook: each Go executable carries its own `crypto/tls`, so
//! the executable file is what the uprobes go on (once per file, covering
//! every process running it). Found as `-- CMD` before it starts, as the
//! executables of running processes, and at every exec the capture sees.

use std::{collections::HashSet, fs, os::unix::fs::MetadataExt as _, path::Path};

use anyhow::Context as _;
use spliff_recorder::{
    bpf::{BpfPipeline, UprobeLink},
    golang::{self, GoBinary, PROBES},
};

use super::libraries::FileId;

/// Go executables hooked so far, by file.
#[derive(Debug, Default)]
pub struct GoPrograms {
    cache: golang::Cache,
    hooked: HashSet<FileId>,
    /// Files looked at and found not to be hookable Go programs.
    skipped: HashSet<FileId>,
}

impl GoPrograms {
    /// How many executables are hooked.
    pub fn len(&self) -> usize {
        self.hooked.len()
    }

    /// Hooks the executable `pid` runs, if it is a Go program not hooked
    /// yet. Returns the attached lines and links.
    pub fn hook_process(
        &mut self,
        pipeline: &mut BpfPipeline,
        pid: u32,
    ) -> anyhow::Result<Attached> {
        // The magic link reaches the file even inside another mount
        // namespace, and the attachment holds the inode afterwards.
        self.hook_file(pipeline, Path::new(&format!("/proc/{pid}/exe")))
    }

    /// Hooks `path` if it is a Go program not hooked yet.
    pub fn hook_file(
        &mut self,
        pipeline: &mut BpfPipeline,
        path: &Path,
    ) -> anyhow::Result<Attached> {
        let Ok(meta) = fs::metadata(path) else {
            return Ok(Attached::default());
        };
        let id = (meta.dev(), meta.ino());
        if !meta.is_file() || self.hooked.contains(&id) || self.skipped.contains(&id) {
            return Ok(Attached::default());
        }
        let inspected = self.cache.inspect(path);
        let binary = match inspected.as_ref() {
            Ok(Some(binary)) => binary,
            // A Go program without crypto/tls has nothing to record.
            Ok(None) | Err(golang::GoError::Missing(_)) => {
                self.skipped.insert(id);
                return Ok(Attached::default());
            }
            Err(error) => {
                self.skipped.insert(id);
                return Err(anyhow::anyhow!("{error}"))
                    .with_context(|| format!("Go program {} not hooked", path.display()));
            }
        };
        let lines = attach(pipeline, binary, path)
            .with_context(|| format!("Go program {} not hooked", path.display()));
        match lines {
            Ok(attached) => {
                self.hooked.insert(id);
                Ok(attached)
            }
            Err(error) => {
                self.skipped.insert(id);
                Err(error)
            }
        }
    }
}

/// What [`GoPrograms::hook_file`] attached.
#[derive(Debug, Default)]
pub struct Attached {
    /// One line per hooked function, for the capture info record.
    pub lines: Vec<String>,
    /// Every uprobe, to detach at the end.
    pub links: Vec<UprobeLink>,
}

/// Attaches every probe to `binary` at `path`, all or nothing.
fn attach(pipeline: &mut BpfPipeline, binary: &GoBinary, path: &Path) -> anyhow::Result<Attached> {
    let mut links: Vec<UprobeLink> = Vec::new();
    let mut lines = Vec::new();
    let shown = fs::read_link(path).unwrap_or_else(|_| path.to_path_buf());
    for &(name, entry_program, ret_program) in PROBES {
        let Some(function) = binary.function(name) else {
            continue;
        };
        let mut points: Vec<(&'static str, u64)> = entry_program
            .map(|program| (program, function.entry))
            .into_iter()
            .collect();
        if let Some(ret_program) = ret_program {
            points.extend(function.rets.iter().map(|&ret| (ret_program, ret)));
        }
        for (program, offset) in points {
            match pipeline.attach_uprobe_at(program, path, offset, None) {
                Ok(link) => links.push(link),
                Err(error) => {
                    for link in links {
                        pipeline.detach_uprobe(link);
                    }
                    return Err(error.into());
                }
            }
        }
        let rets = ret_program.map_or(0, |_| function.rets.len());
        lines.push(format!(
            "uprobe {name} ({}{rets} RET{}, {:?}) {} ({})",
            if entry_program.is_some() {
                "entry, "
            } else {
                ""
            },
            if rets == 1 { "" } else { "s" },
            function.source,
            shown.display(),
            binary.version
        ));
    }
    Ok(Attached { lines, links })
}

/// Running Go programs, for `--list-libs`: (pid, executable, version or
/// why it is not hookable), one line per distinct file.
pub fn running() -> Vec<String> {
    let mut seen = HashSet::new();
    let mut lines = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return lines;
    };
    let mut cache = golang::Cache::default();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let exe = format!("/proc/{pid}/exe");
        let Ok(meta) = fs::metadata(&exe) else {
            continue;
        };
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let path = fs::read_link(&exe).unwrap_or_default();
        let what = match cache.inspect(Path::new(&exe)).as_ref() {
            Ok(None) => continue,
            Ok(Some(binary)) => format!("Go {} (crypto/tls hooked)", binary.version),
            Err(error) => format!("not hooked: {error}"),
        };
        lines.push(format!(
            "{}\n    Go program, pid {pid}: {what}",
            path.display()
        ));
    }
    lines
}
