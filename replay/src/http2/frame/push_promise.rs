//! PUSH_PROMISE (type 0x5).

use super::head::{FrameHead, Kind};
use super::{FrameError, flags, padding, require_stream};

/// A server announcing a stream it will push, with the promised request's
/// header-block fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PushPromise<'a> {
    pub stream_id: u32,
    pub promised_id: u32,
    pub fragment: &'a [u8],
    pub end_headers: bool,
}

impl<'a> PushPromise<'a> {
    pub(crate) fn parse(
        head: &FrameHead,
        payload: &'a [u8],
    ) -> Result<PushPromise<'a>, FrameError> {
        require_stream(head)?;
        let (id, fragment) = padding::strip_with_prefix(head, payload, 4, Kind::PushPromise)?;
        Ok(PushPromise {
            stream_id: head.stream_id,
            promised_id: u32::from_be_bytes([id[0], id[1], id[2], id[3]]) & 0x7fff_ffff,
            fragment,
            end_headers: head.has(flags::END_HEADERS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Frame;
    use super::super::test_util::{frame, parse_bytes};

    #[test]
    fn parses_promised_id_with_padding() {
        let bytes = frame(5, 0x0c, 1, &[1, 0, 0, 0, 2, 0x82, 0]);
        let Ok(Frame::PushPromise(p)) = parse_bytes(&bytes) else {
            panic!()
        };
        assert_eq!((p.stream_id, p.promised_id), (1, 2));
        assert_eq!(p.fragment, &[0x82]);
        assert!(p.end_headers);
        assert!(parse_bytes(&frame(5, 0x04, 1, &[0, 0, 2])).is_err());
    }
}
