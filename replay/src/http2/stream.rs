//! What one HTTP/2 stream carried, and how that becomes an [`Exchange`].

use super::hpack::BlockOutcome;
use crate::exchange::{
    Exchange, Header, HttpVersion, InTrace, Informational, Loss, Request, Response, StreamReset,
    find_header, h2_error_name,
};
use crate::stream::Side;

/// Where a frame sits and when its bytes went over the wire.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Place {
    pub offset: u64,
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
}

/// One direction of a stream.
/// DATA payload bytes: in hand, or, for a connection rebuilt on windowed streams, where they
/// are in the stream (see [`crate::exchange::InTrace`]): a download of any size is then
/// neither copied nor held.
#[derive(Debug, Clone)]
pub(crate) enum DataBytes<'d> {
    /// The bytes.
    Held(&'d [u8]),
    /// `(offset, len)` ranges of the direction's stream.
    InTrace(Vec<(u64, u64)>),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Half {
    /// Offset of the first frame seen for this stream in this direction.
    pub first_offset: Option<u64>,
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
    pub head: Option<Vec<Header>>,
    pub head_size: Option<u64>,
    pub informational: Vec<Informational>,
    pub body: Vec<u8>,
    /// On windowed streams, the body's ranges instead of bytes in `body`.
    pub in_trace: Option<Vec<(u64, u64)>>,
    pub body_wire: u64,
    pub trailers: Vec<Header>,
    pub ended: bool,
    /// A header block of this half was dropped (reason already recorded).
    pub dropped_block: bool,
    pub saw_data: bool,
}

impl Half {
    fn touch(&mut self, place: Place) {
        if self.first_offset.is_none() {
            self.first_offset = Some(place.offset);
            self.first_ts = place.first_ts;
        }
        if place.last_ts.is_some() {
            self.last_ts = place.last_ts;
        }
    }
}

/// Everything known about one stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamState {
    pub id: u32,
    pub request: Half,
    pub response: Half,
    pub reset: Option<StreamReset>,
    pub pushed_by: Option<u32>,
    pub marks: Vec<String>,
    pub losses: Vec<Loss>,
    /// Response-direction losses from before this stream's response began:
    /// they matter only if the response did not then start cleanly.
    pub losses_before_response: Vec<Loss>,
}

/// Why a header block is malformed by the order of its fields (RFC 9113 §8.3: every
/// pseudo-header comes before the regular ones); `None` when it is not. Such a block is shown
/// in wire order all the same: the views show what was sent, not what should have been.
fn misplaced_pseudo(side: Side, headers: &[Header]) -> Option<String> {
    let first_regular = headers.iter().position(|h| !h.is_pseudo())?;
    let late = headers[first_regular..].iter().find(|h| h.is_pseudo())?;
    Some(format!(
        "{side} header block malformed (RFC 9113 §8.3): pseudo-header {} after regular header \
         {}; shown in wire order",
        late.name_str(),
        headers[first_regular].name_str()
    ))
}

