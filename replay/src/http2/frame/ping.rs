//! PING (type 0x6).

use super::head::{FrameHead, Kind};
use super::{FrameError, flags, require_connection};

/// Liveness / RTT probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ping {
    pub ack: bool,
    pub payload: [u8; 8],
}

impl Ping {
    pub(crate) fn parse(head: &FrameHead, payload: &[u8]) -> Result<Ping, FrameError> {
        require_connection(head)?;
        let payload: [u8; 8] = payload.try_into().map_err(|_| FrameError::InvalidLength {
            kind: Kind::Ping,
            len: payload.len(),
        })?;
        Ok(Ping {
            ack: head.has(flags::ACK),
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Frame;
    use super::super::test_util::{frame, parse_bytes};

    #[test]
    fn parses_opaque_data() {
        let Ok(Frame::Ping(p)) = parse_bytes(&frame(6, 1, 0, b"12345678")) else {
            panic!()
        };
        assert!(p.ack);
        assert_eq!(&p.payload, b"12345678");
        assert!(parse_bytes(&frame(6, 0, 0, b"1234567")).is_err());
    }
}
