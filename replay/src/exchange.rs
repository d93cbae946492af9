//! The output model: one request and its response, as they went over the wire.
//!
//! Everything that came off the wire stays bytes (`Vec<u8>`): a sink decides how
//! to render non-UTF-8, the reconstruction never does. Anything the capture
//! could not prove is `None` or empty and explained in [`Exchange::incomplete`].

use std::borrow::Cow;
use std::fmt;

use crate::stream::Side;

/// The HTTP version a message was sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HttpVersion {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
    /// HTTP/2.
    Http2,
}

impl HttpVersion {
    /// The version as written in a request line ("HTTP/1.1") or HAR ("HTTP/2").
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http10 => "HTTP/1.0",
            HttpVersion::Http11 => "HTTP/1.1",
            HttpVersion::Http2 => "HTTP/2",
        }
    }
}

impl fmt::Display for HttpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header field exactly as received (HTTP/2 names are lower case on the wire).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Header {
    /// Field name bytes.
    pub name: Vec<u8>,
    /// Field value bytes, without surrounding whitespace for HTTP/1.
    pub value: Vec<u8>,
}

impl Header {
    /// Builds a header from anything byte-like.
    pub fn new(name: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Whether this is an HTTP/2 pseudo-header (`:method`, `:status`, ...).
    pub fn is_pseudo(&self) -> bool {
        self.name.first() == Some(&b':')
    }

    /// The name, lossily decoded as UTF-8.
    pub fn name_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }

    /// The value, lossily decoded as UTF-8.
    pub fn value_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }
}

/// The first value of header `name` (ASCII case-insensitive) in `headers`.
pub fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|h| &h.value[..])
}

/// Every value of header `name` (ASCII case-insensitive), in wire order.
pub fn find_headers<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|h| &h.value[..])
}

/// The request half of an exchange.
///
/// Fields are `None` when the request head was never captured or could not be
/// decoded; the exchange then says why in [`Exchange::incomplete`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Method (`GET`), from the request line or `:method`.
    pub method: Option<Vec<u8>>,
    /// Request target as sent: the request-line target or `:path`.
    pub target: Option<Vec<u8>>,
    /// `:authority`, else the `Host` header.
    pub authority: Option<Vec<u8>>,
    /// `:scheme`; for HTTP/1 only when the target is in absolute form
    /// (the caller knows the transport was TLS).
    pub scheme: Option<Vec<u8>>,
    /// Version of the request line; `None` when the head was not seen.
    pub version: Option<HttpVersion>,
    /// Header fields in wire order (for HTTP/2 pseudo-headers first, unless the block was
    /// malformed: see [`Exchange::incomplete`]).
    pub headers: Vec<Header>,
    /// Size of the head on the wire (HTTP/1 bytes up to and including the empty
    /// line; HTTP/2 the HPACK-compressed header block).
    pub head_size: Option<u64>,
    /// Body bytes after transfer decoding (chunking, DATA framing, padding),
    /// still content-encoded. Empty when the body stayed in the trace ([`Request::in_trace`]).
    pub body: Vec<u8>,
    /// The body as ranges of the trace's request stream instead of bytes in `body` (see
    /// [`InTrace`]); `None` when `body` holds it.
    pub in_trace: Option<InTrace>,
    /// Body bytes on the wire, including chunk framing.
    pub body_wire_size: u64,
    /// Trailer fields (chunked trailers, or a trailing HTTP/2 HEADERS block).
    pub trailers: Vec<Header>,
}

/// A body left in the trace: the captured ranges of its direction's stream, in order.
///
/// A body of hundreds of MiB copied out of a memory-mapped trace costs as much anonymous memory
/// (and page faults), and its rendering (base64, JSON) as much again. A connection rebuilt on
/// windowed streams ([`crate::lazy`]) therefore records where its bodies are, and sinks read
/// them from the trace in pieces while they write (`LazyConnection::body_chunks`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InTrace {
    /// `(offset, len)` ranges of captured body bytes, in order, holes left out.
    pub ranges: Vec<(u64, u64)>,
}

impl InTrace {
    /// Number of body bytes (the sum of the ranges).
    pub fn len(&self) -> u64 {
        self.ranges.iter().fold(0, |n, r| n.saturating_add(r.1))
    }

    /// Whether the body has no captured byte.
    pub fn is_empty(&self) -> bool {
        self.ranges.iter().all(|r| r.1 == 0)
    }
}

