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

/// Decides the protocol from the ALPN (`h2`, `http/1.1`, `http/1.0`) when
/// known, else from the bytes.
pub fn detect(
    alpn: Option<&[u8]>,
    request: &DirectionStream,
    response: &DirectionStream,
) -> Detection {
    let found = |protocol, evidence| Detection { protocol, evidence };
    match alpn {
        Some(b"h2") => return found(Protocol::Http2, Evidence::Alpn),
        Some(b"http/1.1" | b"http/1.0") => return found(Protocol::Http1, Evidence::Alpn),
        _ => {}
    }
    let req = first_run(request);
    let resp = first_run(response);
    if req.starts_with(PREFACE) {
        return found(Protocol::Http2, Evidence::Preface);
    }
    let line =
        |bytes: &[u8], kind| starts_message(bytes, kind) != Plausible::No && bytes.len() >= 8;
    if line(req, StartLine::Request) || line(resp, StartLine::Status) {
        return found(Protocol::Http1, Evidence::StartLine);
    }
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
