//! Which HTTP version a connection speaks.

use crate::http1::resync::{Plausible, StartLine, find_message_start, starts_message};
use crate::http2::frame::PREFACE;
use crate::http2::framer::looks_like_frames;
use crate::stream::DirectionStream;

/// The protocol a connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or HTTP/1.1.
    Http1,
    /// HTTP/2.
    Http2,
    /// Neither could be recognised; no exchanges are produced.
    Unknown,
}

/// What the detection relied on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The negotiated ALPN protocol.
    Alpn,
    /// The HTTP/2 client connection preface.
    Preface,
    /// An HTTP/1 request or status line at the first captured byte.
    StartLine,
    /// A chain of well-formed HTTP/2 frames (capture started mid-connection).
    FrameChain,
    /// An HTTP/1 start line somewhere after the first byte.
    LaterStartLine,
    /// Nothing matched.
    Nothing,
}

/// Result of [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// The protocol.
    pub protocol: Protocol,
    /// Why.
    pub evidence: Evidence,
}

fn first_run<'s>(stream: &'s DirectionStream<'_>) -> &'s [u8] {
    stream.runs().next().map_or(&[][..], |(_, b)| b)
}

/// How far [`detect_from_start`] looks into a first run: a start line is decided within
/// (method, 16 KiB target, version; or a 1 KiB reason), the preface within 24 bytes.
pub(crate) const START_LOOKAHEAD: usize = 64 << 10;

/// The first steps of [`detect`]: ALPN, then the preface or a start line at the first captured
/// bytes of each direction (`req`, `resp`: their first runs, or a prefix of at least
/// [`START_LOOKAHEAD`] bytes, which gives the same answer). `None`: the rest of the streams
/// decide.
pub(crate) fn detect_from_start(alpn: Option<&[u8]>, req: &[u8], resp: &[u8]) -> Option<Detection> {
    let found = |protocol, evidence| Some(Detection { protocol, evidence });
    match alpn {
        Some(b"h2") => return found(Protocol::Http2, Evidence::Alpn),
        Some(b"http/1.1" | b"http/1.0") => return found(Protocol::Http1, Evidence::Alpn),
        _ => {}
    }
    if req.starts_with(PREFACE) {
        return found(Protocol::Http2, Evidence::Preface);
    }
    let line =
        |bytes: &[u8], kind| starts_message(bytes, kind) != Plausible::No && bytes.len() >= 8;
    if line(req, StartLine::Request) || line(resp, StartLine::Status) {
        return found(Protocol::Http1, Evidence::StartLine);
    }
    None
}

/// Decides the protocol from the ALPN (`h2`, `http/1.1`, `http/1.0`) when
/// known, else from the bytes.
pub fn detect(
    alpn: Option<&[u8]>,
    request: &DirectionStream,
    response: &DirectionStream,
) -> Detection {
    if let Some(d) = detect_from_start(alpn, first_run(request), first_run(response)) {
        return d;
    }
    let found = |protocol, evidence| Detection { protocol, evidence };
    if looks_like_frames(response) || looks_like_frames(request) {
        return found(Protocol::Http2, Evidence::FrameChain);
    }
    let later = |stream: &DirectionStream, kind| {
        stream
            .runs()
            .any(|(_, bytes)| find_message_start(bytes, 0, kind, false).is_some())
    };
    if later(request, StartLine::Request) || later(response, StartLine::Status) {
        return found(Protocol::Http1, Evidence::LaterStartLine);
    }
    found(Protocol::Unknown, Evidence::Nothing)
}