fn status_of(headers: &[Header]) -> Option<u16> {
    let v = find_header(headers, ":status")?;
    if v.len() != 3 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

impl StreamState {
    pub(crate) fn new(id: u32) -> StreamState {
        StreamState {
            id,
            request: Half::default(),
            response: Half::default(),
            reset: None,
            pushed_by: None,
            marks: Vec::new(),
            losses: Vec::new(),
            losses_before_response: Vec::new(),
        }
    }

    pub(crate) fn half(&self, side: Side) -> &Half {
        match side {
            Side::Request => &self.request,
            Side::Response => &self.response,
        }
    }

    pub(crate) fn half_mut(&mut self, side: Side) -> &mut Half {
        match side {
            Side::Request => &mut self.request,
            Side::Response => &mut self.response,
        }
    }

    pub(crate) fn mark(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        if !self.marks.contains(&reason) {
            self.marks.push(reason);
        }
    }

    pub(crate) fn add_loss(&mut self, side: Side, offset: u64, len: u64) {
        let loss = Loss { side, offset, len };
        if len > 0 && !self.losses.contains(&loss) {
            self.losses.push(loss);
        }
    }

    /// Called on the first response frame: a response whose first frame is a
    /// decoded HEADERS block cannot have lost anything before it (its own
    /// frames start there), otherwise earlier losses may have been its start.
    fn response_begins(&mut self, side: Side, clean_start: bool) {
        if side != Side::Response || self.response.first_offset.is_some() {
            return;
        }
        let earlier = std::mem::take(&mut self.losses_before_response);
        if !clean_start {
            for l in earlier {
                self.add_loss(l.side, l.offset, l.len);
            }
        }
    }

    /// The response half started at `offset` without a usable first frame.
    pub(crate) fn response_began_unclean(&mut self, offset: u64) {
        self.response_begins(Side::Response, false);
        self.response.first_offset.get_or_insert(offset);
    }

    /// Whether more frames of `side` were still expected.
    pub(crate) fn open_in(&self, side: Side) -> bool {
        self.reset.is_none() && !self.half(side).ended
    }

    pub(crate) fn on_data(
        &mut self,
        side: Side,
        data: DataBytes<'_>,
        wire_len: u64,
        end_stream: bool,
        place: Place,
    ) {
        self.response_begins(side, false);
        let half = self.half_mut(side);
        half.touch(place);
        half.saw_data = true;
        match data {
            DataBytes::Held(bytes) => half.body.extend_from_slice(bytes),
            DataBytes::InTrace(ranges) => {
                let all = half.in_trace.get_or_insert_with(Vec::new);
                for (offset, len) in ranges.into_iter().filter(|r| r.1 > 0) {
                    match all.last_mut() {
                        Some(last) if last.0.saturating_add(last.1) == offset => {
                            last.1 = last.1.saturating_add(len);
                        }
                        _ => all.push((offset, len)),
                    }
                }
            }
        }
        half.body_wire += wire_len;
        half.ended |= end_stream;
    }

    /// Records a header block of `side`; `end_stream` came with its HEADERS.
    pub(crate) fn on_block(
        &mut self,
        side: Side,
        outcome: BlockOutcome,
        block_len: u64,
        end_stream: bool,
        place: Place,
    ) {
        self.response_begins(side, matches!(outcome, BlockOutcome::Decoded(_)));
        let half = self.half_mut(side);
        half.touch(place);
        half.ended |= end_stream;
        let headers = match outcome {
            BlockOutcome::Decoded(headers) => headers,
            BlockOutcome::Dropped(reason) => {
                half.dropped_block = true;
                let what = if half.head.is_none() && !half.saw_data {
                    "headers"
                } else {
                    "trailers"
                };
                self.mark(format!("{side} {what} not output: {reason}"));
                return;
            }
        };
        if let Some(reason) = misplaced_pseudo(side, &headers) {
            self.mark(reason);
        }
        let half = self.half_mut(side);
        let has_pseudo = headers.iter().any(Header::is_pseudo);
        match side {
            Side::Request if half.head.is_none() && has_pseudo => {
                half.head = Some(headers);
                half.head_size = Some(block_len);
            }
            Side::Request => half.trailers.extend(headers),
            Side::Response => match status_of(&headers) {
                Some(status @ 100..=199) => {
                    half.informational.push(Informational { status, headers })
                }
                Some(_) if half.head.is_none() => {
                    half.head = Some(headers);
                    half.head_size = Some(block_len);
                }
                _ => half.trailers.extend(headers),
            },
        }
    }

    /// Converts to an exchange; `closed` says whether the connection's end was seen.
    pub(crate) fn into_exchange(self, closed: bool) -> Exchange {
        let mut ex = Exchange::new(HttpVersion::Http2);
        ex.stream_id = Some(self.id);
        ex.pushed_by = self.pushed_by;
        ex.reset = self.reset;
        for reason in &self.marks {
            ex.mark(reason.clone());
        }
        for loss in self.losses.iter().chain(&self.losses_before_response) {
            ex.add_loss(loss.side, loss.offset, loss.len);
        }
        let ending = if closed {
            "at connection close"
        } else {
            "when the capture ended"
        };
        let unfinished = |side: Side| format!("{side} truncated: stream still open {ending}");

        let req = self.request;
        if req.head.is_none() && !req.dropped_block {
            ex.mark(
                "request headers not captured (stream began before the capture or in lost bytes)",
            );
        }
        if !req.ended && self.reset.is_none() && req.first_offset.is_some() {
            ex.mark(unfinished(Side::Request));
        }
        let head = req.head.unwrap_or_default();
        let pseudo = |name: &str| find_header(&head, name).map(<[u8]>::to_vec);
        ex.request = Request {
            method: pseudo(":method"),
            target: pseudo(":path"),
            authority: pseudo(":authority").or_else(|| pseudo("host")),
            scheme: pseudo(":scheme"),
            version: req.head_size.map(|_| HttpVersion::Http2),
            head_size: req.head_size,
            body: req.body,
            in_trace: req.in_trace.map(|ranges| InTrace { ranges }),
            body_wire_size: req.body_wire,
            trailers: req.trailers,
            headers: head,
        };
        ex.timings.request_first_byte_ns = req.first_ts;
        ex.timings.request_last_byte_ns = req.last_ts;

        let resp = self.response;
        if resp.first_offset.is_none() {
            if self.reset.is_none() {
                ex.mark("no response captured");
            }
        } else {
            if resp.head.is_none() && !resp.dropped_block {
                ex.mark("response headers not captured (sent before the capture or in lost bytes)");
            }
            if !resp.ended && self.reset.is_none() {
                ex.mark(unfinished(Side::Response));
            }
            let headers = resp.head.unwrap_or_default();
            ex.response = Some(Response {
                status: status_of(&headers),
                reason: Vec::new(),
                version: resp.head_size.map(|_| HttpVersion::Http2),
                head_size: resp.head_size,
                headers,
                informational: resp.informational,
                body: resp.body,
                in_trace: resp.in_trace.map(|ranges| InTrace { ranges }),
                body_wire_size: resp.body_wire,
                trailers: resp.trailers,
            });
            ex.timings.response_first_byte_ns = resp.first_ts;
            ex.timings.response_last_byte_ns = resp.last_ts;
        }
        if let Some(reset) = self.reset {
            // A reset after both halves finished (e.g. RST_STREAM(NO_ERROR) once
            // the response is complete) loses nothing.
            if !(req.ended && resp.ended) {
                ex.mark(format!(
                    "stream reset by {}: {} (0x{:x})",
                    match reset.by {
                        Side::Request => "client",
                        Side::Response => "server",
                    },
                    h2_error_name(reset.error_code),
                    reset.error_code
                ));
            }
        }
        ex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(offset: u64, ts: u64) -> Place {
        Place {
            offset,
            first_ts: Some(ts),
            last_ts: Some(ts),
        }
    }

    fn hs(pairs: &[(&str, &str)]) -> Vec<Header> {
        pairs.iter().map(|(n, v)| Header::new(*n, *v)).collect()
    }

    #[test]
    fn interim_final_and_trailers_are_told_apart() {
        let mut s = StreamState::new(1);
        s.on_block(
            Side::Request,
            BlockOutcome::Decoded(hs(&[
                (":method", "POST"),
                (":path", "/x"),
                (":authority", "a"),
            ])),
            10,
            false,
            place(0, 1),
        );
        s.on_data(
            Side::Request,
            DataBytes::Held(b"body"),
            4,
            true,
            place(20, 2),
        );
        s.on_block(
            Side::Response,
            BlockOutcome::Decoded(hs(&[(":status", "100")])),
            1,
            false,
            place(0, 3),
        );
        s.on_block(
            Side::Response,
            BlockOutcome::Decoded(hs(&[(":status", "200"), ("content-type", "a/b")])),
            5,
            false,
            place(10, 4),
        );
        s.on_data(
            Side::Response,
            DataBytes::Held(b"ok"),
            2,
            false,
            place(30, 5),
        );
        s.on_block(
            Side::Response,
            BlockOutcome::Decoded(hs(&[("grpc-status", "0")])),
            3,
            true,
            place(40, 6),
        );
        let ex = s.into_exchange(true);
        assert!(ex.is_complete(), "{:?}", ex.incomplete);
        let resp = ex.response.unwrap();
        assert_eq!(resp.status, Some(200));
        assert_eq!(resp.headers[0].name, b":status");
        assert_eq!(resp.informational[0].status, 100);
        assert_eq!(resp.trailer("grpc-status"), Some(&b"0"[..]));
        assert_eq!(ex.request.method.as_deref(), Some(&b"POST"[..]));
        assert_eq!(ex.timings.request_last_byte_ns, Some(2));
        assert_eq!(ex.timings.response_first_byte_ns, Some(3));
        assert_eq!(ex.timings.response_last_byte_ns, Some(6));
    }

    #[test]
    fn a_pseudo_header_after_a_regular_one_stays_in_wire_order_and_is_marked() {
        let mut s = StreamState::new(1);
        let wire = hs(&[(":method", "GET"), ("user-agent", "u"), (":path", "/p")]);
        s.on_block(
            Side::Request,
            BlockOutcome::Decoded(wire.clone()),
            10,
            true,
            place(0, 1),
        );
        let ex = s.into_exchange(true);
        assert_eq!(ex.request.headers, wire);
        assert_eq!(ex.request.target.as_deref(), Some(&b"/p"[..]));
        assert!(
            ex.incomplete.iter().any(|r| r
                == "request header block malformed (RFC 9113 §8.3): pseudo-header :path after \
                    regular header user-agent; shown in wire order"),
            "{:?}",
            ex.incomplete
        );
    }

    #[test]
    fn dropped_head_and_reset_are_marked() {
        let mut s = StreamState::new(3);
        s.on_block(
            Side::Request,
            BlockOutcome::Dropped("no context".into()),
            4,
            true,
            place(0, 1),
        );
        s.on_data(
            Side::Response,
            DataBytes::Held(b"partial"),
            7,
            false,
            place(0, 2),
        );
        s.reset = Some(StreamReset {
            by: Side::Request,
            error_code: 8,
        });
        let ex = s.into_exchange(false);
        assert!(ex.request.method.is_none());
        assert!(
            ex.incomplete
                .iter()
                .any(|r| r.contains("request headers not output: no context"))
        );
        assert!(ex.incomplete.iter().any(|r| r.contains("CANCEL")));
        assert!(
            ex.incomplete
                .iter()
                .any(|r| r.contains("response headers not captured"))
        );
        assert_eq!(ex.response.unwrap().body, b"partial");
    }
}
