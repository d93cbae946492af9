//! RST_STREAM (type 0x3).

use super::head::{FrameHead, Kind};
use super::{FrameError, require_stream};

/// Abrupt end of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RstStream {
    pub stream_id: u32,
    pub error_code: u32,
}

impl RstStream {
    pub(crate) fn parse(head: &FrameHead, payload: &[u8]) -> Result<RstStream, FrameError> {
        require_stream(head)?;
        let code: [u8; 4] = payload.try_into().map_err(|_| FrameError::InvalidLength {
            kind: Kind::RstStream,
            len: payload.len(),
        })?;
        Ok(RstStream {
            stream_id: head.stream_id,
            error_code: u32::from_be_bytes(code),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Frame;
    use super::super::test_util::{frame, parse_bytes};

    #[test]
    fn parses_code() {
        let Ok(Frame::RstStream(r)) = parse_bytes(&frame(3, 0, 9, &[0, 0, 0, 8])) else {
            panic!()
        };
        assert_eq!((r.stream_id, r.error_code), (9, 8));
        assert!(parse_bytes(&frame(3, 0, 9, &[0, 0, 8])).is_err());
    }
}
