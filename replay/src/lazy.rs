//! One connection rebuilt exchange by exchange, for connections too large to hold whole.
//!
//! [`reconstruct`](crate::reconstruct) returns every exchange of a connection at once, so its
//! memory grows with the connection (decoded bodies of every exchange). [`LazyConnection`]
//! hands them out one at a time, in the same order, with a lower bound of the start time of
//! every exchange still to come, which is what the pipeline's merge needs to write an exchange
//! before the rest of the connection is rebuilt.
//!
//! HTTP/1 is rebuilt incrementally ([`crate::http1::Replayer`]) over windowed streams
//! ([`DirectionStream::windowed`]): it holds one exchange and the plaintext of about one
//! exchange at a time. The parsers are the ones [`reconstruct`] runs, unchanged: each exchange
//! is parsed with a window from where the previous one stopped; when the stream reports that a
//! reader met the window's edge, the exchange is parsed again with a window twice as large (the
//! window then stays that large). So an exchange comes out exactly as the whole stream gives it,
//! and memory follows the largest exchange head, not the connection: a body of known length
//! is stepped over by its length, not read (its ranges are kept, [`InTrace`]; sinks read it
//! from the trace with [`LazyConnection::body_chunks`]), so the window need not hold it.
//!
//! HTTP/2 (detected from the ALPN, the client preface or, in a capture that began inside the
//! connection, a chain of frames at the start of a direction) is rebuilt incrementally too
//! ([`crate::http2::Replayer`], see `http2::connection`): both directions' frames are read one
//! at a time, merged in time order, by one state machine that holds the open streams and the
//! closed exchanges still waiting for an earlier one. A frame is read with the window where
//! the previous one ended and, when the read met the window's edge, again with the window
//! moved to it and then twice as large; a frame is at most 16 MiB + 9 bytes, so the window
//! follows the largest frame (or resync look-ahead). A first pass over each direction (the
//! HPACK table bound, see `http2::hpack`) reads the streams through the same windows. The
//! floor is the least of the held exchanges' start times and of the timestamps of the bytes
//! not read yet ([`SuffixMin`] at both cursors), or the connection's first record while a
//! stream without any timestamp may still come (only near malformed, damaged or cut frames).
//! [`reconstruct`] runs the same machine on whole streams, so both give the same exchanges.
//!
//! The protocol is decided from windows of the streams' starts that grow until the answer
//! cannot depend on them (`detect_windowed`: the same answer as [`detect`]). A connection
//! whose protocol only the whole stream can tell (no ALPN, no preface, no start line, no frame
//! chain at the start: an HTTP/1 capture that began inside a message, or not HTTP) is still
//! rebuilt whole, all its exchanges held until it is rendered, then handed out one by one.

use crate::detect::{START_LOOKAHEAD, detect_from_start};
use crate::exchange::{Exchange, InTrace};
use crate::http2::framer::looks_like_frames_settled;
use crate::pipeline::exchange_start_ns;
use crate::trace_input::ConnectionInfo;
use crate::{
    ConnectionStreams, Detection, DirectionStream, Evidence, Protocol, ReplayOptions, Side, detect,
    http1, http2, reconstruct,
};

/// First window of each direction by default; it doubles whenever an exchange does not fit.
pub const FIRST_WINDOW: u64 = 1 << 20;

/// A start-line scan ([`crate::http1::resync`]) that stops this close to where the window cuts
/// a run may have taken a line cut by the window for no line: more than the longest start line.
const SCAN_MARGIN: u64 = 64 << 10;

/// Whether the reads since the last check may have been changed by the window: a miss, or a
/// reader that stopped (at `reached`) near where the window cuts a run. Clears the miss.
fn window_failed(s: &DirectionStream<'_>, reached: u64) -> bool {
    let missed = s.take_missed();
    // A body stepped over by its length ends where the reader is, but it was not read:
    // reading stopped where the body began.
    let reached = match s.take_skip() {
        Some((from, to)) if to == reached => from,
        _ => reached,
    };
    missed
        || s.window_cut()
            .is_some_and(|cut| reached.saturating_add(SCAN_MARGIN) >= cut)
}

