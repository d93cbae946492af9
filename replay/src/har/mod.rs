//! HAR 1.2 output, written as a stream: one entry is built, written and dropped at a time.

mod entry;
mod in_trace;
mod json;
pub mod model;

use std::io::{self, Write};

use crate::body::DecodeOptions;
use crate::exchange::Exchange;
use crate::filter::Filter;
use crate::lazy::LazyConnection;
use crate::pipeline::{
    Item, Replayed, ReplayedConnection, Sink, exchange_items, exchange_start_ns,
};
use crate::trace_input::ConnectionInfo;

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

/// Appends `bytes` (UTF-8, possibly cut anywhere) escaped for the inside of a JSON string, as
/// HAR strings are escaped.
pub(crate) fn escape_json(out: &mut Vec<u8>, bytes: &[u8]) {
    json::escaped(out, bytes);
}

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
        let (entry, _) = entry::build(ex, info, index == 0, decode, None);
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

impl HarSink {
    /// The entry of exchange `index` (its position in the connection), unless filtered out.
    /// Bodies left in `trace` (a connection rendered item by item) stay there: the item
    /// writes them when it is written.
    fn exchange_item(
        &self,
        info: &ConnectionInfo,
        index: usize,
        ex: &Exchange,
        trace: Option<&LazyConnection<'_>>,
    ) -> io::Result<Option<Item>> {
        if !self.filter.keeps(info, ex) {
            return Ok(None);
        }
        let (entry, mut deferred) = entry::build(ex, info, index == 0, &self.decode, trace);
        let mut bytes = Vec::with_capacity(json::size_hint(&entry));
        let marks = json::entry(&mut bytes, &entry);
        if marks.len() != deferred.len() {
            return Err(io::Error::other(
                "HAR entry: bodies and their places disagree",
            ));
        }
        // Cut the entry at each placeholder: what follows a body is written after it.
        for (d, &at) in deferred.iter_mut().zip(&marks).rev() {
            d.after = bytes.split_off(at.min(bytes.len()));
        }
        Ok(Some(Item {
            ts_ns: exchange_start_ns(ex, info),
            bytes,
            deferred,
        }))
    }
}

impl Sink for HarSink {
    type Context = ();
    type Cursor = ();

    fn context(&self, _index: usize, _info: &ConnectionInfo, _http: bool) {}

    fn render(
        &self,
        _index: usize,
        conn: &ReplayedConnection<'_>,
        _context: (),
    ) -> io::Result<Vec<Item>> {
        exchange_items(conn, |info, index, ex| {
            self.exchange_item(info, index, ex, None)
        })
    }

    fn start(&self, _index: usize, _conn: &LazyConnection<'_>, _context: ()) {}

    fn next_item(&self, conn: &mut LazyConnection<'_>, _: &mut ()) -> Option<io::Result<Item>> {
        loop {
            let (index, ex) = conn.next_exchange()?;
            match self.exchange_item(&conn.info, index, &ex, Some(&*conn)) {
                Ok(Some(item)) => return Some(Ok(item)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    fn floor(&self, conn: &LazyConnection<'_>, _: &()) -> u64 {
        conn.floor()
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
                let (entry, _) =
                    entry::build(ex, info, index == 0, &DecodeOptions::default(), None);
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
