//! `spliff replay` as a user runs it: exit codes, messages naming file and offset, output files.

use spliff_tests::spliff::spliff;
use spliff_tests::tools::TempDir;

fn fixture(name: &str) -> String {
    format!("{}/../fixtures/traces/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn records_view_lists_every_record_of_the_sample() {
    let out = spliff(&["replay", &fixture("sample.pcapng"), "--format", "records"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    for needle in [
        "capture-info id=07070707070707070707070707070707",
        "process pid=4242 ppid=1 uid=1000 comm=curl exe=/usr/bin/curl",
        "connection conn=1 pid=4242 fd=5",
        "local=[fd00::1]:40001 remote=[fd00::2]:8443",
        "tls-data conn=1 pid=4242 tid=4242 Egress offset=0 len=48",
        "tls-data conn=2 pid=4242 tid=4242 Egress offset=131072 len=18928",
        "loss conn=2 pid=4242 Some(Ingress) cause=RingBufferFull offset=100 length=4096",
        "packet if=1",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn a_cut_trace_lists_what_precedes_the_cut_and_warns_with_the_offset() {
    let dir = TempDir::new("cli-cut");
    let bytes = std::fs::read(fixture("sample.pcapng")).expect("fixture");
    let cut = dir.path().join("cut.pcapng");
    std::fs::write(&cut, &bytes[..3000]).expect("write");
    let out = spliff(&[
        "replay",
        cut.to_str().expect("utf-8"),
        "--format",
        "records",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning"), "{stderr}");
    assert!(stderr.contains("cut.pcapng"), "{stderr}");
    assert!(
        stderr.contains("custom block at byte offset 1512"),
        "{stderr}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("loss conn=2"),
        "records before the cut are listed:\n{text}"
    );
}

#[test]
fn a_file_that_is_not_a_trace_fails_with_a_clear_error() {
    let out = spliff(&["replay", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: /etc/hostname: file at byte offset 0: not a pcapng file"),
        "{stderr}"
    );

    let out = spliff(&["replay", "/nonexistent/trace.pcapng"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open trace /nonexistent/trace.pcapng"),
        "{stderr}"
    );
}

#[test]
fn output_goes_to_the_named_file() {
    let dir = TempDir::new("cli-out");
    let out_path = dir.path().join("records.txt");
    let out = spliff(&[
        "replay",
        &fixture("sample.pcapng"),
        "--format",
        "records",
        "-o",
        out_path.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&out_path).expect("output written");
    assert!(text.contains("capture-info"));
}

fn har_entries(har: &[u8]) -> usize {
    let v: serde_json::Value = serde_json::from_slice(har).expect("HAR is JSON");
    v["log"]["entries"].as_array().expect("entries").len()
}

#[test]
fn several_traces_replay_as_one_and_a_quoted_pattern_expands_in_name_order() {
    let dir = TempDir::new("cli-many");
    let a = dir.path().join("x.000001.pcapng");
    let b = dir.path().join("x.000002.pcapng");
    std::fs::copy(fixture("http1-keepalive.pcapng"), &a).expect("copy");
    std::fs::copy(fixture("h2-multiplexed-ipv6.pcapng"), &b).expect("copy");
    let alone = |t: &std::path::Path| {
        let out = spliff(&["replay", t.to_str().expect("utf-8"), "--format", "har"]);
        assert!(out.status.success());
        har_entries(&out.stdout)
    };
    let (in_a, in_b) = (alone(&a), alone(&b));
    assert!(in_a > 0 && in_b > 0);

    let both = spliff(&[
        "replay",
        a.to_str().expect("utf-8"),
        b.to_str().expect("utf-8"),
        "--format",
        "har",
    ]);
    assert!(both.status.success() && both.stderr.is_empty());
    assert_eq!(har_entries(&both.stdout), in_a + in_b);

    let pattern = dir.path().join("x.*.pcapng");
    let globbed = spliff(&[
        "replay",
        pattern.to_str().expect("utf-8"),
        "--format",
        "har",
    ]);
    assert!(globbed.status.success());
    assert_eq!(
        globbed.stdout, both.stdout,
        "the pattern lists both, in order"
    );

    let records = spliff(&[
        "replay",
        pattern.to_str().expect("utf-8"),
        "--format",
        "records",
    ]);
    let text = String::from_utf8_lossy(&records.stdout);
    let files: Vec<&str> = text.lines().filter(|l| l.starts_with("file ")).collect();
    assert_eq!(
        files,
        [
            format!("file {}", a.display()),
            format!("file {}", b.display())
        ]
    );

    let none = spliff(&[
        "replay",
        dir.path().join("y.*.pcapng").to_str().expect("utf-8"),
    ]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no trace file matches"));
}

#[test]
fn a_damaged_file_among_several_is_named_in_the_warning() {
    let dir = TempDir::new("cli-many-cut");
    let good = dir.path().join("good.pcapng");
    let cut = dir.path().join("cut.pcapng");
    std::fs::copy(fixture("http1-keepalive.pcapng"), &good).expect("copy");
    let bytes = std::fs::read(fixture("sample.pcapng")).expect("fixture");
    std::fs::write(&cut, &bytes[..3000]).expect("write");
    let out = spliff(&[
        "replay",
        good.to_str().expect("utf-8"),
        cut.to_str().expect("utf-8"),
        "--format",
        "har",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "warning: {}: custom block at byte offset 1512",
            cut.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("good.pcapng"), "{stderr}");
}
