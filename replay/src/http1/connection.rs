//! Pairing requests with responses on one HTTP/1 connection.
//!
//! Responses come back in request order (pipelining included), so pairing is
//! positional, with one correction from timestamps: a response whose first byte
//! precedes the pending request's first byte answers a request the capture never
//! saw (it started mid-connection), and is emitted on its own.

use super::body_reader::BodyProblem;
use super::head::{RequestHead, ResponseHead};
use super::reader::{Cursor, Message, Unit, Unreadable};
use super::resync::StartLine;
use crate::exchange::{
    Exchange, HttpVersion, Informational, Request, Response, Upgrade, UpgradeKind, find_header,
};
use crate::stream::{DirectionStream, Side};
use crate::websocket;

/// Result of replaying one HTTP/1 connection.
#[derive(Debug, Default)]
pub(crate) struct Http1Result {
    pub exchanges: Vec<Exchange>,
    pub notes: Vec<String>,
}

/// What one request got back.
struct ResponseUnits {
    interim: Vec<Message<ResponseHead>>,
    last: Option<Unit<ResponseHead>>,
}

/// Replays an HTTP/1 connection; `closed` says whether the trace saw it end
/// (so that a read-until-close body is known to be complete).
pub(crate) fn replay(
    request: &DirectionStream,
    response: &DirectionStream,
    closed: bool,
) -> Http1Result {
    let mut replayer = Replayer::new(request, response);
    let mut exchanges = Vec::new();
    while let Some(ex) = replayer.next(request, response, closed) {
        exchanges.push(ex);
    }
    Http1Result {
        exchanges,
        notes: replayer.notes,
    }
}

/// An HTTP/1 connection replayed one exchange at a time, in the order [`replay`] gives them.
///
/// It keeps only the two cursor positions and, at most, one request read ahead; the streams
/// are passed to every call, so that the caller owns them (no self-borrowing state).
#[derive(Debug, Clone)]
pub(crate) struct Replayer {
    req_pos: u64,
    resp_pos: u64,
    /// A request already read while responses that predate it (answers to requests the
    /// capture never saw) are emitted first.
    pending: Option<Unit<RequestHead>>,
    /// No request left: what remains are responses to requests the capture lost.
    draining: bool,
    done: bool,
    /// Connection-level notes, all known once the starts have been located.
    pub notes: Vec<String>,
}

impl Replayer {
    pub(crate) fn new(request: &DirectionStream, response: &DirectionStream) -> Replayer {
        let reqs = Cursor::new(request, StartLine::Request);
        let resps = Cursor::new(response, StartLine::Status);
        let mut notes = Vec::new();
        for (cursor, side) in [(&reqs, Side::Request), (&resps, Side::Response)] {
            if let Some((offset, len)) = cursor.skipped_at_start {
                notes.push(format!(
                    "capture started mid-connection: skipped {len} {side} bytes at offset {offset} before the first message"
                ));
            }
        }
        Replayer {
            req_pos: reqs.pos,
            resp_pos: resps.pos,
            pending: None,
            draining: false,
            done: false,
            notes,
        }
    }

    /// Where the next exchange's request and response units start (at the latest): every
    /// byte an exchange still to come is built from lies at or after these offsets.
    pub(crate) fn positions(&self) -> (u64, u64) {
        let req = self.pending.as_ref().map_or(self.req_pos, Unit::start);
        (req.min(self.req_pos), self.resp_pos)
    }

    /// Whether every exchange has been returned.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The next exchange, `None` once the connection is done.
    pub(crate) fn next(
        &mut self,
        request: &DirectionStream,
        response: &DirectionStream,
        closed: bool,
    ) -> Option<Exchange> {
        if self.done {
            return None;
        }
        let mut reqs = Cursor::resume(request, StartLine::Request, self.req_pos);
        let mut resps = Cursor::resume(response, StartLine::Status, self.resp_pos);
        let ex = self.step(&mut reqs, &mut resps, closed);
        self.req_pos = reqs.pos;
        self.resp_pos = resps.pos;
        if ex.is_none() {
            self.done = true;
        }
        ex
    }

