//! `spliff record` (Linux): find TLS library files, load and attach the kernel
//! programs, optionally start `-- CMD`, and turn kernel events into a trace
//! until CMD exits or a signal arrives.

mod capture_info;
mod convert;
mod correlate;
mod elf_exports;
mod embedded_tls;
mod go_programs;
mod held_packets;
mod held_processes;
mod hooks;
mod libraries;
mod list_libs;
mod live_view;
mod output_file;
mod packets;
mod process_info;
mod recorded_command;
mod reemit;
mod rotation;
mod run_as;
mod sockets;
mod startup_times;
pub mod stop_watchdog;
mod unix_sockets;
mod unrecorded;

use std::{
    fs::File,
    io::{IsTerminal as _, Read as _, Write as _},
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    sync::atomic::{AtomicI32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use spliff_formats::{CaptureId, InterfaceStats, SectionInfo, TraceWriter};
use spliff_recorder::{
    bpf::{BpfPipeline, Event, PipelineOptions, Tracking},
    privileges,
};

use crate::cli::RecordArgs;
use capture_info::CaptureHeader;
use convert::Converter;
use held_processes::HeldProcesses;
use hooks::Hooks;
use libraries::Discovery;
use output_file::{Owner, TraceOutput};
use recorded_command::RecordedCommand;
use rotation::Rotation;
use run_as::RunAs;
use startup_times::StartupTimes;

/// Ring buffer size: room for several 1 MiB writes in flight, so a burst
/// does not overflow before user space wakes up.
const RING_BUFFER_BYTES: u32 = 64 * 1024 * 1024;
/// Flush the trace at least this often, so a SIGKILL loses little.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// With a live view, the trace is flushed this often: what the view can show waits for it.
const VIEW_FLUSH_EVERY: Duration = Duration::from_millis(20);
/// How long one wait for kernel events may block. TLS events do not wake
/// the recorder individually (the kernel wakes it early when the ring fills
/// past 1 MiB), so this is also the usual delivery latency.
const POLL: Duration = Duration::from_millis(20);
/// After exec, libraries are looked for again at these delays (the dynamic
/// loader maps them shortly after exec; dlopen can come later and is covered
/// by the linker-cache scan at start).
const RESCAN_DELAYS: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(20),
    Duration::from_millis(150),
    Duration::from_millis(1000),
];
/// The final drain's bound: reading the ring runs at hundreds of thousands of records a
/// second, so this takes in whatever was produced before the stop many times over.
const DRAIN_AT_MOST: Duration = Duration::from_millis(500);
/// Pending rescans kept at most (an exec storm must not grow memory).
const MAX_PENDING_RESCANS: usize = 8192;
/// How often processes are looked for in /proc, to end the connections of those gone
/// without `SSL_free`.
const GONE_SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The signal that asked us to stop (0: none).
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    STOP_SIGNAL.store(signal, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe);
        // the sigaction struct is fully initialised.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

fn boottime_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME)
}

fn capture_id() -> CaptureId {
    let mut id = [0u8; 16];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id))
        .is_err()
    {
        // Unique enough without urandom: time and pid.
        let seed =
            u128::from(clock_ns(libc::CLOCK_REALTIME)) ^ (u128::from(std::process::id()) << 64);
        id = seed.to_le_bytes();
    }
    CaptureId(id)
}

