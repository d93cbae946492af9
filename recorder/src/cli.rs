//! Command-line interface (clap derive). Conventions follow tcpdump and tshark where they have
//! one: `-o` for the output file, `-` for stdout, `-i` for interfaces.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Record decrypted HTTPS traffic without a proxy or certificates, and rebuild it offline.
#[derive(Debug, Parser)]
#[command(name = "spliff", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record TLS plaintext with eBPF into a pcapng trace (Linux, root).
    Record(RecordArgs),
    /// Rebuild the exchanges of a trace (offline, any OS, no root).
    Replay(ReplayArgs),
    /// Wireshark extcap interface `spliff`: decrypted sessions live in Wireshark and
    /// `tshark -i spliff` (install with `spliff extcap --install`).
    Extcap(ExtcapArgs),
    /// Internal: started by `record --comm` to continue the processes it
    /// held at exec should it die (see record_cmd/stop_watchdog.rs).
    #[command(name = "stop-watchdog", hide = true)]
    StopWatchdog(StopWatchdogArgs),
}

/// Arguments of `spliff extcap` (Wireshark's extcap calling convention).
#[derive(Debug, Args)]
pub struct ExtcapArgs {
    /// Write the `spliff` wrapper into Wireshark's extcap folder (`tshark -G folders`).
    #[arg(long)]
    pub install: bool,
    /// With --install: the folder to write into instead.
    #[arg(long, value_name = "DIR", requires = "install")]
    pub dir: Option<PathBuf>,
    /// extcap: list the interfaces.
    #[arg(long)]
    pub extcap_interfaces: bool,
    /// extcap: Wireshark's version.
    #[arg(long, value_name = "VERSION")]
    pub extcap_version: Option<String>,
    /// extcap: the interface asked about.
    #[arg(long, value_name = "NAME")]
    pub extcap_interface: Option<String>,
    /// extcap: list the link types.
    #[arg(long)]
    pub extcap_dlts: bool,
    /// extcap: list the options.
    #[arg(long)]
    pub extcap_config: bool,
    /// extcap: capture into --fifo.
    #[arg(long)]
    pub capture: bool,
    /// extcap: the FIFO to write pcapng into.
    #[arg(long, value_name = "PATH")]
    pub fifo: Option<PathBuf>,
    /// extcap: a capture filter (not supported: every recorded connection is written).
    #[arg(long, value_name = "FILTER")]
    pub extcap_capture_filter: Option<String>,
    /// Record only processes with this comm.
    #[arg(long, value_name = "NAME")]
    pub comm: Option<String>,
    /// Record only this process id.
    #[arg(long, value_name = "PID")]
    pub pid: Option<String>,
    /// Also record packet headers (network hooks).
    #[arg(long)]
    pub packets: bool,
}

/// Descriptors `record` hands its stop watchdog.
#[derive(Debug, Args)]
pub struct StopWatchdogArgs {
    /// The `spliff_stopped` map.
    #[arg(long)]
    pub stopped_map_fd: i32,
    /// The `spliff_stop_armed` map.
    #[arg(long)]
    pub armed_map_fd: i32,
    /// Read end of the pipe only the recorder writes to.
    #[arg(long)]
    pub lifeline_fd: i32,
}

