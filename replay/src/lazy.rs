//! One connection rebuilt exchange by exchange, for connections too large to hold whole.
//!
//! [`reconstruct`](crate::reconstruct) returns every exchange of a connection at once, so its
//! memory grows with the connection (decoded bodies of every exchange). [`LazyConnection`]
//! hands them out one at a time, in the same order, with a lower bound of the start time of
//! every exchange still to come, which is what the pipeline's merge needs to write an exchange
//! before the rest of the connection is rebuilt.
//!
//! HTTP/1 is rebuilt incrementally ([`crate::http1::Replayer`]): it holds one exchange at a
//! time. HTTP/2 is still rebuilt whole (its two directions are processed one after the other,
//! see `http2::connection`), then handed out one by one: its exchanges are all held until the
//! connection is rendered. Both hold the connection's assembled plaintext
//! ([`DirectionStream`]), which is a copy whenever a run spans more than one trace record.

use crate::exchange::Exchange;
use crate::pipeline::exchange_start_ns;
use crate::trace_input::ConnectionInfo;
use crate::{
    ConnectionStreams, Detection, DirectionStream, Protocol, ReplayOptions, Side, detect, http1,
    reconstruct,
};

/// Minimum timestamp of the stamps covering the bytes at or after an offset.
#[derive(Debug, Default)]
struct SuffixMin {
    /// `(stamp offset, min ts of this stamp and all later ones)`, by offset.
    stamps: Vec<(u64, u64)>,
}

impl SuffixMin {
    fn new(stream: &DirectionStream<'_>) -> SuffixMin {
        let mut stamps: Vec<(u64, u64)> = stream.stamps().collect();
        let mut min = u64::MAX;
        for s in stamps.iter_mut().rev() {
            min = min.min(s.1);
            s.1 = min;
        }
        SuffixMin { stamps }
    }

    /// Lower bound of `ts_at(p)` for every captured `p >= pos` (`u64::MAX`: none).
    fn from(&self, pos: u64) -> u64 {
        // The stamp covering `pos` starts at or before it.
        let i = self
            .stamps
            .partition_point(|s| s.0 <= pos)
            .saturating_sub(1);
        self.stamps.get(i).map_or(u64::MAX, |s| s.1)
    }
}

#[derive(Debug)]
enum Source {
    Http1 {
        replayer: Box<http1::Replayer>,
        suffix: [SuffixMin; 2],
        /// An exchange may start at the connection's first record (no byte of it captured,
        /// see [`exchange_start_ns`]) only where a direction ends in missing bytes.
        may_fall_back: bool,
    },
    /// Rebuilt whole; `floors[i]`: the least start time of exchanges `i..`.
    Whole {
        exchanges: std::vec::IntoIter<Exchange>,
        floors: Vec<u64>,
        taken: usize,
    },
}

/// A connection whose exchanges are rebuilt on demand (see the module documentation).
#[derive(Debug)]
pub struct LazyConnection<'a> {
    /// What the trace says about it.
    pub info: ConnectionInfo,
    /// Its plaintext streams.
    pub streams: ConnectionStreams<'a>,
    /// Protocol detected, and on what evidence.
    pub detection: Detection,
    /// Connection-level observations (as in [`crate::Reconstruction::notes`]).
    pub notes: Vec<String>,
    source: Source,
    peeked: Option<Exchange>,
    next_index: usize,
}

/// Whether the trace knows of bytes after the last captured one (a trailing loss).
fn ends_in_a_hole(s: &DirectionStream<'_>) -> bool {
    let data_end = s
        .runs()
        .last()
        .map_or(s.start(), |(o, b)| o + b.len() as u64);
    s.end() > data_end
}

