//! Processes stopped until their probes are attached, and the guarantee
//! that every one is continued, however the recorder ends.
//!
//! Two kinds of stop share one ledger (`spliff_stopped`, see
//! `bpf/stops.rs`) and one watchdog (`stop_watchdog.rs`):
//! - the kernel stops a process exec'ing into a selected comm (`--comm`
//!   per process) before its first instruction;
//! - the recorder stops a process that exec'd a large program not searched
//!   yet for stripped BoringSSL (Chromium opens its first TLS connection
//!   well under a second after exec, about the time the search of its
//!   240 MB of code takes; without the hold its first connections would be
//!   missed or joined mid-stream). Only the first exec of each program in a
//!   capture is held: later ones find the answer cached. With the search's
//!   result on disk from an earlier capture (`boringssl::DiskCache`) the
//!   hold lasts for checking it and attaching, not for a search.
//!
//! Dropping [`HeldProcesses`] continues them all, so no return path (an
//! error, a panic unwinding) leaves a process stopped; for a SIGKILL of the
//! recorder, the watchdog continues whatever the ledger still holds. The
//! recorder holds nothing without a live watchdog.

use std::{path::Path, time::Instant};

use spliff_recorder::bpf::{BpfPipeline, ProcessExec, Stop, StopMaps};

use super::{libraries::Discovery, startup_times, stop_watchdog};

/// Processes held at exec in one loop turn at most (an exec storm of large
/// programs is not all stopped).
const MAX_HOLDS_PER_TURN: usize = 64;

/// Processes stopped at exec that still wait for `SIGCONT`.
#[derive(Debug)]
pub struct HeldProcesses {
    stops: Vec<Stop>,
    /// The ledger: an entry goes once its process is continued.
    maps: Option<StopMaps>,
    // Dropped after `stops` were continued (fields drop in order): its
    // sweep then finds nothing left.
    watchdog: Option<stop_watchdog::Watchdog>,
    /// The watchdog could not start or died: hold nothing more.
    unguarded: bool,
    /// Holds this loop turn (see [`MAX_HOLDS_PER_TURN`]).
    holds_this_turn: usize,
    /// With `SPLIFF_STARTUP_TIMES` set: when each of the recorder's own
    /// holds began, to say how long it lasted (how the search and its
    /// cache are measured: docs/BENCHMARKS.md).
    timed: Option<Vec<(u32, String, Instant)>>,
}

impl HeldProcesses {
    /// With the ledger; with a watchdog already running when the kernel
    /// may stop processes (`kernel_stops`), else one starts at the first
    /// hold.
    pub fn new(pipeline: &BpfPipeline, kernel_stops: bool) -> anyhow::Result<Self> {
        let maps = pipeline.stop_maps()?;
        let watchdog = if kernel_stops {
            Some(stop_watchdog::Watchdog::spawn(&maps)?)
        } else {
            None
        };
        Ok(Self {
            stops: Vec::new(),
            maps: Some(maps),
            watchdog,
            unguarded: false,
            holds_this_turn: 0,
            timed: startup_times::enabled().then(Vec::new),
        })
    }

    /// A process the kernel stopped at exec.
    pub fn push(&mut self, exec: &ProcessExec) {
        self.stops.push(stop_of(exec));
    }

    /// Stops the process of `exec` if the program it runs is still to be
    /// searched (see the module's comment); it is continued with the
    /// others once attached.
    pub fn hold_if_unsearched(&mut self, exec: &ProcessExec, discovery: &Discovery) {
        if self.holds_this_turn >= MAX_HOLDS_PER_TURN
            || !discovery.is_unsearched(Path::new(&format!("/proc/{}/exe", exec.pid)))
        {
            return;
        }
        let Ok(pid) = i32::try_from(exec.pid) else {
            return;
        };
        if pid <= 0 || !self.guard() || self.watchdog.as_ref().map(|w| w.pid()) == Some(exec.pid) {
            return;
        }
        let stop = stop_of(exec);
        // In the ledger before the signal: a recorder dying in between
        // leaves the watchdog a SIGCONT to send, never a stopped process
        // it does not know of.
        let Some(maps) = &mut self.maps else {
            return;
        };
        if let Err(error) = maps.record(stop) {
            eprintln!("spliff: warning: not holding pid {pid} until attached: {error}");
            return;
        }
        self.stops.push(stop);
        self.holds_this_turn += 1;
        if let Some(timed) = &mut self.timed {
            timed.push((exec.pid, exec.comm.clone(), Instant::now()));
        }
        // SAFETY: kill(2) has no memory arguments.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
    }

    /// Whether a watchdog runs (started now if need be).
    fn guard(&mut self) -> bool {
        if self.unguarded {
            return false;
        }
        if self.watchdog.is_some() {
            return true;
        }
        let Some(maps) = &self.maps else {
            return false;
        };
        match stop_watchdog::Watchdog::spawn(maps) {
            Ok(watchdog) => self.watchdog = Some(watchdog),
            Err(error) => {
                self.unguarded = true;
                eprintln!(
                    "spliff: warning: {error:#}; large programs are not held at exec until \
                     searched (stripped BoringSSL's first connections may be missed)"
                );
            }
        }
        self.watchdog.is_some()
    }

    /// The held processes, to attach before they continue.
    pub fn pids(&self) -> Vec<u32> {
        self.stops.iter().map(|stop| stop.pid).collect()
    }

    /// Continues every held process.
    pub fn continue_all(&mut self) {
        self.holds_this_turn = 0;
        self.report_holds();
        for stop in self.stops.drain(..) {
            if let Ok(pid) = i32::try_from(stop.pid)
                && pid > 0
            {
                // SAFETY: kill(2) has no memory arguments. The pid is still
                // the stopped process: a stopped process cannot exit and
                // free its pid, except by SIGKILL.
                unsafe { libc::kill(pid, libc::SIGCONT) };
            }
            // Only after SIGCONT: until then the watchdog must still find it.
            if let Some(maps) = &mut self.maps
                && let Err(error) = maps.forget(stop)
            {
                eprintln!("spliff: warning: {error:#}");
            }
        }
    }

    /// How long each of the recorder's holds lasted (to be continued now).
    fn report_holds(&mut self) {
        let Some(timed) = &mut self.timed else {
            return;
        };
        for (pid, comm, since) in timed.drain(..) {
            eprintln!(
                "spliff: held pid {pid} ({comm}) at exec for {:.1} ms",
                since.elapsed().as_secs_f64() * 1000.0
            );
        }
    }

    /// With the watchdog gone (someone killed it), a death of the recorder
    /// would leave stopped processes behind: hold nothing more (first TLS
    /// calls may be missed) rather than risk that.
    pub fn check_watchdog(&mut self) {
        let Some(watchdog) = &mut self.watchdog else {
            return;
        };
        if !watchdog.died() {
            return;
        }
        self.watchdog = None;
        self.unguarded = true;
        if let Some(maps) = &mut self.maps
            && maps.set_armed(false).is_ok()
        {
            eprintln!(
                "spliff: warning: the stop watchdog is gone; processes are no longer held at \
                 exec until attached (their first TLS calls may be missed)"
            );
        }
    }
}

impl Drop for HeldProcesses {
    fn drop(&mut self) {
        self.continue_all();
    }
}

/// The ledger's key of the stop at `exec`.
fn stop_of(exec: &ProcessExec) -> Stop {
    Stop {
        pid: exec.pid,
        ts_boot_ns: exec.ts_boot_ns,
    }
}
