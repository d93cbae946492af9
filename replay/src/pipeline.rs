//! The replay pipeline: trace bytes → connections → exchanges in time order.
//!
//! [`replay_to`] streams: the trace is indexed (record headers, no plaintext copied), then
//! connections are rebuilt in batches, in parallel, in the order of their first record, and
//! each batch is rendered by a [`Sink`] on the worker threads. A k-way merge writes an item as
//! soon as nothing still to come can produce an earlier one: a connection's items never start
//! before its first record ([`Sink::earliest`]). Memory is the index (a few dozen bytes per
//! record, no plaintext, and per connection its indexed state and sink context: on the order
//! of a kilobyte, 1.64 GB was measured for a million tiny connections), two batches (one
//! being written while the next is rebuilt) and the items still waiting for an earlier
//! connection, whatever the size of the trace's plaintext.
//!
//! A batch holds its connections whole (plaintext, exchanges, rendered items), which is right
//! for the many small connections of a real trace but not for one connection of gigabytes. So
//! a connection of [`BatchLimits::lazy_bytes`] or more is not put in a batch: when the batches
//! reach it (in connection order, because sink contexts depend on the connections before), it
//! is prepared as a [`LazyConnection`] and handed to the merge, which pulls its items one at a
//! time ([`Sink::next_item`]) whenever its floor ([`Sink::floor`]: a lower bound of what it
//! still has) is the smallest key still to come, and writes each as soon as nothing precedes
//! it. An item is rendered, written and dropped; an HTTP/1 connection holds one exchange and a
//! window of its plaintext at a time (see [`crate::lazy`]). Its bodies are not even in the
//! exchange: they stay in the trace ([`crate::exchange::InTrace`]), and an item may leave them
//! there too ([`Item::deferred`]), to be read from the memory map while the item is written;
//! the connection is kept until its last such item is written. This is simpler than splitting a
//! connection's parsing across threads, and a large connection is one piece of sequential
//! work anyway; the batches of small connections still run in parallel next to it.
//!
//! [`replay`] keeps everything, for callers that want the whole [`Replayed`] model.
//!
//! Both give the same order, whatever the thread count, batch size or laziness: by timestamp,
//! then connection index (first timestamp, then key), then position in the connection.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};

use rayon::prelude::*;

use crate::body_stream::DeferredBody;
use crate::lazy::LazyConnection;
use crate::trace_input::{ConnectionInfo, PendingConnection, TraceError, TraceIndex};
use crate::{
    ConnectionStreams, Detection, Exchange, Protocol, Reconstruction, ReplayOptions, reconstruct,
};

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The method shown for a request whose method was not captured: not an HTTP token (RFC 9110
/// §9.1), so it cannot be mistaken for a method that was sent.
pub const UNKNOWN_METHOD: &str = "(not captured)";

/// The fragment of the URL shown for a request whose target was not captured. A request
/// target never carries a fragment (RFC 9110 §7.1), so the URL cannot be mistaken for one
/// that was requested.
pub const UNKNOWN_TARGET: &str = "/#spliff:request-not-captured";

/// The method as sent, or [`UNKNOWN_METHOD`].
pub fn exchange_method(ex: &Exchange) -> String {
    ex.request
        .method
        .as_deref()
        .map_or_else(|| UNKNOWN_METHOD.to_string(), lossy)
}

/// The absolute URL: the target as is when it is absolute-form, else https (http on a unix
/// socket, which carries no TLS) + the authority
/// (`:authority` or Host, else SNI, else the server address) + the target ([`UNKNOWN_TARGET`]
/// when the target was not captured).
pub fn exchange_url(ex: &Exchange, info: &ConnectionInfo) -> String {
    let target = ex
        .request
        .target
        .as_deref()
        .map_or_else(|| UNKNOWN_TARGET.to_string(), lossy);
    if target.starts_with("http://") || target.starts_with("https://") {
        return target;
    }
    let scheme = ex.request.scheme.as_deref().map(lossy).unwrap_or_else(|| {
        if info.unix_path.is_some() {
            "http".to_string()
        } else {
            "https".to_string()
        }
    });
    let authority = ex
        .request
        .authority
        .as_deref()
        .or_else(|| ex.request.header("host"))
        .map(lossy)
        .or_else(|| info.sni.clone())
        .or_else(|| info.client_server().1.map(|a| a.to_string()))
        .unwrap_or_else(|| "unknown".to_string());
    // CONNECT and OPTIONS * have no path.
    if target == "*" || !target.starts_with('/') {
        return format!("{scheme}://{authority}");
    }
    format!("{scheme}://{authority}{target}")
}

/// Kernel time at which an exchange starts: its first request byte, else its first response
/// byte, else the connection's first record.
pub fn exchange_start_ns(ex: &Exchange, info: &ConnectionInfo) -> u64 {
    ex.timings
        .request_first_byte_ns
        .or(ex.timings.response_first_byte_ns)
        .unwrap_or(info.first_ts_ns)
}

/// Progress of a replay, reported through the caller's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The trace has been indexed: this many connections to rebuild.
    Indexed {
        /// Connections found.
        connections: u64,
    },
    /// One more connection was rebuilt.
    ConnectionDone,
}

