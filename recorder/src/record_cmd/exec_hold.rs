//! Holding a process that just exec'd a large program not searched yet for
//! stripped BoringSSL, until the search is done and its probes attached.
//!
//! Chromium opens its first TLS connection well under a second after its
//! exec, while searching its 240 MB of code takes about as long: without
//! the hold, the browser's first connections would be missed, or joined
//! mid-stream. The process is stopped (SIGSTOP) as soon as its exec event
//! is read and continued (SIGCONT) when the guard drops, whatever happened
//! in between; only the first exec of each program in a capture is held
//! (later ones find the answer cached). A recorder killed with SIGKILL
//! during the search leaves the process stopped (`kill -CONT PID` resumes
//! it); the search is bounded (one pass over the file).

use std::path::Path;

use super::libraries::Discovery;

/// A stopped process, continued when dropped.
#[derive(Debug)]
pub struct Held(i32);

impl Held {
    /// Stops `pid` if the program it runs is still to be looked at.
    pub fn if_unsearched(pid: u32, discovery: &Discovery) -> Option<Self> {
        let exe = format!("/proc/{pid}/exe");
        let pid = i32::try_from(pid).ok().filter(|&pid| pid > 0)?;
        if !discovery.is_unsearched(Path::new(&exe)) {
            return None;
        }
        // SAFETY: kill(2) has no memory arguments.
        let stopped = unsafe { libc::kill(pid, libc::SIGSTOP) } == 0;
        stopped.then_some(Self(pid))
    }

    /// The held process.
    pub fn pid(&self) -> u32 {
        self.0.unsigned_abs()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: kill(2) has no memory arguments. A stopped process cannot
        // exit and free its pid, except by SIGKILL.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}
