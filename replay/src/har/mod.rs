//! HAR 1.2 output, written as a stream: one entry is built, written and dropped at a time.

mod entry;
mod json;
pub mod model;

use std::io::{self, Write};

use crate::body::DecodeOptions;
use crate::filter::Filter;
use crate::pipeline::{Item, Replayed, ReplayedConnection, Sink, exchange_start_ns};

fn begin(out: &mut dyn Write) -> io::Result<()> {
    let creator = model::Creator {
        name: "spliff",
        version: env!("CARGO_PKG_VERSION"),
    };
    out.write_all(b"{\"log\":{\"version\":\"1.2\",\"creator\":")?;
    serde_json::to_writer(&mut *out, &creator)?;
    out.write_all(b",\"entries\":[")
}

const END: &[u8] = b"]}}\n";

/// Writes `replayed` as a HAR 1.2 document. The bytes depend only on `replayed` and `decode`.
pub fn write_har(
    replayed: &Replayed<'_>,
    decode: &DecodeOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    begin(out)?;
    for (n, (info, ex, index)) in replayed.exchanges().enumerate() {
        if n > 0 {
            out.write_all(b",")?;
        }
        let entry = entry::build(ex, info, index == 0, decode);
        let mut bytes = Vec::new();
        json::entry(&mut bytes, &entry);
        out.write_all(&bytes)?;
    }
    out.write_all(END)
}

/// The HAR view as a streaming [`Sink`]: the same bytes as [`write_har`] after
/// [`Filter::apply`].
#[derive(Debug, Default)]
pub struct HarSink {
    /// Exchanges to write.
    pub filter: Filter,
    /// Body decoding limits.
    pub decode: DecodeOptions,
}

impl Sink for HarSink {
    type Context = ();

    fn context(&self, _index: usize, _conn: &ReplayedConnection<'_>) {}

    fn render(
        &self,
        _index: usize,
        conn: &ReplayedConnection<'_>,
        _context: (),
    ) -> io::Result<Vec<Item>> {
        let info = &conn.info;
        let mut items = Vec::new();
        for (index, ex) in conn.result.exchanges.iter().enumerate() {
            if !self.filter.keeps(info, ex) {
                continue;
            }
            let entry = entry::build(ex, info, index == 0, &self.decode);
            let mut bytes = Vec::with_capacity(json::size_hint(&entry));
            json::entry(&mut bytes, &entry);
            items.push(Item {
                ts_ns: exchange_start_ns(ex, info),
                bytes,
            });
        }
        Ok(items)
    }

    fn begin(&self, out: &mut dyn Write) -> io::Result<()> {
        begin(out)
    }

    fn write_item(&self, n: u64, item: &Item, out: &mut dyn Write) -> io::Result<()> {
        if n > 0 {
            out.write_all(b",")?;
        }
        out.write_all(&item.bytes)
    }

    fn end(&self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(END)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReplayOptions;
    use crate::pipeline::replay;

    /// The fast JSON writer against serde_json, on every entry of every fixture.
    #[test]
    fn entries_are_written_as_serde_json_writes_them() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/traces");
        let mut seen = 0;
        for f in std::fs::read_dir(&dir).expect("fixtures") {
            let path = f.expect("entry").path();
            if path.extension().is_none_or(|e| e != "pcapng") {
                continue;
            }
            let trace = std::fs::read(&path).expect("read");
            let replayed = replay(&trace, &ReplayOptions::default(), &|_| {});
            for (info, ex, index) in replayed.exchanges() {
                let entry = entry::build(ex, info, index == 0, &DecodeOptions::default());
                let mut ours = Vec::new();
                json::entry(&mut ours, &entry);
                assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&serde_json::to_vec(&entry).expect("json"))
                );
                seen += 1;
            }
        }
        assert!(seen > 20, "fixtures have entries");
    }
}
