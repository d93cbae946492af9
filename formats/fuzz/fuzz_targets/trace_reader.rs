//! Any byte string given to the trace reader: every path must return, never panic, and never
//! allocate in proportion to a length read from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spliff_formats::{Entry, Record, TraceReader};

fuzz_target!(|data: &[u8]| {
    let mut connections: Vec<spliff_formats::Connection<'_>> = Vec::new();
    for item in TraceReader::new(data) {
        match item {
            Ok(Entry::Record(r)) => {
                if let Record::Connection(c) = r.record {
                    match connections.iter_mut().find(|k| k.conn_id == c.conn_id) {
                        Some(known) => known.merge(&c),
                        None => connections.push(c),
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                let _ = e.to_string();
                let _ = e.is_fatal();
            }
        }
    }
    let (records, errors) = TraceReader::new(data).records_by_time();
    assert!(records.windows(2).all(|w| (w[0].ts_ns, w[0].offset) <= (w[1].ts_ns, w[1].offset)));
    let _ = errors.len();
});