/// Arguments of `spliff record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Trace file to write: created new with mode 0600 (it holds secrets) and locked; an
    /// existing file is replaced only if it is a regular file of the trace's owner, never
    /// through a symlink, and only once recording starts. With -C or -G, the name of the
    /// files: a sequence number goes before the extension (see -C). `-o -` writes the trace
    /// to standard output as a stream (`spliff record -o - | spliff replay -`); `-- CMD`'s
    /// own output then goes to standard error. Without -o, no trace is written: the
    /// exchanges are shown live on standard output (see --live).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Record only this process (repeatable).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Record this process and all its descendants, including those born during the capture.
    #[arg(long, value_name = "PID")]
    pub ppid: Option<u32>,
    /// Record only processes with this comm (repeatable; first 15 bytes).
    ///
    /// Without -- CMD and --ppid, uprobes go only into the selected processes,
    /// so others run at full speed: running ones are attached at start, and
    /// one that execs into NAME later is held (SIGSTOP) until attached, then
    /// continued (an interactive shell may report it as stopped). A helper
    /// process (spliff-watchdog, in a session of its own) continues any
    /// process still held once the recorder ends, even by SIGKILL; without
    /// it (killed) no process is held any more. A child a selected process
    /// forks without exec is attached once the fork is seen: its TLS calls in
    /// the first milliseconds can be missed.
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<String>,
    /// TLS libraries to hook (repeatable; default: every library found).
    ///
    /// Library files are found by name (libssl.so*, libgnutls.so*, libwolfssl.so*, NSS's
    /// libssl3.so and libnspr4.so) in the dynamic linker cache, in every process's memory maps
    /// and beside the recorded program (Firefox keeps its own NSS there).
    #[arg(long = "lib", value_enum, default_values_t = [Library::All])]
    pub libs: Vec<Library>,
    /// Neither read nor write the cache of where stripped BoringSSL's functions are
    /// (/var/cache/spliff): search every large program again.
    ///
    /// A capture keeps what the search of a program (Chromium: about half a second, during
    /// which its first exec is held) found, under its build-id, size and mtime, so that later
    /// captures only verify the offsets against the program's bytes (about 40 ms). The
    /// directory must be root's and writable by nobody else, or it is not used.
    #[arg(long)]
    pub no_cache: bool,
    /// Hook OpenSSL only (the original spliff's spelling of --lib openssl; combines with
    /// --gnutls, --wolfssl and --nss).
    #[arg(long)]
    pub openssl: bool,
    /// Hook GnuTLS only (as --lib gnutls).
    #[arg(long)]
    pub gnutls: bool,
    /// Hook wolfSSL only (as --lib wolfssl).
    #[arg(long)]
    pub wolfssl: bool,
    /// Hook NSS only (as --lib nss).
    #[arg(long)]
    pub nss: bool,
    /// Do not learn socket identities (sock_ops on the cgroup v2 root, warm-up from the
    /// kernel's socket table).
    ///
    /// They are on by default, also with --no-packets: they cost one small event per TCP
    /// connect, establishment and state change, and give every TLS connection its socket
    /// cookie, addresses and ports even when no packet is captured. Without them a
    /// connection gets its socket only from the TLS probes' look at its fd. On a host
    /// without a mounted cgroup2 hierarchy one is mounted privately under /run/spliff and
    /// unmounted again as soon as sock_ops is attached.
    #[arg(long)]
    pub no_sockets: bool,
    /// Record unix stream sockets bound to PATH (repeatable; `@NAME` for an abstract socket,
    /// `any` for every one), both directions, without TLS.
    ///
    /// Hooks the read/write family of syscall tracepoints; only with this option. The path is
    /// the one the server bound, as `ss -x` shows it.
    #[arg(long = "unix", value_name = "PATH|any")]
    pub unix: Vec<std::ffi::OsString>,
    /// Print every TLS library file found (of every kind), why, whether --lib hooks it
    /// and which functions each kind gets, then exit.
    #[arg(long, visible_alias = "show-libs")]
    pub list_libs: bool,
    /// Capture packet headers on this interface (repeatable; default: every
    /// interface of the network namespace, including ones created during
    /// the capture). A name that does not exist yet is captured once it
    /// appears.
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// Record no packets: no XDP/TC hooks, TLS plaintext only.
    #[arg(long, conflicts_with_all = ["interfaces", "snaplen"])]
    pub no_packets: bool,
    /// With a scope (`-- CMD`, --pid, --comm, --ppid): keep every packet of the captured
    /// interfaces. Without it only the TCP packets of the selected processes'
    /// connections are kept (decided in the kernel; see docs/packets.md).
    #[arg(long, conflicts_with = "no_packets")]
    pub all_packets: bool,
    /// Keep the first N bytes of every packet (at most 256), payload included. Without
    /// it, each packet's link, network and transport headers are kept and nothing after
    /// them: no payload.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub snaplen: Option<u32>,
    /// Hook for received packets on Ethernet devices: `auto` is XDP on
    /// physical devices and TC on virtual ones (veth, bridges: XDP costs
    /// them throughput); tunnels always get TC (XDP cannot see their
    /// traffic).
    #[arg(long, value_enum, default_value_t = IngressHook::Auto, conflicts_with = "no_packets")]
    pub ingress_hook: IngressHook,
    /// Run `-- CMD` as USER (a name or uid) and give the trace file to USER, still mode 0600
    /// (tcpdump's -Z).
    ///
    /// Under sudo the default is the user who ran sudo (SUDO_UID/SUDO_GID), so CMD does not
    /// run as root and the trace is yours; `-Z root` keeps root. Processes selected with
    /// --pid, --comm or --ppid keep their own identity.
    #[arg(short = 'Z', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// What happens to `-- CMD` when recording fails while it runs (a full disk, a kernel
    /// error); the error message says what became of it, with its pid.
    #[arg(long, value_enum, default_value_t = OnFailure::Continue, value_name = "ACTION")]
    pub on_failure: OnFailure,
    /// Rotate: start a new file once the current one reaches MB megabytes (millions of
    /// bytes, 10^6, as tcpdump's -C; decimals allowed, e.g. 0.5).
    ///
    /// The files are named after -o FILE with a sequence number of six digits (or more)
    /// before the extension: `-o trace.pcapng` writes trace.000001.pcapng,
    /// trace.000002.pcapng, ... Each is a complete trace on its own; `spliff replay
    /// trace.*.pcapng` rebuilds connections that span several. A file is cut between two
    /// blocks, so it may exceed MB by one block (packets: by one batch).
    #[arg(long = "file-size", value_name = "MB", value_parser = parse_megabytes)]
    pub file_size: Option<u64>,
    /// `-C MB` is --file-size MB (tcpdump's -C); `-C` alone is --color never (the
    /// original spliff's -C). A value that is not a number is an error.
    #[arg(
        short = 'C',
        value_name = "MB",
        num_args = 0..=1,
        default_missing_value = "",
        value_parser = parse_dash_c
    )]
    pub dash_c: Option<DashC>,
    /// Rotate: start a new file every SECONDS seconds (named as with -C).
    #[arg(
        short = 'G',
        long = "rotate-seconds",
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub rotate_seconds: Option<u64>,
    /// With -C or -G: keep at most K files, deleting the oldest (a ring). Only files this
    /// capture wrote are ever deleted.
    #[arg(
        short = 'W',
        long = "file-count",
        value_name = "K",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub file_count: Option<u64>,
    /// Show the exchanges live on standard output as well as writing -o FILE (tcpdump's
    /// `-w FILE --print`); without -o this view is what `record` does. The same text as
    /// `spliff replay FILE` of the trace, printed as it happens: a request once its head is
    /// complete, its response once the response head is (URL repeated).
    #[arg(long)]
    pub live: bool,
    /// How the live view looks.
    #[command(flatten)]
    pub view: TextViewArgs,
    /// Command to run under the recorder: attach first, start it, record until it exits.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The text view's looks, shared by `replay` and `record`'s live view (one renderer).
