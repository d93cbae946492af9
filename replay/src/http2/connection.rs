//! Turning both directions' frames into per-stream exchanges.
//!
//! Each direction is processed on its own, in stream order: HPACK state,
//! header-block assembly and DATA all live within one direction. The only
//! cross-direction facts are SETTINGS_HEADER_TABLE_SIZE (collected in a first
//! pass, see [`super::hpack`]) and, for loss, which requests existed when
//! response bytes went missing. Results therefore do not depend on how the
//! two directions' timestamps interleave.

use std::collections::BTreeMap;

use super::frame::{Frame, FrameHead, Kind, SETTINGS_HEADER_TABLE_SIZE, flags};
use super::framer::{Event, Framed, Located, frame_stream};
use super::hpack::{DEFAULT_TABLE_SIZE, HeaderDecoder};
use super::stream::{Place, StreamState};
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

struct GoAwaySeen {
    by: Side,
    last_stream_id: u32,
}

struct Conn {
    streams: BTreeMap<u32, StreamState>,
    notes: Vec<String>,
    goaways: Vec<GoAwaySeen>,
    limits: Limits,
}

/// The largest SETTINGS_HEADER_TABLE_SIZE a direction advertised, if any.
fn advertised_table_size(framed: &Framed<'_>) -> Option<u32> {
    framed
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(Located {
                frame: Frame::Settings(s),
                ..
            }) => s
                .values
                .iter()
                .filter(|(id, _)| *id == SETTINGS_HEADER_TABLE_SIZE)
                .map(|(_, v)| *v)
                .max(),
            _ => None,
        })
        .max()
}

pub(crate) fn replay(
    request: &DirectionStream,
    response: &DirectionStream,
    closed: bool,
    limits: Limits,
) -> Http2Result {
    let req = frame_stream(request, Side::Request);
    let resp = frame_stream(response, Side::Response);
    let mut conn = Conn {
        streams: BTreeMap::new(),
        notes: Vec::new(),
        goaways: Vec::new(),
        limits,
    };
    if !req.from_start && !request.is_empty() {
        conn.notes.push(if request.start() == 0 {
            "no HTTP/2 client preface: frames located by resync".to_string()
        } else {
            format!(
                "capture started mid-connection (request offset {}): no HPACK context",
                request.start()
            )
        });
    }
    // The receiver of a direction's headers advertises its decoder's bound.
    let bound_for = |receiver: &Framed<'_>, who: &str, notes: &mut Vec<String>| {
        let advertised = advertised_table_size(receiver).map_or(0, |v| v as usize);
        let bound = advertised.max(DEFAULT_TABLE_SIZE);
        if bound > limits.max_table_size {
            notes.push(format!(
                "{who} advertised an HPACK table of {bound} bytes; capped at {}",
                limits.max_table_size
            ));
        }
        bound.min(limits.max_table_size).max(DEFAULT_TABLE_SIZE)
    };
    let request_bound = bound_for(&resp, "server", &mut conn.notes);
    let response_bound = bound_for(&req, "client", &mut conn.notes);
    conn.direction(Side::Request, &req, request_bound);
    conn.direction(Side::Response, &resp, response_bound);
    conn.finish(closed)
}

impl Conn {
    fn stream(&mut self, id: u32) -> &mut StreamState {
        self.streams
            .entry(id)
            .or_insert_with(|| StreamState::new(id))
    }