/// One connection after reconstruction.
#[derive(Debug, Clone)]
pub struct ReplayedConnection<'a> {
    /// What the trace says about it.
    pub info: ConnectionInfo,
    /// Its exchanges and notes.
    pub result: Reconstruction,
    /// Its plaintext streams (the pcapng output replays them as TCP).
    pub streams: ConnectionStreams<'a>,
}

/// A replayed trace, held whole in memory.
#[derive(Debug, Default)]
pub struct Replayed<'a> {
    /// Connections in the trace's order (first timestamp, then key).
    pub connections: Vec<ReplayedConnection<'a>>,
    /// `(connection index, exchange index)` of every exchange, ordered by start time, then
    /// connection key, then position: the output order of every sink.
    pub order: Vec<(usize, usize)>,
    /// Problems reading the trace.
    pub errors: Vec<TraceError>,
    /// Losses the trace could not attribute to a connection.
    pub unattributed_loss: Vec<String>,
}

impl Replayed<'_> {
    /// The exchanges in output order, with their connection.
    pub fn exchanges(&self) -> impl Iterator<Item = (&ConnectionInfo, &Exchange, usize)> + '_ {
        self.order.iter().map(|&(c, e)| {
            let conn = &self.connections[c];
            (&conn.info, &conn.result.exchanges[e], e)
        })
    }
}

fn rebuild<'a>(
    index: &TraceIndex<'a>,
    pending: PendingConnection<'a>,
    options: &ReplayOptions,
) -> ReplayedConnection<'a> {
    let c = index.assemble(pending);
    let result = reconstruct(&c.streams, options);
    ReplayedConnection {
        info: c.info,
        result,
        streams: c.streams,
    }
}

/// Replays a whole trace into memory. `progress` is called from worker threads.
pub fn replay<'a>(
    trace: &'a [u8],
    options: &ReplayOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Replayed<'a> {
    let mut index = TraceIndex::read(trace);
    let pending = std::mem::take(&mut index.connections);
    progress(Progress::Indexed {
        connections: pending.len() as u64,
    });
    let connections: Vec<ReplayedConnection<'a>> = pending
        .into_par_iter()
        .map(|c| {
            let r = rebuild(&index, c, options);
            progress(Progress::ConnectionDone);
            r
        })
        .collect();
    let mut order: Vec<(u64, usize, usize)> = connections
        .iter()
        .enumerate()
        .flat_map(|(ci, c)| {
            c.result
                .exchanges
                .iter()
                .enumerate()
                .map(move |(ei, ex)| (exchange_start_ns(ex, &c.info), ci, ei))
        })
        .collect();
    // Connection indexes already follow (first timestamp, key), so (start, ci, ei) is total
    // and independent of how the work was split.
    order.sort_unstable();
    Replayed {
        connections,
        order: order.into_iter().map(|(_, c, e)| (c, e)).collect(),
        errors: index.errors,
        unattributed_loss: index.unattributed_loss,
    }
}

