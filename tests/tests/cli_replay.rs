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
