//! `spliff record` (Linux): find TLS library files, load and attach the kernel
//! programs, optionally start `-- CMD`, and turn kernel events into a trace
//! until CMD exits or a signal arrives.

mod attach;
mod capture_info;
mod convert;
mod correlate;
mod destination;
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
