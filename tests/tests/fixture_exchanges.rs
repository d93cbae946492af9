//! The committed recorded fixture `recorded-urllib-curl-exchanges` replays to exactly what its
//! servers logged (`.expected.json`, written by `tests/tests/record_replay_exchanges.rs` when
//! it recorded the trace). Needs no root: the recording is committed.

use std::path::Path;

use spliff_tests::exchange_log::{check_trace, from_json};
use spliff_tests::tools::TempDir;

#[test]
fn recorded_fixture_replays_to_what_the_servers_exchanged() {
    let traces = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/traces");
    let expected: serde_json::Value = serde_json::from_slice(
        &std::fs::read(traces.join("recorded-urllib-curl-exchanges.expected.json"))
            .expect("ground truth present"),
    )
    .expect("ground truth is JSON");
    let expected = from_json(&expected);
    assert_eq!(expected.len(), 19);
    let dir = TempDir::new("fixture-exchanges");
    check_trace(
        &traces.join("recorded-urllib-curl-exchanges.pcapng"),
        &expected,
        dir.path(),
    );
}
