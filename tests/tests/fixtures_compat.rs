//! Committed traces must keep reading with today's reader: a format change that breaks old
//! traces fails here.

use spliff_formats::{Entry, TraceFile, TraceReader};
use spliff_tests::sample::sample_trace;

#[test]
fn the_committed_format_1_0_sample_reads_back_as_generated() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/traces/sample.pcapng");
    let file = TraceFile::open(&path).expect("fixture present");
    let committed: Vec<Entry<'_>> = file.reader().map(|e| e.expect("no read error")).collect();
    let generated_bytes = sample_trace([7; 16]);
    let generated: Vec<Entry<'_>> = TraceReader::new(&generated_bytes)
        .map(|e| e.expect("no read error"))
        .collect();
    assert_eq!(committed, generated);
    assert!(
        committed
            .iter()
            .filter(|e| matches!(e, Entry::Record(_)))
            .count()
            >= 12
    );
}
