//! Where `spliff record`'s start-up goes: with `SPLIFF_STARTUP_TIMES=1` in the environment,
//! one line on standard error with the milliseconds each phase took, from the recorder's
//! start to CMD's spawn and beyond. Measuring it is how the start-up was made quick
//! (docs/BENCHMARKS.md); the variable keeps the line out of everyone else's output. It also
//! makes the recorder say how long each process it held at exec (`held_processes.rs`) stayed
//! stopped.

use std::time::Instant;

/// The environment variable that turns the line on.
pub const VARIABLE: &str = "SPLIFF_STARTUP_TIMES";

/// Whether the variable asks for times (set to something other than `0`).
pub fn enabled() -> bool {
    std::env::var_os(VARIABLE).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Phases so far, each with when it ended.
#[derive(Debug)]
pub struct StartupTimes {
    start: Instant,
    last: Instant,
    phases: Option<Vec<(&'static str, u128)>>,
}

impl StartupTimes {
    /// Starts the clock; records only when the variable is set to something other than `0`.
    pub fn from_env() -> Self {
        let on = enabled();
        let now = Instant::now();
        Self {
            start: now,
            last: now,
            phases: on.then(Vec::new),
        }
    }

    /// Ends the phase called `name` now.
    pub fn phase(&mut self, name: &'static str) {
        if let Some(phases) = &mut self.phases {
            let now = Instant::now();
            phases.push((name, now.duration_since(self.last).as_micros()));
            self.last = now;
        }
    }

    /// Prints the line (once).
    pub fn report(&mut self) {
        let Some(phases) = self.phases.take() else {
            return;
        };
        let parts: Vec<String> = phases
            .iter()
            .map(|(name, us)| format!("{name} {:.1}", *us as f64 / 1000.0))
            .collect();
        eprintln!(
            "spliff: start-up (ms): {}; total {:.1}",
            parts.join(", "),
            self.last.duration_since(self.start).as_micros() as f64 / 1000.0
        );
    }
}
