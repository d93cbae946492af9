//! `spliff record` (Linux): find TLS library files, load and attach the kernel
//! programs, optionally start `-- CMD`, and turn kernel events into a trace
//! until CMD exits or a signal arrives.

mod capture_info;
mod convert;
mod correlate;
mod elf_exports;
mod embedded_tls;
mod event_loop;
mod go_programs;
mod held_packets;
mod held_processes;
mod hooks;
mod host;
mod libraries;
mod list_libs;
mod live_view;
mod output_file;
mod packets;
mod process_info;
mod recorded_command;
mod reemit;
mod rescans;
mod rotation;
mod run_as;
mod session;
mod sockets;
mod startup_times;
pub mod stop_watchdog;
mod summary;
mod unix_sockets;
mod unrecorded;

use std::process::ExitCode;

use crate::cli::RecordArgs;
use recorded_command::RecordedCommand;
use session::Session;

pub fn run(args: &RecordArgs) -> anyhow::Result<ExitCode> {
    if args.list_libs {
        return Ok(list_libs::list_libs(args));
    }
    let mut command = None;
    record(args, &mut command).map_err(|error| match command.take() {
        Some(running) => running.recording_failed(args.on_failure.into(), error),
        None => error,
    })
}

/// Records until `-- CMD` exits or a signal arrives; `command` holds CMD while it runs, so
/// that a failure can say (and decide) what becomes of it.
fn record(args: &RecordArgs, command: &mut Option<RecordedCommand>) -> anyhow::Result<ExitCode> {
    let mut session = Session::start(args, command)?;
    let ended = session.record(command)?;
    summary::finish(session, ended)
}

/// Every pid in /proc.
fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// When `pid` started (clock ticks since boot, /proc/PID/stat field 22);
/// `None` if it is gone.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm (field 2) may hold spaces and parentheses: count from the
    // last ')'. Field 3 is the first after it.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Running processes (other than the recorder) whose comm is one of
/// `names`, compared on the first 15 bytes as the kernel stores comms.
pub(crate) fn processes_named(names: &[String]) -> Vec<u32> {
    let truncate = |name: &[u8]| name[..name.len().min(15)].to_vec();
    let wanted: std::collections::HashSet<Vec<u8>> =
        names.iter().map(|n| truncate(n.as_bytes())).collect();
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|comm| {
                let comm = comm.strip_suffix(b"\n").unwrap_or(&comm);
                wanted.contains(&truncate(comm))
            })
        })
        .collect()
}
