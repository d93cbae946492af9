//! Checking HAR output with Debian's node-har-validator (a library; driven by
//! `tests/support/validate-har.js`).

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

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

/// The bytes of a HAR `postData` or `content` object; `None` when it has no `text`. Binary
/// bodies are base64 in the HAR (`encoding`, or `_encoding` in postData).
pub fn body_bytes(v: &Value) -> Option<Vec<u8>> {
    let text = v["text"].as_str()?;
    if v["encoding"] == "base64" || v["_encoding"] == "base64" {
        Some(BASE64.decode(text).expect("base64 body in the HAR"))
    } else {
        Some(text.as_bytes().to_vec())
    }
}
