//! `spliff replay`: reads a trace and writes the chosen view of it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use spliff_formats::TraceFile;

use crate::cli::{ReplayArgs, ReplayFormat};

pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let trace = TraceFile::open(&args.trace)
        .with_context(|| format!("cannot open trace {}", args.trace.display()))?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) if p.as_os_str() != "-" => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        _ => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let summary = match args.format {
        ReplayFormat::Records => spliff_replay::text::write_records(trace.bytes(), &mut out)
            .context("writing the output failed")?,
    };
    out.flush().context("writing the output failed")?;
    // A torn tail after good records is a warning: everything before it was read. A file with
    // nothing readable at all is a failure.
    let nothing_read = summary.records == 0 && summary.packets == 0;
    let mut failed = false;
    for e in &summary.errors {
        let level = if e.is_fatal() && nothing_read {
            failed = true;
            "error"
        } else {
            "warning"
        };
        eprintln!("spliff: {level}: {}: {e}", args.trace.display());
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
