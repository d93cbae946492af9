//! `spliff extcap`: a Wireshark extcap interface. Wireshark (or `tshark -i spliff`) runs it to
//! list the interface, ask for its options and capture: it runs `spliff record -o -` and turns
//! the trace stream into the pcapng of `spliff replay -o out.pcapng` (every connection as a
//! synthetic TCP session that Wireshark dissects as HTTP/1.1 or HTTP/2), written to the FIFO
//! Wireshark reads, one connection once it has ended.
//!
//! The recorder's messages go to the file $SPLIFF_EXTCAP_LOG names, if any (Wireshark takes an
//! extcap's standard error for an error).
//!
//! `spliff extcap --install` puts a two-line wrapper named `spliff` into Wireshark's extcap
//! folder (the one `tshark -G folders` names, or --dir).

use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use spliff_replay::live::{LiveOptions, LiveView};

use crate::cli::ExtcapArgs;

/// The interface's name in Wireshark's list and in `tshark -D`.
const INTERFACE: &str = "spliff";
/// How often finished connections are written to the FIFO.
const TICK: Duration = Duration::from_millis(20);

static STOP: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    STOP.store(signal, Ordering::SeqCst);
}

pub fn run(args: &ExtcapArgs) -> anyhow::Result<ExitCode> {
    if args.install {
        install(args.dir.as_deref())?;
    } else if args.extcap_interfaces {
        print!(
            "extcap {{version={v}}}{{help=https://github.com/spliff}}\n\
             interface {{value={INTERFACE}}}{{display=spliff: decrypted TLS of local processes \
             (HTTP/1.1, HTTP/2)}}\n",
            v = env!("CARGO_PKG_VERSION")
        );
    } else if args.extcap_dlts {
        println!("dlt {{number=101}}{{name=RAW}}{{display=Raw IP (synthetic TCP sessions)}}");
    } else if args.extcap_config {
        print!("{}", CONFIG);
    } else if args.capture {
        let Some(fifo) = &args.fifo else {
            bail!("--capture needs --fifo PATH (Wireshark gives it)");
        };
        return capture(args, fifo);
    } else {
        bail!(
            "spliff extcap is run by Wireshark (install it with `spliff extcap --install`); \
             give --extcap-interfaces, --extcap-dlts, --extcap-config or --capture"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The options of the interface's dialog.
const CONFIG: &str = "\
arg {number=0}{call=--comm}{display=Process name}{type=string}\
{tooltip=Record only processes with this comm (empty: every process)}\n\
arg {number=1}{call=--pid}{display=Process id}{type=string}\
{tooltip=Record only this process id (empty: every process)}\n\
arg {number=2}{call=--packets}{display=Record packet headers}{type=boolflag}{default=false}\
{tooltip=Also hook the network (XDP, TC) to tie connections to packets}\n";

/// Writes the wrapper into `dir`, or the extcap folder `tshark -G folders` names.
fn install(dir: Option<&Path>) -> anyhow::Result<()> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => extcap_folder()?,
    };
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let me = std::env::current_exe().context("cannot tell where this spliff binary is")?;
    let path = dir.join(INTERFACE);
    let script = format!("#!/bin/sh\nexec '{}' extcap \"$@\"\n", me.display());
    fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))?;
    println!("installed {} (runs {})", path.display(), me.display());
    Ok(())
}

/// The extcap folder from `tshark -G folders` (personal first when it has one).
fn extcap_folder() -> anyhow::Result<PathBuf> {
    let out = Command::new("tshark")
        .args(["-G", "folders"])
        .output()
        .context("cannot run `tshark -G folders` to find Wireshark's extcap folder; give --dir")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let folders: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .filter(|(k, _)| k.to_ascii_lowercase().contains("extcap"))
        .collect();
    folders
        .iter()
        .find(|(k, _)| k.to_ascii_lowercase().contains("personal"))
        .or_else(|| folders.first())
        .map(|(_, v)| PathBuf::from(v))
        .context("`tshark -G folders` names no extcap folder; give --dir")
}

/// The recorder as a child writing its trace to a pipe.
fn start_recorder(args: &ExtcapArgs) -> anyhow::Result<Child> {
    let me = std::env::current_exe().context("cannot tell where this spliff binary is")?;
    let mut cmd = Command::new(me);
    cmd.args(["record", "-o", "-"]);
    if let Some(comm) = args.comm.as_deref().filter(|c| !c.is_empty()) {
        cmd.args(["--comm", comm]);
    }
    if let Some(pid) = args.pid.as_deref().filter(|p| !p.is_empty()) {
        cmd.args(["--pid", pid]);
    }
    if !args.packets {
        cmd.arg("--no-packets");
    }
    // Wireshark takes anything on an extcap's standard error for an error: the recorder's
    // messages go to $SPLIFF_EXTCAP_LOG when set (its "recording" line says it is ready).
    let log = match std::env::var_os("SPLIFF_EXTCAP_LOG") {
        Some(path) => Stdio::from(
            File::create(&path)
                .with_context(|| format!("cannot create {}", Path::new(&path).display()))?,
        ),
        None => Stdio::null(),
    };
    cmd.stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("cannot start `spliff record`")
}

fn capture(args: &ExtcapArgs, fifo: &Path) -> anyhow::Result<ExitCode> {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let mut out = io::BufWriter::new(
        File::create(fifo).with_context(|| format!("cannot open the FIFO {}", fifo.display()))?,
    );
    let mut view = LiveView::pcapng(LiveOptions::default(), &mut out)
        .context("cannot write to Wireshark's FIFO")?;
    let mut child = start_recorder(args)?;
    let mut trace = child.stdout.take().context("the recorder has no output")?;
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    // Reads apart from writing: the FIFO's reader may be slow, the recorder must not wait.
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 << 10];
        while let Ok(n) = trace.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut forwarded = false;
    let mut last_tick = Instant::now();
    loop {
        match rx.recv_timeout(TICK) {
            Ok(bytes) => view.push(&bytes).context("reading the recorder's trace")?,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if !forwarded && STOP.load(Ordering::SeqCst) != 0 {
            forwarded = true;
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
        }
        if last_tick.elapsed() >= TICK {
            view.tick(boottime_ns(), &mut out)?;
            last_tick = Instant::now();
        }
    }
    view.finish(&mut out)?;
    out.flush()?;
    let status = child.wait().context("cannot wait for `spliff record`")?;
    if !status.success() && !forwarded {
        bail!("`spliff record` failed ({status}); set SPLIFF_EXTCAP_LOG=FILE to see why");
    }
    Ok(ExitCode::SUCCESS)
}

fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}
