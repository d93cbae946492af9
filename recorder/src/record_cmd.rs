//! `spliff record` (Linux): find libssl files, load and attach the kernel
//! programs, optionally start `-- CMD`, and turn kernel events into a trace
//! until CMD exits or a signal arrives.

mod convert;
mod correlate;
mod held_packets;
mod libraries;
mod packets;
mod process_info;
mod sockets;

use std::{
    fs::{File, OpenOptions},
    io::{IsTerminal as _, Read as _, Write as _},
    num::NonZeroU32,
    os::unix::{fs::OpenOptionsExt as _, process::ExitStatusExt as _},
    path::Path,
    process::{Command, ExitCode},
    sync::atomic::{AtomicI32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use spliff_formats::{
    CaptureId, CaptureInfo, ClockId, InterfaceStats, Record, SectionInfo, TraceWriter,
};
use spliff_recorder::{
    bpf::{BpfPipeline, Event, PipelineOptions, Tracking, UprobeLink},
    probes,
};

use crate::cli::RecordArgs;
use convert::Converter;
use libraries::{Discovery, FileId};

/// Ring buffer size: room for several 1 MiB writes in flight, so a burst
/// does not overflow before user space wakes up.
const RING_BUFFER_BYTES: u32 = 64 * 1024 * 1024;
/// Flush the trace at least this often, so a SIGKILL loses little.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
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

fn discover() -> Discovery {
    let mut discovery = Discovery::default();
    discovery.scan_ldconfig();
    discovery.scan_all_processes();
    discovery
}

fn list_libs() -> ExitCode {
    let discovery = discover();
    if discovery.files.is_empty() {
        println!("no OpenSSL library (libssl.so*) found in the linker cache or in any process");
        return ExitCode::FAILURE;
    }
    for file in discovery.files.values() {
        println!("{}", file.path.display());
        for reason in &file.reasons {
            println!("    {reason}");
        }
    }
    println!(
        "each file gets {} probes on: {}",
        probes::OPENSSL.len(),
        probes::OPENSSL
            .iter()
            .map(|p| p.symbol)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    );
    ExitCode::SUCCESS
}

/// Attaches every OpenSSL probe to `path`; returns the attached lines and
/// links. Fails only when a required probe cannot be attached (what was
/// attached is detached again then).
fn attach_library(
    pipeline: &mut BpfPipeline,
    path: &Path,
    pid: Option<NonZeroU32>,
) -> anyhow::Result<(Vec<String>, Vec<UprobeLink>)> {
    let mut attached = Vec::new();
    let mut links = Vec::new();
    for probe in probes::OPENSSL {
        match pipeline.attach_uprobe(probe.program, probe.symbol, path, pid) {
            Ok(link) => {
                links.push(link);
                attached.push(format!(
                    "{} {} {}",
                    if probe.is_return {
                        "uretprobe"
                    } else {
                        "uprobe"
                    },
                    probe.symbol,
                    path.display()
                ));
            }
            Err(error) if probe.required => {
                for link in links {
                    pipeline.detach_uprobe(link);
                }
                return Err(error).with_context(|| {
                    format!("{} is not a usable OpenSSL library", path.display())
                });
            }
            // Optional functions are missing in older versions (the _ex
            // functions came with 1.1.1).
            Err(_) => {}
        }
    }
    Ok((attached, links))
}

fn open_output(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        // The trace holds decrypted secrets.
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create the output file {}; choose a writable path with -o",
                path.display()
            )
        })
}