/// Shows all of a windowed stream (the whole-stream parsers need it).
fn widen(s: &mut DirectionStream<'_>) {
    s.set_window(s.start(), u64::MAX);
    s.take_missed();
}

/// The first run of `s`, or a prefix long enough for [`detect_from_start`]; `None` when the
/// window does not show that much.
fn first_run_prefix<'s>(s: &'s DirectionStream<'_>) -> Option<&'s [u8]> {
    let Some((offset, len)) = s.spans().next() else {
        return Some(&[]);
    };
    let bytes = s.contiguous(offset);
    let enough = bytes.len() as u64 == len || bytes.len() >= START_LOOKAHEAD;
    (!s.take_missed() && enough).then_some(bytes)
}

/// The protocol of a windowed connection from the starts of its streams, with windows from
/// `first_window` bytes that grow until the answer cannot depend on them: from the ALPN, the
/// preface or a start line ([`detect_from_start`]), else from a chain of HTTP/2 frames at the
/// start of a direction (a capture that began inside an HTTP/2 connection, as [`detect`]
/// finds it). `None`: only the whole streams can tell (they are then rebuilt whole).
fn detect_windowed(streams: &mut ConnectionStreams<'_>, first_window: u64) -> Option<Detection> {
    let mut window = first_window.max(1);
    loop {
        for s in [&mut streams.request, &mut streams.response] {
            s.set_window(s.start(), window);
            s.take_missed();
        }
        if let (Some(req), Some(resp)) = (
            first_run_prefix(&streams.request),
            first_run_prefix(&streams.response),
        ) {
            if let Some(found) = detect_from_start(streams.alpn.as_deref(), req, resp) {
                return Some(found);
            }
            // `detect` asks the response first, then the request: one settled yes is
            // enough, a no needs both.
            match (
                looks_like_frames_settled(&streams.response),
                looks_like_frames_settled(&streams.request),
            ) {
                (Some(true), _) | (_, Some(true)) => {
                    return Some(Detection {
                        protocol: Protocol::Http2,
                        evidence: Evidence::FrameChain,
                    });
                }
                (Some(false), Some(false)) => return None,
                _ => {}
            }
        }
        if window == u64::MAX {
            return None;
        }
        window = window.saturating_mul(2);
    }
}