impl<'a> LazyConnection<'a> {
    /// Prepares the connection; HTTP/2 (and unknown protocols) are rebuilt here, HTTP/1 as
    /// exchanges are asked for.
    pub fn new(
        info: ConnectionInfo,
        streams: ConnectionStreams<'a>,
        options: &ReplayOptions,
    ) -> LazyConnection<'a> {
        let detection = detect(streams.alpn.as_deref(), &streams.request, &streams.response);
        let (source, detection, mut notes) = if detection.protocol == Protocol::Http1 {
            let replayer = Box::new(http1::Replayer::new(&streams.request, &streams.response));
            let notes = replayer.notes.clone();
            let source = Source::Http1 {
                replayer,
                suffix: [
                    SuffixMin::new(&streams.request),
                    SuffixMin::new(&streams.response),
                ],
                may_fall_back: ends_in_a_hole(&streams.request)
                    || ends_in_a_hole(&streams.response),
            };
            (source, detection, notes)
        } else {
            let r = reconstruct(&streams, options);
            let mut floors: Vec<u64> = r
                .exchanges
                .iter()
                .map(|ex| exchange_start_ns(ex, &info))
                .collect();
            for i in (0..floors.len().saturating_sub(1)).rev() {
                floors[i] = floors[i].min(floors[i + 1]);
            }
            let source = Source::Whole {
                exchanges: r.exchanges.into_iter(),
                floors,
                taken: 0,
            };
            // reconstruct() already added the overlap notes below.
            return LazyConnection {
                info,
                streams,
                detection: r.detection,
                notes: r.notes,
                source,
                peeked: None,
                next_index: 0,
            };
        };
        // As reconstruct() does, after the protocol's own notes.
        for (side, stream) in [
            (Side::Request, &streams.request),
            (Side::Response, &streams.response),
        ] {
            if stream.overlapped_bytes() > 0 {
                notes.push(format!(
                    "{} {side} bytes arrived twice in the trace and were ignored",
                    stream.overlapped_bytes()
                ));
            }
        }
        LazyConnection {
            info,
            streams,
            detection,
            notes,
            source,
            peeked: None,
            next_index: 0,
        }
    }

    fn pull(&mut self) -> Option<Exchange> {
        match &mut self.source {
            Source::Http1 { replayer, .. } => replayer.next(
                &self.streams.request,
                &self.streams.response,
                self.streams.closed,
            ),
            Source::Whole {
                exchanges, taken, ..
            } => {
                let ex = exchanges.next()?;
                *taken += 1;
                Some(ex)
            }
        }
    }

    /// The next exchange and its position in the connection (from 0).
    pub fn next_exchange(&mut self) -> Option<(usize, Exchange)> {
        let ex = self.peeked.take().or_else(|| self.pull())?;
        let index = self.next_index;
        self.next_index += 1;
        Some((index, ex))
    }

    /// Whether the connection yields at least one exchange (rebuilds the first one).
    pub fn has_exchanges(&mut self) -> bool {
        if self.peeked.is_none() {
            self.peeked = self.pull();
        }
        self.peeked.is_some() || self.next_index > 0
    }

    /// A lower bound of [`exchange_start_ns`] of every exchange
    /// [`LazyConnection::next_exchange`] will still return; `u64::MAX` when none is left.
    pub fn floor(&self) -> u64 {
        let peeked = self
            .peeked
            .as_ref()
            .map_or(u64::MAX, |ex| exchange_start_ns(ex, &self.info));
        let rest = match &self.source {
            Source::Http1 {
                replayer,
                suffix,
                may_fall_back,
            } => {
                if replayer.is_done() {
                    u64::MAX
                } else {
                    // Every start time still to come is the timestamp of a captured byte at
                    // or after the cursors, or else the connection's first record.
                    let (req, resp) = replayer.positions();
                    let bound = suffix[0].from(req).min(suffix[1].from(resp));
                    if *may_fall_back {
                        bound.min(self.info.first_ts_ns)
                    } else {
                        bound
                    }
                }
            }
            Source::Whole { floors, taken, .. } => floors.get(*taken).copied().unwrap_or(u64::MAX),
        };
        peeked.min(rest)
    }

    /// Exchanges rebuilt and not yet handed out (what this connection holds of them).
    pub fn held(&self) -> usize {
        let rest = match &self.source {
            Source::Http1 { .. } => 0,
            Source::Whole { exchanges, .. } => exchanges.len(),
        };
        rest + usize::from(self.peeked.is_some())
    }
}
