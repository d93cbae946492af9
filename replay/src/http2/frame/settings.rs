//! SETTINGS (type 0x4).

use super::head::{FrameHead, Kind};
use super::{FrameError, flags, require_connection};

/// Identifier of SETTINGS_HEADER_TABLE_SIZE.
pub(crate) const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;

/// Parameters one endpoint announces about what it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub ack: bool,
    /// `(identifier, value)` in wire order; unknown identifiers included.
    pub values: Vec<(u16, u32)>,
}

impl Settings {
    pub(crate) fn parse(head: &FrameHead, payload: &[u8]) -> Result<Settings, FrameError> {
        require_connection(head)?;
        let ack = head.has(flags::ACK);
        if !payload.len().is_multiple_of(6) || (ack && !payload.is_empty()) {
            return Err(FrameError::InvalidLength {
                kind: Kind::Settings,
                len: payload.len(),
            });
        }
        let values = payload
            .chunks_exact(6)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                )
            })
            .collect();
        Ok(Settings { ack, values })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Frame;
    use super::super::test_util::{frame, parse_bytes};

    #[test]
    fn parses_values_and_ack() {
        let Ok(Frame::Settings(s)) =
            parse_bytes(&frame(4, 0, 0, &[0, 1, 0, 1, 0, 0, 0, 4, 0, 0, 255, 255]))
        else {
            panic!()
        };
        assert_eq!(s.values, vec![(1, 65536), (4, 65535)]);
        assert!(!s.ack);
        let Ok(Frame::Settings(s)) = parse_bytes(&frame(4, 1, 0, &[])) else {
            panic!()
        };
        assert!(s.ack);
        assert!(parse_bytes(&frame(4, 1, 0, &[0, 1, 0, 0, 0, 0])).is_err());
        assert!(parse_bytes(&frame(4, 0, 1, &[])).is_err());
    }
}