/// One piece of output of one connection: written at `ts_ns` in the merged order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Kernel time that orders it.
    pub ts_ns: u64,
    /// The bytes the sink wrote for it.
    pub bytes: Vec<u8>,
    /// Bodies left in the trace, written (each followed by its `after` bytes) after what
    /// [`Sink::write_item`] writes: an item of a connection rendered item by item may leave
    /// its bodies to be read from the trace as it is written, so that no body is held whole.
    pub deferred: Vec<DeferredBody>,
}

impl Item {
    /// An item of `bytes` alone.
    pub fn new(ts_ns: u64, bytes: Vec<u8>) -> Item {
        Item {
            ts_ns,
            bytes,
            deferred: Vec::new(),
        }
    }
}

/// Whether a connection is shown as HTTP: it was rebuilt into at least one exchange (ALPN
/// alone does not make bytes HTTP).
pub fn is_http(detection: &Detection, has_exchanges: bool) -> bool {
    detection.protocol != Protocol::Unknown && has_exchanges
}

/// An output format written connection by connection.
///
/// [`Sink::render`] runs on worker threads, one connection at a time, and returns the
/// connection's items in its own order; the pipeline merges the items of all connections by
/// `(ts_ns, connection index, position)` and hands them to [`Sink::write_item`] in that order.
/// A connection too large to hold whole ([`BatchLimits::lazy_bytes`]) is rendered item by item
/// instead: [`Sink::start`], then [`Sink::next_item`] whenever the merge needs its next item,
/// with [`Sink::floor`] bounding the items still to come. Both ways give the same items.
pub trait Sink: Sync {
    /// Per-connection data that depends on the connections before it (computed in connection
    /// order, between rebuilding and rendering).
    type Context: Send;

    /// Rendering state of a connection rendered item by item.
    type Cursor: Send;

    /// A lower bound of the `ts_ns` of every item the connection will produce, known before it
    /// is rebuilt. The default, its first record, holds for exchanges. The merge relies on it:
    /// an item below it could be written after later ones.
    fn earliest(&self, pending: &PendingConnection<'_>) -> u64 {
        pending.first_ts_ns()
    }

    /// Context of connection `index`, called once per connection in connection order; `http`
    /// is [`is_http`].
    fn context(&self, index: usize, info: &ConnectionInfo, http: bool) -> Self::Context;

    /// The connection's output items, ordered within the connection.
    fn render(
        &self,
        index: usize,
        conn: &ReplayedConnection<'_>,
        context: Self::Context,
    ) -> io::Result<Vec<Item>>;

    /// Starts rendering connection `index` item by item.
    fn start(
        &self,
        index: usize,
        conn: &LazyConnection<'_>,
        context: Self::Context,
    ) -> Self::Cursor;

    /// The next item of a connection rendered item by item (the same as the next item
    /// [`Sink::render`] would give); `None` when there is none left.
    fn next_item(
        &self,
        conn: &mut LazyConnection<'_>,
        cursor: &mut Self::Cursor,
    ) -> Option<io::Result<Item>>;

    /// A lower bound of the `ts_ns` of every item [`Sink::next_item`] will still return.
    fn floor(&self, conn: &LazyConnection<'_>, cursor: &Self::Cursor) -> u64;

    /// Writes what precedes the first item.
    fn begin(&self, out: &mut dyn Write) -> io::Result<()>;

    /// Writes the `n`th item (from 0) of the whole output.
    fn write_item(&self, n: u64, item: &Item, out: &mut dyn Write) -> io::Result<()> {
        let _ = n;
        out.write_all(&item.bytes)
    }

    /// Writes what follows the last item.
    fn end(&self, out: &mut dyn Write) -> io::Result<()>;
}

/// [`Sink::render`] for sinks with one item per exchange: `render` gives the item of an
/// exchange (its position in the connection), or none when it is filtered out.
pub fn exchange_items(
    conn: &ReplayedConnection<'_>,
    render: impl Fn(&ConnectionInfo, usize, &Exchange) -> io::Result<Option<Item>>,
) -> io::Result<Vec<Item>> {
    let mut items = Vec::new();
    for (index, ex) in conn.result.exchanges.iter().enumerate() {
        items.extend(render(&conn.info, index, ex)?);
    }
    Ok(items)
}

/// [`Sink::next_item`] for sinks that write one item per exchange they keep: `render` gives an
/// exchange's item (`None`: filtered out) from the connection, the exchange's position in the
/// connection and the exchange.
pub fn next_exchange_item(
    conn: &mut LazyConnection<'_>,
    render: impl Fn(&ConnectionInfo, usize, &Exchange) -> io::Result<Option<Item>>,
) -> Option<io::Result<Item>> {
    loop {
        let (index, ex) = conn.next_exchange()?;
        match render(&conn.info, index, &ex) {
            Ok(Some(item)) => return Some(Ok(item)),
            Ok(None) => continue,
            Err(e) => return Some(Err(e)),
        }
    }
}

/// How much [`replay_to`] rebuilds at once: a batch closes when either limit is reached (and
/// holds at least one connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Plaintext bytes of the connections in one batch.
    pub bytes: u64,
    /// Connections in one batch.
    pub connections: usize,
    /// Connections with at least this many plaintext bytes are not rebuilt in a batch but
    /// item by item as the merge writes them ([`LazyConnection`]).
    pub lazy_bytes: u64,
    /// First window of such a connection's streams ([`LazyConnection::with_window`]).
    pub lazy_window: u64,
}

