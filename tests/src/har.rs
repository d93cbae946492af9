//! Checking HAR output with Debian's node-har-validator (a library; driven by
//! `tests/support/validate-har.js`).

use std::path::Path;
use std::process::Command;

/// Asserts that the HAR file at `path` passes har-validator; panics with its schema errors.
pub fn assert_valid_har(path: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/validate-har.js");
    let out = Command::new("node")
        .arg(&script)
        .arg(path)
        .env("NODE_PATH", "/usr/share/nodejs")
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (install nodejs and node-har-validator): {e}"));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "valid",
        "har-validator rejected {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