pub fn run(args: &RecordArgs) -> anyhow::Result<ExitCode> {
    if args.list_libs {
        return Ok(list_libs());
    }
    let Some(output) = &args.output else {
        bail!("no output file: give one with -o FILE");
    };
    let command_name = args.command.first();
    if let Some(program) = command_name {
        // Checked before anything is loaded, so a typo costs nothing.
        which(program).with_context(|| {
            format!(
                "cannot start `{program}`: not found or not executable (check the command after --)"
            )
        })?;
    }
    let file = open_output(output)?;
    // Until recording starts, a failure leaves no empty trace behind.
    let mut cleanup = RemoveOnFailure(Some(output.clone()));

    let mut discovery = discover();
    if discovery.files.is_empty() {
        bail!(
            "no OpenSSL library found: no libssl.so* in the dynamic linker cache (ldconfig -p) \
             or mapped by any running process; install OpenSSL (Debian: apt install libssl3) or \
             start the program to record first"
        );
    }

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
    let mut pipeline = BpfPipeline::load(&PipelineOptions {
        ring_buffer_bytes: Some(RING_BUFFER_BYTES),
        filter_enabled,
        stop_on_exec_comm: comm_per_process,
        // Without packets the ring stays, at its smallest.
        packet_ring_bytes: args.no_packets.then(page_size_bytes),
        ..PipelineOptions::default()
    })
    .context("cannot load spliff's kernel programs")?;
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
    // From here on the kernel stops (and reports) processes exec'ing into a
    // selected comm: whatever leaves the function must continue them.
    let mut stopped = StoppedProcesses::default();
    // Processes already running under a selected comm. Listed after the
    // comm filter is in the kernel, so one exec'ing meanwhile is either
    // listed here or stopped and reported (or both: attaching is idempotent).
    let named = if comm_per_process {
        processes_named(&args.comms)
    } else {
        Vec::new()
    };
    let mut hooks = Hooks {
        per_process,
        keep_lines: true,
        ..Hooks::default()
    };
    let mut problems = Vec::new();
    if per_process {
        for &pid in &args.pids {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                bail!("no process with pid {pid} (--pid)");
            }
        }
        for &pid in args.pids.iter().chain(&named) {
            hooks.hook_process(&mut pipeline, &discovery, pid, &mut problems);
        }
    } else {
        for (id, lib) in &discovery.files {
            if let Err(error) = hooks.hook(&mut pipeline, *id, &lib.path, None) {
                problems.push(format!("{error:#}"));
            }
        }
        if hooks.files.is_empty() {
            bail!(
                "could not hook any OpenSSL library: {}",
                problems.join("; ")
            );
        }
    }
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
    hooks.lines.extend(sock_ops.clone());
    let library_paths = discovery
        .files
        .values()
        .map(|lib| lib.path.as_os_str().as_encoded_bytes().to_vec())
        .collect();
    let attached = std::mem::take(&mut hooks.lines);
    hooks.keep_lines = false;

    let (hostname, release, version, machine) = uname();
    let mut writer = TraceWriter::new(
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
    let kernel = format!("{release} {version}");
    writer
        .write(
            info_ts,
            &Record::CaptureInfo(CaptureInfo {
                wall_clock_ns: wall,
                clock: ClockId::Boottime,
                spliff_version: env!("CARGO_PKG_VERSION").as_bytes(),
                hostname: hostname.as_bytes(),
                kernel: kernel.as_bytes(),
                attached: attached.iter().map(|l| l.as_bytes()).collect(),
            }),
        )
        .context("cannot write the trace")?;
    writer.flush().context("cannot write the trace")?;
    let mut converter = Converter::new(writer, library_paths);
    converter.stats.records = 1; // the capture info
    converter.set_closes_reported(sock_ops.is_some());
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

    install_signal_handlers();
    let mut child = match args.command.split_first() {
        Some((program, rest)) => Some(
            Command::new(program)
                .args(rest)
                .spawn()
                .with_context(|| format!("cannot start `{program}`"))?,
        ),
        None => None,
    };
    cleanup.0 = None;
    // Only now: every probe is attached.
    let files = discovery.files.len();
    eprintln!(
        "spliff: recording {} OpenSSL librar{} ({} probes{}) to {}{}",
        files,
        if files == 1 { "y" } else { "ies" },
        attached.len(),
        if per_process { ", per process" } else { "" },
        output.display(),
        if child.is_some() {
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
    }

    if let Some(network) = &mut network {
        network.started();
    }
    let status = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(250));
        bar
    });

    let started = Instant::now();
    let mut last_flush = Instant::now();
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
                stopped.pids.push(exec.pid);
            }
            if write_error.is_some() {
                return;
            }
            match event {
                Ok(event) => match converter.event(event) {
                    Ok(Some(pid)) => execs.push(pid),
                    Ok(None) => {}
                    Err(error) => write_error = Some(error.into()),
                },
                Err(_) => converter.stats.invalid_events += 1,
            }
        })?;
        kernel_events += handed as u64;
        // After the TLS events of this turn: their sockets comment the
        // packets written now.
        if let Some(network) = &mut network {
            packet_backlog = network.turn(&mut pipeline, &mut converter, boottime_ns())?;
        }
        // Attach to stopped processes now (not through the pending queue,
        // which may be full), then let them run.
        for pid in stopped.pids.clone() {
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
            match &child {
                None => break,
                Some(c) if !forwarded => {
                    forwarded = true;
                    if let Ok(pid) = i32::try_from(c.id()) {
                        // SAFETY: kill(2) on our own child's pid; no memory.
                        unsafe { libc::kill(pid, signal) };
                    }
                }
                Some(_) => {}
            }
        }
        if let Some(c) = &mut child
            && let Some(exit) = c.try_wait().context("cannot wait for the command")?
        {
            child_status = Some(exit);
            child = None;
            break;
        }
    }
    drop(child);
    if comm_per_process {
        // No more stops from here on, so the drain below sees every process
        // the kernel stopped and the guard continues it.
        if let Err(error) = pipeline.clear_comm_filter() {
            eprintln!("spliff: warning: {error:#}");
        }
    }
    // Drain: everything the kernel produced before we stopped.
    loop {
        let handed = pipeline.read_events(Duration::from_millis(20), |event| {
            if let Ok(Event::ProcessExec(exec)) = &event
                && exec.stopped
            {
                stopped.pids.push(exec.pid);
            }
            if write_error.is_some() {
                return;
            }
            match event {
                Ok(event) => {
                    if let Err(error) = converter.event(event) {
                        write_error = Some(error.into());
                    }
                }
                Err(_) => converter.stats.invalid_events += 1,
            }
        })?;
        kernel_events += handed as u64;
        if let Some(error) = write_error.take() {
            return Err(error.context("cannot write the trace"));
        }
        if handed == 0 {
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

    eprintln!(
        "spliff: recorded {:.1}s to {}: {summary}",
        started.elapsed().as_secs_f64(),
        output.display()
    );
    eprintln!("spliff: correlation: {}", correlation.summary());
    Ok(match child_status {
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)),
            _ => ExitCode::FAILURE,
        },
        None => ExitCode::SUCCESS,
    })
}