impl Default for BatchLimits {
    fn default() -> BatchLimits {
        // Enough work per batch to keep a few threads busy, small enough that two batches'
        // assembled streams and rendered output stay in the tens of MiB (8 MiB: 41 MiB of
        // anonymous memory for a 1 GiB trace with one thread; 16 MiB was no faster).
        // A connection of 16 MiB or more is rendered lazily: rebuilt whole, it would hold its
        // decoded bodies and rendered output several times over, and it is one connection, so
        // a batch would not spread it over threads anyway.
        BatchLimits {
            bytes: 8 << 20,
            connections: 1024,
            lazy_bytes: 16 << 20,
            lazy_window: crate::lazy::FIRST_WINDOW,
        }
    }
}

/// What [`replay_to`] read and how much it held at once.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    /// Connections in the trace.
    pub connections: usize,
    /// Items written.
    pub items: u64,
    /// Problems reading the trace.
    pub errors: Vec<TraceError>,
    /// Losses the trace could not attribute to a connection.
    pub unattributed_loss: Vec<String>,
    /// Most connections rebuilt at once (the largest batch).
    pub max_batch: usize,
    /// Most connections that had rendered items waiting for the merge at once.
    pub max_waiting_connections: usize,
    /// Most rendered items waiting for the merge at once.
    pub max_waiting_items: usize,
    /// Most rendered bytes waiting for the merge at once.
    pub max_waiting_bytes: u64,
    /// Most exchanges of one batch (rebuilt whole, held until the batch is rendered).
    pub max_batch_exchanges: usize,
    /// Connections rendered item by item ([`BatchLimits::lazy_bytes`]).
    pub lazy_connections: usize,
    /// Most connections being rendered item by item at once.
    pub max_lazy_open: usize,
    /// Most exchanges rebuilt but not yet rendered that connections rendered item by item
    /// held at once (HTTP/1: at most one each; HTTP/2: its open streams and the closed ones
    /// waiting for an earlier one; a connection rebuilt whole: all of its own).
    pub max_lazy_exchanges_held: usize,
    /// Most plaintext bytes connections rendered item by item showed at once (HTTP/1 and
    /// HTTP/2: their streams' windows; a connection rebuilt whole: all of its plaintext).
    pub max_lazy_plaintext: u64,
}

/// An item waiting in the merge, ordered by its output key only.
struct Waiting {
    key: (u64, usize, usize),
    item: Item,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// A connection rendered item by item, from the merge's point of view.
struct Open<'a, S: Sink> {
    index: usize,
    conn: LazyConnection<'a>,
    cursor: S::Cursor,
    /// Items pulled so far: the position of the next.
    pulled: usize,
    /// [`Sink::floor`] after the last pull.
    floor: u64,
    /// No item left to pull; kept while items of it that read bodies from its streams wait.
    done: bool,
}

