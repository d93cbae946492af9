//! DATA (type 0x0).

use super::head::FrameHead;
use super::{FrameError, flags, padding, require_stream};

/// Body bytes for one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Data<'a> {
    pub stream_id: u32,
    /// Payload without padding.
    pub data: &'a [u8],
    pub end_stream: bool,
    /// Payload bytes on the wire, padding included (flow-control size).
    pub wire_len: usize,
    /// Where `data` starts in the payload (after the pad length, if any).
    pub data_at: usize,
}

impl<'a> Data<'a> {
    pub(crate) fn parse(head: &FrameHead, payload: &'a [u8]) -> Result<Data<'a>, FrameError> {
        require_stream(head)?;
        let data = padding::strip(head, payload)?;
        Ok(Data {
            stream_id: head.stream_id,
            data,
            end_stream: head.has(flags::END_STREAM),
            wire_len: payload.len(),
            data_at: usize::from(head.has(flags::PADDED)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{frame, parse_bytes};
    use super::super::{Frame, FrameError};

    #[test]
    fn padded_data_strips_padding() {
        let bytes = frame(0, 0x9, 3, b"\x03helloPPP");
        let Ok(Frame::Data(d)) = parse_bytes(&bytes) else {
            panic!()
        };
        assert_eq!(d.data, b"hello");
        assert!(d.end_stream);
        assert_eq!(d.wire_len, 9);
    }

    #[test]
    fn padding_longer_than_payload_is_rejected() {
        let bytes = frame(0, 0x8, 3, b"\x09ab");
        assert!(matches!(
            parse_bytes(&bytes),
            Err(FrameError::PaddingTooLong { .. })
        ));
        let bytes = frame(0, 0x8, 3, b"");
        assert!(parse_bytes(&bytes).is_err());
        let bytes = frame(0, 0, 0, b"x");
        assert!(matches!(
            parse_bytes(&bytes),
            Err(FrameError::StreamIdRequired(_))
        ));
    }
}
