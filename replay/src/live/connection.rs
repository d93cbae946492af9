//! One connection of the live view: its records as they arrive, rebuilt with the replay's own
//! reader and reconstruction, and which of its parts were shown already.

use std::collections::HashSet;
use std::io;

use crate::exchange::Exchange;
use crate::pipeline::ReplayedConnection;
use crate::text::parts::{
    Part, PartKind, compact_part, connection_end_ns, handshake_part, notes_part, request_part,
    response_part,
};
use crate::trace_input::{ConnectionInfo, ConnectionKey, TraceIndex};
use crate::{ReplayOptions, reconstruct};

use spliff_formats::RecordKind;

use super::LiveOptions;
use super::blocks::{BlockClass, classify};

/// A connection's records (their blocks, as written) and what was shown of it.
#[derive(Debug)]
pub(super) struct LiveConnection {
    pub pid: u32,
    blocks: Vec<u8>,
    /// Bytes of records since the last rebuild.
    pub new_bytes: u64,
    /// Kernel time of its latest record.
    pub last_record_ns: u64,
    /// Kernel time (the view's clock) of the last rebuild.
    pub last_rebuild_ns: u64,
    /// A record said it closed: rebuilt a last time, then released.
    pub closed: bool,
    shown: HashSet<(usize, PartKind)>,
    handshake_shown: bool,
    /// Shown whole and emptied ([`LiveConnection::suspend`]) until its next record.
    pub dormant: bool,
}

/// Whether an exchange is over as far as the capture can tell now: a response, and nothing
/// missing or still open.
fn complete(ex: &Exchange) -> bool {
    ex.response.is_some() && ex.incomplete.is_empty() && ex.loss.is_empty()
}

fn request_ready(ex: &Exchange, bodies: bool) -> bool {
    if bodies {
        return complete(ex);
    }
    ex.request.head_size.is_some() || (ex.request.head_missing() && ex.response.is_some())
}

fn response_ready(ex: &Exchange, bodies: bool) -> bool {
    let head = ex
        .response
        .as_ref()
        .is_some_and(|r| r.head_size.is_some() || r.status.is_some());
    head && (!bodies || complete(ex))
}

/// Rebuilds connection `key` of `trace` (from [`LiveConnection::trace`]) with the replay's own
/// reader and reconstruction, and hands it to `f`.
pub(super) fn rebuild<R>(
    trace: &[u8],
    key: ConnectionKey,
    f: impl FnOnce(&ReplayedConnection<'_>) -> R,
) -> Option<R> {
    let mut index = TraceIndex::read(trace);
    let pending = index
        .connections
        .iter()
        .position(|c| c.key() == key)
        .map(|i| index.connections.swap_remove(i))?;
    let conn = index.assemble(pending);
    let result = reconstruct(&conn.streams, &ReplayOptions::default());
    Some(f(&ReplayedConnection {
        info: conn.info,
        result,
        streams: conn.streams,
    }))
}

impl LiveConnection {
    pub fn new() -> LiveConnection {
        LiveConnection {
            pid: 0,
            blocks: Vec::new(),
            new_bytes: 0,
            last_record_ns: 0,
            last_rebuild_ns: 0,
            closed: false,
            shown: HashSet::new(),
            handshake_shown: false,
            dormant: false,
        }
    }

    pub fn add(&mut self, block: &[u8], ts_ns: u64) {
        self.blocks.extend_from_slice(block);
        self.new_bytes += block.len() as u64;
        self.last_record_ns = self.last_record_ns.max(ts_ns);
        self.dormant = false;
    }

    /// Drops what it holds but its connection and handshake records (who, ALPN, role): later
    /// records are rebuilt as a capture that began there.
    pub fn suspend(&mut self) {
        let mut kept = Vec::new();
        let mut at = 0;
        while at + 8 <= self.blocks.len() {
            let b = &self.blocks[at..];
            let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
            let block = &b[..len.min(b.len())];
            if matches!(
                classify(block),
                BlockClass::Record(Some(RecordKind::Connection | RecordKind::Handshake))
            ) {
                kept.extend_from_slice(block);
            }
            at += len.max(8);
        }
        self.blocks = kept;
        self.new_bytes = 0;
        self.shown.clear();
        self.dormant = true;
    }

    /// Bytes of records held.
    pub fn held(&self) -> usize {
        self.blocks.len()
    }

    /// Whether a rebuild is worth it now: new records, and either many of them compared with
    /// what is held or long enough since the last one (10 ms per MiB held). Rebuilding from
    /// the start each time costs what is held, so this keeps the total cost linear.
    pub fn due(&self, now_ns: u64) -> bool {
        let held = self.blocks.len() as u64;
        self.new_bytes > 0
            && (self.new_bytes * 4 >= held
                || now_ns.saturating_sub(self.last_rebuild_ns) >= held * 10)
    }

    /// The connection as a trace of its own: `preamble` (section header, capture info, its
    /// process) and its records. Counts as a rebuild at `now_ns`.
    pub fn trace(&mut self, preamble: &[u8], now_ns: u64) -> Vec<u8> {
        self.new_bytes = 0;
        self.last_rebuild_ns = now_ns;
        let mut trace = Vec::with_capacity(preamble.len() + self.blocks.len());
        trace.extend_from_slice(preamble);
        trace.extend_from_slice(&self.blocks);
        trace
    }

    /// The parts of the rebuilt connection that are ready and were not shown yet; `last`: the
    /// connection is over (everything is shown, with the notes).
    pub fn parts(
        &mut self,
        info: &ConnectionInfo,
        exchanges: &[Exchange],
        options: &LiveOptions,
        last: bool,
    ) -> io::Result<Vec<Part>> {
        let text = &options.text;
        let bodies = text.bodies || text.hexdump;
        let mut parts = Vec::new();
        if !self.handshake_shown
            && options.filter.keeps_process(info)
            && options.filter.hosts.is_empty()
            && options.filter.urls.is_empty()
            && let Some(p) = handshake_part(info, text)
        {
            self.handshake_shown = true;
            parts.push(p);
        }
        for (i, ex) in exchanges.iter().enumerate() {
            if !options.filter.keeps(info, ex) {
                continue;
            }
            if text.compact {
                if (last || complete(ex)) && self.shown.insert((i, PartKind::Compact)) {
                    parts.push(compact_part(info, i, ex, text)?);
                }
                continue;
            }
            if (last || request_ready(ex, bodies)) && self.shown.insert((i, PartKind::Request)) {
                parts.push(request_part(info, i, ex, text, &options.decode)?);
            }
            if (last || response_ready(ex, bodies))
                && ex.response.is_some()
                && self.shown.insert((i, PartKind::Response))
            {
                parts.extend(response_part(info, i, ex, text, &options.decode)?);
            }
            if last {
                parts.extend(notes_part(info, i, ex, text, connection_end_ns(info))?);
            }
        }
        Ok(parts)
    }
}