/// What one step of the rebuilding side hands to the merge.
enum Step<'a, S: Sink> {
    /// Connections `first..next`, rebuilt and rendered whole, with their items.
    Batch {
        first: usize,
        next: usize,
        items: Vec<(usize, Vec<Item>)>,
    },
    /// One large connection, ready to be rendered item by item.
    Lazy(Box<Open<'a, S>>),
}

/// Rebuilds and renders the next batch of connections, or prepares the next large one; `None`
/// when none are left.
#[allow(clippy::too_many_arguments)]
fn next_step<'a, S: Sink>(
    index: &TraceIndex<'a>,
    pending: &mut std::iter::Peekable<std::vec::IntoIter<PendingConnection<'a>>>,
    next: &mut usize,
    options: &ReplayOptions,
    limits: BatchLimits,
    progress: &(dyn Fn(Progress) + Sync),
    sink: &S,
    batch_exchanges: &mut usize,
) -> Option<io::Result<Step<'a, S>>> {
    let large = |c: &PendingConnection<'_>| c.data_len() >= limits.lazy_bytes;
    if let Some(c) = pending.next_if(|c| large(c)) {
        // Prepared here, in connection order, because its context depends on the connections
        // before it and the next ones' on it.
        let ci = *next;
        *next += 1;
        let c = index.assemble_windowed(c);
        let mut conn = LazyConnection::with_window(c.info, c.streams, options, limits.lazy_window);
        let http = {
            let has = conn.has_exchanges();
            is_http(&conn.detection, has)
        };
        let ctx = sink.context(ci, &conn.info, http);
        let cursor = sink.start(ci, &conn, ctx);
        let floor = sink.floor(&conn, &cursor);
        return Some(Ok(Step::Lazy(Box::new(Open {
            index: ci,
            conn,
            cursor,
            pulled: 0,
            floor,
            done: false,
        }))));
    }
    pending.peek()?;
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    while let Some(c) = pending.next_if(|c| {
        !large(c)
            && (batch.is_empty() || (bytes < limits.bytes && batch.len() < limits.connections))
    }) {
        bytes += c.data_len();
        batch.push(c);
    }
    let first = *next;
    *next += batch.len();
    let rebuilt: Vec<ReplayedConnection<'a>> = batch
        .into_par_iter()
        .map(|c| rebuild(index, c, options))
        .collect();
    *batch_exchanges = rebuilt.iter().map(|c| c.result.exchanges.len()).sum();
    // Contexts depend on the connections before: one at a time, in order.
    let jobs: Vec<(usize, ReplayedConnection<'a>, S::Context)> = rebuilt
        .into_iter()
        .enumerate()
        .map(|(k, c)| {
            let http = is_http(&c.result.detection, !c.result.exchanges.is_empty());
            let ctx = sink.context(first + k, &c.info, http);
            (first + k, c, ctx)
        })
        .collect();
    let items = jobs
        .into_par_iter()
        .map(|(ci, c, ctx)| {
            let items = sink.render(ci, &c, ctx);
            drop(c);
            progress(Progress::ConnectionDone);
            items.map(|items| (ci, items))
        })
        .collect::<io::Result<Vec<_>>>();
    Some(items.map(|items| Step::Batch {
        first,
        next: *next,
        items,
    }))
}

/// The k-way merge: items wait here until nothing still to come can precede them, that is
/// until no connection not yet rebuilt and no connection being rendered item by item can
/// produce an earlier one.
struct Merge<'f, 'a, S: Sink> {
    /// floor[i]: no connection from i on produces an item before it.
    floor: &'f [u64],
    /// Connections handed to the merge so far: `floor[next]` bounds the rest.
    next: usize,
    heap: BinaryHeap<Reverse<Waiting>>,
    heap_bytes: u64,
    /// Items still waiting per connection, to know how many connections are held.
    waiting_per_conn: std::collections::BTreeMap<usize, usize>,
    /// Connections being rendered item by item.
    open: Vec<Box<Open<'a, S>>>,
}