#[derive(Debug, Args)]
pub struct TextViewArgs {
    /// Text view: print decoded bodies (live, an exchange then shows once complete).
    #[arg(short = 'b', long)]
    pub bodies: bool,
    /// Text view: bodies as a hex dump, with the file type detected from magic bytes.
    #[arg(short = 'x', long)]
    pub hexdump: bool,
    /// Text view: one line per exchange (live, once it is complete).
    #[arg(short = 'c', long)]
    pub compact: bool,
    /// Text view: show latency (request's last byte to response's first byte; always shown
    /// on the response line, the flag is kept for the original spliff's users).
    #[arg(short = 'l', long)]
    pub latency: bool,
    /// Text view: show TLS handshakes with their duration.
    #[arg(short = 'H', long)]
    pub handshakes: bool,
    /// Text view: colour (`-C` alone is `never`).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

impl TextViewArgs {
    /// The renderer's options; `terminal`: whether the view goes to one
    /// (what `--color auto` follows).
    pub fn text_options(&self, terminal: bool) -> spliff_replay::text::TextOptions {
        spliff_replay::text::TextOptions {
            bodies: self.bodies,
            hexdump: self.hexdump,
            compact: self.compact,
            handshakes: self.handshakes,
            color: match self.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => terminal,
            },
        }
    }
}

/// What `-C` said: a file size, or no colour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DashC {
    /// `-C MB`: rotate at this many bytes.
    FileSize(u64),
    /// `-C` alone: no colour.
    NoColor,
}

