//! Setting up a recording, in order: the output (destination.rs), the library files to hook,
//! the kernel programs and their scope (attach.rs), the trace's first blocks, the packet
//! capture and `-- CMD`. The resulting
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
use spliff_recorder::{bpf::BpfPipeline, privileges, probes::LibrarySpec};

use super::{
    attach::{self, Attached, Scope},
    capture_info::CaptureHeader,
    convert::Converter,
    destination::{self, Output},
    held_processes::HeldProcesses,
    hooks::{self, Hooks},
    host::{self, boottime_ns, clock_ns},
    libraries::Discovery,
    live_view::LiveViewer,
    output_file::{Owner, TraceOutput},
    packets,
    recorded_command::RecordedCommand,
    rotation::Rotation,
    run_as::RunAs,
    sockets,
    startup_times::StartupTimes,
    unix_sockets,
    unrecorded::Unrecorded,
};
use crate::cli::RecordArgs;

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

/// What the set-up knows before the kernel programs are loaded.
struct Plan {
    program_path: Option<PathBuf>,
    run_as: Option<RunAs>,
    output: Output,
}

/// The kernel programs loaded and attached, and what the set-up found on the way. Fields
/// drop in order, as [`Session`]'s: held processes are continued before the programs go.
struct Kernel {
    attached: Attached,
    /// Processes already running under a selected comm.
    named: Vec<u32>,
    stopped: HeldProcesses,
    pipeline: BpfPipeline,
    discovery: Discovery,
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
        let mut pipeline = attach::load(args, &scope)?;
        times.phase("load");
        let (stopped, named) = attach::select(args, &scope, &mut pipeline)?;
        let mut attached = attach::attach_uprobes(
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
        attach::attach_sockets(
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
        let viewer = destination::start_viewer(args, &mut plan.output)?;
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
    let output = destination::open_output(args, owner)?;
    Ok(Plan {
        program_path,
        run_as,
        output,
    })
}

/// The TLS library files to hook (and the libraries wanted); an error when there is nothing
/// to record.
fn discover(
    args: &RecordArgs,
    program_path: Option<&Path>,
) -> anyhow::Result<(Discovery, Vec<&'static LibrarySpec>)> {
    let wanted = hooks::wanted_libraries(&args.libs);
    let mut discovery = hooks::discover(wanted.clone(), args.no_cache);
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
