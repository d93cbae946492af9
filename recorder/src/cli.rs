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
}

/// Arguments of `spliff record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Trace file to write (created with mode 0600: it holds secrets).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        required_unless_present = "list_libs"
    )]
    pub output: Option<PathBuf>,
    /// Record only this process (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Record this process and all its descendants, including those born during the capture.
    #[arg(long, value_name = "PID")]
    pub ppid: Option<u32>,
    /// Record only processes with this comm (repeatable).
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<String>,
    /// TLS libraries to hook (repeatable).
    #[arg(long = "lib", value_enum, default_values_t = [Library::Openssl])]
    pub libs: Vec<Library>,
    /// Print which library files would be hooked, and why, then exit.
    #[arg(long)]
    pub list_libs: bool,
    /// Command to run under the recorder: attach first, start it, record until it exits.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// TLS libraries `record` can hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Library {
    /// OpenSSL 1.1 and 3.x (libssl).
    Openssl,
}

/// Output formats of `spliff replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplayFormat {
    /// One line per block of the trace, in file order (what the recorder wrote).
    Records,
}

/// Arguments of `spliff replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Trace file written by `spliff record` (or any pcapng holding spliff records).
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,
    /// Output file; `-` or absent for standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReplayFormat::Records)]
    pub format: ReplayFormat,
}
