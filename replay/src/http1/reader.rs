//! Cutting one direction of an HTTP/1 connection into messages.
//!
//! The reader never gives up on a direction: whatever cannot be parsed becomes
//! an [`Unreadable`] unit spanning up to the next plausible start line, so one
//! bad message costs exactly one exchange.

use super::body_reader::{BodyProblem, BodyRead, read_fixed, read_until_close};
use super::chunked::read_chunked;
use super::framing::BodyFraming;
use super::head::{HeadParse, RequestHead, ResponseHead, parse_request_head, parse_response_head};
use super::resync::{Plausible, StartLine, find_message_start, starts_message};
use crate::stream::DirectionStream;

/// A message whose head parsed.
#[derive(Debug, Clone)]
pub(crate) struct Message<H> {
    pub head: H,
    pub start: u64,
    pub head_end: u64,
    pub body: BodyRead,
    /// Why the body length could not be determined (body then assumed empty).
    pub framing_error: Option<String>,
}

/// Bytes that could not be read as a message: garbage, a head cut by lost bytes,
/// or a head truncated by the end of the capture.
#[derive(Debug, Clone)]
pub(crate) struct Unreadable {
    pub start: u64,
    pub end: u64,
    pub reason: String,
    /// Lost ranges inside `[start, end)`.
    pub losses: Vec<(u64, u64)>,
}

/// One unit of a direction: a message or an unreadable stretch.
#[derive(Debug, Clone)]
pub(crate) enum Unit<H> {
    Message(Message<H>),
    Unreadable(Unreadable),
}

impl<H> Unit<H> {
    pub(crate) fn start(&self) -> u64 {
        match self {
            Unit::Message(m) => m.start,
            Unit::Unreadable(u) => u.start,
        }
    }

    pub(crate) fn end(&self) -> u64 {
        match self {
            Unit::Message(m) => m.body.end,
            Unit::Unreadable(u) => u.end,
        }
    }
}