/// Runs one HTTP/1 step with windows from the replayer's positions, widening them until no
/// reader met an edge (see the module documentation).
fn windowed_step<T>(
    replayer: &mut http1::Replayer,
    streams: &mut ConnectionStreams<'_>,
    windows: &mut [u64; 2],
    mut step: impl FnMut(&mut http1::Replayer, &ConnectionStreams<'_>) -> T,
    needs_the_rest: impl Fn(&T) -> bool,
) -> T {
    loop {
        let (req, resp) = replayer.positions();
        streams.request.set_window(req, windows[0]);
        streams.response.set_window(resp, windows[1]);
        streams.request.take_missed();
        streams.response.take_missed();
        let saved = replayer.clone();
        let out = step(replayer, streams);
        let (req, resp) = replayer.positions();
        let mut failed = [
            window_failed(&streams.request, req),
            window_failed(&streams.response, resp),
        ];
        if needs_the_rest(&out) {
            // An upgrade: the tunnel's messages run to the end of both streams.
            for (k, s) in [&streams.request, &streams.response]
                .into_iter()
                .enumerate()
            {
                let shown_to = s.window_range().map_or(u64::MAX, |w| w.1);
                if s.window_cut().is_some() || s.next_data(shown_to).is_some() {
                    failed[k] = true;
                    windows[k] = u64::MAX;
                }
            }
        }
        // A window can grow no further once it reaches the end of the offsets.
        let stuck = (0..2).all(|k| !failed[k] || windows[k] == u64::MAX);
        debug_assert!(
            !stuck || failed == [false, false],
            "window at its largest and still missed: {failed:?} {windows:?} at {:?}",
            replayer.positions()
        );
        if stuck {
            return out;
        }
        *replayer = saved;
        for (k, f) in failed.into_iter().enumerate() {
            if f {
                windows[k] = windows[k].saturating_mul(2);
            }
        }
    }
}

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
        /// Window sizes of the request and response streams.
        windows: [u64; 2],
        suffix: [SuffixMin; 2],
        /// An exchange may start at the connection's first record (no byte of it captured,
        /// see [`exchange_start_ns`]) only where a direction ends in missing bytes.
        may_fall_back: bool,
    },
    Http2 {
        replayer: Box<http2::Replayer>,
        /// Window sizes of the request and response streams.
        windows: [u64; 2],
        suffix: [SuffixMin; 2],
        /// Notes [`reconstruct`] adds after the protocol's, given once the replay is done.
        closing_notes: Vec<String>,
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

/// What [`reconstruct`] says after the protocol's own notes.
fn overlap_notes(streams: &ConnectionStreams<'_>) -> Vec<String> {
    [
        (Side::Request, &streams.request),
        (Side::Response, &streams.response),
    ]
    .into_iter()
    .filter(|(_, s)| s.overlapped_bytes() > 0)
    .map(|(side, s)| {
        format!(
            "{} {side} bytes arrived twice in the trace and were ignored",
            s.overlapped_bytes()
        )
    })
    .collect()
}

/// [`SuffixMin`] of both directions.
fn suffixes(streams: &ConnectionStreams<'_>) -> [SuffixMin; 2] {
    [
        SuffixMin::new(&streams.request),
        SuffixMin::new(&streams.response),
    ]
}

/// The least timestamp of the captured bytes at or after `at` (request, response offsets).
fn ahead_of(suffix: &[SuffixMin; 2], at: [u64; 2]) -> u64 {
    suffix[0].from(at[0]).min(suffix[1].from(at[1]))
}

/// Both streams as the HTTP/2 replayer reads them, each with its window size.
fn http2_sources<'s, 'a>(
    streams: &'s mut ConnectionStreams<'a>,
    windows: &'s mut [u64; 2],
) -> [http2::Windowed<'s, 'a>; 2] {
    let [w0, w1] = windows;
    [
        http2::Windowed {
            stream: &mut streams.request,
            window: w0,
        },
        http2::Windowed {
            stream: &mut streams.response,
            window: w1,
        },
    ]
}

/// Whether the trace knows of bytes after the last captured one (a trailing loss).
fn ends_in_a_hole(s: &DirectionStream<'_>) -> bool {
    let data_end = s.spans().last().map_or(s.start(), |(o, len)| o + len);
    s.end() > data_end
}

impl<'a> LazyConnection<'a> {
    /// Prepares the connection. HTTP/1 and HTTP/2 on windowed streams are rebuilt as
    /// exchanges are asked for; anything else (or streams that are not windowed) is rebuilt
    /// here, whole.
    pub fn new(
        info: ConnectionInfo,
        streams: ConnectionStreams<'a>,
        options: &ReplayOptions,
    ) -> LazyConnection<'a> {
        Self::with_window(info, streams, options, FIRST_WINDOW)
    }

    /// [`LazyConnection::new`] with windows starting at `first_window` bytes (at least 1).
    pub fn with_window(
        info: ConnectionInfo,
        mut streams: ConnectionStreams<'a>,
        options: &ReplayOptions,
        first_window: u64,
    ) -> LazyConnection<'a> {
        let windowed = streams.request.is_windowed() || streams.response.is_windowed();
        let quick = if windowed {
            detect_windowed(&mut streams, first_window)
        } else {
            None
        };
        if let Some(detection) = quick.filter(|d| d.protocol == Protocol::Http2) {
            return Self::http2(info, streams, options, detection, first_window);
        }
        let http1 = quick.filter(|d| d.protocol == Protocol::Http1);
        let Some(detection) = http1.or_else(|| {
            (!windowed)
                .then(|| detect(streams.alpn.as_deref(), &streams.request, &streams.response))
                .filter(|d| d.protocol == Protocol::Http1)
        }) else {
            return Self::whole(info, streams, options);
        };
        let mut windows = [first_window.max(1); 2];
        let mut replayer = http1::Replayer::new(&streams.request, &streams.response);
        if windowed {
            // Locating the first messages reads too: redo it until no edge was met.
            let (a, b) = (streams.request.start(), streams.response.start());
            loop {
                streams.request.set_window(a, windows[0]);
                streams.response.set_window(b, windows[1]);
                streams.request.take_missed();
                streams.response.take_missed();
                replayer = http1::Replayer::new(&streams.request, &streams.response);
                let (req, resp) = replayer.positions();
                let failed = [
                    window_failed(&streams.request, req),
                    window_failed(&streams.response, resp),
                ];
                let stuck = (0..2).all(|k| !failed[k] || windows[k] == u64::MAX);
                debug_assert!(
                    !stuck || failed == [false, false],
                    "window at its largest and still missed: {failed:?}"
                );
                if stuck {
                    break;
                }
                for (k, f) in failed.into_iter().enumerate() {
                    if f {
                        windows[k] = windows[k].saturating_mul(2);
                    }
                }
            }
        }
        let mut notes = replayer.notes.clone();
        notes.extend(overlap_notes(&streams));
        let source = Source::Http1 {
            replayer: Box::new(replayer),
            windows,
            suffix: suffixes(&streams),
            may_fall_back: ends_in_a_hole(&streams.request) || ends_in_a_hole(&streams.response),
        };
        Self::assemble(info, streams, detection, notes, source)
    }

    fn assemble(
        info: ConnectionInfo,
        streams: ConnectionStreams<'a>,
        detection: Detection,
        notes: Vec<String>,
        source: Source,
    ) -> LazyConnection<'a> {
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

    /// HTTP/2 on windowed streams, rebuilt event by event ([`http2::Replayer`]).
    fn http2(
        info: ConnectionInfo,
        mut streams: ConnectionStreams<'a>,
        options: &ReplayOptions,
        detection: Detection,
        first_window: u64,
    ) -> LazyConnection<'a> {
        let limits = http2::Limits {
            max_table_size: options.max_hpack_table_size,
            max_header_block: options.max_header_block,
        };
        let mut windows = [first_window.max(1); 2];
        let closed = streams.closed;
        let mut sources = http2_sources(&mut streams, &mut windows);
        let mut replayer = http2::Replayer::new(&mut sources, closed, limits);
        let notes = replayer.take_notes();
        let closing_notes = overlap_notes(&streams);
        let source = Source::Http2 {
            replayer: Box::new(replayer),
            windows,
            suffix: suffixes(&streams),
            closing_notes,
        };
        Self::assemble(info, streams, detection, notes, source)
    }

    /// Rebuilt whole ([`reconstruct`]), handed out one by one.
    fn whole(
        info: ConnectionInfo,
        mut streams: ConnectionStreams<'a>,
        options: &ReplayOptions,
    ) -> LazyConnection<'a> {
        widen(&mut streams.request);
        widen(&mut streams.response);
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
        Self::assemble(info, streams, r.detection, r.notes, source)
    }

    fn pull(&mut self) -> Option<Exchange> {
        match &mut self.source {
            Source::Http1 {
                replayer, windows, ..
            } => windowed_step(
                replayer,
                &mut self.streams,
                windows,
                |r, s| r.next(&s.request, &s.response, s.closed),
                |ex| ex.as_ref().is_some_and(|e| e.upgrade.is_some()),
            ),
            Source::Http2 {
                replayer,
                windows,
                suffix,
                closing_notes,
            } => {
                let mut sources = http2_sources(&mut self.streams, windows);
                let ahead = |at: [u64; 2]| ahead_of(suffix, at);
                let ex = loop {
                    if let Some(ex) = replayer.ready_exchange(ahead) {
                        break Some(ex);
                    }
                    if !replayer.step(&mut sources) && replayer.is_done() {
                        break None;
                    }
                };
                self.notes.append(&mut replayer.take_notes());
                if replayer.is_done() {
                    self.notes.append(closing_notes);
                }
                ex
            }
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
                ..
            } => {
                if replayer.is_done() {
                    u64::MAX
                } else {
                    // Every start time still to come is the timestamp of a captured byte at
                    // or after the cursors, or else the connection's first record.
                    let (req, resp) = replayer.positions();
                    let bound = ahead_of(suffix, [req, resp]);
                    if *may_fall_back {
                        bound.min(self.info.first_ts_ns)
                    } else {
                        bound
                    }
                }
            }
            Source::Http2 {
                replayer, suffix, ..
            } => {
                let ahead = ahead_of(suffix, replayer.positions());
                replayer.floor(ahead, self.info.first_ts_ns)
            }
            Source::Whole { floors, taken, .. } => floors.get(*taken).copied().unwrap_or(u64::MAX),
        };
        peeked.min(rest)
    }

    /// The bytes of a body of one of its exchanges left in the trace ([`InTrace`]), in pieces
    /// as the trace holds them.
    pub fn body_chunks<'s>(
        &'s self,
        side: Side,
        body: &'s InTrace,
    ) -> impl Iterator<Item = &'s [u8]> + 's {
        let stream = match side {
            Side::Request => &self.streams.request,
            Side::Response => &self.streams.response,
        };
        body.ranges
            .iter()
            .flat_map(move |&(offset, len)| stream.chunks(offset, len))
    }

    /// An exchange with its bodies copied out of the trace into `body` (for callers that
    /// want them whole; sinks read them in pieces instead).
    pub fn materialise(&self, mut ex: Exchange) -> Exchange {
        let copy = |side, b: &InTrace| {
            let mut body = Vec::new();
            for piece in self.body_chunks(side, b) {
                body.extend_from_slice(piece);
            }
            body
        };
        if let Some(b) = ex.request.in_trace.take() {
            ex.request.body = copy(Side::Request, &b);
        }
        if let Some(r) = ex.response.as_mut()
            && let Some(b) = r.in_trace.take()
        {
            r.body = copy(Side::Response, &b);
        }
        ex
    }

    /// Plaintext bytes the connection's streams show at the moment (windowed streams: their
    /// windows; others: all of it).
    pub fn plaintext_held(&self) -> u64 {
        [&self.streams.request, &self.streams.response]
            .iter()
            .map(|s| {
                if s.is_windowed() {
                    s.window_len()
                } else {
                    s.data_len()
                }
            })
            .sum()
    }

    /// Exchanges rebuilt and not yet handed out (what this connection holds of them).
    pub fn held(&self) -> usize {
        let rest = match &self.source {
            Source::Http1 { .. } => 0,
            Source::Http2 { replayer, .. } => replayer.held(),
            Source::Whole { exchanges, .. } => exchanges.len(),
        };
        rest + usize::from(self.peeked.is_some())
    }
}

