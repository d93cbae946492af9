//! Turning both directions' frames into per-stream exchanges, incrementally.
//!
//! [`Replayer`] reads the two directions' frames ([`Framer`]) merged in time order: the next
//! event comes from the direction whose next byte has the smaller timestamp (a byte without
//! one, i.e. a hole without a loss record, takes the largest timestamp seen so far in its
//! direction; ties go to the request side, whose frames cause the response's). Each direction
//! keeps its own HPACK decoder and header-block assembly, so decoding does not depend on the
//! interleaving; what does is only what one direction's frames do to streams the other one
//! touched, and there the time order is the meaning: the first RST_STREAM of a stream wins, a
//! loss marks the streams open at that moment.
//!
//! SETTINGS_HEADER_TABLE_SIZE bounds the peer's decoder over the whole connection (see
//! [`super::hpack`]): a first framing pass over each direction collects it, so decoding never
//! depends on when the setting is met. That pass also notes where frames that could make a
//! stream without any timestamp lie (malformed, damaged, cut or unfinished header blocks), for
//! [`Replayer::floor`].
//!
//! A stream is *closed* once both halves ended (END_STREAM) or it was reset: its exchange is
//! final then. In a capture begun inside the connection, a stream first met by its response
//! closes when the response ends (its request went before the capture). Frames that still arrive for it (data in flight when a RST_STREAM crossed it, a
//! second reset) are not added to it: the endpoint that closed it discards them too
//! (RFC 9113 §5.1); a connection note tells how many there were. A GOAWAY marks the streams its
//! sender never processed that are still open when it arrives or that open later. Closed
//! exchanges wait for their turn in the connection's order (first byte time, then stream id)
//! and are handed out as soon as no open stream and no frame still to be read can come before
//! them ([`Replayer::next_exchange`]): memory is the open streams, not the connection. A stream
//! that never closes holds back every exchange after it until the capture ends.
//!
//! Server frames on a client stream the captured request direction shows was never opened
//! (it holds every stream opened since the connection began, or since its first captured one,
//! and lost nothing) are ignored with a note: they can only be a lookalike found by a
//! resynchronisation, and showing them would invent an exchange.
//!
//! [`replay`] (the whole-connection path) runs the same machine to the end and takes every
//! exchange, so both paths give the same result by construction.

use std::collections::{BTreeMap, BTreeSet};

use super::frame::{Frame, FrameHead, Kind, SETTINGS_HEADER_TABLE_SIZE, flags};
use super::framer::{Event, Framer, Located};
use super::hpack::{DEFAULT_TABLE_SIZE, HeaderDecoder};
use super::stream::{DataBytes, Place, StreamState};
use crate::exchange::{Exchange, Loss, StreamReset, h2_error_name};
use crate::stream::{DirectionStream, Side};

/// Limits for HTTP/2 replay.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest HPACK table any peer may make us keep.
    pub max_table_size: usize,
    /// Largest header block (fragments joined), and decoded header list.
    pub max_header_block: usize,
}

/// Result of replaying one HTTP/2 connection.
#[derive(Debug, Default)]
pub(crate) struct Http2Result {
    pub exchanges: Vec<Exchange>,
    pub notes: Vec<String>,
}

#[derive(Debug)]
enum BlockKind {
    Headers { end_stream: bool },
    PushPromise { promised_id: u32 },
}

/// A header block whose END_HEADERS has not arrived yet.
#[derive(Debug)]
struct Pending {
    stream_id: u32,
    kind: BlockKind,
    buf: Vec<u8>,
    place: Place,
}

#[derive(Debug)]
struct GoAwaySeen {
    by: Side,
    last_stream_id: u32,
}

/// What one direction's frames carry over from one to the next.
#[derive(Debug)]
struct DirState {
    decoder: HeaderDecoder,
    pending: Option<Pending>,
    from_start: bool,
    first_event: bool,
    ended: bool,
}

/// Where one direction's bytes are read from: a whole stream, or a windowed one whose window
/// moves and grows when a step needed bytes beyond it.
pub(crate) trait FrameSource<'a> {
    /// The stream.
    fn stream(&self) -> &DirectionStream<'a>;
    /// Shows more of the stream from `pos` after a step met the window's edge; `false` when
    /// it cannot show more (then the answer already was the whole stream's).
    fn widen(&mut self, pos: u64) -> bool;
}

impl<'a> FrameSource<'a> for &DirectionStream<'a> {
    fn stream(&self) -> &DirectionStream<'a> {
        self
    }

    fn widen(&mut self, _pos: u64) -> bool {
        false
    }
}

/// A windowed stream and the size of its window, which doubles whenever a step at the
/// window's start still needed more.
#[derive(Debug)]
pub(crate) struct Windowed<'s, 'a> {
    /// The stream (windowed, or else shown whole).
    pub stream: &'s mut DirectionStream<'a>,
    /// Its window's size, kept by the caller from one step to the next.
    pub window: &'s mut u64,
}