impl<'a, S: Sink> Merge<'_, 'a, S> {
    fn push(&mut self, key: (u64, usize, usize), item: Item, summary: &mut ReplaySummary) {
        debug_assert!(item.ts_ns >= self.floor[key.1], "item before its floor");
        self.heap_bytes += item.bytes.len() as u64;
        *self.waiting_per_conn.entry(key.1).or_default() += 1;
        self.heap.push(Reverse(Waiting { key, item }));
        summary.max_waiting_items = summary.max_waiting_items.max(self.heap.len());
        summary.max_waiting_bytes = summary.max_waiting_bytes.max(self.heap_bytes);
    }

    /// Takes a step's output in and writes every item that can no longer be preceded.
    fn accept(
        &mut self,
        step: Step<'a, S>,
        sink: &S,
        progress: &(dyn Fn(Progress) + Sync),
        summary: &mut ReplaySummary,
        out: &mut (dyn Write + Send),
    ) -> io::Result<()> {
        match step {
            Step::Batch { first, next, items } => {
                summary.max_batch = summary.max_batch.max(next - first);
                for (ci, items) in items {
                    for (pos, item) in items.into_iter().enumerate() {
                        self.push((item.ts_ns, ci, pos), item, summary);
                    }
                }
                self.next = next;
            }
            Step::Lazy(open) => {
                summary.lazy_connections += 1;
                self.next = open.index + 1;
                self.open.push(open);
                summary.max_lazy_open = summary.max_lazy_open.max(self.open.len());
            }
        }
        summary.max_waiting_connections = summary
            .max_waiting_connections
            .max(self.waiting_per_conn.len());
        self.advance(sink, progress, summary, out)
    }

    /// Writes the bodies `item` left in the trace of its connection `ci` (see [`Item`]).
    fn write_deferred(
        &self,
        ci: usize,
        item: &Item,
        out: &mut (dyn Write + Send),
    ) -> io::Result<()> {
        if item.deferred.is_empty() {
            return Ok(());
        }
        let Some(o) = self.open.iter().find(|o| o.index == ci) else {
            return Err(io::Error::other(format!(
                "connection {ci} left a body in the trace but is no longer open"
            )));
        };
        for d in &item.deferred {
            let pieces = || o.conn.body_chunks(d.side, &d.body);
            crate::body_stream::write(pieces, &d.coding, d.limit, d.form, &mut *out)?;
            out.write_all(&d.after)?;
        }
        Ok(())
    }

    /// Drops connection `ci` once nothing is left to pull from it and no item of it waits:
    /// its streams and parser state go then.
    fn close_finished(&mut self, ci: usize, progress: &(dyn Fn(Progress) + Sync)) {
        if self.waiting_per_conn.contains_key(&ci) {
            return;
        }
        if let Some(k) = self.open.iter().position(|o| o.index == ci && o.done) {
            self.open.swap_remove(k);
            progress(Progress::ConnectionDone);
        }
    }

    /// Writes what can be written, pulling items from connections rendered item by item
    /// whenever one of them may hold the next item.
    fn advance(
        &mut self,
        sink: &S,
        progress: &(dyn Fn(Progress) + Sync),
        summary: &mut ReplaySummary,
        out: &mut (dyn Write + Send),
    ) -> io::Result<()> {
        // Connections not yet rebuilt have a higher index than anything here, so ties at
        // their floor may go.
        let bound = self.floor[self.next];
        loop {
            let held: usize = self.open.iter().map(|o| o.conn.held()).sum();
            summary.max_lazy_exchanges_held = summary.max_lazy_exchanges_held.max(held);
            let plaintext: u64 = self.open.iter().map(|o| o.conn.plaintext_held()).sum();
            summary.max_lazy_plaintext = summary.max_lazy_plaintext.max(plaintext);
            // The open connection whose next item could come first: (floor, index, position)
            // is below every key it will still produce.
            let lazy = self
                .open
                .iter()
                .enumerate()
                .filter(|(_, o)| !o.done)
                .map(|(k, o)| ((o.floor, o.index, o.pulled), k))
                .min();
            if let Some(Reverse(w)) = self.heap.peek()
                && w.key.0 <= bound
                && lazy.is_none_or(|(l, _)| w.key < l)
            {
                let Some(Reverse(w)) = self.heap.pop() else {
                    break;
                };
                self.heap_bytes -= w.item.bytes.len() as u64;
                let ci = w.key.1;
                if let Some(n) = self.waiting_per_conn.get_mut(&ci) {
                    *n -= 1;
                    if *n == 0 {
                        self.waiting_per_conn.remove(&ci);
                    }
                }
                sink.write_item(summary.items, &w.item, out)?;
                self.write_deferred(ci, &w.item, out)?;
                summary.items += 1;
                self.close_finished(ci, progress);
                continue;
            }
            let Some(((floor, _, _), k)) = lazy else {
                break;
            };
            if floor > bound {
                break;
            }
            let o = &mut self.open[k];
            match sink.next_item(&mut o.conn, &mut o.cursor) {
                Some(item) => {
                    let item = item?;
                    debug_assert!(item.ts_ns >= o.floor, "lazy item before its floor");
                    let key = (item.ts_ns, o.index, o.pulled);
                    o.pulled += 1;
                    o.floor = sink.floor(&o.conn, &o.cursor);
                    self.push(key, item, summary);
                }
                None => {
                    o.done = true;
                    let ci = o.index;
                    self.close_finished(ci, progress);
                }
            }
        }
        Ok(())
    }
}