    fn step(
        &mut self,
        reqs: &mut Cursor<'_>,
        resps: &mut Cursor<'_>,
        closed: bool,
    ) -> Option<Exchange> {
        let (request, response) = (reqs.stream, resps.stream);
        if !self.draining && self.pending.is_none() {
            match reqs.next_request() {
                Some(req) => self.pending = Some(req),
                None => self.draining = true,
            }
        }
        let Some(req) = self.pending.take() else {
            // Responses left over answer requests the capture lost or never saw.
            if resps.at_end() {
                return None;
            }
            let units = collect_response(resps, None);
            return Some(build(None, units, request, response, closed));
        };
        if let (Some(resp_ts), Some(req_ts)) = (resps.peek_ts(), first_ts(&req, request))
            && resp_ts < req_ts
        {
            self.pending = Some(req);
            let units = collect_response(resps, None);
            return Some(build(None, units, request, response, closed));
        }
        let method = match &req {
            Unit::Message(m) => Some(m.head.method.clone()),
            Unit::Unreadable(_) => None,
        };
        let units = collect_response(resps, method.as_deref());
        let req_end = req.end();
        let resp_end = resps.pos;
        let mut exchange = build(Some(req), units, request, response, closed);
        if let Some(upgrade) = exchange.upgrade.as_mut() {
            fill_tunnel(upgrade, request, req_end, response, resp_end);
            // HTTP ends at a switch: what follows is the tunnel's.
            self.draining = true;
            self.done = true;
            return Some(exchange);
        }
        exchange_tail_checks(&mut exchange);
        Some(exchange)
    }
}

fn first_ts<H>(unit: &Unit<H>, stream: &DirectionStream) -> Option<u64> {
    stream
        .ts_at(unit.start())
        .or_else(|| stream.hole_at(unit.start()).and_then(|h| h.ts_ns))
}

/// Interim 1xx responses (except 101, which ends HTTP) then the final one.
fn collect_response(resps: &mut Cursor<'_>, method: Option<&[u8]>) -> ResponseUnits {
    let mut interim = Vec::new();
    loop {
        match resps.next_response(method) {
            Some(Unit::Message(m))
                if (100..200).contains(&m.head.status) && m.head.status != 101 =>
            {
                interim.push(m)
            }
            last => return ResponseUnits { interim, last },
        }
    }
}

fn build(
    req: Option<Unit<RequestHead>>,
    resp: ResponseUnits,
    req_stream: &DirectionStream,
    resp_stream: &DirectionStream,
    closed: bool,
) -> Exchange {
    let mut ex = Exchange::new(HttpVersion::Http11);
    let mut method: Option<Vec<u8>> = None;
    match req {
        None => ex.mark("request not captured (capture started mid-connection or request lost)"),
        Some(Unit::Unreadable(u)) => apply_unreadable(&mut ex, &u, Side::Request, req_stream),
        Some(Unit::Message(m)) => {
            method = Some(m.head.method.clone());
            apply_request(&mut ex, m, req_stream, closed);
        }
    }

    if let Some(first) = resp.interim.first() {
        ex.timings.response_first_byte_ns = resp_stream.ts_at(first.start);
    }
    let mut response = Response {
        informational: resp
            .interim
            .iter()
            .map(|m| Informational {
                status: m.head.status,
                headers: m.head.headers.clone(),
            })
            .collect(),
        ..Response::default()
    };
    match resp.last {
        None if response.informational.is_empty() => {
            ex.mark("no response captured");
            return ex;
        }
        None => ex.mark("final response not captured after interim responses"),
        Some(Unit::Unreadable(u)) => {
            let first = ex.timings.response_first_byte_ns;
            apply_unreadable(&mut ex, &u, Side::Response, resp_stream);
            ex.timings.response_first_byte_ns = first.or(ex.timings.response_first_byte_ns);
        }
        Some(Unit::Message(m)) => apply_response(
            &mut ex,
            &mut response,
            m,
            method.as_deref(),
            resp_stream,
            closed,
        ),
    }
    if ex.request.version.is_none() {
        ex.version = response.version.unwrap_or(HttpVersion::Http11);
    }
    ex.response = Some(response);
    ex
}