/// Removes the output file on drop unless disarmed.
struct RemoveOnFailure(Option<std::path::PathBuf>);

impl Drop for RemoveOnFailure {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What is attached where.
#[derive(Debug, Default)]
struct Hooks {
    /// Attach per process rather than per file.
    per_process: bool,
    /// Files attached for every process.
    files: std::collections::HashSet<FileId>,
    /// (pid, file) pairs attached in per-process mode.
    pairs: std::collections::HashSet<(u32, FileId)>,
    /// Files that are not usable libssl (reported once, not retried).
    failed: std::collections::HashSet<FileId>,
    /// One line per attached probe, for the capture info record (only
    /// until it is written: per-process attachments go on all capture long).
    lines: Vec<String>,
    /// Whether to keep collecting `lines`.
    keep_lines: bool,
    /// Per-process mode: each process's start time (to tell a reused pid)
    /// and its uprobes, detached once it is gone, so a capture of many
    /// short-lived processes does not run out of file descriptors.
    processes: std::collections::HashMap<u32, (Option<u64>, Vec<UprobeLink>)>,
    /// Uprobes of gone processes still to detach. A detach blocks for tens
    /// of milliseconds (the kernel waits for an RCU grace period), so only
    /// a few are done per loop turn: a stopped process must not wait long.
    to_detach: Vec<UprobeLink>,
}

impl Hooks {
    /// Attaches `path` (for `pid` only, or every process) unless done.
    fn hook(
        &mut self,
        pipeline: &mut BpfPipeline,
        id: FileId,
        path: &Path,
        pid: Option<u32>,
    ) -> anyhow::Result<bool> {
        let new = match pid {
            Some(pid) => !self.pairs.contains(&(pid, id)),
            None => !self.files.contains(&id),
        };
        if !new || self.failed.contains(&id) {
            return Ok(false);
        }
        let (lines, links) = match attach_library(pipeline, path, pid.and_then(NonZeroU32::new)) {
            Ok(attached) => attached,
            // The process exited meanwhile: says nothing about the file.
            Err(_) if pid.is_some_and(|pid| start_time(pid).is_none()) => return Ok(false),
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
                // File-wide uprobes stay until the pipeline is dropped.
                drop(links);
            }
        }
        Ok(true)
    }

