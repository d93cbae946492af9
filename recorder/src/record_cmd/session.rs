//! Setting up a recording: the output, the library files to hook, the kernel programs and
//! their scope, the trace's first blocks, the packet capture and `-- CMD`. The resulting
//! [`Session`] is what the event loop and the end of the capture work on.

use std::{
    fs::File,
    io::IsTerminal as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use spliff_formats::{SectionInfo, TraceWriter};
use spliff_recorder::{
    bpf::{BpfPipeline, PipelineOptions, Tracking},
    privileges,
    probes::LibrarySpec,
};

use super::{
    capture_info::CaptureHeader,
    convert::Converter,
    held_processes::HeldProcesses,
    hooks::{self, Hooks},
    host::{self, boottime_ns, clock_ns},
    libraries::Discovery,
    live_view::{self, LiveViewer},
    output_file::{self, Owner, TraceOutput},
    packets,
    process_info::{all_pids, processes_named},
    recorded_command::RecordedCommand,
    rotation::{self, Rotation},
    run_as::RunAs,
    sockets,
    startup_times::StartupTimes,
    unix_sockets,
    unrecorded::Unrecorded,
};
use crate::cli::RecordArgs;

/// Ring buffer size: room for several 1 MiB writes in flight, so a burst
/// does not overflow before user space wakes up.
const RING_BUFFER_BYTES: u32 = 64 * 1024 * 1024;

/// A recording under way. Fields drop in the order the set-up's locals once did (last made,
/// first dropped): whatever leaves early continues held processes before the kernel programs
/// go.
pub struct Session {
    pub status: Option<indicatif::ProgressBar>,
    pub network: Option<packets::Network>,
    pub header: CaptureHeader,
    pub converter: Converter<File>,
    pub viewer: Option<LiveViewer>,
    pub unrecorded: Unrecorded,
    pub hooks: Hooks,
    pub stopped: HeldProcesses,
    pub pipeline: BpfPipeline,
    pub discovery: Discovery,
    pub rotation: Option<Rotation<'static>>,
    pub output_file: Option<TraceOutput>,
    /// Where the trace goes, as the user is told.
    pub shown: String,
    /// The kernel stops processes exec'ing into a selected comm (`--comm` per process).
    pub comm_per_process: bool,
    /// The capture clock and the wall clock, read back to back when the trace began.
    pub info_ts: u64,
    pub wall: u64,
    /// When recording proper began.
    pub started: Instant,
}

/// Which processes are recorded, and how uprobes reach them.
struct Scope {
    filter_enabled: bool,
    per_process: bool,
    comm_per_process: bool,
}

impl Scope {
    fn of(args: &RecordArgs) -> Self {
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

/// Where the trace goes. Until recording starts, a failure leaves no trace behind and any old
/// file as it was.
struct Output {
    view_only: bool,
    to_stdout: bool,
    shown: String,
    output_file: Option<TraceOutput>,
    file: File,
    view_source: Option<File>,
    rotation: Option<Rotation<'static>>,
}

/// What the set-up knows before the kernel programs are loaded.
struct Plan {
    program_path: Option<PathBuf>,
    run_as: Option<RunAs>,
    output: Output,
}

/// The kernel programs loaded and attached, and what the set-up found on the way.
struct Kernel {
    pipeline: BpfPipeline,
    stopped: HeldProcesses,
    discovery: Discovery,
    /// Processes already running under a selected comm.
    named: Vec<u32>,
    attached: Attached,
}

/// What the uprobe set-up leaves for the rest.
struct Attached {
    hooks: Hooks,
    unrecorded: Unrecorded,
    /// The sock_ops line of the capture header, when sock_ops is attached.
    sock_ops: Option<String>,
}

impl Session {
    /// Everything up to recording proper: on return every probe is attached, `-- CMD` (held
    /// in `command`) runs and the user has been told that recording started.
    pub fn start(args: &RecordArgs, command: &mut Option<RecordedCommand>) -> anyhow::Result<Self> {
        let mut times = StartupTimes::from_env();
        // First: a user without privileges must find nothing of theirs touched.
        privileges::check_recording()?;
        let plan = plan(args)?;
        let (mut discovery, wanted) = discover(args, plan.program_path.as_deref())?;
        times.phase("discovery");
        let scope = Scope::of(args);
        if scope.comm_per_process {
            host::raise_fd_limit();
        }
        let unix = unix_sockets::selection(&args.unix)?;
        let mut pipeline = load(args, &scope)?;
        times.phase("load");
        let (stopped, named) = select(args, &scope, &mut pipeline)?;
        let mut attached = attach_uprobes(
            args,
            &scope,
            &mut pipeline,
            &mut discovery,
            wanted,
            &named,
            plan.program_path.as_deref(),
            unix.is_none(),
        )?;
        times.phase("uprobes");
        attach_sockets(
            args,
            &mut pipeline,
            &mut attached,
            unix.as_ref(),
            &mut times,
        )?;
        let kernel = Kernel {
            pipeline,
            stopped,
            discovery,
            named,
            attached,
        };
        Self::open(args, command, plan, scope, kernel, times)
    }

    /// From the trace's first blocks to recording proper.
    fn open(
        args: &RecordArgs,
        command: &mut Option<RecordedCommand>,
        mut plan: Plan,
        scope: Scope,
        mut kernel: Kernel,
        mut times: StartupTimes,
    ) -> anyhow::Result<Self> {
        let viewer = start_viewer(args, &mut plan.output)?;
        let rotated = plan.output.rotation.is_some();
        let (mut converter, header, info_ts, wall) = begin_trace(
            plan.output.file,
            rotated,
            &kernel.discovery,
            &mut kernel.attached,
        )?;
        // Processes selected by pid exist now and may be gone when their first
        // event is converted: keep what /proc says about them.
        for &pid in args.pids.iter().chain(&kernel.named) {
            converter.snapshot_process(pid);
        }
        // Before CMD starts, so its first packets are captured.
        let network = start_network(args, &mut kernel.pipeline, &mut converter, info_ts, wall)?;
        times.phase("packets");
        host::install_signal_handlers();
        let run_as = plan.run_as.as_ref();
        spawn(args, run_as, plan.output.to_stdout, command, &mut times)?;
        let mut session = Session {
            status: None,
            network,
            header,
            converter,
            viewer,
            unrecorded: kernel.attached.unrecorded,
            hooks: kernel.attached.hooks,
            stopped: kernel.stopped,
            pipeline: kernel.pipeline,
            discovery: kernel.discovery,
            rotation: plan.output.rotation,
            output_file: plan.output.output_file,
            shown: plan.output.shown,
            comm_per_process: scope.comm_per_process,
            info_ts,
            wall,
            started: Instant::now(),
        };
        let sock_ops = kernel.attached.sock_ops.is_some();
        session.begin(args, &scope, sock_ops, command, times)?;
        Ok(session)
    }

    /// Commits the output, drops privileges, says that recording started and starts the
    /// clocks of recording proper.
    fn begin(
        &mut self,
        args: &RecordArgs,
        scope: &Scope,
        sock_ops: bool,
        command: &Option<RecordedCommand>,
        mut times: StartupTimes,
    ) -> anyhow::Result<()> {
        if let Some(created) = &mut self.output_file {
            created.commit()?;
        }
        // Everything at start is attached and CMD runs: what is left is reading and writing.
        match privileges::drop_unneeded() {
            Ok(_) => {}
            Err(error) => eprintln!("spliff: warning: {error:#}; recording goes on with them"),
        }
        // Only now: every probe is attached.
        self.announce(scope.per_process, command.is_some());
        // Only after the command started and the line above (which scripts wait for) is out:
        // the warm-up takes a moment with many sockets, and the join does not need it first (a
        // TLS connection that meets its socket later is correlated then).
        if sock_ops {
            let warm_up = sockets::warm_up(self.converter.sockets());
            eprintln!("spliff: sockets from sock_ops and the socket table: {warm_up}");
            times.phase("socket warm-up");
        }
        times.report();
        if self.network.is_some() && scope.filter_enabled && !args.all_packets {
            eprintln!(
                "spliff: packets: only the TCP connections of the selected processes \
                 (--all-packets keeps every packet)"
            );
        }
        if let Some(network) = &mut self.network {
            network.started();
        }
        self.status = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        if let Some(rotation) = &mut self.rotation {
            rotation.started(&mut self.converter);
        }
        self.started = Instant::now();
        Ok(())
    }

    /// The line scripts wait for: recording has started.
    fn announce(&self, per_process: bool, with_command: bool) {
        let files = self.discovery.files.len();
        eprintln!(
            "spliff: recording {} TLS librar{}{} ({} probes{}) to {}{}",
            files,
            if files == 1 { "y" } else { "ies" },
            match self.hooks.go.len() {
                0 => String::new(),
                n => format!(" and {n} Go program{}", if n == 1 { "" } else { "s" }),
            },
            self.header.attached.len(),
            if per_process { ", per process" } else { "" },
            self.shown,
            if with_command {
                ""
            } else {
                "; stop with Ctrl-C"
            }
        );
    }
}

/// Checks the arguments that cost nothing to check and opens the output.
fn plan(args: &RecordArgs) -> anyhow::Result<Plan> {
    if args.live && args.output.as_ref().is_some_and(|o| o.as_os_str() == "-") {
        bail!("--live shows the exchanges on standard output, where -o - writes the trace");
    }
    let mut program_path = None;
    if let Some(program) = args.command.first() {
        // Checked before anything is loaded, so a typo costs nothing.
        program_path = Some(host::which(program).with_context(|| {
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
    let output = open_output(args, owner)?;
    Ok(Plan {
        program_path,
        run_as,
        output,
    })
}

/// Opens the trace file, standard output or the live view's pipe, and sets up rotation.
fn open_output(args: &RecordArgs, owner: Owner) -> anyhow::Result<Output> {
    // Without -o the live view is the output: the trace goes through a pipe to it, no file.
    let view_only = args.output.is_none();
    let output = &args.output.clone().unwrap_or_default();
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
    let mut view_source = None;
    let (output_file, file) = if view_only {
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
    Ok(Output {
        view_only,
        to_stdout,
        shown,
        output_file,
        file,
        view_source,
        rotation: policy.map(|policy| rotation(policy, output, owner)),
    })
}

/// Later files of a rotated capture are created by the same rules, in place at once.
fn rotation(policy: rotation::Policy, output: &Path, owner: Owner) -> Rotation<'static> {
    let open = move |path: &Path| -> anyhow::Result<File> {
        let mut created = TraceOutput::create(path, owner)?;
        created.commit()?;
        // The handle shares the lock's open file description: the lock lasts while the
        // trace is written.
        Ok(created.file()?)
    };
    Rotation::start(policy, output, Box::new(open))
}

/// The TLS library files to hook (and the libraries wanted); an error when there is nothing
/// to record.
fn discover(
    args: &RecordArgs,
    program_path: Option<&Path>,
) -> anyhow::Result<(Discovery, Vec<&'static LibrarySpec>)> {
    let wanted = hooks::wanted_libraries(&args.libs);
    let mut discovery = hooks::discover(wanted.clone());
    if let Some(path) = program_path {
        discovery.scan_program(path);
    }
    let go_in_sight =
        program_path.is_some_and(|path| spliff_recorder::golang::go_version(path).is_some());
    if discovery.files.is_empty() && !go_in_sight {
        bail!(
            "no TLS library found: none of {} in the dynamic linker cache (ldconfig -p) or \
             mapped by any running process; install one or start the program to record first",
            hooks::looked_for(&wanted)
        );
    }
    Ok((discovery, wanted))
}

fn load(args: &RecordArgs, scope: &Scope) -> anyhow::Result<BpfPipeline> {
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
fn select(
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
fn attach_uprobes(
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
fn attach_sockets(
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

fn start_viewer(args: &RecordArgs, output: &mut Output) -> anyhow::Result<Option<LiveViewer>> {
    if args.live {
        output.view_source = Some(live_view::reopen(&output.file)?);
    }
    Ok(match output.view_source.take() {
        Some(source) => Some(LiveViewer::start(
            source,
            !output.view_only,
            live_view::options(args),
            boottime_ns,
        )?),
        None => None,
    })
}

/// Writes the trace's section header and capture header; returns the converter writing the
/// trace, the header, and the capture and wall clocks at its start.
fn begin_trace(
    file: File,
    rotated: bool,
    discovery: &Discovery,
    attached: &mut Attached,
) -> anyhow::Result<(Converter<File>, CaptureHeader, u64, u64)> {
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
    let (hostname, release, version, machine) = host::uname();
    let writer = TraceWriter::new(
        file,
        &SectionInfo {
            hardware: machine,
            os: format!("Linux {release}"),
            user_application: format!("spliff {}", env!("CARGO_PKG_VERSION")),
        },
        host::capture_id(),
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
        attached: attached.hooks.take_lines(),
    };
    let mut converter = Converter::new(writer, library_paths);
    if rotated {
        converter.keep_for_rotation();
    }
    converter.set_closes_reported(attached.sock_ops.is_some());
    header
        .write(&mut converter)
        .context("cannot write the trace")?;
    converter
        .writer()
        .flush()
        .context("cannot write the trace")?;
    Ok((converter, header, info_ts, wall))
}

/// Starts the packet capture unless --no-packets.
fn start_network(
    args: &RecordArgs,
    pipeline: &mut BpfPipeline,
    converter: &mut Converter<File>,
    info_ts: u64,
    wall: u64,
) -> anyhow::Result<Option<packets::Network>> {
    if args.no_packets {
        return Ok(None);
    }
    let options = packets::PacketOptions {
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
    };
    let clock = packets::ClockMap {
        boot_ns: info_ts,
        wall_ns: wall,
    };
    Ok(Some(packets::Network::start(
        pipeline,
        converter,
        &options,
        clock,
        boottime_ns(),
    )?))
}

/// Starts `-- CMD`, if given, into `command`.
fn spawn(
    args: &RecordArgs,
    run_as: Option<&RunAs>,
    to_stdout: bool,
    command: &mut Option<RecordedCommand>,
    times: &mut StartupTimes,
) -> anyhow::Result<()> {
    let Some((program, rest)) = args.command.split_first() else {
        return Ok(());
    };
    let mut cmd = Command::new(program);
    cmd.args(rest);
    if let Some(user) = run_as {
        user.apply(&mut cmd);
    }
    if to_stdout {
        // Standard output carries the trace: what CMD prints goes to standard error.
        cmd.stdout(std::io::stderr());
    }
    let child = cmd.spawn().with_context(|| match run_as {
        Some(user) => format!(
            "cannot start `{program}` as {} (uid {})",
            user.name, user.uid
        ),
        None => format!("cannot start `{program}`"),
    })?;
    *command = Some(RecordedCommand::new(child, program));
    times.phase("spawn");
    Ok(())
}
