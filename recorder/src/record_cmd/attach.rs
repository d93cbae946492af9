//! The kernel programs: loading them, telling them which processes are in scope, and
//! attaching the TLS uprobes and the socket hooks.

use std::path::Path;

use anyhow::{Context as _, bail};
use spliff_recorder::{
    bpf::{BpfPipeline, PipelineOptions, Tracking},
    probes::LibrarySpec,
};

use super::{
    held_processes::HeldProcesses,
    hooks::Hooks,
    host,
    libraries::Discovery,
    process_info::{all_pids, processes_named},
    sockets,
    startup_times::StartupTimes,
    unix_sockets,
    unrecorded::Unrecorded,
};
use crate::cli::RecordArgs;

/// Ring buffer size: room for several 1 MiB writes in flight, so a burst
/// does not overflow before user space wakes up.
const RING_BUFFER_BYTES: u32 = 64 * 1024 * 1024;

/// Which processes are recorded, and how uprobes reach them.
pub struct Scope {
    pub filter_enabled: bool,
    pub per_process: bool,
    pub comm_per_process: bool,
}

impl Scope {
    pub fn of(args: &RecordArgs) -> Self {
        let filter_enabled = !args.pids.is_empty()
            || args.ppid.is_some()
            || !args.comms.is_empty()
            || !args.command.is_empty();
        // Only --pid and --comm: attach per process, so processes out of scope
        // never even take the uprobe trap (the kernel installs a pid-filtered
        // uprobe only in that process). `-- CMD` and --ppid select every
        // descendant, which the kernel tracks from birth but cannot stop: those
        // attach per file and filter in the kernel.
        let per_process = (!args.pids.is_empty() || !args.comms.is_empty())
            && args.command.is_empty()
            && args.ppid.is_none();
        // --comm per process: a process exec'ing into a selected comm later is
        // stopped by the kernel before its first instruction and continued once
        // attached (see StoppedProcesses), so its first TLS call is not missed.
        // Threads share the process's mm, which is what a pid-scoped uprobe
        // matches, so they are covered. Not covered from birth: a child that a
        // selected process forks without exec. It runs at once (the fork
        // tracepoint runs in the parent, and bpf_send_signal only signals the
        // current task), so its TLS calls until the recorder has read the fork
        // event and attached (milliseconds) are missed; the in-kernel comm
        // filter still keeps everything else out.
        let comm_per_process = per_process && !args.comms.is_empty();
        Scope {
            filter_enabled,
            per_process,
            comm_per_process,
        }
    }
}

/// What the uprobe set-up leaves for the rest.
pub struct Attached {
    pub hooks: Hooks,
    pub unrecorded: Unrecorded,
    /// The sock_ops line of the capture header, when sock_ops is attached.
    pub sock_ops: Option<String>,
}

pub fn load(args: &RecordArgs, scope: &Scope) -> anyhow::Result<BpfPipeline> {
    BpfPipeline::load(&PipelineOptions {
        ring_buffer_bytes: Some(RING_BUFFER_BYTES),
        filter_enabled: scope.filter_enabled,
        stop_on_exec_comm: scope.comm_per_process,
        // Without packets the ring stays, at its smallest.
        packet_ring_bytes: args.no_packets.then(host::page_size_bytes),
        packets_scoped: !args.all_packets,
        ..PipelineOptions::default()
    })
    .context("cannot load spliff's kernel programs")
}

/// Tells the kernel which processes are in scope; returns the guard of the processes it
/// stops and those already running under a selected comm.
pub fn select(
    args: &RecordArgs,
    scope: &Scope,
    pipeline: &mut BpfPipeline,
) -> anyhow::Result<(HeldProcesses, Vec<u32>)> {
    // From here on the kernel may stop (and report) processes exec'ing into
    // a selected comm: whatever leaves the function must continue them. The
    // watchdog starts before any comm is selected, so its own exec is never
    // held, and the kernel stops nothing until it is ready.
    let stopped = HeldProcesses::new(pipeline, scope.comm_per_process)?;
    for &pid in &args.pids {
        pipeline.track_process(pid, Tracking::Only)?;
    }
    if let Some(ppid) = args.ppid {
        pipeline.track_process(ppid, Tracking::Record)?;
    }
    for comm in &args.comms {
        pipeline.filter_comm(comm)?;
    }
    if !args.command.is_empty() {
        // CMD is our child: every process it and its children fork is
        // tracked in the kernel from birth.
        pipeline.track_process(std::process::id(), Tracking::ChildrenOnly)?;
    }
    // Processes already running under a selected comm. Listed after the
    // comm filter is in the kernel, so one exec'ing meanwhile is either
    // listed here or stopped and reported (or both: attaching is idempotent).
    let named = if scope.comm_per_process {
        processes_named(&args.comms)
    } else {
        Vec::new()
    };
    Ok((stopped, named))
}

