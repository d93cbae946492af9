//! HEADERS (type 0x1).

use super::head::{FrameHead, Kind};
use super::priority::PrioritySpec;
use super::{FrameError, flags, padding, require_stream};

/// Opens a stream or carries trailers; holds the first header-block fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Headers<'a> {
    pub stream_id: u32,
    pub fragment: &'a [u8],
    pub end_stream: bool,
    pub end_headers: bool,
    /// Present when the PRIORITY flag is set.
    pub priority: Option<PrioritySpec>,
}

impl<'a> Headers<'a> {
    pub(crate) fn parse(head: &FrameHead, payload: &'a [u8]) -> Result<Headers<'a>, FrameError> {
        require_stream(head)?;
        let (priority, fragment) = if head.has(flags::PRIORITY) {
            let (prefix, fragment) = padding::strip_with_prefix(head, payload, 5, Kind::Headers)?;
            (Some(PrioritySpec::parse(prefix)), fragment)
        } else {
            (None, padding::strip(head, payload)?)
        };
        Ok(Headers {
            stream_id: head.stream_id,
            fragment,
            end_stream: head.has(flags::END_STREAM),
            end_headers: head.has(flags::END_HEADERS),
            priority,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{frame, parse_bytes};
    use super::super::{Frame, FrameError};

    #[test]
    fn padding_and_priority_are_removed_from_the_fragment() {
        // PADDED | PRIORITY | END_HEADERS | END_STREAM
        let mut payload = vec![2u8];
        payload.extend_from_slice(&[0x80, 0, 0, 1, 15]);
        payload.extend_from_slice(b"\x82\x84");
        payload.extend_from_slice(&[0, 0]);
        let bytes = frame(1, 0x2d, 5, &payload);
        let Ok(Frame::Headers(h)) = parse_bytes(&bytes) else {
            panic!()
        };
        assert_eq!(h.fragment, b"\x82\x84");
        let p = h.priority.unwrap();
        assert!(p.exclusive);
        assert_eq!((p.dependency, p.weight), (1, 15));
        assert!(h.end_stream && h.end_headers);
    }

    #[test]
    fn priority_flag_without_room_is_invalid() {
        let bytes = frame(1, 0x24, 5, &[0, 0, 1]);
        assert!(matches!(
            parse_bytes(&bytes),
            Err(FrameError::InvalidLength { .. })
        ));
    }
}
