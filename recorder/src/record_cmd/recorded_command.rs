//! `-- CMD` while it is recorded, and what becomes of it when recording fails before it exits
//! (a full disk, a kernel error): it is never left behind without a word.

use std::process::Child;

/// What to do with `-- CMD` when recording fails while it runs (`--on-failure`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// Leave it running, unrecorded.
    Continue,
    /// Stop it (SIGSTOP): it waits for the user to continue or end it.
    Stop,
    /// End it (SIGKILL).
    Kill,
}

impl From<crate::cli::OnFailure> for OnFailure {
    fn from(value: crate::cli::OnFailure) -> Self {
        match value {
            crate::cli::OnFailure::Continue => Self::Continue,
            crate::cli::OnFailure::Stop => Self::Stop,
            crate::cli::OnFailure::Kill => Self::Kill,
        }
    }
}

/// The running command.
#[derive(Debug)]
pub struct RecordedCommand {
    child: Child,
    program: String,
}

impl RecordedCommand {
    /// Wraps a spawned `program`.
    pub fn new(child: Child, program: &str) -> Self {
        Self {
            child,
            program: program.to_owned(),
        }
    }

    /// The child process.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Applies `policy` to a command that is still running when recording failed, and says
    /// what it did in `error`'s outermost line, with what the user can do next.
    pub fn recording_failed(mut self, policy: OnFailure, error: anyhow::Error) -> anyhow::Error {
        let pid = self.child.id();
        let name = &self.program;
        if let Ok(Some(status)) = self.child.try_wait() {
            return error.context(format!(
                "recording failed; `{name}` (pid {pid}) had already exited ({status})"
            ));
        }
        let what = match policy {
            OnFailure::Continue => format!(
                "`{name}` (pid {pid}) is still running, unrecorded; end it with `kill {pid}` if \
                 it must not go on unrecorded (--on-failure stop|kill decides this in advance)"
            ),
            OnFailure::Stop => match signal(pid, libc::SIGSTOP) {
                Ok(()) => format!(
                    "`{name}` (pid {pid}) was stopped (SIGSTOP, --on-failure stop) and waits: \
                     `kill -CONT {pid}` lets it go on unrecorded, `kill {pid}` ends it"
                ),
                Err(e) => format!(
                    "`{name}` (pid {pid}) could not be stopped ({e}) and is still running, \
                     unrecorded"
                ),
            },
            OnFailure::Kill => match self.child.kill().and_then(|()| self.child.wait()) {
                Ok(_) => format!("`{name}` (pid {pid}) was ended (SIGKILL, --on-failure kill)"),
                Err(e) => format!(
                    "`{name}` (pid {pid}) could not be ended ({e}) and is still running, \
                     unrecorded"
                ),
            },
        };
        error.context(format!("recording failed; {what}"))
    }
}

fn signal(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill(2) on our own child, which cannot have been reaped (we hold its Child and
    // did not wait for it), so the pid is still its own.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn state(pid: u32) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(") ").unwrap().1.chars().next().unwrap()
    }

    #[test]
    fn each_policy_does_what_the_message_says() {
        for policy in [OnFailure::Continue, OnFailure::Stop, OnFailure::Kill] {
            let child = Command::new("sleep").arg("30").spawn().unwrap();
            let pid = child.id();
            let command = RecordedCommand::new(child, "sleep");
            let error = command.recording_failed(policy, anyhow::anyhow!("disk full"));
            let message = format!("{error:#}");
            assert!(message.contains(&format!("pid {pid}")), "{message}");
            assert!(message.ends_with("disk full"), "{message}");
            std::thread::sleep(std::time::Duration::from_millis(50));
            match policy {
                OnFailure::Continue => {
                    assert!(message.contains("still running"), "{message}");
                    assert_eq!(state(pid), 'S');
                }
                OnFailure::Stop => {
                    assert!(message.contains("was stopped"), "{message}");
                    assert_eq!(state(pid), 'T');
                }
                OnFailure::Kill => {
                    assert!(message.contains("was ended"), "{message}");
                    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
                }
            }
            // SAFETY: kill(2) on the test's own child; the zombie is reaped by init later.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}
