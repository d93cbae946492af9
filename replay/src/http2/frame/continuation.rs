//! CONTINUATION (type 0x9).

use super::head::FrameHead;
use super::{FrameError, flags, require_stream};

/// A further fragment of the header block opened by HEADERS or PUSH_PROMISE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Continuation<'a> {
    pub stream_id: u32,
    pub fragment: &'a [u8],
    pub end_headers: bool,
}

impl<'a> Continuation<'a> {
    pub(crate) fn parse(
        head: &FrameHead,
        payload: &'a [u8],
    ) -> Result<Continuation<'a>, FrameError> {
        require_stream(head)?;
        Ok(Continuation {
            stream_id: head.stream_id,
            fragment: payload,
            end_headers: head.has(flags::END_HEADERS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Frame;
    use super::super::test_util::{frame, parse_bytes};

    #[test]
    fn parses_fragment_and_flag() {
        let bytes = frame(9, 4, 3, b"abc");
        let Ok(Frame::Continuation(c)) = parse_bytes(&bytes) else {
            panic!()
        };
        assert_eq!(c.fragment, b"abc");
        assert!(c.end_headers);
        assert!(parse_bytes(&frame(9, 4, 0, b"abc")).is_err());
    }
}
