//! Processes that exec'd, looked at again a few times: for library files at new paths, and
//! in per-process mode to attach to the new process itself (the kernel only reports execs of
//! processes in scope).

use std::{
    fs::File,
    time::{Duration, Instant},
};

use spliff_recorder::bpf::BpfPipeline;

use super::{convert::Converter, hooks::Hooks, libraries::Discovery};

/// After exec, libraries are looked for again at these delays (the dynamic
/// loader maps them shortly after exec; dlopen can come later and is covered
/// by the linker-cache scan at start).
const RESCAN_DELAYS: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(20),
    Duration::from_millis(150),
    Duration::from_millis(1000),
];
/// Pending rescans kept at most (an exec storm must not grow memory).
const MAX_PENDING_RESCANS: usize = 8192;

/// The rescans still due: pid, when, and how many were done.
#[derive(Default)]
pub struct Rescans {
    pending: Vec<(u32, Instant, usize)>,
}

/// What a look at a process works on.
pub struct Targets<'a> {
    pub discovery: &'a mut Discovery,
    pub hooks: &'a mut Hooks,
    pub pipeline: &'a mut BpfPipeline,
    pub converter: &'a mut Converter<File>,
}

impl Rescans {
    /// Schedules the first look at processes that just exec'd.
    pub fn queue(&mut self, execs: Vec<u32>) {
        let now = Instant::now();
        for pid in execs {
            if self.pending.len() < MAX_PENDING_RESCANS {
                self.pending.push((pid, now + RESCAN_DELAYS[0], 0));
            }
        }
    }

    /// Looks at the processes whose rescan is due.
    pub fn run(&mut self, targets: &mut Targets<'_>) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.pending.len() {
            let (pid, due, attempt) = self.pending[i];
            if due > now {
                i += 1;
                continue;
            }
            attach_process(pid, targets);
            match RESCAN_DELAYS.get(attempt + 1) {
                Some(delay) => {
                    self.pending[i] = (pid, now + *delay, attempt + 1);
                    i += 1;
                }
                None => {
                    self.pending.swap_remove(i);
                }
            }
        }
    }
}

/// Looks at `pid`'s mapped library files (a new path is hooked too) and, in
/// per-process mode, attaches every known library file for `pid` (also
/// files it has not mapped yet: right after exec not even the dynamic
/// loader has run, and a pid-scoped uprobe on a file applies when the file
/// gets mapped).
pub fn attach_process(pid: u32, targets: &mut Targets<'_>) {
    let Targets {
        discovery,
        hooks,
        pipeline,
        converter,
    } = targets;
    for id in discovery.scan_process(pid) {
        if let Some(lib) = discovery.files.get(&id) {
            converter.add_library_path(
                lib.path.as_os_str().as_encoded_bytes().to_vec(),
                lib.library,
            );
        }
    }
    let mut problems = discovery.new_refusals();
    hooks.hook_go_process(pipeline, pid, &mut problems);
    if hooks.per_process {
        hooks.hook_process(pipeline, discovery, pid, &mut problems);
    } else {
        for (id, file) in &discovery.files {
            if let Err(error) = hooks.hook(pipeline, *id, file, None) {
                problems.push(format!("{error:#}"));
            }
        }
    }
    for problem in problems {
        eprintln!("spliff: warning: {problem}");
    }
}
