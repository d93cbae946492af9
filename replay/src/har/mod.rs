//! HAR 1.2 output, written as a stream: one entry is built, written and dropped at a time.

mod entry;
pub mod model;

use std::io::{self, Write};

use crate::body::DecodeOptions;
use crate::pipeline::Replayed;

/// Writes `replayed` as a HAR 1.2 document. The bytes depend only on `replayed` and `decode`.
pub fn write_har(
    replayed: &Replayed,
    decode: &DecodeOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    let creator = model::Creator {
        name: "spliff",
        version: env!("CARGO_PKG_VERSION"),
    };
    out.write_all(b"{\"log\":{\"version\":\"1.2\",\"creator\":")?;
    serde_json::to_writer(&mut *out, &creator)?;
    out.write_all(b",\"entries\":[")?;
    for (n, (info, ex, index)) in replayed.exchanges().enumerate() {
        if n > 0 {
            out.write_all(b",")?;
        }
        let entry = entry::build(ex, info, index == 0, decode);
        serde_json::to_writer(&mut *out, &entry)?;
    }
    out.write_all(b"]}}\n")?;
    Ok(())
}
