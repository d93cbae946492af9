//! PRIORITY (type 0x2) and the priority block HEADERS may carry.

use super::head::{FrameHead, Kind};
use super::{FrameError, require_stream};

/// Stream dependency and weight (deprecated by RFC 9113, still sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PrioritySpec {
    pub exclusive: bool,
    pub dependency: u32,
    /// Weight minus one, as on the wire.
    pub weight: u8,
}

impl PrioritySpec {
    /// Parses the 5-byte block; the caller guarantees the length.
    pub(crate) fn parse(b: &[u8]) -> PrioritySpec {
        let raw = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        PrioritySpec {
            exclusive: raw & 0x8000_0000 != 0,
            dependency: raw & 0x7fff_ffff,
            weight: b[4],
        }
    }
}

/// A PRIORITY frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Priority {
    pub stream_id: u32,
    pub spec: PrioritySpec,
}

impl Priority {
    pub(crate) fn parse(head: &FrameHead, payload: &[u8]) -> Result<Priority, FrameError> {
        require_stream(head)?;
        if payload.len() != 5 {
            return Err(FrameError::InvalidLength {
                kind: Kind::Priority,
                len: payload.len(),
            });
        }
        Ok(Priority {
            stream_id: head.stream_id,
            spec: PrioritySpec::parse(payload),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Frame;
    use super::super::test_util::{frame, parse_bytes};

    #[test]
    fn parses_and_checks_length() {
        let Ok(Frame::Priority(p)) = parse_bytes(&frame(2, 0, 7, &[0, 0, 0, 3, 200])) else {
            panic!()
        };
        assert_eq!((p.stream_id, p.spec.dependency, p.spec.weight), (7, 3, 200));
        assert!(!p.spec.exclusive);
        assert!(parse_bytes(&frame(2, 0, 7, &[0, 0, 0, 3])).is_err());
    }
}