    fn direction(&mut self, side: Side, framed: &Framed<'_>, bound: usize) {
        let max_block = self.limits.max_header_block;
        let mut decoder = if framed.from_start {
            HeaderDecoder::new(DEFAULT_TABLE_SIZE, bound, max_block)
        } else {
            HeaderDecoder::lost(
                bound,
                max_block,
                "capture started mid-connection: no HPACK context",
            )
        };
        let mut pending: Option<Pending> = None;
        let mut first_event = true;
        for event in &framed.events {
            let starting = std::mem::replace(&mut first_event, false);
            // Anything but the CONTINUATION that extends it ends a pending block.
            let continues = matches!(event, Event::Frame(Located { frame: Frame::Continuation(c), .. })
                if pending.as_ref().is_some_and(|p| p.stream_id == c.stream_id));
            if !continues && let Some(p) = pending.take() {
                self.stream(p.stream_id).mark(format!(
                    "{side} header block interrupted before END_HEADERS"
                ));
                decoder.lose_context(format!(
                    "{side} header block at offset {} was never finished",
                    p.place.offset
                ));
            }
            match event {
                Event::Frame(located) => {
                    self.frame(side, located, &mut decoder, &mut pending);
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
                        self.stream(head.stream_id).mark(format!(
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
                    self.damaged(side, head, place, parts, losses, &mut decoder);
                }
                Event::Desync {
                    offset,
                    len,
                    reason,
                } => {
                    if starting && !framed.from_start {
                        self.notes.push(format!(
                            "capture started mid-frame: {reason} ({side} offset {offset}, {len} bytes)"
                        ));
                        continue;
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
                    let Some(head) = head else { continue };
                    let place = Place {
                        offset: *offset,
                        first_ts: *first_ts,
                        last_ts: None,
                    };
                    self.truncated(side, head, place, payload);
                }
            }
        }
        if let Some(p) = pending {
            self.stream(p.stream_id).mark(format!(
                "{side} header block unfinished when the capture ended"
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
            Frame::Data(d) => {
                self.stream(d.stream_id).on_data(
                    side,
                    d.data,
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
                        self.stream(c.stream_id).mark(format!(
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
                    self.stream(c.stream_id).mark(format!(
                        "{side} header block began before the capture or in lost bytes"
                    ));
                }
            },
            Frame::RstStream(r) => {
                if let Some(s) = self.streams.get_mut(&r.stream_id) {
                    s.reset.get_or_insert(StreamReset {
                        by: side,
                        error_code: r.error_code,
                    });
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
            self.stream(p.stream_id).mark(format!(
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
            BlockKind::Headers { end_stream } => {
                self.stream(p.stream_id)
                    .on_block(side, outcome, len, end_stream, p.place);
            }
            BlockKind::PushPromise { promised_id } => {
                // The promised request travels server to client but is the
                // request half of the pushed stream.
                let s = self.stream(promised_id);
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
        let s = self.stream(head.stream_id);
        for &(offset, len) in losses {
            s.add_loss(side, offset, len);
        }
        match head.kind {
            Kind::Data => {
                let wire = u64::from(head.len);
                let end_stream = head.has(flags::END_STREAM);
                if head.has(flags::PADDED) {
                    // Without the whole payload the padding cannot be told from data.
                    s.on_data(side, &[], wire, end_stream, place);
                    s.mark(format!(
                        "{side} DATA frame at offset {} unusable: padded frame with lost bytes",
                        place.offset
                    ));
                } else {
                    s.on_data(side, &parts.concat(), wire, end_stream, place);
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
        let s = self.stream(head.stream_id);
        match head.kind {
            Kind::Data => {
                let data = if head.has(flags::PADDED) {
                    &[][..]
                } else {
                    payload
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

    fn finish(mut self, closed: bool) -> Http2Result {
        for g in &self.goaways {
            // Streams the GOAWAY sender's peer opened above last_stream_id were
            // never processed; clients open odd ids, servers (push) even ones.
            let peer_parity = match g.by {
                Side::Response => 1,
                Side::Request => 0,
            };
            // A stream that got any response was processed after all.
            for s in self.streams.values_mut() {
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
        let mut exchanges: Vec<Exchange> = std::mem::take(&mut self.streams)
            .into_values()
            .map(|s| s.into_exchange(closed))
            .collect();
        exchanges.sort_by_key(|e| {
            let first = e
                .timings
                .request_first_byte_ns
                .or(e.timings.response_first_byte_ns)
                .unwrap_or(u64::MAX);
            (first, e.stream_id)
        });
        Http2Result {
            exchanges,
            notes: self.notes,
        }
    }
}
