//! `spliff replay` output for every committed fixture, byte for byte against fixtures/expected/.
//! Replay is a pure function, so goldens need no scrubbing: a diff is a real change. Regenerate
//! after an intended change with `SPLIFF_BLESS=1 cargo test -p spliff-tests --test goldens`.

use std::path::{Path, PathBuf};

use spliff_tests::har::assert_valid_har;
use spliff_tests::spliff::spliff;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// (trace, flags, golden): the golden's name is the trace's followed by its flags.
const CASES: &[(&str, &[&str], &str)] = &[
    (
        "sample.pcapng",
        &["--format", "records"],
        "sample.records.txt",
    ),
    (
        "http1-keepalive.pcapng",
        &["--format", "har"],
        "http1-keepalive.har",
    ),
    (
        "http1-keepalive.pcapng",
        &["--format", "text", "-b"],
        "http1-keepalive.-b.txt",
    ),
    (
        "http1-keepalive.pcapng",
        &["--format", "text", "-c"],
        "http1-keepalive.-c.txt",
    ),
    (
        "http1-keepalive.pcapng",
        &["--format", "text", "-x"],
        "http1-keepalive.-x.txt",
    ),
    ("http1-loss.pcapng", &["--format", "har"], "http1-loss.har"),
    ("http1-loss.pcapng", &["--format", "text"], "http1-loss.txt"),
    (
        "recorded-curl-h2-h1.pcapng",
        &["--format", "har"],
        "recorded-curl-h2-h1.har",
    ),
    (
        "recorded-curl-h2-h1.pcapng",
        &["--format", "text", "-c"],
        "recorded-curl-h2-h1.-c.txt",
    ),
    (
        "recorded-urllib-curl-exchanges.pcapng",
        &["--format", "har"],
        "recorded-urllib-curl-exchanges.har",
    ),
    (
        "recorded-urllib-curl-exchanges.pcapng",
        &["--format", "text", "-c"],
        "recorded-urllib-curl-exchanges.-c.txt",
    ),
    (
        "recorded-urllib-curl-exchanges.pcapng",
        &["--format", "text"],
        "recorded-urllib-curl-exchanges.txt",
    ),
    (
        "h2-multiplexed-ipv6.pcapng",
        &["--format", "har"],
        "h2-multiplexed-ipv6.har",
    ),
    (
        "h2-multiplexed-ipv6.pcapng",
        &["--format", "text", "-c"],
        "h2-multiplexed-ipv6.-c.txt",
    ),
];

#[test]
fn replay_output_matches_the_goldens() {
    let bless = std::env::var_os("SPLIFF_BLESS").is_some_and(|v| v == "1");
    let mut mismatches = Vec::new();
    for (trace, flags, golden) in CASES {
        let trace_path = fixtures().join("traces").join(trace);
        let mut args = vec![
            "replay",
            trace_path.to_str().expect("utf-8"),
            "--color",
            "never",
        ];
        args.extend_from_slice(flags);
        let out = spliff(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let golden_path = fixtures().join("expected").join(golden);
        if bless {
            std::fs::write(&golden_path, &out.stdout).expect("bless");
        }
        let want = std::fs::read(&golden_path).unwrap_or_else(|e| {
            panic!("{}: {e} (bless with SPLIFF_BLESS=1)", golden_path.display())
        });
        if want != out.stdout {
            mismatches.push(golden.to_string());
        }
        if golden.ends_with(".har") {
            assert_valid_har(&golden_path);
        }
    }
    assert!(
        mismatches.is_empty(),
        "output differs from goldens: {mismatches:?}"
    );
}
