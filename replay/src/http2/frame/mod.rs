//! HTTP/2 frames (RFC 9113 §6): the 9-byte header, then one parser per type.
//!
//! Parsers borrow from the captured stream; nothing here allocates based on a
//! length field.

mod continuation;
mod data;
mod goaway;
mod head;
mod headers;
mod padding;
mod ping;
mod priority;
mod push_promise;
mod rst_stream;
mod settings;
mod window_update;

pub(crate) use continuation::Continuation;
pub(crate) use data::Data;
pub(crate) use goaway::GoAway;
pub(crate) use head::{FRAME_HEADER_LEN, FrameHead, Kind};
pub(crate) use headers::Headers;
pub(crate) use ping::Ping;
pub(crate) use priority::Priority;
pub(crate) use push_promise::PushPromise;
pub(crate) use rst_stream::RstStream;
pub(crate) use settings::{SETTINGS_HEADER_TABLE_SIZE, Settings};
pub(crate) use window_update::WindowUpdate;

/// The connection preface a client sends before its first frame.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Flag bits shared by several frame types.
pub(crate) mod flags {
    /// DATA, HEADERS: last frame the sender sends on the stream.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: acknowledgement.
    pub const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION: header block complete.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE: a pad-length byte and padding are present.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: a priority block precedes the fragment.
    pub const PRIORITY: u8 = 0x20;
}

/// Why a frame's payload does not match its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// The payload length is impossible for the type.
    #[error("{kind:?} frame with invalid length {len}")]
    InvalidLength { kind: Kind, len: usize },
    /// Padding claims more bytes than the payload holds.
    #[error("{kind:?} frame padding ({pad}) exceeds its payload")]
    PaddingTooLong { kind: Kind, pad: usize },
    /// A stream-level frame on stream 0.
    #[error("{0:?} frame on stream 0")]
    StreamIdRequired(Kind),
    /// A connection-level frame on a stream.
    #[error("{0:?} frame on stream {1}, must be 0")]
    StreamIdMustBeZero(Kind, u32),
}

/// A parsed frame, borrowing its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    Data(Data<'a>),
    Headers(Headers<'a>),
    Priority(Priority),
    RstStream(RstStream),
    Settings(Settings),
    PushPromise(PushPromise<'a>),
    Ping(Ping),
    GoAway(GoAway<'a>),
    WindowUpdate(WindowUpdate),
    Continuation(Continuation<'a>),
    /// A type this crate does not know; RFC 9113 §4.1 says to ignore it.
    Unknown(FrameHead),
}

fn require_stream(head: &FrameHead) -> Result<(), FrameError> {
    if head.stream_id == 0 {
        return Err(FrameError::StreamIdRequired(head.kind));
    }
    Ok(())
}

fn require_connection(head: &FrameHead) -> Result<(), FrameError> {
    if head.stream_id != 0 {
        return Err(FrameError::StreamIdMustBeZero(head.kind, head.stream_id));
    }
    Ok(())
}

/// Parses a frame whose header is `head` and payload is exactly `payload`.
pub(crate) fn parse(head: FrameHead, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    Ok(match head.kind {
        Kind::Data => Frame::Data(Data::parse(&head, payload)?),
        Kind::Headers => Frame::Headers(Headers::parse(&head, payload)?),
        Kind::Priority => Frame::Priority(Priority::parse(&head, payload)?),
        Kind::RstStream => Frame::RstStream(RstStream::parse(&head, payload)?),
        Kind::Settings => Frame::Settings(Settings::parse(&head, payload)?),
        Kind::PushPromise => Frame::PushPromise(PushPromise::parse(&head, payload)?),
        Kind::Ping => Frame::Ping(Ping::parse(&head, payload)?),
        Kind::GoAway => Frame::GoAway(GoAway::parse(&head, payload)?),
        Kind::WindowUpdate => Frame::WindowUpdate(WindowUpdate::parse(&head, payload)?),
        Kind::Continuation => Frame::Continuation(Continuation::parse(&head, payload)?),
        Kind::Unknown(_) => Frame::Unknown(head),
    })
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// Serialises a frame header and payload (tests build frames by hand only
    /// for shapes real implementations never send).
    pub(crate) fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream_id.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    pub(crate) fn parse_bytes(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
        let head = FrameHead::parse(bytes).expect("header");
        parse(
            head,
            &bytes[FRAME_HEADER_LEN..FRAME_HEADER_LEN + head.len as usize],
        )
    }
}
