//! Running real external tools (tshark, capinfos, editcap, mergecap) from tests.

use std::path::Path;
use std::process::Command;

/// Output of a tool run that succeeded.
#[derive(Debug)]
pub struct ToolOutput {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `tool` with `args`; panics with the tool's stderr when it cannot start or fails, since
/// the test command installs these tools and a missing one is a broken test environment.
pub fn run(tool: &str, args: &[&str]) -> ToolOutput {
    let out = Command::new(tool)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} (install it: apt-get install tshark): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed with {}:\n{stderr}\n{stdout}",
        out.status
    );
    ToolOutput { stdout, stderr }
}

/// A temporary directory removed on drop, unless the test failed and `SPLIFF_KEEP_FAILED` is
/// set: then it stays, and its path is printed, so that the trace of a flaky failure can be
/// looked at.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("spliff-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("SPLIFF_KEEP_FAILED").is_some() {
            eprintln!("kept the failed test's directory: {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (SIGKILL) and reaped on drop if it still runs, so that a test that
/// fails midway leaves no recorder behind: an orphaned recorder keeps its uprobes and slows
/// every later test's attach. Derefs to the [`std::process::Child`].
#[derive(Debug)]
pub struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    /// Guards `child`.
    pub fn new(child: std::process::Child) -> Self {
        KillOnDrop(Some(child))
    }

    /// The child, no longer killed on drop (for `wait_with_output`).
    pub fn into_inner(mut self) -> std::process::Child {
        self.0
            .take()
            .expect("the child is present until into_inner")
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        self.0
            .as_ref()
            .expect("the child is present until into_inner")
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0
            .as_mut()
            .expect("the child is present until into_inner")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut()
            && let Ok(None) = child.try_wait()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