/// Bytes of a body wherever they are: `body`, or the length of its ranges in the trace.
fn body_len(body: &[u8], in_trace: Option<&InTrace>) -> u64 {
    in_trace.map_or(body.len() as u64, InTrace::len)
}

impl Request {
    /// Number of body bytes after transfer decoding, wherever they are held.
    pub fn body_len(&self) -> u64 {
        body_len(&self.body, self.in_trace.as_ref())
    }

    /// First value of header `name`, ASCII case-insensitive.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }

    /// Whether the request head was not captured at all (no method, no target): the
    /// exchange is known from its response only.
    pub fn head_missing(&self) -> bool {
        self.method.is_none() && self.target.is_none()
    }

    /// The method, lossily decoded.
    pub fn method_str(&self) -> Option<Cow<'_, str>> {
        self.method.as_deref().map(String::from_utf8_lossy)
    }

    /// The target, lossily decoded.
    pub fn target_str(&self) -> Option<Cow<'_, str>> {
        self.target.as_deref().map(String::from_utf8_lossy)
    }
}

/// A 1xx response that preceded the final one (`100 Continue`, `103 Early Hints`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Informational {
    /// The 1xx status code.
    pub status: u16,
    /// Its header fields (`:status` first for HTTP/2).
    pub headers: Vec<Header>,
}

/// The response half of an exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// Final status code; `None` when the response head could not be decoded
    /// (its body may still be known).
    pub status: Option<u16>,
    /// Reason phrase bytes (HTTP/1 only; empty for HTTP/2).
    pub reason: Vec<u8>,
    /// Version of the status line; `None` when the head was not seen.
    pub version: Option<HttpVersion>,
    /// Header fields in wire order (for HTTP/2 `:status` first, unless the block was
    /// malformed: see [`Exchange::incomplete`]).
    pub headers: Vec<Header>,
    /// Size of the head on the wire (see [`Request::head_size`]).
    pub head_size: Option<u64>,
    /// Interim 1xx responses received before the final one, in order.
    pub informational: Vec<Informational>,
    /// Body bytes after transfer decoding, still content-encoded. Empty when the body stayed
    /// in the trace ([`Response::in_trace`]).
    pub body: Vec<u8>,
    /// The body as ranges of the trace's response stream instead of bytes in `body` (see
    /// [`InTrace`]); `None` when `body` holds it.
    pub in_trace: Option<InTrace>,
    /// Body bytes on the wire, including chunk framing.
    pub body_wire_size: u64,
    /// Trailer fields (e.g. `grpc-status`).
    pub trailers: Vec<Header>,
}

impl Response {
    /// Number of body bytes after transfer decoding, wherever they are held.
    pub fn body_len(&self) -> u64 {
        body_len(&self.body, self.in_trace.as_ref())
    }

    /// First value of header `name`, ASCII case-insensitive.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }

    /// First value of trailer `name`, ASCII case-insensitive.
    pub fn trailer(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.trailers, name)
    }
}

/// Kernel monotonic timestamps (ns) of the bytes that bound each message.
///
/// Each is the timestamp of the read/write that carried that byte; `None` when
/// the byte was not captured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// First byte of the request head.
    pub request_first_byte_ns: Option<u64>,
    /// Last byte of the request (end of body or trailers).
    pub request_last_byte_ns: Option<u64>,
    /// First byte of the response, interim 1xx responses included.
    pub response_first_byte_ns: Option<u64>,
    /// Last byte of the response.
    pub response_last_byte_ns: Option<u64>,
}

/// Bytes of one direction that belonged to this exchange and were lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    /// Direction of the lost bytes.
    pub side: Side,
    /// Offset of the first lost byte in that direction's stream.
    pub offset: u64,
    /// Number of lost bytes.
    pub len: u64,
}

/// What a successful protocol switch turned the connection into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeKind {
    /// `101 Switching Protocols` to `websocket`.
    WebSocket,
    /// `101 Switching Protocols` to another protocol, not parsed further.
    Other,
    /// A `CONNECT` answered with 2xx: an opaque tunnel.
    Tunnel,
}

/// WebSocket frame opcodes that form messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsOpcode {
    /// A text message.
    Text,
    /// A binary message.
    Binary,
    /// Connection close.
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
    /// A reserved opcode, kept as its 4-bit value.
    Reserved(u8),
}

