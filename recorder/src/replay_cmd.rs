//! `spliff replay`: reads a trace (or the files of a rotated capture) and writes the chosen
//! view of it.

mod inputs;

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use spliff_formats::{ReadError, TraceFile};
use spliff_replay::ReplayOptions;
use spliff_replay::body::DecodeOptions;
use spliff_replay::filter::{Filter, UrlPattern};
use spliff_replay::har::HarSink;
use spliff_replay::pcapng::{PcapngOptions, PcapngSink};
use spliff_replay::pipeline::{BatchLimits, Progress, ReplaySummary, Sink, replay_traces_to};
use spliff_replay::text::TextSink;
use spliff_replay::trace_input::TraceError;

use crate::cli::{ReplayArgs, ReplayFormat};

/// The format asked for: `--format`, else the output file's extension, else text.
fn format(args: &ReplayArgs) -> anyhow::Result<ReplayFormat> {
    if let Some(f) = args.format {
        return Ok(f);
    }
    let Some(path) = args.output.as_deref().filter(|p| p.as_os_str() != "-") else {
        return Ok(ReplayFormat::Text);
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("har") => Ok(ReplayFormat::Har),
        Some("txt" | "text") => Ok(ReplayFormat::Text),
        Some("pcapng") => Ok(ReplayFormat::Pcapng),
        Some(other) => bail!(
            "cannot tell the output format from the extension .{other} of {}; name the file \
             .har, .txt or .pcapng, or give --format har|text|pcapng|records",
            path.display()
        ),
        None => bail!(
            "cannot tell the output format of {} (no extension); give --format har|text|pcapng|records",
            path.display()
        ),
    }
}

fn report<'e>(
    trace: &Path,
    errors: impl IntoIterator<Item = &'e ReadError>,
    nothing_read: bool,
) -> bool {
    // A torn tail after good records is a warning: everything before it was read. A file with
    // nothing readable at all is a failure.
    let mut failed = false;
    for e in errors {
        let level = if e.is_fatal() && nothing_read {
            failed = true;
            "error"
        } else {
            "warning"
        };
        eprintln!("spliff: {level}: {}: {e}", trace.display());
    }
    failed
}

/// [`report`] for errors met across several traces, each named by its file.
fn report_all(paths: &[PathBuf], errors: &[TraceError], nothing_read: bool) -> bool {
    let mut failed = false;
    for (i, path) in paths.iter().enumerate() {
        let mine = errors.iter().filter(|e| e.trace == i).map(|e| &e.error);
        failed |= report(path, mine, nothing_read);
    }
    failed
}

/// `--format records`: every file's blocks in turn, each file introduced by a line naming it
/// when there are several.
fn write_records(
    paths: &[PathBuf],
    traces: &[TraceFile],
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let mut failed = false;
    for (path, trace) in paths.iter().zip(traces) {
        if traces.len() > 1 {
            writeln!(out, "file {}", path.display()).context("writing the output failed")?;
        }
        let summary = spliff_replay::text::write_records(trace.bytes(), out)
            .context("writing the output failed")?;
        failed |= report(
            path,
            &summary.errors,
            summary.records == 0 && summary.packets == 0,
        );
    }
    Ok(failed)
}

/// Maps a trace file, or `-`: standard input, copied first into an unnamed temporary file
/// (replay maps its input; a pipe cannot be mapped, and the copy keeps the stream out of
/// anonymous memory however long it is).
fn open_trace(path: &Path) -> anyhow::Result<TraceFile> {
    if path.as_os_str() != "-" {
        return TraceFile::open(path)
            .with_context(|| format!("cannot open trace {}", path.display()));
    }
    let mut spool = tempfile::tempfile()
        .context("cannot create a temporary file for the trace on standard input; set TMPDIR")?;
    std::io::copy(&mut std::io::stdin().lock(), &mut spool)
        .context("cannot copy the trace from standard input to a temporary file")?;
    TraceFile::map(&spool).context("cannot map the trace read from standard input")
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let format = format(args)?;
    let paths = inputs::traces(&args.traces)?;
    let traces = paths
        .iter()
        .map(|p| open_trace(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bytes: Vec<&[u8]> = traces.iter().map(TraceFile::bytes).collect();
    let to_stdout = args.output.as_deref().is_none_or(|p| p.as_os_str() == "-");
    // Send: the replay writes from whichever pool thread merges. Large buffer: HAR and pcapng
    // outputs are as large as the trace.
    let mut out: Box<dyn Write + Send> = if to_stdout {
        Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout()))
    } else {
        let p = args.output.as_deref().unwrap_or(Path::new("-"));
        Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ))
    };

    if format == ReplayFormat::Records {
        let failed = write_records(&paths, &traces, &mut out)?;
        out.flush().context("writing the output failed")?;
        return Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }

    // A progress bar only where a person watches, and only for traces worth waiting for.
    let total: usize = bytes.iter().map(|b| b.len()).sum();
    let bar = (std::io::stderr().is_terminal() && total > 64 << 20).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} rebuilding connections {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |p: Progress| {
        if let Some(bar) = &bar {
            match p {
                Progress::Indexed { connections } => bar.set_length(connections),
                Progress::ConnectionDone => bar.inc(1),
            }
        }
    };
    let filter = Filter {
        pids: args.pids.clone(),
        comms: args.comms.clone(),
        hosts: args.hosts.clone(),
        urls: args.urls.iter().map(|u| UrlPattern::new(u)).collect(),
    };
    let decode = DecodeOptions {
        max_decoded_len: args.max_body,
    };
    let summary = match format {
        ReplayFormat::Har => run_sink(&bytes, &progress, &HarSink { filter, decode }, &mut out),
        ReplayFormat::Text => {
            let terminal = to_stdout && std::io::stdout().is_terminal();
            let mut options = args.view.text_options(terminal);
            options.color &= !args.no_color;
            run_sink(
                &bytes,
                &progress,
                &TextSink {
                    filter,
                    options,
                    decode,
                },
                &mut out,
            )
        }
        ReplayFormat::Pcapng => run_sink(
            &bytes,
            &progress,
            &PcapngSink::new(PcapngOptions::default()),
            &mut out,
        ),
        ReplayFormat::Records => Ok(ReplaySummary::default()),
    }
    .context("writing the output failed")?;
    out.flush().context("writing the output failed")?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let name = match paths.as_slice() {
        [one] => one.display().to_string(),
        many => format!("{} files", many.len()),
    };
    for note in &summary.unattributed_loss {
        eprintln!("spliff: warning: {name}: {note}");
    }
    let nothing_read = summary.connections == 0;
    let failed = report_all(&paths, &summary.errors, nothing_read);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Streams the replay of `traces`, read as one, through `sink`.
fn run_sink<S: Sink>(
    traces: &[&[u8]],
    progress: &(dyn Fn(Progress) + Sync),
    sink: &S,
    out: &mut (dyn Write + Send),
) -> std::io::Result<ReplaySummary> {
    replay_traces_to(
        traces,
        &ReplayOptions::default(),
        BatchLimits::default(),
        progress,
        sink,
        out,
    )
}