/// Rebuilds one connection as the pipeline rebuilds a large one (windowed streams, windows
/// from `first_window` bytes) and collects the result, which is what [`reconstruct`] gives for
/// the same pieces. For tests of that equivalence; panics when an exchange starts before the
/// floor [`LazyConnection::floor`] gave for it.
#[doc(hidden)]
pub fn reconstruct_windowed(
    alpn: Option<&[u8]>,
    request: Vec<crate::Piece<'_>>,
    response: Vec<crate::Piece<'_>>,
    closed: bool,
    options: &ReplayOptions,
    first_window: u64,
) -> crate::Reconstruction {
    let streams = ConnectionStreams {
        alpn: alpn.map(<[u8]>::to_vec),
        request: DirectionStream::windowed(request),
        response: DirectionStream::windowed(response),
        closed,
    };
    let info = ConnectionInfo {
        key: crate::trace_input::ConnectionKey {
            capture_id: spliff_formats::CaptureId([0; 16]),
            conn_id: 0,
        },
        pid: 0,
        process: None,
        tls_library: Default::default(),
        library_path: String::new(),
        alpn: None,
        sni: None,
        local: None,
        remote: None,
        role: Default::default(),
        open_ns: None,
        close_ns: None,
        handshake_ns: None,
        first_ts_ns: 0,
        clock: None,
        request_direction: spliff_formats::Direction::Egress,
        notes: Vec::new(),
        unix_path: None,
    };
    let mut conn = LazyConnection::with_window(info, streams, options, first_window);
    let mut exchanges = Vec::new();
    loop {
        let floor = conn.floor();
        let Some((_, ex)) = conn.next_exchange() else {
            break;
        };
        // The merge's contract: nothing still to come starts before the floor.
        assert!(
            exchange_start_ns(&ex, &conn.info) >= floor,
            "exchange {} starts before the floor {floor}",
            exchanges.len()
        );
        exchanges.push(conn.materialise(ex));
    }
    crate::Reconstruction {
        detection: conn.detection,
        exchanges,
        notes: conn.notes,
    }
}
