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
    // The committed file was written by format 1.0. Today's writer stamps its own minor
    // version and appends 1.1 fields (so later blocks move): compare everything else. Fields
    // 1.0 lacks must read as their defaults, which the generated sample uses.
    fn comparable(entries: &[Entry<'_>], minor: u16) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e.clone() {
                Entry::Section { info, .. } => format!("{info:?}"),
                Entry::Interface { id, interface, .. } => format!("{id} {interface:?}"),
                Entry::Packet { packet, .. } => format!("{packet:?}"),
                Entry::Stats { stats, .. } => format!("{stats:?}"),
                Entry::Record(mut r) => {
                    r.offset = 0;
                    r.minor_version = minor;
                    format!("{r:?}")
                }
                other => format!("{other:?}"),
            })
            .collect()
    }
    assert!(committed.iter().all(|e| match e {
        Entry::Record(r) => r.minor_version == 0,
        _ => true,
    }));
    assert_eq!(comparable(&committed, 0), comparable(&generated, 0));
    assert!(
        committed
            .iter()
            .filter(|e| matches!(e, Entry::Record(_)))
            .count()
            >= 12
    );
}