impl<'a> FrameSource<'a> for Windowed<'_, 'a> {
    fn stream(&self) -> &DirectionStream<'a> {
        self.stream
    }

    fn widen(&mut self, pos: u64) -> bool {
        // A window that already shows `window` bytes from `pos` is too small: grow it.
        let covered = self
            .stream
            .window_range()
            .is_some_and(|w| w.0 <= pos && pos.saturating_add(*self.window) <= w.1);
        if covered {
            if *self.window == u64::MAX {
                return false;
            }
            *self.window = self.window.saturating_mul(2);
        }
        self.stream.set_window(pos, *self.window);
        true
    }
}

/// The next event of `framer` from `source`, as the whole stream gives it: the step is redone
/// with a wider window until it met no edge of the window.
fn step_event<'a, S: FrameSource<'a>, T>(
    framer: &mut Framer,
    source: &mut S,
    mut take: impl FnMut(Option<Event<'_>>, &Framer) -> T,
) -> T {
    loop {
        let saved = framer.clone();
        let stream = source.stream();
        stream.take_missed();
        let event = framer.next(stream);
        let failed =
            stream.take_missed() || stream.window_cut().is_some_and(|cut| framer.reach() > cut);
        if !failed {
            return take(event, framer);
        }
        drop(event);
        *framer = saved;
        if !source.widen(framer_position(framer, source.stream())) {
            // The stream shows all it has: this is the whole stream's answer.
            let event = framer.next(source.stream());
            return take(event, framer);
        }
    }
}

/// Where `framer`'s next step begins reading.
fn framer_position(framer: &Framer, stream: &DirectionStream<'_>) -> u64 {
    if framer.is_started() {
        framer.position()
    } else {
        stream.start()
    }
}

/// What the first pass learns of one direction.
#[derive(Debug, Default, Clone, Copy)]
struct Survey {
    /// Largest SETTINGS_HEADER_TABLE_SIZE the direction advertised.
    table_size: Option<u32>,
    /// Offset where the last frame that may leave a stream without any timestamp ends
    /// (`u64::MAX`: the direction's end may).
    odd_until: Option<u64>,
}

/// Frames one direction through, collecting what [`Survey`] holds.
fn survey<'a, S: FrameSource<'a>>(side: Side, source: &mut S, max_header_block: usize) -> Survey {
    let mut out = Survey::default();
    let mut framer = Framer::new(side);
    let mut pending = false;
    loop {
        let go_on = step_event(&mut framer, source, |event, framer| {
            let Some(event) = event else {
                return false;
            };
            // A stream can be left without a timestamp only by a frame it cannot take as
            // data or a finished header block (see `Conn::stream`'s callers).
            let clean = match &event {
                Event::Frame(Located { frame, .. }) => match frame {
                    Frame::Continuation(_) => false,
                    Frame::Headers(h) => h.end_headers && h.fragment.len() <= max_header_block,
                    Frame::PushPromise(p) => p.end_headers && p.fragment.len() <= max_header_block,
                    _ => true,
                },
                Event::Lost { .. } | Event::Desync { .. } => true,
                Event::Invalid { .. } | Event::Damaged { .. } | Event::Truncated { .. } => false,
            };
            if !clean || pending {
                out.odd_until = Some(framer.position());
            }
            pending = match &event {
                Event::Frame(Located { frame, .. }) => match frame {
                    Frame::Headers(h) => !h.end_headers,
                    Frame::PushPromise(p) => !p.end_headers,
                    Frame::Continuation(c) => pending && !c.end_headers,
                    _ => false,
                },
                _ => false,
            };
            if let Event::Frame(Located {
                frame: Frame::Settings(s),
                ..
            }) = &event
            {
                let v = s
                    .values
                    .iter()
                    .filter(|(id, _)| *id == SETTINGS_HEADER_TABLE_SIZE)
                    .map(|(_, v)| *v)
                    .max();
                out.table_size = out.table_size.max(v);
            }
            true
        });
        if !go_on {
            break;
        }
    }
    if pending {
        out.odd_until = Some(u64::MAX);
    }
    out
}

/// Replays a whole connection (both streams shown whole).
pub(crate) fn replay(
    request: &DirectionStream,
    response: &DirectionStream,
    closed: bool,
    limits: Limits,
) -> Http2Result {
    let mut sources = [request, response];
    let mut r = Replayer::new(&mut sources, closed, limits);
    while r.step(&mut sources) {}
    let mut notes = std::mem::take(&mut r.notes);
    notes.append(&mut r.conn.notes);
    Http2Result {
        exchanges: std::mem::take(&mut r.conn.ready).into_values().collect(),
        notes,
    }
}

/// One HTTP/2 connection replayed event by event (see the module documentation).
#[derive(Debug)]
pub(crate) struct Replayer {
    conn: Conn,
    framers: [Framer; 2],
    /// Largest timestamp met in each direction, for bytes without one.
    last_ts: [u64; 2],
    survey: [Survey; 2],
    /// Notes from before the first event.
    notes: Vec<String>,
    /// Both directions were read to their end and every stream closed.
    finished: bool,
}

impl Replayer {
    /// Surveys both directions (see the module documentation) and prepares the replay.
    pub(crate) fn new<'a, S: FrameSource<'a>>(
        sources: &mut [S; 2],
        closed: bool,
        limits: Limits,
    ) -> Replayer {
        let [req_src, resp_src] = sources;
        let survey = [
            survey(Side::Request, req_src, limits.max_header_block),
            survey(Side::Response, resp_src, limits.max_header_block),
        ];
        let mut framers = [Framer::new(Side::Request), Framer::new(Side::Response)];
        // Starting reads the prefaces: how each direction begins.
        for (framer, source) in framers.iter_mut().zip(sources.iter_mut()) {
            framer_start(framer, source);
        }
        let mut notes = Vec::new();
        let in_trace = sources.iter().any(|s| s.stream().is_windowed());
        let request = sources[0].stream();
        if !framers[0].from_start && !request.is_empty() {
            notes.push(if request.start() == 0 {
                "no HTTP/2 client preface: frames located by resync".to_string()
            } else {
                format!(
                    "capture started mid-connection (request offset {}): no HPACK context",
                    request.start()
                )
            });
        }
        // The receiver of a direction's headers advertises its decoder's bound. Seen from
        // its start, its SETTINGS are all in the capture; joined later, earlier ones may
        // have announced any size, so the bound is unknown and only memory caps the table.
        let known = [framers[0].from_start, framers[1].from_start];
        let bound_for = |receiver: &Survey, who: &str, notes: &mut Vec<String>| {
            let advertised = receiver.table_size.map_or(0, |v| v as usize);
            let bound = advertised.max(DEFAULT_TABLE_SIZE);
            if bound > limits.max_table_size {
                notes.push(format!(
                    "{who} advertised an HPACK table of {bound} bytes; capped at {}",
                    limits.max_table_size
                ));
            }
            bound.min(limits.max_table_size).max(DEFAULT_TABLE_SIZE)
        };
        let request_bound = known[1].then(|| bound_for(&survey[1], "server", &mut notes));
        let response_bound = known[0].then(|| bound_for(&survey[0], "client", &mut notes));
        let dir = |from_start: bool, bound: Option<usize>| {
            let max_block = limits.max_header_block;
            let size = bound.unwrap_or(limits.max_table_size.max(DEFAULT_TABLE_SIZE));
            let decoder = if from_start {
                HeaderDecoder::new(DEFAULT_TABLE_SIZE, size, max_block)
            } else {
                HeaderDecoder::lost(
                    size,
                    max_block,
                    "capture started mid-connection: no HPACK context",
                )
            };
            Some(DirState {
                decoder: match bound {
                    Some(_) => decoder,
                    None => decoder.with_unknown_bound(),
                },
                pending: None,
                from_start,
                first_event: true,
                ended: false,
            })
        };
        let conn = Conn {
            streams: BTreeMap::new(),
            notes: Vec::new(),
            goaways: Vec::new(),
            limits,
            dirs: [
                dir(framers[0].from_start, request_bound),
                dir(framers[1].from_start, response_bound),
            ],
            closed_ids: BTreeSet::new(),
            in_trace,
            late: BTreeMap::new(),
            touched: Vec::new(),
            ready: BTreeMap::new(),
            connection_closed: closed,
            discard: None,
            client_low: None,
            request_gaps: false,
            unopened: BTreeMap::new(),
            resynced: [None; 2],
        };
        Replayer {
            conn,
            framers,
            last_ts: [0; 2],
            survey,
            notes,
            finished: false,
        }
    }

    /// Connection notes gathered since the last call.
    pub(crate) fn take_notes(&mut self) -> Vec<String> {
        let mut notes = std::mem::take(&mut self.notes);
        notes.append(&mut self.conn.notes);
        notes
    }

    /// The direction whose next event comes first (see the module documentation).
    fn next_side(&mut self, streams: [&DirectionStream<'_>; 2]) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (k, stream) in streams.into_iter().enumerate() {
            let framer = &self.framers[k];
            if framer.is_done(stream) {
                continue;
            }
            let pos = framer.position();
            let ts = stream
                .ts_at(pos)
                .or_else(|| stream.hole_at(pos)?.ts_ns)
                .unwrap_or(self.last_ts[k]);
            self.last_ts[k] = self.last_ts[k].max(ts);
            if best.is_none_or(|b| (ts, k) < b) {
                best = Some((ts, k));
            }
        }
        best.map(|b| b.1)
    }

    /// Reads and applies one event; `false` once both directions are done (the remaining
    /// streams are then closed as they are).
    pub(crate) fn step<'a, S: FrameSource<'a>>(&mut self, sources: &mut [S; 2]) -> bool {
        if self.finished {
            return false;
        }
        // A direction with nothing (left) to read ends before the next event.
        for (k, side) in [Side::Request, Side::Response].into_iter().enumerate() {
            if self.framers[k].is_done(sources[k].stream()) {
                self.conn.end_direction(side);
            }
        }
        self.conn.settle();
        let Some(k) = self.next_side([sources[0].stream(), sources[1].stream()]) else {
            self.conn.finish();
            self.finished = true;
            return false;
        };
        let side = [Side::Request, Side::Response][k];
        let conn = &mut self.conn;
        step_event(&mut self.framers[k], &mut sources[k], |event, _| {
            if let Some(event) = event {
                conn.process(side, &event);
            }
        });
        if self.framers[k].is_done(sources[k].stream()) {
            self.conn.end_direction(side);
        }
        self.conn.settle();
        true
    }

    /// Whether every exchange has been handed out.
    pub(crate) fn is_done(&self) -> bool {
        self.finished && self.conn.ready.is_empty()
    }

    /// Where each direction's next event starts.
    pub(crate) fn positions(&self) -> [u64; 2] {
        [self.framers[0].position(), self.framers[1].position()]
    }

    /// The least timestamp that an exchange may still take from an event not applied yet:
    /// pending header blocks, and `ahead` (a lower bound of the timestamps of the bytes at or
    /// after both directions' positions).
    fn future_ts(&self, ahead: u64) -> u64 {
        self.conn
            .dirs
            .iter()
            .flatten()
            .filter_map(|d| d.pending.as_ref()?.place.first_ts)
            .fold(ahead, u64::min)
    }

    /// The next exchange in the connection's order, once nothing still to come can precede
    /// it; `ahead` bounds the timestamps of the bytes not read yet (see
    /// [`Replayer::future_ts`]), `u64::MAX` when unknown bytes are none.
    pub(crate) fn ready_exchange(&mut self, ahead: impl Fn([u64; 2]) -> u64) -> Option<Exchange> {
        let (&(first, id), _) = self.conn.ready.first_key_value()?;
        if !self.finished {
            let future = self.future_ts(ahead(self.positions()));
            if first >= future {
                return None;
            }
            // An open stream's key is fixed once its request began; else it may still
            // take a time from what is to come.
            let blocked = self.conn.streams.values().any(|s| {
                let k = match (s.request.first_ts, s.response.first_ts) {
                    (Some(r), _) => r,
                    (None, Some(r)) => r.min(future),
                    (None, None) => future,
                };
                (k, s.id) < (first, id)
            });
            if blocked {
                return None;
            }
        }
        self.conn.ready.pop_first().map(|(_, ex)| ex)
    }

    /// A lower bound of the start time ([`crate::pipeline::exchange_start_ns`], whose fallback
    /// for an exchange without timestamps is `fallback`) of every exchange not handed out yet.
    pub(crate) fn floor(&self, ahead: u64, fallback: u64) -> u64 {
        let positions = self.positions();
        let future = self.future_ts(ahead);
        let mut floor = future;
        if let Some((&(first, _), _)) = self.conn.ready.first_key_value() {
            floor = floor.min(first);
        }
        if self
            .conn
            .ready
            .last_key_value()
            .is_some_and(|(k, _)| k.0 == u64::MAX)
        {
            floor = floor.min(fallback);
        }
        for s in self.conn.streams.values() {
            match (s.request.first_ts, s.response.first_ts) {
                (Some(r), _) => floor = floor.min(r),
                (None, Some(r)) => floor = floor.min(r),
                // It may end without any timestamp.
                (None, None) => floor = floor.min(fallback),
            }
        }
        // Frames ahead that may leave a new stream without a timestamp.
        let dir_ended = |k: usize| self.conn.dirs[k].as_ref().is_some_and(|d| d.ended);
        let odd_ahead =
            |k: usize| !dir_ended(k) && self.survey[k].odd_until.is_some_and(|u| positions[k] < u);
        if odd_ahead(0) || odd_ahead(1) {
            floor = floor.min(fallback);
        }
        floor
    }

    /// Streams open and exchanges waiting for their turn.
    pub(crate) fn held(&self) -> usize {
        self.conn.streams.len() + self.conn.ready.len()
    }
}

/// Runs the framer's start (the preface check) through the window.
fn framer_start<'a, S: FrameSource<'a>>(framer: &mut Framer, source: &mut S) {
    loop {
        let saved = framer.clone();
        let stream = source.stream();
        stream.take_missed();
        framer.start_only(stream);
        let failed =
            stream.take_missed() || stream.window_cut().is_some_and(|cut| framer.reach() > cut);
        if !failed {
            return;
        }
        *framer = saved;
        if !source.widen(framer_position(framer, source.stream())) {
            framer.start_only(source.stream());
            return;
        }
    }
}

#[derive(Debug)]
struct Conn {
    /// Open streams.
    streams: BTreeMap<u32, StreamState>,
    notes: Vec<String>,
    goaways: Vec<GoAwaySeen>,
    limits: Limits,
    /// Per direction (request, response); taken out while one of its events is applied.
    dirs: [Option<DirState>; 2],
    /// Streams closed (their exchange is final).
    closed_ids: BTreeSet<u32>,
    /// Frames that arrived on closed streams, per (side, stream): their number.
    late: BTreeMap<(Side, u32), u64>,
    /// Streams the current event touched: they may have closed.
    touched: Vec<u32>,
    /// Closed streams' exchanges by (first byte time, stream id), the connection's order.
    ready: BTreeMap<(u64, u32), Exchange>,
    connection_closed: bool,
    /// Where a frame of a closed stream takes effect, to be dropped.
    discard: Option<StreamState>,
    /// The streams are windowed: DATA payloads are kept as ranges of them ([`DataBytes`]).
    in_trace: bool,
    /// Lowest stream id a request HEADERS opened in the capture.
    client_low: Option<u32>,
    /// The request direction lost bytes or frame sync: a HEADERS that opened a stream may be
    /// missing from it.
    request_gaps: bool,
    /// Per direction: where frame sync was last found by resynchronisation (at the start of a
    /// capture that joined the connection mid-frame, or after unparseable bytes).
    resynced: [Option<u64>; 2],
    /// Client streams whose server frames were ignored (see [`Conn::never_opened`]): the
    /// number of frames.
    unopened: BTreeMap<u32, u64>,
}

impl Conn {
    /// Whether a server frame on client stream `id` names a stream the client never opened:
    /// the request direction holds every stream the client opened since the connection began
    /// (or since the first one it shows), nothing of it was lost, and `id` is not among them.
    /// Such a frame is not the server's (typically a lookalike inside a payload, found by a
    /// resynchronisation), and showing it would invent an exchange.
    fn never_opened(&mut self, side: Side, id: u32) -> bool {
        if side != Side::Response
            || id.is_multiple_of(2)
            || self.request_gaps
            || self.streams.contains_key(&id)
            || self.closed_ids.contains(&id)
        {
            return false;
        }
        let from_start = self.dirs[0].as_ref().is_some_and(|d| d.from_start);
        let unopened = from_start || self.client_low.is_some_and(|low| id > low);
        if unopened {
            *self.unopened.entry(id).or_default() += 1;
        }
        unopened
    }

    /// Marks the streams a frame of `side` just touched when that direction's framing was
    /// found by resynchronisation: a lookalike frame inside a payload cannot be ruled out.
    fn mark_resynced(&mut self, side: Side) {
        let Some(at) = self.resynced[side as usize] else {
            return;
        };
        for id in &self.touched {
            if let Some(s) = self.streams.get_mut(id) {
                s.mark(format!(
                    "{side} frames located by resynchronisation (from offset {at}): their \
                     framing is not certain"
                ));
            }
        }
    }

    fn stream(&mut self, side: Side, id: u32) -> &mut StreamState {
        if self.closed_ids.contains(&id) {
            *self.late.entry((side, id)).or_default() += 1;
            // What the frame would change is dropped with this copy.
            return self.discard.insert(StreamState::new(id));
        }
        self.touched.push(id);
        self.streams
            .entry(id)
            .or_insert_with(|| StreamState::new(id))
    }

    /// Applies one event of `side`.
    fn process(&mut self, side: Side, event: &Event<'_>) {
        let k = side as usize;
        let Some(mut dir) = self.dirs[k].take() else {
            return;
        };
        self.apply(side, event, &mut dir);
        self.dirs[k] = Some(dir);
    }

    fn apply(&mut self, side: Side, event: &Event<'_>, dir: &mut DirState) {
        let starting = std::mem::replace(&mut dir.first_event, false);
        let decoder = &mut dir.decoder;
        let pending = &mut dir.pending;
        // Anything but the CONTINUATION that extends it ends a pending block.
        let continues = matches!(event, Event::Frame(Located { frame: Frame::Continuation(c), .. })
            if pending.as_ref().is_some_and(|p| p.stream_id == c.stream_id));
        if !continues && let Some(p) = pending.take() {
            self.stream(side, p.stream_id).mark(format!(
                "{side} header block interrupted before END_HEADERS"
            ));
            decoder.lose_context(format!(
                "{side} header block at offset {} was never finished",
                p.place.offset
            ));
        }
        if side == Side::Request {
            match event {
                Event::Frame(Located {
                    frame: Frame::Headers(h),
                    ..
                }) => {
                    self.client_low =
                        Some(self.client_low.map_or(h.stream_id, |l| l.min(h.stream_id)))
                }
                Event::Frame(_) => {}
                Event::Desync { .. } if starting && !dir.from_start => {}
                _ => self.request_gaps = true,
            }
        }
        match event {
            Event::Frame(located) => {
                self.frame(side, located, decoder, pending);
                self.mark_resynced(side);
            }
            Event::Invalid {
                offset,
                head,
                error,
            } => {
                if head.kind.carries_header_block() {
                    decoder.lose_context(format!(
                        "invalid {side} {:?} frame at offset {offset}",
                        head.kind
                    ));
                }
                if head.stream_id != 0 {
                    self.stream(side, head.stream_id).mark(format!(
                        "invalid {side} frame at offset {offset} ignored: {error}"
                    ));
                } else {
                    self.notes.push(format!(
                        "invalid {side} frame at offset {offset} ignored: {error}"
                    ));
                }
            }
            Event::Damaged {
                offset,
                head,
                first_ts,
                last_ts,
                parts,
                losses,
            } => {
                let place = Place {
                    offset: *offset,
                    first_ts: *first_ts,
                    last_ts: *last_ts,
                };
                self.damaged(side, head, place, parts, losses, decoder);
            }
            Event::Desync {
                offset,
                len,
                reason,
            } => {
                self.resynced[side as usize] = Some(offset.saturating_add(*len));
                if starting && !dir.from_start {
                    self.notes.push(format!(
                        "capture started mid-frame: {reason} ({side} offset {offset}, {len} bytes)"
                    ));
                    return;
                }
                decoder.lose_context(format!("{side} frame sync lost at offset {offset}"));
                let reason =
                    format!("{len} unparseable {side} bytes at offset {offset} ({reason})");
                self.notes.push(reason.clone());
                for s in self.streams.values_mut().filter(|s| s.open_in(side)) {
                    s.mark(format!("{side} frames may be missing: {reason}"));
                }
            }
            Event::Lost {
                offset,
                len,
                ts,
                reason,
            } => {
                decoder.lose_context(format!("{len} {side} bytes lost at offset {offset}"));
                self.notes.push(format!(
                    "lost {len} {side} bytes at offset {offset}: {reason}"
                ));
                self.mark_loss(side, *offset, *len, *ts);
            }
            Event::Truncated {
                offset,
                head,
                first_ts,
                payload,
            } => {
                let Some(head) = head else { return };
                let place = Place {
                    offset: *offset,
                    first_ts: *first_ts,
                    last_ts: None,
                };
                self.truncated(side, head, place, payload);
            }
        }
    }

    /// The end of `side`'s stream.
    fn end_direction(&mut self, side: Side) {
        let k = side as usize;
        let Some(mut dir) = self.dirs[k].take() else {
            return;
        };
        if !dir.ended {
            dir.ended = true;
            if let Some(p) = dir.pending.take() {
                self.stream(side, p.stream_id).mark(format!(
                    "{side} header block unfinished when the capture ended"
                ));
            }
        }
        self.dirs[k] = Some(dir);
    }

    /// Closes the streams the last event touched that are done (see the module documentation).
    fn settle(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        for id in touched {
            let pending_for = self.dirs.iter().flatten().any(|d| {
                d.pending.as_ref().is_some_and(|p| {
                    p.stream_id == id
                        || matches!(p.kind, BlockKind::PushPromise { promised_id } if promised_id == id)
                })
            });
            // In a capture begun inside the connection, a stream met only by its response
            // had its request before the capture: as far as anything can tell, that half
            // ended there, and the response's end closes the stream. Without this, the
            // streams open when the capture began would hold back every later exchange.
            let request_before_capture = |s: &StreamState| {
                s.request.first_offset.is_none()
                    && self.dirs[0].as_ref().is_some_and(|d| !d.from_start)
            };
            let done = self.streams.get(&id).is_some_and(|s| {
                s.reset.is_some()
                    || (s.request.ended && s.response.ended)
                    || (s.response.ended && request_before_capture(s))
            });
            if done
                && !pending_for
                && let Some(s) = self.streams.remove(&id)
            {
                self.close(s);
            }
        }
    }

    fn close(&mut self, mut s: StreamState) {
        self.apply_goaways(&mut s);
        self.closed_ids.insert(s.id);
        let id = s.id;
        let ex = s.into_exchange(self.connection_closed);
        let first = ex
            .timings
            .request_first_byte_ns
            .or(ex.timings.response_first_byte_ns)
            .unwrap_or(u64::MAX);
        self.ready.insert((first, id), ex);
    }

    fn apply_goaways(&self, s: &mut StreamState) {
        for g in &self.goaways {
            // Streams the GOAWAY sender's peer opened above last_stream_id were
            // never processed; clients open odd ids, servers (push) even ones.
            let peer_parity = match g.by {
                Side::Response => 1,
                Side::Request => 0,
            };
            // A stream that got any response was processed after all.
            if s.id > g.last_stream_id
                && s.id % 2 == peer_parity
                && s.response.first_offset.is_none()
            {
                s.mark(format!(
                    "stream not processed: GOAWAY last stream id {}",
                    g.last_stream_id
                ));
            }
        }
    }

    /// Both directions are done: the streams still open close as they are.
    fn finish(&mut self) {
        for s in std::mem::take(&mut self.streams).into_values() {
            self.close(s);
        }
        for (id, frames) in std::mem::take(&mut self.unopened) {
            self.notes.push(format!(
                "{frames} response frame(s) for stream {id}, which the client never opened, \
                 were ignored (framing found by resynchronisation is not certain)"
            ));
        }
        for ((side, id), frames) in std::mem::take(&mut self.late) {
            self.notes.push(format!(
                "{frames} {side} frame(s) for stream {id} after it closed were ignored"
            ));
        }
    }

    fn frame(
        &mut self,
        side: Side,
        located: &Located<'_>,
        decoder: &mut HeaderDecoder,
        pending: &mut Option<Pending>,
    ) {
        let place = Place {
            offset: located.offset,
            first_ts: located.first_ts,
            last_ts: located.last_ts,
        };
        match &located.frame {
            Frame::Data(d) if self.never_opened(side, d.stream_id) => {}
            Frame::Data(d) => {
                let data = if self.in_trace {
                    let at = located.offset.saturating_add(9 + d.data_at as u64);
                    DataBytes::InTrace(vec![(at, d.data.len() as u64)])
                } else {
                    DataBytes::Held(d.data)
                };
                self.stream(side, d.stream_id).on_data(
                    side,
                    data,
                    d.wire_len as u64,
                    d.end_stream,
                    place,
                );
            }
            Frame::Headers(h) => {
                let p = Pending {
                    stream_id: h.stream_id,
                    kind: BlockKind::Headers {
                        end_stream: h.end_stream,
                    },
                    buf: h.fragment.to_vec(),
                    place,
                };
                self.start_block(side, p, h.end_headers, decoder, pending);
            }
            Frame::PushPromise(pp) => {
                let p = Pending {
                    stream_id: pp.stream_id,
                    kind: BlockKind::PushPromise {
                        promised_id: pp.promised_id,
                    },
                    buf: pp.fragment.to_vec(),
                    place,
                };
                self.start_block(side, p, pp.end_headers, decoder, pending);
            }
            Frame::Continuation(c) => match pending.as_mut() {
                Some(p) => {
                    if p.buf.len() + c.fragment.len() > self.limits.max_header_block {
                        let limit = self.limits.max_header_block;
                        *pending = None;
                        self.stream(side, c.stream_id).mark(format!(
                            "{side} header block larger than {limit} bytes dropped"
                        ));
                        decoder.lose_context(format!(
                            "{side} header block over {limit} bytes not decoded"
                        ));
                        return;
                    }
                    p.buf.extend_from_slice(c.fragment);
                    p.place.last_ts = place.last_ts.or(p.place.last_ts);
                    if c.end_headers
                        && let Some(done) = pending.take()
                    {
                        self.finish_block(side, done, decoder);
                    }
                }
                None => {
                    decoder.lose_context(format!(
                        "{side} CONTINUATION at offset {} without the start of its header block",
                        located.offset
                    ));
                    self.stream(side, c.stream_id).mark(format!(
                        "{side} header block began before the capture or in lost bytes"
                    ));
                }
            },
            Frame::RstStream(r) => {
                // The first reset closes the stream: a later one (from either side, or
                // one crossing it) finds it closed and is ignored, as RFC 9113 §5.1 allows.
                if let Some(s) = self.streams.get_mut(&r.stream_id) {
                    s.reset.get_or_insert(StreamReset {
                        by: side,
                        error_code: r.error_code,
                    });
                    self.touched.push(r.stream_id);
                }
            }
            Frame::GoAway(g) => {
                self.goaways.push(GoAwaySeen {
                    by: side,
                    last_stream_id: g.last_stream_id,
                });
                let by = match side {
                    Side::Request => "client",
                    Side::Response => "server",
                };
                self.notes.push(format!(
                    "GOAWAY from {by}: last stream {}, {} (0x{:x}){}",
                    g.last_stream_id,
                    h2_error_name(g.error_code),
                    g.error_code,
                    if g.debug_data.is_empty() {
                        String::new()
                    } else {
                        format!(", debug data {:?}", String::from_utf8_lossy(g.debug_data))
                    }
                ));
            }
            Frame::Settings(_)
            | Frame::Priority(_)
            | Frame::Ping(_)
            | Frame::WindowUpdate(_)
            | Frame::Unknown(_) => {}
        }
    }

    fn start_block(
        &mut self,
        side: Side,
        p: Pending,
        end_headers: bool,
        decoder: &mut HeaderDecoder,
        pending: &mut Option<Pending>,
    ) {
        let limit = self.limits.max_header_block;
        if p.buf.len() > limit {
            self.stream(side, p.stream_id).mark(format!(
                "{side} header block larger than {limit} bytes dropped"
            ));
            decoder.lose_context(format!(
                "{side} header block over {limit} bytes not decoded"
            ));
        } else if end_headers {
            self.finish_block(side, p, decoder);
        } else {
            *pending = Some(p);
        }
    }

    fn finish_block(&mut self, side: Side, p: Pending, decoder: &mut HeaderDecoder) {
        let outcome = decoder.decode(&p.buf);
        let len = p.buf.len() as u64;
        match p.kind {
            // Decoded all the same: the block changed the sender's HPACK table either way.
            BlockKind::Headers { .. } if self.never_opened(side, p.stream_id) => {}
            BlockKind::Headers { end_stream } => {
                self.stream(side, p.stream_id)
                    .on_block(side, outcome, len, end_stream, p.place);
            }
            BlockKind::PushPromise { promised_id } => {
                // The promised request travels server to client but is the
                // request half of the pushed stream.
                let s = self.stream(side, promised_id);
                s.pushed_by = Some(p.stream_id);
                s.on_block(Side::Request, outcome, len, true, p.place);
            }
        }
    }

    fn damaged(
        &mut self,
        side: Side,
        head: &FrameHead,
        place: Place,
        parts: &[&[u8]],
        losses: &[(u64, u64)],
        decoder: &mut HeaderDecoder,
    ) {
        if head.stream_id == 0 {
            for &(offset, len) in losses {
                self.notes.push(format!(
                    "lost {len} {side} bytes at offset {offset} in a connection frame"
                ));
            }
            return;
        }
        let in_trace = self.in_trace;
        let s = self.stream(side, head.stream_id);
        for &(offset, len) in losses {
            s.add_loss(side, offset, len);
        }
        match head.kind {
            Kind::Data => {
                let wire = u64::from(head.len);
                let end_stream = head.has(flags::END_STREAM);
                if head.has(flags::PADDED) {
                    // Without the whole payload the padding cannot be told from data.
                    s.on_data(side, DataBytes::Held(&[]), wire, end_stream, place);
                    s.mark(format!(
                        "{side} DATA frame at offset {} unusable: padded frame with lost bytes",
                        place.offset
                    ));
                } else if in_trace {
                    let payload = place.offset.saturating_add(9);
                    let ranges = captured(payload, wire, losses);
                    s.on_data(side, DataBytes::InTrace(ranges), wire, end_stream, place);
                } else {
                    let bytes = parts.concat();
                    s.on_data(side, DataBytes::Held(&bytes), wire, end_stream, place);
                }
            }
            kind if kind.carries_header_block() => {
                if side == Side::Response {
                    s.response_began_unclean(place.offset);
                } else {
                    s.request.first_offset.get_or_insert(place.offset);
                }
                s.mark(format!("{side} header block lost in missing bytes"));
                decoder.lose_context(format!(
                    "{side} header block at offset {} lost",
                    place.offset
                ));
            }
            _ => {}
        }
    }

    fn truncated(&mut self, side: Side, head: &FrameHead, place: Place, payload: &[u8]) {
        if head.stream_id == 0 {
            return;
        }
        let in_trace = self.in_trace;
        let s = self.stream(side, head.stream_id);
        match head.kind {
            Kind::Data => {
                let data = if head.has(flags::PADDED) {
                    DataBytes::Held(&[])
                } else if in_trace {
                    let at = place.offset.saturating_add(9);
                    DataBytes::InTrace(vec![(at, payload.len() as u64)])
                } else {
                    DataBytes::Held(payload)
                };
                s.on_data(side, data, payload.len() as u64, false, place);
                s.mark(format!("{side} DATA frame cut by the end of the capture"));
            }
            kind if kind.carries_header_block() => {
                if side == Side::Response {
                    s.response_began_unclean(place.offset);
                } else {
                    s.request.first_offset.get_or_insert(place.offset);
                }
                s.mark(format!("{side} header block cut by the end of the capture"));
            }
            _ => {}
        }
    }

    /// Bytes of `side` went missing at a frame boundary: every stream that could
    /// have had frames there is affected.
    fn mark_loss(&mut self, side: Side, offset: u64, len: u64, ts: Option<u64>) {
        for s in self.streams.values_mut() {
            if s.half(side).first_offset.is_some() {
                if s.open_in(side) {
                    s.add_loss(side, offset, len);
                }
            } else if side == Side::Response
                && s.reset.is_none()
                && match (s.request.first_ts, ts) {
                    (Some(req), Some(lost)) => req <= lost,
                    _ => true,
                }
            {
                // The response may have begun in the lost bytes, if its request
                // came before the loss; its first later frame decides.
                s.losses_before_response.push(Loss { side, offset, len });
            }
        }
    }
}

/// The captured parts of the `len` payload bytes at `from`: all of them but `losses`
/// (`(offset, len)`, in order, inside the payload).
fn captured(from: u64, len: u64, losses: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let end = from.saturating_add(len);
    let mut ranges = Vec::new();
    let mut at = from;
    for &(offset, lost) in losses {
        let offset = offset.clamp(at, end);
        if offset > at {
            ranges.push((at, offset - at));
        }
        at = offset.saturating_add(lost).clamp(at, end);
    }
    if end > at {
        ranges.push((at, end - at));
    }
    ranges
}
