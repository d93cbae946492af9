//! The text view while a capture runs: fed the trace's bytes as they are written, it prints
//! each part of the `replay` text view ([`crate::text::parts`]) as soon as the records that
//! complete it have arrived: a request once its head is complete, its response once the
//! response head is (with `-b`/`-x`, or `-c`, once the exchange is complete), the notes of an
//! exchange when its connection ends.
//!
//! Each connection keeps its records as written and is rebuilt by the replay's own reader and
//! reconstruction ([`TraceIndex`](crate::trace_input::TraceIndex),
//! [`reconstruct`](crate::reconstruct)), so a part shows what `replay` of the finished trace
//! shows. Parts wait [`LiveOptions::window_ns`] behind the capture's clock and leave in kernel
//! time order, the replay's order: records of different CPUs reach user space slightly out of
//! order, and this window puts them back in order. A part that becomes ready later than that
//! (a head that took longer to arrive, a body with `-b`) is printed when it is ready.
//!
//! Memory: a connection's records are released when it closes. One idle for
//! [`LiveOptions::idle_ns`], or holding more than [`LiveOptions::max_connection_bytes`], is
//! shown as it is, then keeps only its connection records: what comes later is shown from
//! where it starts, as a capture that began inside the connection.

mod blocks;
mod connection;
mod pcapng;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::{self, Write};

pub use blocks::{BlockClass, BlockSplitter, StreamError, classify};
use spliff_formats::{Entry, Record, RecordKind, TraceReader};

use crate::body::DecodeOptions;
use crate::filter::Filter;
use crate::text::TextOptions;
use crate::text::parts::Part;
use crate::trace_input::ConnectionKey;
use connection::{LiveConnection, rebuild};
pub use pcapng::LivePcapng;

/// How the live view looks and what it holds.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// The text view's options.
    pub text: TextOptions,
    /// Body decoding limits.
    pub decode: DecodeOptions,
    /// Exchanges to show.
    pub filter: Filter,
    /// How long a part waits behind the capture's clock, so that parts leave in time order.
    pub window_ns: u64,
    /// A connection without records for this long is shown whole and released.
    pub idle_ns: u64,
    /// Records held for one connection at most.
    pub max_connection_bytes: usize,
}

/// The default reorder window: 100 ms.
pub const WINDOW_NS: u64 = 100_000_000;

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions {
            text: TextOptions::default(),
            decode: DecodeOptions::default(),
            filter: Filter::default(),
            window_ns: WINDOW_NS,
            idle_ns: 60_000_000_000,
            max_connection_bytes: 64 << 20,
        }
    }
}

/// A part ready to print, in output order: time, then its connection's place in a replay
/// (first record, key), then its place in the connection.
type Ready = Reverse<(u64, u64, ConnectionKey, u64, Vec<u8>)>;

/// What becomes of a connection shown whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// It closed (or the capture ended): forgotten.
    Release,
    /// Idle or too large: its data records are dropped, its connection records kept, and
    /// records that come later are shown from where they start.
    Suspend,
}

/// A suspended connection without records for this many idle periods is forgotten (its
/// process may be gone without closing it).
const FORGET_AFTER_IDLE: u64 = 10;

/// Process records kept before those of processes without a held connection are dropped.
const MAX_PROCESSES: usize = 4096;

/// Connections already released, remembered so that their late records are not shown as a
/// new connection; forgotten in bulk past this many.
const MAX_ENDED: usize = 1 << 16;

/// The live text view.
#[derive(Debug, Default)]
pub struct LiveView {
    options: LiveOptions,
    splitter: BlockSplitter,
    /// The section header, then every capture info record.
    preamble: Vec<u8>,
    processes: HashMap<u32, Vec<u8>>,
    conns: HashMap<ConnectionKey, LiveConnection>,
    /// First record time of each held connection: part of the output order.
    first_ns: HashMap<ConnectionKey, u64>,
    ended: HashSet<ConnectionKey>,
    ready: BinaryHeap<Ready>,
    warnings: Vec<String>,
    latest_ns: u64,
    /// Set for the pcapng view ([`LiveView::pcapng`]): whole connections as TCP sessions.
    pcapng: Option<LivePcapng>,
    /// When measuring ([`LiveView::measure_latency`]): for each part printed by a tick, how
    /// long after its time it was printed.
    latencies: Option<Vec<u64>>,
}