/// One reassembled WebSocket message (fragments joined, payload unmasked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsMessage {
    /// Who sent it: [`Side::Request`] is the client.
    pub from: Side,
    /// Message type.
    pub opcode: WsOpcode,
    /// Unmasked payload; still compressed when `compressed` is set.
    pub payload: Vec<u8>,
    /// Whether the RSV1 bit said permessage-deflate compressed the payload.
    pub compressed: bool,
    /// Timestamp of the message's first byte.
    pub ts_ns: Option<u64>,
    /// Whether the message was cut short (capture end or loss).
    pub truncated: bool,
}

/// A protocol switch made by this exchange; HTTP parsing stops after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// What the connection became.
    pub kind: UpgradeKind,
    /// The `Upgrade` header of the 101 response (empty for CONNECT).
    pub protocol: Vec<u8>,
    /// Client-to-server bytes after the switch.
    pub request_bytes: u64,
    /// Server-to-client bytes after the switch.
    pub response_bytes: u64,
    /// WebSocket messages in capture order (client and server interleaved by
    /// timestamp); empty for other kinds.
    pub messages: Vec<WsMessage>,
}

/// An HTTP/2 `RST_STREAM` that ended the exchange's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamReset {
    /// Who sent the `RST_STREAM`.
    pub by: Side,
    /// The HTTP/2 error code.
    pub error_code: u32,
}

/// One request/response pair as reconstructed from a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Protocol of the connection carrying the exchange.
    pub version: HttpVersion,
    /// HTTP/2 stream id; `None` for HTTP/1.
    pub stream_id: Option<u32>,
    /// For a server-pushed HTTP/2 stream, the stream whose `PUSH_PROMISE`
    /// announced it.
    pub pushed_by: Option<u32>,
    /// The request.
    pub request: Request,
    /// The response, if any of it was captured.
    pub response: Option<Response>,
    /// First/last byte timestamps.
    pub timings: Timings,
    /// Why this exchange is not a faithful, complete copy of what was sent;
    /// empty when it is.
    pub incomplete: Vec<String>,
    /// Byte ranges of this exchange that were lost.
    pub loss: Vec<Loss>,
    /// Protocol switch (101 or CONNECT) made by this exchange.
    pub upgrade: Option<Upgrade>,
    /// HTTP/2 stream reset.
    pub reset: Option<StreamReset>,
}

impl Exchange {
    /// An exchange with nothing known yet.
    pub fn new(version: HttpVersion) -> Exchange {
        Exchange {
            version,
            stream_id: None,
            pushed_by: None,
            request: Request::default(),
            response: None,
            timings: Timings::default(),
            incomplete: Vec::new(),
            loss: Vec::new(),
            upgrade: None,
            reset: None,
        }
    }

    /// Whether everything was captured and understood.
    pub fn is_complete(&self) -> bool {
        self.incomplete.is_empty()
    }

    /// Records a reason once (repeats of the same text are dropped).
    pub fn mark(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        if !self.incomplete.contains(&reason) {
            self.incomplete.push(reason);
        }
    }

    /// Records lost bytes, with a matching human-readable reason.
    pub fn add_loss(&mut self, side: Side, offset: u64, len: u64) {
        if len == 0 || self.loss.contains(&Loss { side, offset, len }) {
            return;
        }
        self.loss.push(Loss { side, offset, len });
        self.mark(format!("lost {len} bytes at {side} offset {offset}"));
    }
}

/// Conventional name of an HTTP/2 error code (RFC 9113 §7), for reasons.
pub fn h2_error_name(code: u32) -> &'static str {
    match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => "unknown error code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_is_case_insensitive_and_ordered() {
        let hs = vec![
            Header::new("Set-Cookie", "a=1"),
            Header::new("content-type", "text/plain"),
            Header::new("set-cookie", "b=2"),
        ];
        assert_eq!(find_header(&hs, "Content-Type"), Some(&b"text/plain"[..]));
        let cookies: Vec<_> = find_headers(&hs, "SET-COOKIE").collect();
        assert_eq!(cookies, vec![&b"a=1"[..], &b"b=2"[..]]);
        assert!(Header::new(":path", "/").is_pseudo());
    }

    #[test]
    fn marks_and_losses_are_deduplicated() {
        let mut e = Exchange::new(HttpVersion::Http11);
        assert!(e.is_complete());
        e.add_loss(Side::Response, 4096, 1200);
        e.add_loss(Side::Response, 4096, 1200);
        assert_eq!(e.loss.len(), 1);
        assert_eq!(
            e.incomplete,
            vec!["lost 1200 bytes at response offset 4096"]
        );
    }
}