fn apply_unreadable(ex: &mut Exchange, u: &Unreadable, side: Side, stream: &DirectionStream) {
    ex.mark(u.reason.clone());
    for &(offset, len) in &u.losses {
        ex.add_loss(side, offset, len);
    }
    let first = stream.ts_at_or_after(u.start);
    let last = stream.ts_before(u.end);
    match side {
        Side::Request => {
            ex.timings.request_first_byte_ns = first;
            ex.timings.request_last_byte_ns = last;
        }
        Side::Response => {
            ex.timings.response_first_byte_ns = first;
            ex.timings.response_last_byte_ns = last;
        }
    }
}

fn body_reasons(ex: &mut Exchange, side: Side, m_problem: &Option<BodyProblem>, closed: bool) {
    let end = if closed {
        "connection closed"
    } else {
        "capture ended"
    };
    match m_problem {
        None => {}
        Some(BodyProblem::Truncated {
            got,
            expected: Some(n),
        }) => ex.mark(format!(
            "{side} body truncated at {end}: got {got} of {n} bytes"
        )),
        Some(BodyProblem::Truncated {
            got,
            expected: None,
        }) => ex.mark(format!(
            "{side} truncated at {end}: chunked body unfinished after {got} bytes"
        )),
        Some(BodyProblem::Framing(why)) => ex.mark(format!("{side} body framing broken: {why}")),
    }
}

fn apply_request(
    ex: &mut Exchange,
    mut m: Message<RequestHead>,
    stream: &DirectionStream,
    closed: bool,
) {
    let (body, in_trace) = m.body.take();
    let head = m.head;
    ex.version = head.version;
    let (scheme, url_authority) = split_absolute_form(&head.target);
    let host = find_header(&head.headers, "host").map(<[u8]>::to_vec);
    ex.request = Request {
        authority: host.or(url_authority),
        scheme,
        method: Some(head.method),
        target: Some(head.target),
        version: Some(head.version),
        headers: head.headers,
        head_size: Some(m.head_end - m.start),
        body_wire_size: m.body.end.saturating_sub(m.head_end),
        body,
        in_trace,
        trailers: m.body.trailers,
    };
    ex.timings.request_first_byte_ns = stream.ts_at(m.start);
    ex.timings.request_last_byte_ns = m
        .body
        .last_byte
        .and_then(|b| stream.ts_at(b))
        .or_else(|| stream.ts_before(m.head_end));
    for (offset, len) in m.body.losses {
        ex.add_loss(Side::Request, offset, len);
    }
    if let Some(why) = m.framing_error {
        ex.mark(format!("request body length undecidable: {why}"));
    }
    body_reasons(ex, Side::Request, &m.body.problem, closed);
}