/// Replays a trace into `out` through `sink`, streaming (see the module documentation).
///
/// Batch k+1 is rebuilt and rendered on the current rayon pool while batch k is merged and
/// written (`rayon::join`), so writing overlaps the work; at most two batches are in memory.
/// Connections of [`BatchLimits::lazy_bytes`] or more are rendered item by item by the
/// merge, on the writing side. `progress` is called from worker threads.
pub fn replay_to<S: Sink>(
    trace: &[u8],
    options: &ReplayOptions,
    limits: BatchLimits,
    progress: &(dyn Fn(Progress) + Sync),
    sink: &S,
    out: &mut (dyn Write + Send),
) -> io::Result<ReplaySummary> {
    replay_traces_to(&[trace], options, limits, progress, sink, out)
}

/// [`replay_to`] for several traces read as one ([`TraceIndex::read_many`]), e.g. the files
/// of a rotated capture: a connection that spans files is rebuilt whole, and the output is
/// the one the capture would have given as a single file.
pub fn replay_traces_to<S: Sink>(
    traces: &[&[u8]],
    options: &ReplayOptions,
    limits: BatchLimits,
    progress: &(dyn Fn(Progress) + Sync),
    sink: &S,
    out: &mut (dyn Write + Send),
) -> io::Result<ReplaySummary> {
    let mut index = TraceIndex::read_many(traces);
    let pending = std::mem::take(&mut index.connections);
    let total = pending.len();
    progress(Progress::Indexed {
        connections: total as u64,
    });
    let mut floor = vec![u64::MAX; total + 1];
    for (i, c) in pending.iter().enumerate().rev() {
        floor[i] = floor[i + 1].min(sink.earliest(c));
    }

    let mut summary = ReplaySummary {
        connections: total,
        ..ReplaySummary::default()
    };
    sink.begin(out)?;
    let mut merge = Merge {
        floor: &floor,
        next: 0,
        heap: BinaryHeap::new(),
        heap_bytes: 0,
        waiting_per_conn: Default::default(),
        open: Vec::new(),
    };
    let mut pending = pending.into_iter().peekable();
    let mut next = 0usize;
    let mut current: Option<Step<'_, S>> = None;
    loop {
        let mut batch_exchanges = 0;
        let (written, upcoming) = rayon::join(
            || match current.take() {
                Some(r) => merge.accept(r, sink, progress, &mut summary, &mut *out),
                None => Ok(()),
            },
            || {
                next_step(
                    &index,
                    &mut pending,
                    &mut next,
                    options,
                    limits,
                    progress,
                    sink,
                    &mut batch_exchanges,
                )
            },
        );
        written?;
        summary.max_batch_exchanges = summary.max_batch_exchanges.max(batch_exchanges);
        match upcoming {
            Some(r) => current = Some(r?),
            None => break,
        }
    }
    merge.next = total;
    merge.advance(sink, progress, &mut summary, out)?;
    debug_assert!(merge.heap.is_empty() && merge.open.is_empty());
    sink.end(out)?;
    summary.errors = index.errors;
    summary.unattributed_loss = index.unattributed_loss;
    Ok(summary)
}
