//! `spliff`: record decrypted TLS traffic with eBPF (`record`, Linux) and rebuild it offline
//! (`replay`, any OS). This file only dispatches and reports errors; the work lives in the
//! command modules and the library crates.

mod cli;
mod replay_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Replay(args) => replay_cmd::run(&args),
        cli::Command::Record(mut args) => {
            args.resolve_aliases();
            record(&args)
        }
        cli::Command::Extcap(args) => extcap(&args),
        cli::Command::StopWatchdog(args) => stop_watchdog(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`spliff replay t.pcapng | head`) is the reader's choice, not a
            // failure.
            if err
                .chain()
                .filter_map(|c| c.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("spliff: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn record(_args: &cli::RecordArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "`spliff record` needs Linux: it attaches eBPF programs to the kernel, and this build \
         runs on {}. Record on a Linux host, then run `spliff replay TRACE` here.",
        std::env::consts::OS
    )
}

#[cfg(target_os = "linux")]
fn record(args: &cli::RecordArgs) -> anyhow::Result<ExitCode> {
    record_cmd::run(args)
}

#[cfg(not(target_os = "linux"))]
fn extcap(_args: &cli::ExtcapArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the spliff extcap interface records, which needs Linux")
}

#[cfg(target_os = "linux")]
fn extcap(args: &cli::ExtcapArgs) -> anyhow::Result<ExitCode> {
    extcap::run(args)
}

#[cfg(not(target_os = "linux"))]
fn stop_watchdog(_args: &cli::StopWatchdogArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the stop watchdog belongs to `spliff record`, which needs Linux")
}

#[cfg(target_os = "linux")]
fn stop_watchdog(args: &cli::StopWatchdogArgs) -> anyhow::Result<ExitCode> {
    record_cmd::stop_watchdog::run(args)
}

#[cfg(target_os = "linux")]
mod record_cmd;

#[cfg(target_os = "linux")]
mod extcap;