fn parse_dash_c(text: &str) -> Result<DashC, String> {
    if text.is_empty() {
        return Ok(DashC::NoColor);
    }
    parse_megabytes(text).map(DashC::FileSize)
}

impl RecordArgs {
    /// Folds the original spliff's spellings into the options they stand for.
    pub fn resolve_aliases(&mut self) {
        match self.dash_c.take() {
            Some(DashC::FileSize(bytes)) => self.file_size = Some(bytes),
            Some(DashC::NoColor) => self.view.color = ColorChoice::Never,
            None => {}
        }
        let named: Vec<Library> = [
            (self.openssl, Library::Openssl),
            (self.gnutls, Library::Gnutls),
            (self.wolfssl, Library::Wolfssl),
            (self.nss, Library::Nss),
        ]
        .into_iter()
        .filter_map(|(on, lib)| on.then_some(lib))
        .collect();
        if !named.is_empty() {
            self.libs.retain(|l| *l != Library::All);
            self.libs.extend(named);
        }
    }
}

/// What becomes of `-- CMD` when recording fails (`--on-failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnFailure {
    /// Leave it running, unrecorded.
    Continue,
    /// Stop it (SIGSTOP) until you continue or end it.
    Stop,
    /// End it (SIGKILL).
    Kill,
}

/// `-C MB`: megabytes (10^6 bytes, decimals allowed) to bytes.
fn parse_megabytes(text: &str) -> Result<u64, String> {
    let mb: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of megabytes"))?;
    let bytes = mb * 1e6;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!(
            "`{text}` is not a usable file size (at least 0.000001, i.e. one byte)"
        ));
    }
    Ok(bytes as u64)
}

/// Hooks for received packets (`--ingress-hook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IngressHook {
    /// XDP on physical devices (native, else generic), TC on virtual ones.
    Auto,
    /// XDP, native where the driver has it, else generic.
    Xdp,
    /// XDP in generic (SKB) mode only.
    XdpGeneric,
    /// TC (tcx, else clsact) everywhere.
    Tc,
}

/// TLS libraries `record` can hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Library {
    /// OpenSSL 1.1 and 3.x (libssl.so*).
    Openssl,
    /// GnuTLS 3.x (libgnutls.so*): wget, gnutls-cli, libcurl-gnutls (git).
    Gnutls,
    /// wolfSSL (libwolfssl.so*).
    Wolfssl,
    /// NSS over NSPR (libssl3.so, libnspr4.so): Firefox, Thunderbird.
    Nss,
    /// Every library above.
    All,
}

/// Output formats of `spliff replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplayFormat {
    /// HAR 1.2 (what browsers' developer tools import).
    Har,
    /// Human-readable exchanges (the default on a terminal).
    Text,
    /// pcapng with every connection as a synthetic TCP session that Wireshark dissects as HTTP.
    Pcapng,
    /// One line per block of the trace, in file order (what the recorder wrote).
    Records,
}

/// When to colour the text view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When standard output is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Arguments of `spliff replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Trace file written by `spliff record` (or any pcapng holding spliff records); several
    /// for the files of a rotated capture (`spliff replay trace.*.pcapng`), read as one
    /// trace, so connections that span files are rebuilt whole. A quoted pattern (`*`, `?`,
    /// `[...]`) is expanded in name order. `-` reads a trace from standard input
    /// (`spliff record -o - | spliff replay -`).
    #[arg(value_name = "TRACE", required = true, num_args = 1..)]
    pub traces: Vec<PathBuf>,
    /// Output file; `-` or absent for standard output. Its extension picks the format
    /// (`.har`, `.txt`, `.pcapng`) unless --format is given.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format; overrides the output file's extension.
    #[arg(long, value_enum)]
    pub format: Option<ReplayFormat>,
    /// How the text view looks.
    #[command(flatten)]
    pub view: TextViewArgs,
    /// Text view: no colour (as --color never).
    #[arg(short = 'C', long = "no-color")]
    pub no_color: bool,
    /// Only exchanges of this process id (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Only exchanges of processes with this comm (repeatable).
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<String>,
    /// Only exchanges with this host or its subdomains (repeatable).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only exchanges whose URL contains this text or matches it as a regex (repeatable).
    #[arg(long = "url", value_name = "PATTERN")]
    pub urls: Vec<String>,
    /// Largest decoded body kept, in bytes (protects against decompression bombs).
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_body: u64,
}
