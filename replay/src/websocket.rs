//! WebSocket (RFC 6455) frames after a `101 Switching Protocols`, joined into
//! messages.
//!
//! permessage-deflate payloads are reported as compressed rather than inflated:
//! inflating needs the sliding window of every earlier message, which a capture
//! that lost anything cannot provide reliably.

use crate::exchange::{WsMessage, WsOpcode};
use crate::stream::{DirectionStream, Side};

/// Cap on one message's payload kept in memory; the rest is dropped and the
/// message marked truncated.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

struct FrameHead {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload_len: u64,
    header_len: usize,
}

fn parse_head(buf: &[u8]) -> Option<FrameHead> {
    let b0 = *buf.first()?;
    let b1 = *buf.get(1)?;
    let masked = b1 & 0x80 != 0;
    let (payload_len, mut at) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => {
            let raw: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(raw), 10)
        }
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        let key: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(key)
    } else {
        None
    };
    Some(FrameHead {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        opcode: b0 & 0x0f,
        mask,
        payload_len,
        header_len: at,
    })
}

fn opcode(op: u8) -> WsOpcode {
    match op {
        0x1 => WsOpcode::Text,
        0x2 => WsOpcode::Binary,
        0x8 => WsOpcode::Close,
        0x9 => WsOpcode::Ping,
        0xa => WsOpcode::Pong,
        other => WsOpcode::Reserved(other),
    }
}

/// Messages sent by `side`, starting at offset `from` of its stream.
pub(crate) fn messages(stream: &DirectionStream, from: u64, side: Side) -> Vec<WsMessage> {
    let mut out = Vec::new();
    // A fragmented data message being assembled; control frames may interleave.
    let mut pending: Option<WsMessage> = None;
    let mut at = from;
    loop {
        let bytes = stream.contiguous(at);
        let Some(head) = parse_head(bytes) else {
            break;
        };
        let ts_ns = stream.ts_at(at);
        let available = (bytes.len() - head.header_len) as u64;
        let take = head.payload_len.min(available) as usize;
        let cut = (take as u64) < head.payload_len;
        let mut payload = bytes[head.header_len..head.header_len + take].to_vec();
        if let Some(key) = head.mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
        }
        at += head.header_len as u64 + take as u64;
        if head.opcode == 0 {
            match pending.as_mut() {
                Some(msg) => {
                    let room = MAX_MESSAGE.saturating_sub(msg.payload.len());
                    msg.truncated |= payload.len() > room;
                    payload.truncate(room);
                    msg.payload.extend_from_slice(&payload);
                    msg.truncated |= cut;
                }
                // A continuation without its first fragment: the capture started
                // inside the message.
                None => {
                    pending = Some(WsMessage {
                        from: side,
                        opcode: WsOpcode::Reserved(0),
                        payload,
                        compressed: head.rsv1,
                        ts_ns,
                        truncated: true,
                    })
                }
            }
            if head.fin || cut {
                out.extend(pending.take());
            }
        } else {
            let msg = WsMessage {
                from: side,
                opcode: opcode(head.opcode),
                payload,
                compressed: head.rsv1,
                ts_ns,
                truncated: cut,
            };
            let is_control = head.opcode & 0x8 != 0;
            if head.fin || cut || is_control {
                out.push(msg);
            } else {
                // A new data message while one is open means its end was lost.
                if let Some(mut open) = pending.replace(msg) {
                    open.truncated = true;
                    out.push(open);
                }
            }
        }
        if cut {
            break;
        }
    }
    if let Some(mut open) = pending {
        open.truncated = true;
        out.push(open);
    }
    out
}

/// Both directions' messages in capture order: by timestamp, client first on ties.
pub(crate) fn interleave(client: Vec<WsMessage>, server: Vec<WsMessage>) -> Vec<WsMessage> {
    let mut all: Vec<WsMessage> = client.into_iter().chain(server).collect();
    // Stable: each direction keeps its own order among equal timestamps.
    all.sort_by_key(|m| (m.ts_ns.unwrap_or(u64::MAX), m.from));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Piece;

    fn stream(bytes: Vec<u8>) -> DirectionStream<'static> {
        DirectionStream::from_pieces([Piece::Data {
            offset: 0,
            ts_ns: 5,
            bytes: bytes.into(),
        }])
    }

    fn masked_frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let key = [1u8, 2, 3, 4];
        let mut f = vec![if fin { 0x80 } else { 0 } | op];
        if payload.len() < 126 {
            f.push(0x80 | payload.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    #[test]
    fn fragments_join_and_controls_interleave() {
        let mut wire = masked_frame(false, 1, b"Hel");
        wire.extend(masked_frame(true, 9, b"ping"));
        wire.extend(masked_frame(true, 0, b"lo"));
        wire.extend(masked_frame(true, 2, &[7u8; 300]));
        let msgs = messages(&stream(wire), 0, Side::Request);
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].opcode, WsOpcode::Ping);
        assert_eq!(msgs[1].opcode, WsOpcode::Text);
        assert_eq!(msgs[1].payload, b"Hello");
        assert!(!msgs[1].truncated);
        assert_eq!(msgs[2].payload, vec![7u8; 300]);
    }

    #[test]
    fn unmasked_server_frames_and_truncation() {
        let wire = vec![0x81, 5, b'h', b'i'];
        let msgs = messages(&stream(wire), 0, Side::Response);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].payload, b"hi");
        assert!(msgs[0].truncated);
        // 64-bit length claiming far more than exists allocates nothing big.
        let mut wire = vec![0x82, 127];
        wire.extend_from_slice(&u64::MAX.to_be_bytes());
        wire.extend_from_slice(b"abc");
        let msgs = messages(&stream(wire), 0, Side::Response);
        assert_eq!(msgs[0].payload, b"abc");
        assert!(msgs[0].truncated);
    }
}