fn uname() -> (String, String, String, String) {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe { libc::uname(&mut u) };
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (
        field(&u.nodename),
        field(&u.release),
        field(&u.version),
        field(&u.machine),
    )
}

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
    let mut times = StartupTimes::from_env();
    // First: a user without privileges must find nothing of theirs touched.
    privileges::check_recording()?;
    // Without -o the live view is the output: the trace goes through a pipe to it, no file.
    let view_only = args.output.is_none();
    let output = &args.output.clone().unwrap_or_default();
    if args.live && output.as_os_str() == "-" {
        bail!("--live shows the exchanges on standard output, where -o - writes the trace");
    }
    let command_name = args.command.first();
    let mut program_path = None;
    if let Some(program) = command_name {
        // Checked before anything is loaded, so a typo costs nothing.
        program_path = Some(which(program).with_context(|| {
            format!(
                "cannot start `{program}`: not found or not executable (check the command after --)"
            )
        })?);
    }
    let run_as = RunAs::choose(args.user.as_deref())?;
    // SAFETY: geteuid/getegid cannot fail.
    let owner = run_as.as_ref().map_or_else(
        || unsafe {
            Owner {
                uid: libc::geteuid(),
                gid: libc::getegid(),
            }
        },
        RunAs::owner,
    );
    let policy = rotation::Policy::from_args(args)?;
    let to_stdout = output.as_os_str() == "-";
    if (view_only || args.live) && policy.is_some() {
        bail!(
            "the live view cannot follow a rotated capture (-C MB, -G) yet: drop --live and \
             watch with `spliff replay`, or record to one file"
        );
    }
    if to_stdout && policy.is_some() {
        bail!("-C and -G write numbered files, which cannot go to standard output (-o -)");
    }
    let first_path = match policy {
        Some(_) => Rotation::first_file(output),
        None => output.clone(),
    };
    let shown = if view_only {
        "the live view".to_owned()
    } else if to_stdout {
        "standard output".to_owned()
    } else {
        first_path.display().to_string()
    };
    // Until recording starts, a failure leaves no trace behind and any old file as it was.
    let mut view_source = None;
    let (mut output_file, file) = if view_only {
        let (read, write) = live_view::pipe()?;
        view_source = Some(read);
        (None, write)
    } else if to_stdout {
        (None, output_file::stdout_trace()?)
    } else {
        let created = TraceOutput::create(&first_path, owner)?;
        let file = created
            .file()
            .with_context(|| format!("cannot use the trace file {shown}"))?;
        (Some(created), file)
    };
    // Later files of a rotated capture are created by the same rules, in place at once.
    let mut rotation = policy.map(|policy| {
        let open = move |path: &Path| -> anyhow::Result<File> {
            let mut created = TraceOutput::create(path, owner)?;
            created.commit()?;
            // The handle shares the lock's open file description: the lock lasts while the
            // trace is written.
            Ok(created.file()?)
        };
        Rotation::start(policy, output, Box::new(open))
    });

    let wanted = hooks::wanted_libraries(&args.libs);
    let mut discovery = hooks::discover(wanted.clone());
    if let Some(path) = &program_path {
        discovery.scan_program(path);
    }
    let go_in_sight = program_path
        .as_deref()
        .is_some_and(|path| spliff_recorder::golang::go_version(path).is_some());
    if discovery.files.is_empty() && !go_in_sight {
        bail!(
            "no TLS library found: none of {} in the dynamic linker cache (ldconfig -p) or \
             mapped by any running process; install one or start the program to record first",
            hooks::looked_for(&wanted)
        );
    }

    times.phase("discovery");
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
    if comm_per_process {
        raise_fd_limit();
    }
    let unix = unix_sockets::selection(&args.unix)?;
    let mut pipeline = BpfPipeline::load(&PipelineOptions {
        ring_buffer_bytes: Some(RING_BUFFER_BYTES),
        filter_enabled,
        stop_on_exec_comm: comm_per_process,
        // Without packets the ring stays, at its smallest.
        packet_ring_bytes: args.no_packets.then(page_size_bytes),
        packets_scoped: !args.all_packets,
        ..PipelineOptions::default()
    })
    .context("cannot load spliff's kernel programs")?;
    times.phase("load");
    // From here on the kernel may stop (and report) processes exec'ing into
    // a selected comm: whatever leaves the function must continue them. The
    // watchdog starts before any comm is selected, so its own exec is never
    // held, and the kernel stops nothing until it is ready.
    let mut stopped = HeldProcesses::new(&pipeline, comm_per_process)?;
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
    let named = if comm_per_process {
        processes_named(&args.comms)
    } else {
        Vec::new()
    };
    let mut hooks = Hooks::new(per_process);
    let mut unrecorded = unrecorded::Unrecorded::new(filter_enabled, wanted);
    for &pid in args.pids.iter().chain(&named) {
        unrecorded.select(pid);
    }
    let mut problems = discovery.new_refusals();
    unrecorded.note_refused(discovery.refused.values().map(|(p, w)| (p.as_path(), w)));
    if per_process {
        for &pid in &args.pids {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                bail!("no process with pid {pid} (--pid)");
            }
        }
        for &pid in args.pids.iter().chain(&named) {
            hooks.hook_process(&mut pipeline, &discovery, pid, &mut problems);
            hooks.hook_go_process(&mut pipeline, pid, &mut problems);
        }
    } else {
        for (id, lib) in &discovery.files {
            if let Err(error) = hooks.hook(&mut pipeline, *id, lib, None) {
                problems.push(format!("{error:#}"));
            }
        }
        // Go programs: `-- CMD` before it starts, else every running one.
        if let Some(path) = &program_path {
            hooks.hook_go_file(&mut pipeline, path, &mut problems);
        } else {
            for pid in all_pids() {
                hooks.hook_go_process(&mut pipeline, pid, &mut problems);
            }
        }
        if hooks.files.is_empty() && hooks.go.len() == 0 && unix.is_none() {
            bail!("could not hook any TLS library: {}", problems.join("; "));
        }
    }
    times.phase("uprobes");
    for problem in &problems {
        eprintln!("spliff: warning: {problem}");
    }
    // Before the warm-up, so a socket opened in between is reported by sock_ops.
    let sock_ops = if args.no_sockets {
        None
    } else {
        match sockets::attach(&mut pipeline) {
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
    hooks.lines.extend(sock_ops.clone());
    if let Some(selection) = &unix {
        hooks
            .lines
            .push(unix_sockets::attach(&mut pipeline, selection)?);
    }
    let library_paths = discovery
        .files
        .values()
        .map(|lib| {
            (
                lib.path.as_os_str().as_encoded_bytes().to_vec(),
                lib.library,
            )
        })
        .collect();
    let attached = hooks.take_lines();

    if args.live {
        view_source = Some(live_view::reopen(&file)?);
    }
    let viewer = match view_source {
        Some(source) => Some(live_view::LiveViewer::start(
            source,
            !view_only,
            live_view::options(args),
            boottime_ns,
        )?),
        None => None,
    };

    let (hostname, release, version, machine) = uname();
    let writer = TraceWriter::new(
        file,
        &SectionInfo {
            hardware: machine,
            os: format!("Linux {release}"),
            user_application: format!("spliff {}", env!("CARGO_PKG_VERSION")),
        },
        capture_id(),
    )
    .context("cannot write the trace header")?;
    // The two clocks read back to back: the mapping error is the time
    // between the calls (well under a microsecond).
    let info_ts = boottime_ns();
    let wall = clock_ns(libc::CLOCK_REALTIME);
    let header = CaptureHeader {
        ts_ns: info_ts,
        wall_ns: wall,
        hostname,
        kernel: format!("{release} {version}"),
        attached,
    };
    let mut converter = Converter::new(writer, library_paths);
    if rotation.is_some() {
        converter.keep_for_rotation();
    }
    converter.set_closes_reported(sock_ops.is_some());
    header
        .write(&mut converter)
        .context("cannot write the trace")?;
    converter
        .writer()
        .flush()
        .context("cannot write the trace")?;
    // Processes selected by pid exist now and may be gone when their first
    // event is converted: keep what /proc says about them.
    for &pid in args.pids.iter().chain(&named) {
        converter.snapshot_process(pid);
    }
    // Before CMD starts, so its first packets are captured.
    let mut network = if args.no_packets {
        None
    } else {
        Some(packets::Network::start(
            &mut pipeline,
            &mut converter,
            &packets::PacketOptions {
                interfaces: args.interfaces.clone(),
                // Headers only: the largest snap length bounds them.
                snaplen: args
                    .snaplen
                    .unwrap_or(spliff_recorder_ebpf::abi::PACKET_SNAPLEN_MAX as u32),
                headers_only: args.snaplen.is_none(),
                ingress_hook: match args.ingress_hook {
                    crate::cli::IngressHook::Auto => packets::IngressHook::Auto,
                    crate::cli::IngressHook::Xdp => packets::IngressHook::Xdp,
                    crate::cli::IngressHook::XdpGeneric => packets::IngressHook::XdpGeneric,
                    crate::cli::IngressHook::Tc => packets::IngressHook::Tc,
                },
            },
            packets::ClockMap {
                boot_ns: info_ts,
                wall_ns: wall,
            },
            boottime_ns(),
        )?)
    };

    times.phase("packets");
    install_signal_handlers();
    if let Some((program, rest)) = args.command.split_first() {
        let mut cmd = Command::new(program);
        cmd.args(rest);
        if let Some(user) = &run_as {
            user.apply(&mut cmd);
        }
        if to_stdout {
            // Standard output carries the trace: what CMD prints goes to standard error.
            cmd.stdout(std::io::stderr());
        }
        let child = cmd.spawn().with_context(|| match &run_as {
            Some(user) => format!(
                "cannot start `{program}` as {} (uid {})",
                user.name, user.uid
            ),
            None => format!("cannot start `{program}`"),
        })?;
        *command = Some(RecordedCommand::new(child, program));
        times.phase("spawn");
    }
    if let Some(created) = &mut output_file {
        created.commit()?;
    }
    // Everything at start is attached and CMD runs: what is left is reading and writing.
    match privileges::drop_unneeded() {
        Ok(_) => {}
        Err(error) => eprintln!("spliff: warning: {error:#}; recording goes on with them"),
    }
    // Only now: every probe is attached.
    let files = discovery.files.len();
    eprintln!(
        "spliff: recording {} TLS librar{}{} ({} probes{}) to {}{}",
        files,
        if files == 1 { "y" } else { "ies" },
        match hooks.go.len() {
            0 => String::new(),
            n => format!(" and {n} Go program{}", if n == 1 { "" } else { "s" }),
        },
        header.attached.len(),
        if per_process { ", per process" } else { "" },
        shown,
        if command.is_some() {
            ""
        } else {
            "; stop with Ctrl-C"
        }
    );
    // Only after the command started and the line above (which scripts wait for) is out:
    // the warm-up takes a moment with many sockets, and the join does not need it first (a
    // TLS connection that meets its socket later is correlated then).
    if sock_ops.is_some() {
        let warm_up = sockets::warm_up(converter.sockets());
        eprintln!("spliff: sockets from sock_ops and the socket table: {warm_up}");
        times.phase("socket warm-up");
    }
    times.report();

    if network.is_some() && filter_enabled && !args.all_packets {
        eprintln!(
            "spliff: packets: only the TCP connections of the selected processes \
             (--all-packets keeps every packet)"
        );
    }
    if let Some(network) = &mut network {
        network.started();
    }
    let status = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(250));
        bar
    });

    if let Some(rotation) = &mut rotation {
        rotation.started(&mut converter);
    }
    let started = Instant::now();
    let mut last_flush = Instant::now();
    let mut last_view_flush = Instant::now();
    let mut last_gone_sweep = Instant::now();
    let mut pending: Vec<(u32, Instant, usize)> = Vec::new();
    let mut child_status = None;
    let mut kernel_events: u64 = 0;
    let mut write_error: Option<anyhow::Error> = None;
    let mut forwarded = false;
    // The packet ring had more than one turn takes: no sleep before the next.
    let mut packet_backlog = false;
    loop {
        let mut execs = Vec::new();
        let wait = if packet_backlog { Duration::ZERO } else { POLL };
        let handed = pipeline.read_events(wait, |event| {
            if let Ok(Event::ProcessExec(exec)) = &event
                && exec.stopped
            {
                // Before anything else: even a write error must not leave
                // it stopped.
                stopped.push(exec);
            } else if let Ok(Event::ProcessExec(exec)) = &event {
                // A large program not searched yet: held until attached
                // below (see held_processes.rs).
                stopped.hold_if_unsearched(exec, &discovery);
            }
            if write_error.is_some() {
                return;
            }
            match event {
                Ok(event) => {
                    unrecorded.observe(&event);
                    match converter.event(event) {
                        Ok(Some(pid)) => execs.push(pid),
                        Ok(None) => {}
                        Err(error) => write_error = Some(error.into()),
                    }
                }
                Err(_) => converter.stats.invalid_events += 1,
            }
            rotation::rotate_if_due(&mut rotation, &mut converter, &header, &mut write_error);
        })?;
        kernel_events += handed as u64;
        // After the TLS events of this turn: their sockets comment the
        // packets written now.
        if let Some(network) = &mut network {
            packet_backlog = network.turn(&mut pipeline, &mut converter, boottime_ns())?;
        }
        // Also when no event came: -G rotates on time.
        rotation::rotate_if_due(&mut rotation, &mut converter, &header, &mut write_error);
        // Attach to stopped processes now (not through the pending queue,
        // which may be full), then let them run.
        for pid in stopped.pids() {
            attach_process(
                pid,
                &mut discovery,
                &mut hooks,
                &mut pipeline,
                &mut converter,
            );
        }
        stopped.continue_all();
        hooks.detach_some(&mut pipeline, 2);
        if let Some(error) = write_error.take() {
            return Err(error.context("cannot write the trace"));
        }
        let now = Instant::now();
        for pid in execs {
            if pending.len() < MAX_PENDING_RESCANS {
                pending.push((pid, now + RESCAN_DELAYS[0], 0));
            }
        }
        rescan(
            &mut pending,
            &mut discovery,
            &mut hooks,
            &mut pipeline,
            &mut converter,
        );
        // The live view reads what reached the file: it is as late as the last flush.
        if viewer.is_some() && last_view_flush.elapsed() >= VIEW_FLUSH_EVERY {
            converter
                .writer()
                .flush()
                .context("cannot write the trace")?;
            last_view_flush = Instant::now();
        }
        // Found meanwhile (a few files a capture at most): for the end report.
        unrecorded.note_refused(discovery.refused.values().map(|(p, w)| (p.as_path(), w)));
        if last_flush.elapsed() >= FLUSH_EVERY {
            if last_gone_sweep.elapsed() >= GONE_SWEEP_EVERY {
                converter.release_gone_processes(boottime_ns());
                last_gone_sweep = Instant::now();
            }
            // After the turn's packets were counted: what is released has them all.
            converter
                .release_ended(boottime_ns())
                .context("cannot write the trace")?;
            converter
                .writer()
                .flush()
                .context("cannot write the trace")?;
            last_flush = Instant::now();
            hooks.sweep();
            stopped.check_watchdog();
            if let Some(bar) = &status {
                let s = converter.stats;
                let lost = pipeline.kernel_loss().map(|l| l.events).unwrap_or(0);
                bar.set_message(format!(
                    "{} connections, {} B out, {} B in, {} records, {} lost events, {} loss records",
                    s.connections, s.bytes_egress, s.bytes_ingress, s.records, lost, s.loss_records
                ));
            }
        }
        // With a child, pass the signal on once (a Ctrl-C already reached
        // it through the process group; a `kill` of the recorder did not)
        // and keep recording until it exits, so its last bytes are in the
        // trace.
        let signal = STOP_SIGNAL.load(Ordering::SeqCst);
        if signal != 0 {
            match command {
                None => break,
                Some(c) if !forwarded => {
                    forwarded = true;
                    if let Ok(pid) = i32::try_from(c.child().id()) {
                        // SAFETY: kill(2) on our own child's pid; no memory.
                        unsafe { libc::kill(pid, signal) };
                    }
                }
                Some(_) => {}
            }
        }
        if let Some(c) = command
            && let Some(exit) = c
                .child()
                .try_wait()
                .context("cannot wait for the command")?
        {
            child_status = Some(exit);
            *command = None;
            break;
        }
    }
    if comm_per_process {
        // No more stops from here on, so the drain below sees every process
        // the kernel stopped and the guard continues it.
        if let Err(error) = pipeline.clear_comm_filter() {
            eprintln!("spliff: warning: {error:#}");
        }
    }
    // Drain: everything the kernel produced before we stopped. Bounded in time: sock_ops
    // reports every TCP socket of the host, so on a busy host the ring never falls quiet,
    // and what arrives after the stop does not belong to the capture anyway.
    let drain_until = Instant::now() + DRAIN_AT_MOST;
    loop {
        let handed = pipeline.read_events(Duration::from_millis(20), |event| {
            if let Ok(Event::ProcessExec(exec)) = &event
                && exec.stopped
            {
                stopped.push(exec);
            }
            if write_error.is_some() {
                return;
            }
            match event {
                Ok(event) => {
                    unrecorded.observe(&event);
                    if let Err(error) = converter.event(event) {
                        write_error = Some(error.into());
                    }
                }
                Err(_) => converter.stats.invalid_events += 1,
            }
            rotation::rotate_if_due(&mut rotation, &mut converter, &header, &mut write_error);
        })?;
        kernel_events += handed as u64;
        if let Some(error) = write_error.take() {
            return Err(error.context("cannot write the trace"));
        }
        if handed == 0 || Instant::now() >= drain_until {
            break;
        }
    }
    stopped.continue_all();
    if let Some(bar) = &status {
        bar.finish_and_clear();
    }

    let kernel_loss = pipeline.kernel_loss().unwrap_or_default();
    let end_ts = boottime_ns();
    let net_stats = match network.take() {
        Some(network) => Some(network.finish(&mut pipeline, &mut converter, end_ts)?),
        None => None,
    };
    let correlation = converter
        .finish_correlation(end_ts)
        .context("cannot write the trace")?;
    converter
        .kernel_drops(end_ts, kernel_loss.events, 0)
        .context("cannot write the trace")?;
    let stats = converter.stats;
    let summary = format!(
        "{} connections, {} bytes written and {} bytes read by processes, {} records, \
         {} loss records covering {} bytes, {} kernel events dropped ({} plaintext bytes), \
         {} invalid kernel records",
        stats.connections,
        stats.bytes_egress,
        stats.bytes_ingress,
        stats.records,
        stats.loss_records,
        stats.loss_bytes,
        kernel_loss.events,
        kernel_loss.bytes,
        stats.invalid_events
    );
    let summary = match net_stats {
        Some(n) => format!(
            "{summary}; {} packets on {} interfaces ({} with a process comment, {} dropped: \
             packet ring full, {} invalid packet records)",
            n.packets, n.interfaces, n.commented, n.dropped, n.invalid
        ),
        None => summary,
    };
    let mut writer = converter.into_writer();
    writer
        .write_interface_stats(&InterfaceStats {
            interface_id: 0,
            ts_wall_ns: wall + end_ts.saturating_sub(info_ts),
            start_wall_ns: Some(wall),
            end_wall_ns: Some(wall + end_ts.saturating_sub(info_ts)),
            received: Some(kernel_events + kernel_loss.events),
            dropped: Some(kernel_loss.events),
            delivered: Some(stats.records),
            comment: Some(summary.clone()),
        })
        .context("cannot write the trace")?;
    let mut file = writer.finish().context("cannot write the trace")?;
    file.flush().context("cannot write the trace")?;
    file.sync_all().ok();
    let recorded = started.elapsed();
    // Closes the live view's pipe: it shows what is left and ends.
    drop(file);
    if let Some(viewer) = viewer {
        viewer.finish()?;
    }

    let written_to = match &rotation {
        Some(rotation) => rotation.describe(),
        None => shown,
    };
    eprintln!(
        "spliff: recorded {:.1}s to {written_to}: {summary}",
        recorded.as_secs_f64(),
    );
    eprintln!("spliff: correlation: {}", correlation.summary());
    for line in unrecorded.report() {
        eprintln!("spliff: not recorded: {line}");
    }
    hooks.detach_all(&mut pipeline);
    Ok(match child_status {
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)),
            _ => ExitCode::FAILURE,
        },
        None => ExitCode::SUCCESS,
    })
}

