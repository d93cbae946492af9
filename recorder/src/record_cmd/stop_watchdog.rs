//! The stop watchdog: a process that outlives the recorder and continues
//! every process the kernel stopped for it (`--comm` per process) that the
//! recorder did not continue, however the recorder ended, SIGKILL included.
//!
//! The recorder re-executes its own binary with a hidden subcommand. The
//! watchdog inherits only descriptors of the two stop maps and the read end
//! of a pipe whose write end only the recorder holds: when the pipe reports
//! end of file, the recorder is gone. It inherits no program or link
//! descriptor (those are close-on-exec), so it never keeps a probe attached.
//! The kernel's side of the argument is in `bpf/process/exec.h`.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    os::{
        fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
        unix::process::CommandExt as _,
    },
    process::{Child, Command, ExitCode, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use spliff_recorder::bpf::StopMaps;

use crate::cli::StopWatchdogArgs;

/// The hidden subcommand's name (cli.rs).
const SUBCOMMAND: &str = "stop-watchdog";
/// What the watchdog prints once it has armed the kernel's stops.
const READY: &str = "ready";
/// Between the two sweeps.
const SETTLE: Duration = Duration::from_millis(20);
/// Instead of a grace period when the kernel refuses membarrier: an exec
/// program run cannot sleep and lasts microseconds.
const SETTLE_WITHOUT_GRACE_PERIOD: Duration = Duration::from_millis(100);

/// The recorder's end: a running watchdog and the pipe keeping it waiting.
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
    /// Write end of the lifeline; closing it (or dying) releases the watchdog.
    lifeline: Option<OwnedFd>,
    gone: bool,
}

impl Watchdog {
    /// The watchdog's process, never to be held itself.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the watchdog and waits until it has armed the kernel's stops:
    /// the kernel stops no process before that.
    pub fn spawn(maps: &StopMaps) -> anyhow::Result<Self> {
        let (read, write) = pipe().context("cannot create the stop watchdog's pipe")?;
        let (stopped, armed) = maps.fds();
        let mut child = command(stopped, armed, read.as_raw_fd())
            .spawn()
            .context("cannot start the stop watchdog")?;
        // The watchdog has its copy; ours would only leak.
        drop(read);
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout).read_line(&mut line).ok();
        }
        if line.trim_end() != READY {
            child.kill().ok();
            child.wait().ok();
            bail!("the stop watchdog did not start (see its message above)");
        }
        Ok(Self {
            child,
            lifeline: Some(write),
            gone: false,
        })
    }

    /// Whether the watchdog has exited (killed by someone); then nothing
    /// would continue stopped processes if the recorder died.
    pub fn died(&mut self) -> bool {
        if !self.gone {
            self.gone = !matches!(self.child.try_wait(), Ok(None));
        }
        self.gone
    }
}

impl Drop for Watchdog {
    /// Releases the watchdog and waits for it, so it does not outlive a
    /// recorder that exits normally (its sweep finds nothing left then).
    fn drop(&mut self) {
        drop(self.lifeline.take());
        self.child.wait().ok();
    }
}

