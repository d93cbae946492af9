//! GOAWAY (type 0x7).

use super::head::{FrameHead, Kind};
use super::{FrameError, require_connection};

/// Connection shutdown: streams above `last_stream_id` were not processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoAway<'a> {
    pub last_stream_id: u32,
    pub error_code: u32,
    pub debug_data: &'a [u8],
}

impl<'a> GoAway<'a> {
    pub(crate) fn parse(head: &FrameHead, payload: &'a [u8]) -> Result<GoAway<'a>, FrameError> {
        require_connection(head)?;
        if payload.len() < 8 {
            return Err(FrameError::InvalidLength {
                kind: Kind::GoAway,
                len: payload.len(),
            });
        }
        let (fixed, debug_data) = payload.split_at(8);
        Ok(GoAway {
            last_stream_id: u32::from_be_bytes([fixed[0], fixed[1], fixed[2], fixed[3]])
                & 0x7fff_ffff,
            error_code: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            debug_data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Frame;
    use super::super::test_util::{frame, parse_bytes};

    #[test]
    fn parses_debug_data() {
        let bytes = frame(7, 0, 0, b"\0\0\0\x05\0\0\0\x0bcalm down");
        let Ok(Frame::GoAway(g)) = parse_bytes(&bytes) else {
            panic!()
        };
        assert_eq!((g.last_stream_id, g.error_code), (5, 11));
        assert_eq!(g.debug_data, b"calm down");
        assert!(parse_bytes(&frame(7, 0, 0, b"\0\0\0\x05")).is_err());
    }
}
