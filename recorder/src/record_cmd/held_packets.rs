//! Packets waiting for their sockets: a first-in first-out queue that stores each
//! packet's fixed fields and only the bytes the hook kept.
//!
//! The recorder holds every packet for a while before writing it (so the socket events
//! that name its owner can arrive first): at tens of thousands of packets a second that
//! is megabytes. A slot of the largest snap length per packet (256 bytes) made the queue
//! four times larger than its contents and its writes miss the cache; here the bytes of
//! all packets sit back to back in one ring of bytes.

use std::collections::VecDeque;

use spliff_recorder::bpf::PacketCapture;

/// A held packet's fields (its bytes are in [`HeldPackets`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldPacket {
    /// `CLOCK_BOOTTIME` when the hook ran.
    pub ts_ns: u64,
    /// TC egress: the sending socket's cookie; 0 unknown.
    pub socket_cookie: u64,
    /// Interface index.
    pub ifindex: u32,
    /// Whole packet length.
    pub wire_len: u32,
    /// Received (`true`) or sent.
    pub ingress: bool,
    /// Bytes kept, at the front of the byte queue when this packet is at the front.
    len: u16,
}

/// Held packets, oldest first.
#[derive(Debug, Default)]
pub struct HeldPackets {
    packets: VecDeque<HeldPacket>,
    bytes: VecDeque<u8>,
}

impl HeldPackets {
    /// Queues a copy of `packet` (its fields and kept bytes).
    pub fn push(&mut self, packet: &PacketCapture<'_>) {
        // The ring never hands out more than 256 bytes (decode_packet checks it); the
        // clamp keeps `len` and the byte queue in step whatever it says.
        let data = &packet.data[..packet.data.len().min(usize::from(u16::MAX))];
        self.bytes.extend(data);
        self.packets.push_back(HeldPacket {
            ts_ns: packet.ts_ns,
            socket_cookie: packet.socket_cookie,
            ifindex: packet.ifindex,
            wire_len: packet.wire_len,
            ingress: packet.ingress,
            len: data.len() as u16,
        });
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// The oldest packet's fields.
    pub fn front(&self) -> Option<&HeldPacket> {
        self.packets.front()
    }

    /// Removes the oldest packet; its bytes go to `buf` (cleared first).
    pub fn pop_front(&mut self, buf: &mut Vec<u8>) -> Option<HeldPacket> {
        let packet = self.packets.pop_front()?;
        let len = usize::from(packet.len);
        buf.clear();
        let (a, b) = self.bytes.as_slices();
        let from_a = len.min(a.len());
        buf.extend_from_slice(&a[..from_a]);
        buf.extend_from_slice(&b[..len - from_a]);
        self.bytes.drain(..len);
        Some(packet)
    }

    /// Removes and returns the packets of interface `ifindex`, keeping the others in order.
    pub fn take_interface(&mut self, ifindex: u32) -> HeldPackets {
        let mut mine = HeldPackets::default();
        let mut rest = HeldPackets::default();
        let mut buf = Vec::new();
        while let Some(packet) = self.pop_front(&mut buf) {
            let to = if packet.ifindex == ifindex {
                &mut mine
            } else {
                &mut rest
            };
            to.bytes.extend(&buf);
            to.packets.push_back(packet);
        }
        *self = rest;
        mine
    }
}

#[cfg(test)]
mod tests {
    use spliff_recorder::bpf::PacketHook;

    use super::*;

    fn capture(ts_ns: u64, ifindex: u32, data: &[u8]) -> PacketCapture<'_> {
        PacketCapture {
            ts_ns,
            ifindex,
            wire_len: 1500,
            ingress: ts_ns.is_multiple_of(2),
            hook: PacketHook::Tc,
            socket_cookie: ts_ns * 10,
            protocol: 0x0800,
            data,
        }
    }

    #[test]
    fn packets_come_out_in_order_with_their_own_bytes_across_the_ring_edge() {
        let mut held = HeldPackets::default();
        let mut buf = Vec::new();
        // Many rounds of pushing more than is popped move the byte queue's start around
        // its buffer, so some packets straddle the wrap.
        let mut next_out = 0u64;
        for ts in 0..3000u64 {
            let bytes: Vec<u8> = (0..(ts % 97) as u8).map(|b| b ^ ts as u8).collect();
            held.push(&capture(ts, 1, &bytes));
            if ts % 3 != 0 {
                let packet = held.pop_front(&mut buf).expect("held");
                assert_eq!(packet.ts_ns, next_out);
                assert_eq!(packet.socket_cookie, next_out * 10);
                let want: Vec<u8> = (0..(next_out % 97) as u8)
                    .map(|b| b ^ next_out as u8)
                    .collect();
                assert_eq!(buf, want, "bytes of packet {next_out}");
                next_out += 1;
            }
        }
        assert_eq!(held.len(), 1000);
        while held.pop_front(&mut buf).is_some() {}
        assert!(held.bytes.is_empty());
    }

    #[test]
    fn one_interfaces_packets_are_taken_out_and_the_rest_stay_in_order() {
        let mut held = HeldPackets::default();
        for ts in 0..10u64 {
            held.push(&capture(ts, (ts % 3) as u32, &[ts as u8; 5]));
        }
        let mut mine = held.take_interface(1);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some(p) = mine.pop_front(&mut buf) {
            assert_eq!(buf, [p.ts_ns as u8; 5]);
            got.push(p.ts_ns);
        }
        assert_eq!(got, [1, 4, 7]);
        let mut rest = Vec::new();
        while let Some(p) = held.pop_front(&mut buf) {
            assert_eq!(buf, [p.ts_ns as u8; 5]);
            rest.push(p.ts_ns);
        }
        assert_eq!(rest, [0, 2, 3, 5, 6, 8, 9]);
    }
}
