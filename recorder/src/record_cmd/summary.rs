//! The end of a capture: the last records and the interface statistics with the summary
//! line, the lines the user is told, and the exit code.

use std::{
    io::Write as _,
    os::unix::process::ExitStatusExt as _,
    process::{ExitCode, ExitStatus},
};

use anyhow::Context as _;
use spliff_formats::InterfaceStats;
use spliff_recorder::bpf::KernelLoss;

use super::{convert::Stats, event_loop::Ended, host::boottime_ns, packets, session::Session};

/// Writes the end of the trace, closes it, tells the user what was recorded and returns the
/// exit code: `-- CMD`'s, else success.
pub fn finish(mut session: Session, ended: Ended) -> anyhow::Result<ExitCode> {
    let kernel_loss = session.pipeline.kernel_loss().unwrap_or_default();
    let end_ts = boottime_ns();
    let net_stats = match session.network.take() {
        Some(network) => {
            Some(network.finish(&mut session.pipeline, &mut session.converter, end_ts)?)
        }
        None => None,
    };
    let correlation = session
        .converter
        .finish_correlation(end_ts)
        .context("cannot write the trace")?;
    session
        .converter
        .kernel_drops(end_ts, kernel_loss.events, 0)
        .context("cannot write the trace")?;
    let stats = session.converter.stats;
    let summary = summary_line(&stats, &kernel_loss, net_stats.as_ref());
    let mut writer = session.converter.into_writer();
    let end_wall = session.wall + end_ts.saturating_sub(session.info_ts);
    writer
        .write_interface_stats(&InterfaceStats {
            interface_id: 0,
            ts_wall_ns: end_wall,
            start_wall_ns: Some(session.wall),
            end_wall_ns: Some(end_wall),
            received: Some(ended.kernel_events + kernel_loss.events),
            dropped: Some(kernel_loss.events),
            delivered: Some(stats.records),
            comment: Some(summary.clone()),
        })
        .context("cannot write the trace")?;
    let mut file = writer.finish().context("cannot write the trace")?;
    file.flush().context("cannot write the trace")?;
    file.sync_all().ok();
    let recorded = session.started.elapsed();
    // Closes the live view's pipe: it shows what is left and ends.
    drop(file);
    if let Some(viewer) = session.viewer.take() {
        viewer.finish()?;
    }
    let written_to = match &session.rotation {
        Some(rotation) => rotation.describe(),
        None => session.shown.clone(),
    };
    eprintln!(
        "spliff: recorded {:.1}s to {written_to}: {summary}",
        recorded.as_secs_f64(),
    );
    eprintln!("spliff: correlation: {}", correlation.summary());
    for line in session.unrecorded.report() {
        eprintln!("spliff: not recorded: {line}");
    }
    session.hooks.detach_all(&mut session.pipeline);
    Ok(exit_code(ended.child_status))
}

/// The summary: in the trace's interface statistics and on standard error.
fn summary_line(
    stats: &Stats,
    kernel_loss: &KernelLoss,
    net_stats: Option<&packets::NetStats>,
) -> String {
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
    match net_stats {
        Some(n) => format!(
            "{summary}; {} packets on {} interfaces ({} with a process comment, {} dropped: \
             packet ring full, {} invalid packet records)",
            n.packets, n.interfaces, n.commented, n.dropped, n.invalid
        ),
        None => summary,
    }
}

/// `-- CMD`'s exit code (128 + signal when a signal ended it); success without one.
fn exit_code(child_status: Option<ExitStatus>) -> ExitCode {
    match child_status {
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)),
            _ => ExitCode::FAILURE,
        },
        None => ExitCode::SUCCESS,
    }
}