/// `/proc/self/exe stop-watchdog ...`, inheriting exactly the three given
/// descriptors besides stdio (not even those the recorder itself inherited
/// open: the watchdog must not keep its caller's pipes or locks), in a
/// session of its own: a Ctrl-C on the terminal reaches the recorder's
/// process group, and the watchdog must outlive it.
fn command(stopped: BorrowedFd<'_>, armed: BorrowedFd<'_>, lifeline: RawFd) -> Command {
    let inherited = [stopped.as_raw_fd(), armed.as_raw_fd(), lifeline];
    let mut command = Command::new("/proc/self/exe");
    command
        .arg(SUBCOMMAND)
        .arg(format!("--stopped-map-fd={}", inherited[0]))
        .arg(format!("--armed-map-fd={}", inherited[1]))
        .arg(format!("--lifeline-fd={}", inherited[2]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: runs in the forked child before exec; close_range, fcntl and
    // setsid are async-signal-safe and touch no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            // Best effort: kernels before 5.11 refuse the flag.
            libc::syscall(
                libc::SYS_close_range,
                3,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            for fd in inherited {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// A pipe, both ends close-on-exec (a `-- CMD` child must never hold the
/// write end, or the watchdog would wait for it too).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these two descriptors, owned by no one.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The watchdog process: arm, wait for the recorder to be gone, disarm,
/// continue what is left.
pub fn run(args: &StopWatchdogArgs) -> anyhow::Result<ExitCode> {
    name_self();
    ignore_termination_signals();
    let stopped = inherited_fd(args.stopped_map_fd).context("--stopped-map-fd")?;
    let armed = inherited_fd(args.armed_map_fd).context("--armed-map-fd")?;
    let lifeline = inherited_fd(args.lifeline_fd).context("--lifeline-fd")?;
    let mut maps = StopMaps::from_fds(stopped, armed).context("cannot open the stop maps")?;
    maps.set_armed(true)
        .context("cannot arm the kernel's stops")?;
    // The recorder may already be gone: a write error only means that.
    writeln!(std::io::stdout(), "{READY}").ok();
    wait_for_eof(lifeline);
    release_all(&mut maps);
    Ok(ExitCode::SUCCESS)
}

/// Disarms, waits until no exec program run can still stop anything
/// unseen, then continues every recorded stop; twice, for good measure.
fn release_all(maps: &mut StopMaps) {
    if let Err(error) = maps.set_armed(false) {
        warn(&format!("cannot disarm the kernel's stops: {error}"));
    }
    if !grace_period() {
        std::thread::sleep(SETTLE_WITHOUT_GRACE_PERIOD);
    }
    let mut continued = sweep(maps);
    std::thread::sleep(SETTLE);
    continued += sweep(maps);
    if continued > 0 {
        warn(&format!(
            "the recorder ended before continuing {continued} process(es) it had held at \
             exec; continued them"
        ));
    }
}

/// `SIGCONT` to every recorded stop, then forgets it; how many there were.
/// `SIGCONT` also discards a `SIGSTOP` still pending, so the order of the
/// two signals' arrival does not matter.
fn sweep(maps: &mut StopMaps) -> usize {
    let pending = maps.pending();
    for stop in &pending {
        if let Ok(pid) = i32::try_from(stop.pid)
            && pid > 0
        {
            // SAFETY: kill(2) has no memory arguments.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        if let Err(error) = maps.forget(*stop) {
            warn(&format!("{error}"));
        }
    }
    pending.len()
}

/// An RCU grace period: every exec program run that started before it has
/// ended (MEMBARRIER_CMD_GLOBAL is synchronize_rcu() in the kernel).
/// `false` if the kernel refuses (nohz_full).
fn grace_period() -> bool {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier has no memory arguments.
    unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0 }
}

/// Blocks until every write end of the lifeline is closed.
fn wait_for_eof(lifeline: OwnedFd) {
    let mut pipe = std::fs::File::from(lifeline);
    let mut buf = [0u8; 64];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            // Nothing sensible to wait on any more: act as if it were gone.
            Err(_) => return,
        }
    }
}

/// Takes ownership of a descriptor number from the command line, checking
/// it is open first.
fn inherited_fd(fd: RawFd) -> anyhow::Result<OwnedFd> {
    // SAFETY: F_GETFD has no memory arguments.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        bail!("descriptor {fd} is not an inherited open descriptor");
    }
    // SAFETY: open (checked above), not stdio, and nothing else in this
    // process refers to it: the recorder passed it for us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `ps` shows `spliff-watchdog` instead of `exe` (the name of
/// `/proc/self/exe`).
fn name_self() {
    const NAME: &[u8] = b"spliff-watchdog\0";
    // SAFETY: NAME is NUL-terminated and at most 16 bytes, as PR_SET_NAME reads.
    unsafe { libc::prctl(libc::PR_SET_NAME, NAME.as_ptr()) };
}

/// The watchdog ends by itself right after the recorder; a SIGTERM or
/// SIGHUP sent to both (a service manager, a closing terminal) must not end
/// it first.
fn ignore_termination_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
}

/// Best effort: the recorder's stderr may be gone (a closed pipe must not
/// stop the sweep).
fn warn(message: &str) {
    writeln!(std::io::stderr(), "spliff: stop watchdog: {message}").ok();
}
