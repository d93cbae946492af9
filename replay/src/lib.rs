//! Offline reconstruction of HTTP exchanges from spliff traces.
//!
//! Data flows one way: trace file → connections → HTTP/1.1 or HTTP/2 → exchanges → sinks.
//! Nothing here needs root or Linux; the same trace always gives the same bytes out.
//!
//! The protocol core takes one connection as two [`DirectionStream`]s (built
//! from trace [`Piece`]s) and returns its [`Exchange`]s via [`reconstruct`].
//! Anything the capture cannot prove is left out and explained in
//! [`Exchange::incomplete`]: a missing header is acceptable, a wrong one is not.

pub mod body;
pub mod body_stream;
pub mod detect;
pub mod exchange;
pub mod filter;
pub mod har;
mod http1;
mod http2;
pub mod lazy;
pub mod live;
pub mod pcapng;
pub mod pipeline;
pub mod stream;
pub mod text;
pub mod trace_input;
mod websocket;

pub use body::{BodyError, ContentCoding, DecodeOptions, decode_body, decode_content};
pub use detect::{Detection, Evidence, Protocol, detect};
pub use exchange::{
    Exchange, Header, HttpVersion, InTrace, Informational, Loss, Request, Response, StreamReset,
    Timings, Upgrade, UpgradeKind, WsMessage, WsOpcode,
};
pub use stream::{DirectionStream, Hole, Piece, Side};

/// Limits applied while reconstructing; the defaults suit real traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Largest HPACK dynamic table a peer may make the decoder keep, whatever
    /// SETTINGS_HEADER_TABLE_SIZE it advertised (default 1 MiB). An encoder that
    /// goes beyond loses its HPACK context: its headers are dropped, not guessed.
    pub max_hpack_table_size: usize,
    /// Largest HTTP/2 header block (fragments joined) and decoded header list
    /// (default 4 MiB).
    pub max_header_block: usize,
}

impl Default for ReplayOptions {
    fn default() -> ReplayOptions {
        ReplayOptions {
            max_hpack_table_size: 1 << 20,
            max_header_block: 4 << 20,
        }
    }
}

/// Both directions of one connection, as the trace layer assembled them.
#[derive(Debug, Clone, Default)]
pub struct ConnectionStreams<'a> {
    /// ALPN protocol negotiated by TLS, if the trace recorded it (`b"h2"`).
    pub alpn: Option<Vec<u8>>,
    /// Client-to-server plaintext.
    pub request: DirectionStream<'a>,
    /// Server-to-client plaintext.
    pub response: DirectionStream<'a>,
    /// Whether the trace saw the connection close. When it did not, a body
    /// delimited by connection close, or an open stream, is reported as
    /// possibly truncated.
    pub closed: bool,
}

/// Everything reconstructed from one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconstruction {
    /// Protocol detected, and on what evidence.
    pub detection: Detection,
    /// Exchanges in request order (HTTP/2: by first request byte, then stream id).
    pub exchanges: Vec<Exchange>,
    /// Connection-level observations that belong to no single exchange:
    /// bytes skipped at a mid-connection start, GOAWAY, lost frame sync.
    pub notes: Vec<String>,
}

/// Reconstructs the HTTP exchanges of one connection.
///
/// Never panics and is deterministic: the same input gives the same output,
/// whatever the piece boundaries (timestamps aside).
pub fn reconstruct(conn: &ConnectionStreams<'_>, options: &ReplayOptions) -> Reconstruction {
    let detection = detect(conn.alpn.as_deref(), &conn.request, &conn.response);
    let (exchanges, mut notes) = match detection.protocol {
        Protocol::Http1 => {
            let r = http1::replay(&conn.request, &conn.response, conn.closed);
            (r.exchanges, r.notes)
        }
        Protocol::Http2 => {
            let limits = http2::Limits {
                max_table_size: options.max_hpack_table_size,
                max_header_block: options.max_header_block,
            };
            let r = http2::replay(&conn.request, &conn.response, conn.closed, limits);
            (r.exchanges, r.notes)
        }
        Protocol::Unknown => (
            Vec::new(),
            vec!["no HTTP/1 or HTTP/2 traffic recognised on this connection".to_string()],
        ),
    };
    for (side, stream) in [
        (Side::Request, &conn.request),
        (Side::Response, &conn.response),
    ] {
        if stream.overlapped_bytes() > 0 {
            notes.push(format!(
                "{} {side} bytes arrived twice in the trace and were ignored",
                stream.overlapped_bytes()
            ));
        }
    }
    Reconstruction {
        detection,
        exchanges,
        notes,
    }
}
