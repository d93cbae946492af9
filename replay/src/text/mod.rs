//! Text views of a trace.

mod data_chunks;
mod exchanges;
mod records;

pub use exchanges::{TextOptions, TextSink, write_exchanges};
pub use records::{RecordsSummary, write_records};
