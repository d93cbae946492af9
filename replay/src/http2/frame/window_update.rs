//! WINDOW_UPDATE (type 0x8).

use super::FrameError;
use super::head::{FrameHead, Kind};

/// Flow-control credit, for a stream or (stream 0) the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowUpdate {
    pub stream_id: u32,
    pub increment: u32,
}

impl WindowUpdate {
    pub(crate) fn parse(head: &FrameHead, payload: &[u8]) -> Result<WindowUpdate, FrameError> {
        let raw: [u8; 4] = payload.try_into().map_err(|_| FrameError::InvalidLength {
            kind: Kind::WindowUpdate,
            len: payload.len(),
        })?;
        Ok(WindowUpdate {
            stream_id: head.stream_id,
            increment: u32::from_be_bytes(raw) & 0x7fff_ffff,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Frame;
    use super::super::test_util::{frame, parse_bytes};

    #[test]
    fn parses_increment_ignoring_reserved_bit() {
        let Ok(Frame::WindowUpdate(w)) = parse_bytes(&frame(8, 0, 0, &[0x80, 0, 1, 0])) else {
            panic!()
        };
        assert_eq!((w.stream_id, w.increment), (0, 256));
        assert!(parse_bytes(&frame(8, 0, 0, &[0, 1, 0])).is_err());
    }
}
