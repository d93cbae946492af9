//! The recording loop: kernel events into the trace, turn by turn, until `-- CMD` exits or a
//! signal arrives; then a bounded drain of what the kernel produced before the stop.

use std::{
    ops::ControlFlow,
    process::ExitStatus,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use spliff_recorder::bpf::Event;

use super::{
    host::{boottime_ns, stop_signal},
    recorded_command::RecordedCommand,
    rescans::{self, Rescans, Targets},
    rotation,
    session::Session,
};

/// Flush the trace at least this often, so a SIGKILL loses little.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// With a live view, the trace is flushed this often: what the view can show waits for it.
const VIEW_FLUSH_EVERY: Duration = Duration::from_millis(20);
/// How long one wait for kernel events may block. TLS events do not wake
/// the recorder individually (the kernel wakes it early when the ring fills
/// past 1 MiB), so this is also the usual delivery latency.
const POLL: Duration = Duration::from_millis(20);
/// The final drain's bound: reading the ring runs at hundreds of thousands of records a
/// second, so this takes in whatever was produced before the stop many times over.
const DRAIN_AT_MOST: Duration = Duration::from_millis(500);
/// How often processes are looked for in /proc, to end the connections of those gone
/// without `SSL_free`.
const GONE_SWEEP_EVERY: Duration = Duration::from_secs(10);

/// What the loop leaves for the end of the capture.
pub struct Ended {
    /// How `-- CMD` ended; `None` without one or when a signal stopped the recording.
    pub child_status: Option<ExitStatus>,
    /// Kernel records read.
    pub kernel_events: u64,
}

/// The loop's state between turns.
struct Turns {
    last_flush: Instant,
    last_view_flush: Instant,
    last_gone_sweep: Instant,
    rescans: Rescans,
    kernel_events: u64,
    /// The signal was passed on to `-- CMD`.
    forwarded: bool,
    /// The packet ring had more than one turn takes: no sleep before the next.
    packet_backlog: bool,
}

impl Session {
    /// Records until `-- CMD` exits (then `command` is `None`) or a signal arrives, and
    /// drains what the kernel produced until then.
    pub fn record(&mut self, command: &mut Option<RecordedCommand>) -> anyhow::Result<Ended> {
        let now = Instant::now();
        let mut turns = Turns {
            last_flush: now,
            last_view_flush: now,
            last_gone_sweep: now,
            rescans: Rescans::default(),
            kernel_events: 0,
            forwarded: false,
            packet_backlog: false,
        };
        let child_status = loop {
            self.turn(&mut turns)?;
            if let ControlFlow::Break(status) = stop_due(&mut turns.forwarded, command)? {
                break status;
            }
        };
        self.drain(&mut turns)?;
        Ok(Ended {
            child_status,
            kernel_events: turns.kernel_events,
        })
    }

    /// One turn: kernel events, packets, rotation, held processes, rescans and flushes.
    fn turn(&mut self, turns: &mut Turns) -> anyhow::Result<()> {
        let mut write_error = None;
        let wait = if turns.packet_backlog {
            Duration::ZERO
        } else {
            POLL
        };
        let (handed, execs) = self.read_events(wait, true, &mut write_error)?;
        turns.kernel_events += handed as u64;
        // After the TLS events of this turn: their sockets comment the
        // packets written now.
        if let Some(network) = &mut self.network {
            turns.packet_backlog =
                network.turn(&mut self.pipeline, &mut self.converter, boottime_ns())?;
        }
        // Also when no event came: -G rotates on time.
        rotation::rotate_if_due(
            &mut self.rotation,
            &mut self.converter,
            &self.header,
            &mut write_error,
        );
        // Attach to stopped processes now (not through the pending queue,
        // which may be full), then let them run.
        for pid in self.stopped.pids() {
            rescans::attach_process(pid, &mut self.targets());
        }
        self.stopped.continue_all();
        self.hooks.detach_some(&mut self.pipeline, 2);
        if let Some(error) = write_error.take() {
            return Err(error.context("cannot write the trace"));
        }
        turns.rescans.queue(execs);
        turns.rescans.run(&mut self.targets());
        // The live view reads what reached the file: it is as late as the last flush.
        if self.viewer.is_some() && turns.last_view_flush.elapsed() >= VIEW_FLUSH_EVERY {
            self.flush()?;
            turns.last_view_flush = Instant::now();
        }
        // Found meanwhile (a few files a capture at most): for the end report.
        let refused = self.discovery.refused.values();
        self.unrecorded
            .note_refused(refused.map(|(p, w)| (p.as_path(), w)));
        if turns.last_flush.elapsed() >= FLUSH_EVERY {
            self.housekeeping(turns)?;
        }
        Ok(())
    }

    /// Hands the kernel's events to the converter, waiting at most `wait` for the first; a
    /// write error ends the conversion (not the reading) and is left in `write_error`.
    /// Returns the number of records read and the processes that exec'd. With
    /// `hold_unsearched`, a large program not searched yet is held until attached (see
    /// held_processes.rs).
    fn read_events(
        &mut self,
        wait: Duration,
        hold_unsearched: bool,
        write_error: &mut Option<anyhow::Error>,
    ) -> anyhow::Result<(usize, Vec<u32>)> {
        let mut execs = Vec::new();
        let handed = self.pipeline.read_events(wait, |event| {
            if let Ok(Event::ProcessExec(exec)) = &event
                && exec.stopped
            {
                // Before anything else: even a write error must not leave
                // it stopped.
                self.stopped.push(exec);
            } else if let Ok(Event::ProcessExec(exec)) = &event
                && hold_unsearched
            {
                self.stopped.hold_if_unsearched(exec, &self.discovery);
            }
            if write_error.is_some() {
                return;
            }
            match event {
                Ok(event) => {
                    self.unrecorded.observe(&event);
                    match self.converter.event(event) {
                        Ok(Some(pid)) => execs.push(pid),
                        Ok(None) => {}
                        Err(error) => *write_error = Some(error.into()),
                    }
                }
                Err(_) => self.converter.stats.invalid_events += 1,
            }
            rotation::rotate_if_due(
                &mut self.rotation,
                &mut self.converter,
                &self.header,
                write_error,
            );
        })?;
        Ok((handed, execs))
    }

    /// Every [`FLUSH_EVERY`]: ended connections released, the trace flushed, hooks of gone
    /// processes swept, the status line updated.
    fn housekeeping(&mut self, turns: &mut Turns) -> anyhow::Result<()> {
        if turns.last_gone_sweep.elapsed() >= GONE_SWEEP_EVERY {
            self.converter.release_gone_processes(boottime_ns());
            turns.last_gone_sweep = Instant::now();
        }
        // After the turn's packets were counted: what is released has them all.
        self.converter
            .release_ended(boottime_ns())
            .context("cannot write the trace")?;
        self.flush()?;
        turns.last_flush = Instant::now();
        self.hooks.sweep();
        self.stopped.check_watchdog();
        if let Some(bar) = &self.status {
            let s = self.converter.stats;
            let lost = self.pipeline.kernel_loss().map(|l| l.events).unwrap_or(0);
            bar.set_message(format!(
                "{} connections, {} B out, {} B in, {} records, {} lost events, {} loss records",
                s.connections, s.bytes_egress, s.bytes_ingress, s.records, lost, s.loss_records
            ));
        }
        Ok(())
    }

    /// After the stop: everything the kernel produced before it, then held processes go on.
    fn drain(&mut self, turns: &mut Turns) -> anyhow::Result<()> {
        if self.comm_per_process {
            // No more stops from here on, so the drain below sees every process
            // the kernel stopped and the guard continues it.
            if let Err(error) = self.pipeline.clear_comm_filter() {
                eprintln!("spliff: warning: {error:#}");
            }
        }
        // Bounded in time: sock_ops reports every TCP socket of the host, so on a busy host
        // the ring never falls quiet, and what arrives after the stop does not belong to the
        // capture anyway.
        let drain_until = Instant::now() + DRAIN_AT_MOST;
        loop {
            let mut write_error = None;
            let (handed, _) =
                self.read_events(Duration::from_millis(20), false, &mut write_error)?;
            turns.kernel_events += handed as u64;
            if let Some(error) = write_error {
                return Err(error.context("cannot write the trace"));
            }
            if handed == 0 || Instant::now() >= drain_until {
                break;
            }
        }
        self.stopped.continue_all();
        if let Some(bar) = &self.status {
            bar.finish_and_clear();
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.converter
            .writer()
            .flush()
            .context("cannot write the trace")
    }

    fn targets(&mut self) -> Targets<'_> {
        Targets {
            discovery: &mut self.discovery,
            hooks: &mut self.hooks,
            pipeline: &mut self.pipeline,
            converter: &mut self.converter,
        }
    }
}

/// Whether the loop ends, and how `-- CMD` did. With a child, the signal is passed on once (a
/// Ctrl-C already reached it through the process group; a `kill` of the recorder did not) and
/// recording goes on until it exits, so its last bytes are in the trace.
fn stop_due(
    forwarded: &mut bool,
    command: &mut Option<RecordedCommand>,
) -> anyhow::Result<ControlFlow<Option<ExitStatus>>> {
    let signal = stop_signal();
    if signal != 0 {
        match command {
            None => return Ok(ControlFlow::Break(None)),
            Some(c) if !*forwarded => {
                *forwarded = true;
                if let Ok(pid) = i32::try_from(c.child().id()) {
                    // SAFETY: kill(2) on our own child's pid; no memory.
                    unsafe { libc::kill(pid, signal) };
                }
            }
            Some(_) => {}
        }
    }
    if let Some(c) = command
        && let Some(exit) = c
            .child()
            .try_wait()
            .context("cannot wait for the command")?
    {
        *command = None;
        return Ok(ControlFlow::Break(Some(exit)));
    }
    Ok(ControlFlow::Continue(()))
}