impl LiveView {
    /// A view printing with `options`.
    pub fn new(options: LiveOptions) -> LiveView {
        LiveView {
            options,
            ..LiveView::default()
        }
    }

    /// A view writing the decrypted connections as the pcapng of `spliff replay -o
    /// out.pcapng` (synthetic TCP sessions), each once it has ended.
    pub fn pcapng(options: LiveOptions, out: &mut dyn Write) -> io::Result<LiveView> {
        Ok(LiveView {
            options,
            pcapng: Some(LivePcapng::start(out)?),
            ..LiveView::default()
        })
    }

    /// Takes the trace bytes written since the last call.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        let mut records = Vec::new();
        let preamble = &mut self.preamble;
        self.splitter.push(bytes, |block| match classify(block) {
            BlockClass::Section if preamble.is_empty() => preamble.extend_from_slice(block),
            BlockClass::Record(Some(kind)) if kind != RecordKind::Interface => {
                records.extend_from_slice(block)
            }
            _ => {}
        })?;
        if !records.is_empty() && !self.preamble.is_empty() {
            self.take_records(&records);
        }
        Ok(())
    }

    /// Files the records of `blocks` (whole record blocks, back to back).
    fn take_records(&mut self, blocks: &[u8]) {
        let section_len = self.preamble_section_len();
        let mut trace = self.preamble[..section_len].to_vec();
        trace.extend_from_slice(blocks);
        for entry in TraceReader::new(&trace) {
            let Ok(Entry::Record(r)) = entry else {
                continue;
            };
            let at = r.offset as usize;
            let len =
                u32::from_le_bytes([trace[at + 4], trace[at + 5], trace[at + 6], trace[at + 7]]);
            let block = &trace[at..at + len as usize];
            let key = |conn_id| ConnectionKey {
                capture_id: r.capture_id,
                conn_id,
            };
            let (conn_key, pid, closes) = match &r.record {
                Record::CaptureInfo(_) => {
                    self.preamble.extend_from_slice(block);
                    continue;
                }
                Record::Process(p) => {
                    if self.processes.len() >= MAX_PROCESSES {
                        // Keep the processes of connections still held.
                        let held: HashSet<u32> = self.conns.values().map(|c| c.pid).collect();
                        self.processes.retain(|pid, _| held.contains(pid));
                    }
                    self.processes.insert(p.pid, block.to_vec());
                    continue;
                }
                Record::Connection(c) => (key(c.conn_id), c.pid, c.close_ns != 0),
                Record::TlsData(d) => (key(d.conn_id), d.pid, false),
                Record::Handshake(h) => (key(h.conn_id), 0, false),
                Record::Loss(l) if l.conn_id != 0 => (key(l.conn_id), 0, false),
                _ => continue,
            };
            self.latest_ns = self.latest_ns.max(r.ts_ns);
            if self.ended.contains(&conn_key) {
                continue;
            }
            let conn = self
                .conns
                .entry(conn_key)
                .or_insert_with(LiveConnection::new);
            let first = self.first_ns.entry(conn_key).or_insert(r.ts_ns);
            *first = (*first).min(r.ts_ns);
            if conn.pid == 0 {
                conn.pid = pid;
            }
            conn.closed |= closes;
            conn.add(block, r.ts_ns);
        }
    }

    /// Length of the section header at the start of the preamble.
    fn preamble_section_len(&self) -> usize {
        let b = &self.preamble;
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize
    }

    /// Rebuilds what changed and prints what is ready and at least the window behind `now_ns`
    /// (the capture's kernel clock).
    pub fn tick(&mut self, now_ns: u64, out: &mut dyn Write) -> io::Result<()> {
        let keys: Vec<ConnectionKey> = self.conns.keys().copied().collect();
        for key in keys {
            let Some(conn) = self.conns.get(&key) else {
                continue;
            };
            let quiet = now_ns.saturating_sub(conn.last_record_ns);
            if conn.dormant {
                if quiet >= self.options.idle_ns.saturating_mul(FORGET_AFTER_IDLE) {
                    self.release(key);
                }
                continue;
            }
            let large = conn.held() > self.options.max_connection_bytes;
            if large {
                self.warnings.push(format!(
                    "live view: connection {} of pid {} holds more than {} bytes; it is shown as \
                     it is now, then from its next records on (an HTTP/2 connection's headers \
                     may be missing there: their compression context is gone)",
                    key.conn_id, conn.pid, self.options.max_connection_bytes
                ));
            }
            if conn.closed {
                self.show(key, now_ns, Some(End::Release))?;
            } else if quiet >= self.options.idle_ns || large {
                self.show(key, now_ns, Some(End::Suspend))?;
            } else if conn.due(now_ns) {
                self.show(key, now_ns, None)?;
            }
        }
        self.print(
            now_ns.saturating_sub(self.options.window_ns),
            Some(now_ns),
            out,
        )
    }

    /// Rebuilds connection `key` and queues its new parts; with `end`, all of them (and the
    /// notes), then lets it go as `end` says.
    fn show(&mut self, key: ConnectionKey, now_ns: u64, end: Option<End>) -> io::Result<()> {
        let last = end.is_some();
        let mut preamble = self.preamble.clone();
        let Some(conn) = self.conns.get_mut(&key) else {
            return Ok(());
        };
        if let Some(process) = self.processes.get(&conn.pid) {
            preamble.extend_from_slice(process);
        }
        let trace = conn.trace(&preamble, now_ns);
        let options = &self.options;
        let parts = match &mut self.pcapng {
            None => rebuild(&trace, key, |c| {
                conn.parts(&c.info, &c.result.exchanges, options, last)
            }),
            // Packets only of a whole connection: its TCP session is planned at once.
            Some(sink) if last => rebuild(&trace, key, |c| sink.connection(c)),
            Some(_) => None,
        };
        if end == Some(End::Suspend) {
            conn.suspend();
        }
        let first = self.first_ns.get(&key).copied().unwrap_or(0);
        for Part { ts_ns, seq, bytes } in parts.transpose()?.unwrap_or_default() {
            self.ready.push(Reverse((ts_ns, first, key, seq, bytes)));
        }
        if end == Some(End::Release) {
            self.release(key);
        }
        Ok(())
    }

    /// Forgets connection `key`, remembering that it ended.
    fn release(&mut self, key: ConnectionKey) {
        self.conns.remove(&key);
        self.first_ns.remove(&key);
        if self.ended.len() >= MAX_ENDED {
            self.ended.clear();
        }
        self.ended.insert(key);
    }

    /// Prints the ready parts up to `until_ns`; `now_ns`: the clock, for the latency record.
    fn print(&mut self, until_ns: u64, now_ns: Option<u64>, out: &mut dyn Write) -> io::Result<()> {
        while let Some(Reverse(top)) = self.ready.peek() {
            if top.0 > until_ns {
                break;
            }
            if let Some(Reverse((ts_ns, .., bytes))) = self.ready.pop() {
                out.write_all(&bytes)?;
                if let (Some(l), Some(now)) = (&mut self.latencies, now_ns) {
                    l.push(now.saturating_sub(ts_ns));
                }
            }
        }
        out.flush()
    }

    /// Starts recording how long after its time each part is printed (a benchmark's
    /// measure; parts printed at the end of the capture are not counted).
    pub fn measure_latency(&mut self) {
        self.latencies.get_or_insert_with(Vec::new);
    }

    /// The latencies recorded so far, in nanoseconds.
    pub fn take_latencies(&mut self) -> Vec<u64> {
        self.latencies
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The end of the capture: every connection shown whole, everything printed.
    pub fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let keys: Vec<ConnectionKey> = self.conns.keys().copied().collect();
        for key in keys {
            self.show(key, u64::MAX, Some(End::Release))?;
        }
        self.print(u64::MAX, None, out)
    }

    /// Kernel time of the latest record taken.
    pub fn latest_ns(&self) -> u64 {
        self.latest_ns
    }

    /// Problems met since the last call, for standard error.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Records held now, in bytes (connections not released yet).
    pub fn held_bytes(&self) -> usize {
        self.conns.values().map(LiveConnection::held).sum()
    }
}