/// Position in one direction plus what kind of messages it carries.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    pub stream: &'a DirectionStream<'a>,
    pub pos: u64,
    kind: StartLine,
    /// Bytes skipped before the first message because the capture began
    /// mid-message, as `(offset, len)`.
    pub skipped_at_start: Option<(u64, u64)>,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(stream: &'a DirectionStream, kind: StartLine) -> Cursor<'a> {
        let mut cursor = Cursor {
            stream,
            pos: stream.start(),
            kind,
            skipped_at_start: None,
        };
        // Offset 0 is the real start of the connection: anything there that is
        // not a start line is garbage worth reporting as an exchange. A later
        // start is just the tail of a message the capture missed.
        if stream.start() > 0 && !stream.is_empty() {
            let bytes = stream.contiguous(cursor.pos);
            if bytes.is_empty() || starts_message(bytes, kind) == Plausible::No {
                let next = cursor.resync(cursor.pos);
                if next > cursor.pos {
                    cursor.skipped_at_start = Some((cursor.pos, next - cursor.pos));
                    cursor.pos = next;
                }
            }
        }
        cursor
    }

    /// A cursor at `pos`, as a previous one over `stream` left it (the start already skipped).
    pub(crate) fn resume(stream: &'a DirectionStream, kind: StartLine, pos: u64) -> Cursor<'a> {
        Cursor {
            stream,
            pos,
            kind,
            skipped_at_start: None,
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.stream.end()
    }

    /// Timestamp of the next unit's first byte (the loss record's for a hole).
    pub(crate) fn peek_ts(&self) -> Option<u64> {
        if self.at_end() {
            return None;
        }
        match self.stream.ts_at(self.pos) {
            Some(ts) => Some(ts),
            None => self.stream.hole_at(self.pos).and_then(|h| h.ts_ns),
        }
    }

    /// The first plausible start line at or after `from`, across holes; the end
    /// of the stream when there is none.
    pub(crate) fn resync(&self, from: u64) -> u64 {
        let mut at = from;
        while let Some(run_start) = self.stream.next_data(at) {
            let bytes = self.stream.contiguous(run_start);
            let run_end = run_start + bytes.len() as u64;
            let last_run = run_end >= self.stream.end();
            if let Some(i) = find_message_start(bytes, 0, self.kind, last_run) {
                return run_start + i as u64;
            }
            at = run_end;
        }
        self.stream.end()
    }

    fn losses_between(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        self.stream
            .holes_between(from, to)
            .map(|h| {
                let a = h.offset.max(from);
                (a, h.end().min(to) - a)
            })
            .collect()
    }

    fn unreadable(&mut self, start: u64, end: u64, reason: String) -> Unreadable {
        let end = end.max(start.saturating_add(1)).min(self.stream.end());
        self.pos = end;
        Unreadable {
            start,
            end,
            reason,
            losses: self.losses_between(start, end),
        }
    }

    /// Parses a head at the cursor; on failure returns the unreadable stretch.
    fn head<H>(
        &mut self,
        parse: impl Fn(&[u8]) -> HeadParse<H>,
    ) -> Option<Result<(H, u64), Unreadable>>
    where
        H: HeadLen,
    {
        if self.at_end() {
            return None;
        }
        let start = self.pos;
        let what = match self.kind {
            StartLine::Request => "request",
            StartLine::Status => "response",
        };
        let bytes = self.stream.contiguous(start);
        if bytes.is_empty() {
            let (hole_end, hole_len) = match self.stream.hole_at(start) {
                Some(h) => (h.end(), h.end() - start),
                None => (self.stream.end(), 0),
            };
            let next = self.resync(hole_end);
            let reason = format!(
                "{what} lost: {hole_len} bytes missing at {what} offset {start}, resynced at offset {next}"
            );
            return Some(Err(self.unreadable(start, next, reason)));
        }
        match parse(bytes) {
            HeadParse::Complete(head) => {
                let head_end = start + head.head_len() as u64;
                Some(Ok((head, head_end)))
            }
            HeadParse::Partial => {
                let run_end = start + bytes.len() as u64;
                let reason;
                let end;
                if run_end >= self.stream.end() {
                    reason = format!(
                        "{what} head truncated at end of capture ({} bytes at offset {start})",
                        bytes.len()
                    );
                    end = run_end;
                } else {
                    end = self.resync(run_end);
                    reason = format!(
                        "{what} head cut by missing bytes at offset {run_end}, resynced at offset {end}"
                    );
                }
                Some(Err(self.unreadable(start, end, reason)))
            }
            HeadParse::Invalid(why) => {
                let end = self.resync(start + 1);
                let reason = format!(
                    "unparseable {what} head at offset {start} ({why}); skipped {} bytes",
                    end - start
                );
                Some(Err(self.unreadable(start, end, reason)))
            }
        }
    }

    fn body(
        &mut self,
        start: u64,
        head_end: u64,
        framing: BodyFraming,
    ) -> (BodyRead, Option<String>) {
        let (body, framing_error) = match framing {
            BodyFraming::None => (BodyRead::empty(head_end), None),
            BodyFraming::Length(n) => (read_fixed(self.stream, head_end, n), None),
            BodyFraming::Chunked => (read_chunked(self.stream, head_end), None),
            BodyFraming::UntilClose => (read_until_close(self.stream, head_end), None),
            BodyFraming::Invalid(why) => (BodyRead::empty(head_end), Some(why)),
        };
        self.pos = body.end.max(start + 1);
        // After broken framing, the next message is wherever a start line is.
        if matches!(body.problem, Some(BodyProblem::Framing(_))) || framing_error.is_some() {
            self.pos = self.resync(self.pos);
        }
        (body, framing_error)
    }

    /// Reads the next request (head and body).
    pub(crate) fn next_request(&mut self) -> Option<Unit<RequestHead>> {
        let (head, head_end) = match self.head(parse_request_head)? {
            Ok(h) => h,
            Err(u) => return Some(Unit::Unreadable(u)),
        };
        let start = self.pos;
        let framing = super::framing::request_framing(&head.headers);
        let (body, framing_error) = self.body(start, head_end, framing);
        Some(Unit::Message(Message {
            head,
            start,
            head_end,
            body,
            framing_error,
        }))
    }

    /// Reads the next response; its body length depends on the request method.
    pub(crate) fn next_response(
        &mut self,
        request_method: Option<&[u8]>,
    ) -> Option<Unit<ResponseHead>> {
        let (head, head_end) = match self.head(parse_response_head)? {
            Ok(h) => h,
            Err(u) => return Some(Unit::Unreadable(u)),
        };
        let start = self.pos;
        let framing = super::framing::response_framing(request_method, head.status, &head.headers);
        let (body, framing_error) = self.body(start, head_end, framing);
        Some(Unit::Message(Message {
            head,
            start,
            head_end,
            body,
            framing_error,
        }))
    }
}

/// Length of a parsed head, for the generic head reader.
pub(crate) trait HeadLen {
    fn head_len(&self) -> usize;
}

impl HeadLen for RequestHead {
    fn head_len(&self) -> usize {
        self.len
    }
}

impl HeadLen for ResponseHead {
    fn head_len(&self) -> usize {
        self.len
    }
}