/// Looks again at processes that exec'd: for library files at new paths,
/// and in per-process mode to attach to the new process itself (the kernel
/// only reports execs of processes in scope).
fn rescan(
    pending: &mut Vec<(u32, Instant, usize)>,
    discovery: &mut Discovery,
    hooks: &mut Hooks,
    pipeline: &mut BpfPipeline,
    converter: &mut Converter<File>,
) {
    let now = Instant::now();
    let mut i = 0;
    while i < pending.len() {
        let (pid, due, attempt) = pending[i];
        if due > now {
            i += 1;
            continue;
        }
        attach_process(pid, discovery, hooks, pipeline, converter);
        match RESCAN_DELAYS.get(attempt + 1) {
            Some(delay) => {
                pending[i] = (pid, now + *delay, attempt + 1);
                i += 1;
            }
            None => {
                pending.swap_remove(i);
            }
        }
    }
}

/// Looks at `pid`'s mapped library files (a new path is hooked too) and, in
/// per-process mode, attaches every known library file for `pid` (also
/// files it has not mapped yet: right after exec not even the dynamic
/// loader has run, and a pid-scoped uprobe on a file applies when the file
/// gets mapped).
fn attach_process(
    pid: u32,
    discovery: &mut Discovery,
    hooks: &mut Hooks,
    pipeline: &mut BpfPipeline,
    converter: &mut Converter<File>,
) {
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

/// Raises the soft open-file limit to the hard one: every per-process
/// uprobe holds file descriptors until its process is gone and detached.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to an rlimit; setrlimit only reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
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

/// The file `program` executes (a path, or a name found in PATH).
fn which(program: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |path: &Path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        if executable(Path::new(program)) {
            return Ok(PathBuf::from(program));
        }
        bail!("{program} is not an executable file");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(found) = std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
    {
        return Ok(found);
    }
    bail!("{program} is not in PATH")
}

/// The page size, the smallest ring buffer the kernel accepts.
fn page_size_bytes() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(size).unwrap_or(4096)
}