/// Attaches the TLS uprobes, per process or per file; warns of what could not be hooked.
#[allow(clippy::too_many_arguments)]
pub fn attach_uprobes(
    args: &RecordArgs,
    scope: &Scope,
    pipeline: &mut BpfPipeline,
    discovery: &mut Discovery,
    wanted: Vec<&'static LibrarySpec>,
    named: &[u32],
    program_path: Option<&Path>,
    no_unix: bool,
) -> anyhow::Result<Attached> {
    let mut hooks = Hooks::new(scope.per_process);
    let mut unrecorded = Unrecorded::new(scope.filter_enabled, wanted);
    for &pid in args.pids.iter().chain(named) {
        unrecorded.select(pid);
    }
    let mut problems = discovery.new_refusals();
    unrecorded.note_refused(discovery.refused.values().map(|(p, w)| (p.as_path(), w)));
    if scope.per_process {
        for &pid in &args.pids {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                bail!("no process with pid {pid} (--pid)");
            }
        }
        for &pid in args.pids.iter().chain(named) {
            hooks.hook_process(pipeline, discovery, pid, &mut problems);
            hooks.hook_go_process(pipeline, pid, &mut problems);
        }
    } else {
        hook_files(&mut hooks, pipeline, discovery, program_path, &mut problems);
        if hooks.files.is_empty() && hooks.go.len() == 0 && no_unix {
            bail!("could not hook any TLS library: {}", problems.join("; "));
        }
    }
    for problem in &problems {
        eprintln!("spliff: warning: {problem}");
    }
    Ok(Attached {
        hooks,
        unrecorded,
        sock_ops: None,
    })
}

/// Per file: every library file found, and Go programs (`-- CMD` before it starts, else every
/// running one).
fn hook_files(
    hooks: &mut Hooks,
    pipeline: &mut BpfPipeline,
    discovery: &Discovery,
    program_path: Option<&Path>,
    problems: &mut Vec<String>,
) {
    for (id, lib) in &discovery.files {
        if let Err(error) = hooks.hook(pipeline, *id, lib, None) {
            problems.push(format!("{error:#}"));
        }
    }
    if let Some(path) = program_path {
        hooks.hook_go_file(pipeline, path, problems);
    } else {
        for pid in all_pids() {
            hooks.hook_go_process(pipeline, pid, problems);
        }
    }
}

/// Attaches sock_ops unless --no-sockets (a failure only warns), then the Unix socket probes
/// when asked for. Before the warm-up, so a socket opened in between is reported by sock_ops.
pub fn attach_sockets(
    args: &RecordArgs,
    pipeline: &mut BpfPipeline,
    attached: &mut Attached,
    unix: Option<&spliff_recorder::bpf::UnixSelection>,
    times: &mut StartupTimes,
) -> anyhow::Result<()> {
    attached.sock_ops = if args.no_sockets {
        None
    } else {
        match sockets::attach(pipeline) {
            Ok(line) => Some(line),
            Err(error) => {
                eprintln!(
                    "spliff: warning: {error:#}; TLS connections get their socket only from \
                     the TLS probes (use --no-sockets to silence this)"
                );
                None
            }
        }
    };
    times.phase("sock_ops");
    attached.hooks.lines.extend(attached.sock_ops.clone());
    if let Some(selection) = unix {
        let line = unix_sockets::attach(pipeline, selection)?;
        attached.hooks.lines.push(line);
    }
    Ok(())
}