    /// Forgets `pid`; its uprobes are detached later (`detach_some`).
    fn forget(&mut self, pid: u32) {
        if let Some((_, links)) = self.processes.remove(&pid) {
            self.to_detach.extend(links);
        }
        self.pairs.retain(|&(p, _)| p != pid);
    }

    /// Detaches at most `n` uprobes of gone processes.
    fn detach_some(&mut self, pipeline: &mut BpfPipeline, n: usize) {
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
    fn sweep(&mut self) {
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
    fn hook_process(
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
            if let Err(error) = self.hook(pipeline, *id, &lib.path, Some(pid)) {
                problems.push(format!("{error:#}"));
            }
        }
    }
}

/// Looks again at processes that exec'd: for libssl files at new paths,
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

/// Looks at `pid`'s mapped libssl files (a new path is hooked too) and, in
/// per-process mode, attaches every known libssl file for `pid` (also
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
            converter.add_library_path(lib.path.as_os_str().as_encoded_bytes().to_vec());
        }
    }
    let mut problems = Vec::new();
    if hooks.per_process {
        hooks.hook_process(pipeline, discovery, pid, &mut problems);
    } else {
        let files: Vec<(FileId, std::path::PathBuf)> = discovery
            .files
            .iter()
            .map(|(id, lib)| (*id, lib.path.clone()))
            .collect();
        for (id, path) in files {
            if let Err(error) = hooks.hook(pipeline, id, &path, None) {
                problems.push(format!("{error:#}"));
            }
        }
    }
    for problem in problems {
        eprintln!("spliff: warning: {problem}");
    }
}

/// Processes the kernel stopped at exec (--comm per process) and that still
/// wait for `SIGCONT`. Dropping it continues them, so no return path (an
/// error, a panic unwinding) leaves a process stopped; only a SIGKILL of
/// the recorder in that window can.
#[derive(Debug, Default)]
struct StoppedProcesses {
    pids: Vec<u32>,
}

impl StoppedProcesses {
    fn continue_all(&mut self) {
        for pid in self.pids.drain(..) {
            if let Ok(pid) = i32::try_from(pid)
                && pid > 0
            {
                // SAFETY: kill(2) has no memory arguments. The pid is still
                // the stopped process: a stopped process cannot exit and
                // free its pid, except by SIGKILL.
                unsafe { libc::kill(pid, libc::SIGCONT) };
            }
        }
    }
}

impl Drop for StoppedProcesses {
    fn drop(&mut self) {
        self.continue_all();
    }
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
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm (field 2) may hold spaces and parentheses: count from the
    // last ')'. Field 3 is the first after it.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Running processes (other than the recorder) whose comm is one of
/// `names`, compared on the first 15 bytes as the kernel stores comms.
fn processes_named(names: &[String]) -> Vec<u32> {
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

/// Whether `program` can be executed (a path, or a name found in PATH).
fn which(program: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |path: &Path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        if executable(Path::new(program)) {
            return Ok(());
        }
        bail!("{program} is not an executable file");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| executable(&dir.join(program))) {
        return Ok(());
    }
    bail!("{program} is not in PATH")
}

/// The page size, the smallest ring buffer the kernel accepts.
fn page_size_bytes() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(size).unwrap_or(4096)
}
