//! Text views of a trace.

mod records;

pub use records::{RecordsSummary, write_records};
