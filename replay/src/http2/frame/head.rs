//! The fixed 9-byte frame header.

/// Bytes in a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 9;

/// Frame type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Data,
    Headers,
    Priority,
    RstStream,
    Settings,
    PushPromise,
    Ping,
    GoAway,
    WindowUpdate,
    Continuation,
    Unknown(u8),
}

impl Kind {
    pub(crate) fn from_u8(b: u8) -> Kind {
        match b {
            0 => Kind::Data,
            1 => Kind::Headers,
            2 => Kind::Priority,
            3 => Kind::RstStream,
            4 => Kind::Settings,
            5 => Kind::PushPromise,
            6 => Kind::Ping,
            7 => Kind::GoAway,
            8 => Kind::WindowUpdate,
            9 => Kind::Continuation,
            other => Kind::Unknown(other),
        }
    }

    /// Whether the frame carries part of a header block, so that losing it
    /// desynchronises HPACK.
    pub(crate) fn carries_header_block(self) -> bool {
        matches!(self, Kind::Headers | Kind::PushPromise | Kind::Continuation)
    }
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHead {
    /// Payload length.
    pub len: u32,
    pub kind: Kind,
    pub flags: u8,
    /// Stream id with the reserved bit cleared.
    pub stream_id: u32,
    /// The reserved bit, which senders must leave unset.
    pub reserved: bool,
}

impl FrameHead {
    /// Parses the first 9 bytes of `buf`; `None` when fewer are available.
    pub(crate) fn parse(buf: &[u8]) -> Option<FrameHead> {
        let b: &[u8; FRAME_HEADER_LEN] = buf.get(..FRAME_HEADER_LEN)?.try_into().ok()?;
        let raw_id = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        Some(FrameHead {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: Kind::from_u8(b[3]),
            flags: b[4],
            stream_id: raw_id & 0x7fff_ffff,
            reserved: raw_id & 0x8000_0000 != 0,
        })
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Header plus payload length.
    pub(crate) fn total_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + u64::from(self.len)
    }

    /// Whether this header looks like one a conforming peer would send: known
    /// type, only defined flags, the stream-id rule and fixed lengths of its
    /// type. Used only to find frame boundaries in bytes of unknown alignment,
    /// where a false positive would misparse everything after it.
    pub(crate) fn is_strictly_plausible(&self) -> bool {
        if self.reserved {
            return false;
        }
        let on_stream = self.stream_id != 0;
        let len = self.len;
        let (defined_flags, ok) = match self.kind {
            Kind::Data => (0x09, on_stream),
            Kind::Headers => (0x2d, on_stream),
            Kind::Priority => (0, on_stream && len == 5),
            Kind::RstStream => (0, on_stream && len == 4),
            Kind::Settings => (
                0x01,
                !on_stream && len.is_multiple_of(6) && !(self.has(0x1) && len > 0),
            ),
            Kind::PushPromise => (0x0c, on_stream && len >= 4),
            Kind::Ping => (0x01, !on_stream && len == 8),
            Kind::GoAway => (0, !on_stream && len >= 8),
            Kind::WindowUpdate => (0, len == 4),
            Kind::Continuation => (0x04, on_stream),
            Kind::Unknown(_) => (0, false),
        };
        ok && self.flags & !defined_flags == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_reserved_bit() {
        let h = FrameHead::parse(&[0, 1, 2, 1, 0x25, 0x80, 0, 0, 3, 0xff]).unwrap();
        assert_eq!(h.len, 258);
        assert_eq!(h.kind, Kind::Headers);
        assert_eq!(h.flags, 0x25);
        assert_eq!(h.stream_id, 3);
        assert!(h.reserved);
        assert!(!h.is_strictly_plausible());
        assert!(FrameHead::parse(&[0; 8]).is_none());
    }

    #[test]
    fn plausibility_follows_type_rules() {
        let mk = |len, kind, flags, stream_id| FrameHead {
            len,
            kind: Kind::from_u8(kind),
            flags,
            stream_id,
            reserved: false,
        };
        assert!(mk(12, 4, 0, 0).is_strictly_plausible());
        assert!(!mk(12, 4, 0, 1).is_strictly_plausible());
        assert!(!mk(7, 4, 0, 0).is_strictly_plausible());
        assert!(!mk(6, 4, 1, 0).is_strictly_plausible());
        assert!(mk(8, 6, 1, 0).is_strictly_plausible());
        assert!(!mk(100, 0, 0x2, 1).is_strictly_plausible());
        assert!(!mk(0, 0, 0, 0).is_strictly_plausible());
        assert!(!mk(0, 0x10, 0, 0).is_strictly_plausible());
    }
}