fn apply_response(
    ex: &mut Exchange,
    response: &mut Response,
    mut m: Message<ResponseHead>,
    method: Option<&[u8]>,
    stream: &DirectionStream,
    closed: bool,
) {
    let head = m.head;
    let first = ex.timings.response_first_byte_ns;
    ex.timings.response_first_byte_ns = first.or(stream.ts_at(m.start));
    ex.timings.response_last_byte_ns = m
        .body
        .last_byte
        .and_then(|b| stream.ts_at(b))
        .or_else(|| stream.ts_before(m.head_end));
    let switch = if head.status == 101 {
        let protocol = find_header(&head.headers, "upgrade")
            .unwrap_or_default()
            .to_vec();
        let kind = if protocol.trim_ascii().eq_ignore_ascii_case(b"websocket") {
            UpgradeKind::WebSocket
        } else {
            UpgradeKind::Other
        };
        Some((kind, protocol))
    } else if method == Some(b"CONNECT") && (200..300).contains(&head.status) {
        Some((UpgradeKind::Tunnel, Vec::new()))
    } else {
        None
    };
    let until_close = switch.is_none()
        && super::framing::response_framing(method, head.status, &head.headers)
            == super::framing::BodyFraming::UntilClose;
    response.status = Some(head.status);
    response.reason = head.reason;
    response.version = Some(head.version);
    response.headers = head.headers;
    response.head_size = Some(m.head_end - m.start);
    response.body_wire_size = m.body.end.saturating_sub(m.head_end);
    (response.body, response.in_trace) = m.body.take();
    response.trailers = m.body.trailers;
    for (offset, len) in m.body.losses {
        ex.add_loss(Side::Response, offset, len);
    }
    if let Some(why) = m.framing_error {
        ex.mark(format!("response body length undecidable: {why}"));
    }
    body_reasons(ex, Side::Response, &m.body.problem, closed);
    if until_close && !closed {
        ex.mark("response body delimited by connection close, but the capture ended first");
    }
    if let Some((kind, protocol)) = switch {
        ex.upgrade = Some(Upgrade {
            kind,
            protocol,
            request_bytes: 0,
            response_bytes: 0,
            messages: Vec::new(),
        });
    }
}

/// Checks that need both halves.
fn exchange_tail_checks(ex: &mut Exchange) {
    // With `Expect: 100-continue`, a client may skip the body when the server
    // answers with a final status straight away; a "truncated" body then is
    // the client's choice, not lost data.
    let expects = ex
        .request
        .header("expect")
        .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"));
    let got_continue = ex
        .response
        .as_ref()
        .is_some_and(|r| r.informational.iter().any(|i| i.status == 100));
    let final_status = ex.response.as_ref().and_then(|r| r.status);
    if expects && !got_continue && final_status.is_some() {
        let before = ex.incomplete.len();
        ex.incomplete
            .retain(|r| !(r.starts_with("request body truncated") && r.contains("got 0 of")));
        if ex.incomplete.len() != before {
            ex.mark("request body not sent: the server answered before 100 Continue");
        }
    }
}

/// The tunnel bytes after a switch, and WebSocket messages when applicable.
fn fill_tunnel(
    upgrade: &mut Upgrade,
    request: &DirectionStream,
    req_end: u64,
    response: &DirectionStream,
    resp_end: u64,
) {
    upgrade.request_bytes = request.end().saturating_sub(req_end);
    upgrade.response_bytes = response.end().saturating_sub(resp_end);
    if upgrade.kind == UpgradeKind::WebSocket {
        upgrade.messages = websocket::interleave(
            websocket::messages(request, req_end, Side::Request),
            websocket::messages(response, resp_end, Side::Response),
        );
    }
}

/// `(scheme, authority)` of an absolute-form target (`http://host/path`).
fn split_absolute_form(target: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let Some(colon) = target.windows(3).position(|w| w == b"://") else {
        return (None, None);
    };
    let scheme = &target[..colon];
    if scheme.is_empty()
        || !scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
    {
        return (None, None);
    }
    let rest = &target[colon + 3..];
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    (Some(scheme.to_vec()), Some(rest[..end].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_form_targets_give_scheme_and_authority() {
        assert_eq!(
            split_absolute_form(b"https://example.com:8443/a?b"),
            (Some(b"https".to_vec()), Some(b"example.com:8443".to_vec()))
        );
        assert_eq!(split_absolute_form(b"/a://b"), (None, None));
        assert_eq!(split_absolute_form(b"*"), (None, None));
    }
}
