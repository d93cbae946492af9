//! Running the real `spliff` binary, built from this workspace.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Path of the `spliff` binary in this test run's target directory, built on first use with
/// the same profile as the tests (cargo only builds binaries for the tests of their own
/// package, and this crate is separate on purpose).
pub fn spliff_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test-binary> → target/<profile>/spliff
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test binary lives in target/<profile>/deps")
            .to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "spliff-recorder",
            "--bin",
            "spliff",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for the spliff binary");
        assert!(status.success(), "building the spliff binary failed");
        let bin = profile_dir.join("spliff");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// Runs `spliff` with `args` and returns its output whatever the exit status.
pub fn spliff(args: &[&str]) -> Output {
    Command::new(spliff_bin())
        .args(args)
        .output()
        .expect("run spliff")
}

/// `spliff replay TRACE -o HAR`, asserted to succeed; the HAR, parsed.
pub fn replay_to_har(trace: &std::path::Path, har: &std::path::Path) -> serde_json::Value {
    let out = spliff(&[
        "replay",
        trace.to_str().expect("utf-8 trace path"),
        "-o",
        har.to_str().expect("utf-8 HAR path"),
    ]);
    assert!(
        out.status.success(),
        "replay {}: {}",
        trace.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(har).expect("read the HAR");
    serde_json::from_slice(&bytes).expect("the HAR is JSON")
}
