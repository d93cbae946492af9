//! The text view of exchanges as a replay sink: every part ([`super::parts`]) of every
//! connection, in time order. Times are UTC so that the same trace prints the same bytes on
//! every machine.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};

use crate::Protocol;
use crate::body::DecodeOptions;
use crate::exchange::Exchange;
use crate::filter::Filter;
use crate::lazy::LazyConnection;
use crate::pipeline::{Item, Replayed, ReplayedConnection, Sink};
use crate::trace_input::ConnectionInfo;

use super::TextOptions;
use super::parts::{Part, connection_end_ns, exchange_parts, handshake_part};

/// Writes the text view of `replayed` (the exchanges its order keeps), every connection's
/// handshake with `-H`.
pub fn write_exchanges(
    replayed: &Replayed<'_>,
    options: &TextOptions,
    decode: &DecodeOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut parts = Vec::new();
    for (c, conn) in replayed.connections.iter().enumerate() {
        parts.extend(handshake_part(&conn.info, options).map(|p| (c, p)));
    }
    for &(c, e) in &replayed.order {
        let conn = &replayed.connections[c];
        let end = connection_end_ns(&conn.info);
        let ex = &conn.result.exchanges[e];
        for p in exchange_parts(&conn.info, e, ex, options, decode, end)? {
            parts.push((c, p));
        }
    }
    parts.sort_by_key(|(c, p)| (p.ts_ns, *c, p.seq));
    for (_, p) in parts {
        out.write_all(&p.bytes)?;
    }
    Ok(())
}

/// The text view as a streaming [`Sink`]: the same bytes as [`write_exchanges`] after
/// [`Filter::apply`].
#[derive(Debug, Default)]
pub struct TextSink {
    /// Exchanges to write.
    pub filter: Filter,
    /// How the view looks.
    pub options: TextOptions,
    /// Body decoding limits.
    pub decode: DecodeOptions,
}

/// Parts of a connection rendered but not written yet: a later exchange's request may come
/// before an earlier exchange's response.
#[derive(Debug, Default)]
pub struct TextCursor {
    pending: BinaryHeap<Reverse<(u64, u64, Vec<u8>)>>,
}

impl TextCursor {
    fn push(&mut self, p: Part) {
        self.pending.push(Reverse((p.ts_ns, p.seq, p.bytes)));
    }

    fn first_ts(&self) -> u64 {
        self.pending.peek().map_or(u64::MAX, |Reverse(p)| p.0)
    }

    fn pop(&mut self) -> Option<Item> {
        self.pending
            .pop()
            .map(|Reverse((ts_ns, _, bytes))| Item::new(ts_ns, bytes))
    }
}

impl TextSink {
    /// The parts of one exchange, none when filtered out.
    fn parts(&self, info: &ConnectionInfo, index: usize, ex: &Exchange) -> io::Result<Vec<Part>> {
        if !self.filter.keeps(info, ex) {
            return Ok(Vec::new());
        }
        let end = connection_end_ns(info);
        exchange_parts(info, index, ex, &self.options, &self.decode, end)
    }

    /// `ex` with its bodies copied out of the trace when the view shows bodies (`-b`, `-x`);
    /// without them it needs only their lengths.
    fn shown(&self, conn: &LazyConnection<'_>, ex: Exchange) -> Exchange {
        if self.options.bodies || self.options.hexdump {
            conn.materialise(ex)
        } else {
            ex
        }
    }

    fn handshake(&self, info: &ConnectionInfo) -> Option<Part> {
        let shown = self.filter.keeps_process(info)
            && self.filter.hosts.is_empty()
            && self.filter.urls.is_empty();
        handshake_part(info, &self.options).filter(|_| shown)
    }
}

impl Sink for TextSink {
    type Context = ();
    type Cursor = TextCursor;

    fn context(&self, _index: usize, _info: &ConnectionInfo, _http: bool) {}

    fn render(
        &self,
        _index: usize,
        conn: &ReplayedConnection<'_>,
        _context: (),
    ) -> io::Result<Vec<Item>> {
        // A unix socket that is not HTTP is shown as data (filters select exchanges, so a
        // filtered view leaves it out).
        if conn.info.unix_path.is_some()
            && conn.result.detection.protocol == Protocol::Unknown
            && self.filter.is_empty()
        {
            return super::data_chunks::data_items(conn, &self.options);
        }
        let mut parts: Vec<Part> = self.handshake(&conn.info).into_iter().collect();
        for (index, ex) in conn.result.exchanges.iter().enumerate() {
            parts.extend(self.parts(&conn.info, index, ex)?);
        }
        parts.sort_by_key(|p| (p.ts_ns, p.seq));
        Ok(parts
            .into_iter()
            .map(|p| Item::new(p.ts_ns, p.bytes))
            .collect())
    }

    fn start(&self, _index: usize, conn: &LazyConnection<'_>, _context: ()) -> TextCursor {
        let mut cursor = TextCursor::default();
        if let Some(p) = self.handshake(&conn.info) {
            cursor.push(p);
        }
        cursor
    }

    fn next_item(
        &self,
        conn: &mut LazyConnection<'_>,
        cursor: &mut TextCursor,
    ) -> Option<io::Result<Item>> {
        loop {
            // A part is final once no exchange still to come can start before it.
            if cursor.first_ts() <= conn.floor() {
                return cursor.pop().map(Ok);
            }
            match conn.next_exchange() {
                Some((index, ex)) => match self.parts(&conn.info, index, &self.shown(conn, ex)) {
                    Ok(parts) => parts.into_iter().for_each(|p| cursor.push(p)),
                    Err(e) => return Some(Err(e)),
                },
                None => return cursor.pop().map(Ok),
            }
        }
    }

    fn floor(&self, conn: &LazyConnection<'_>, cursor: &TextCursor) -> u64 {
        conn.floor().min(cursor.first_ts())
    }

    fn begin(&self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }

    fn end(&self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}
