//! The flow a captured packet belongs to, from its first bytes.
//!
//! The bytes come from the network and are cut at the snap length, so the
//! parser must accept truncated packets (etherparse's lax slicing does) and
//! must never fail loudly on garbage: a packet it cannot place simply has no
//! owner.

use std::net::{IpAddr, SocketAddr};

use etherparse::{IpNumber, LaxNetSlice, LaxSlicedPacket};

use super::links::Framing;

/// Protocol, addresses and ports of a TCP or UDP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketFlow {
    /// IP protocol number (6 TCP, 17 UDP).
    pub protocol: u8,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Length of the IP packet (header included) as its header says.
    pub ip_len: u64,
}

/// The flow of a TCP or UDP packet (first fragment only: later fragments
/// carry no ports); `None` for anything else or bytes too short to tell.
pub fn flow_of(data: &[u8], framing: Framing) -> Option<PacketFlow> {
    let packet = match framing {
        Framing::Ethernet => LaxSlicedPacket::from_ethernet(data).ok()?,
        Framing::RawIp => LaxSlicedPacket::from_ip(data).ok()?,
        Framing::Unsupported(_) => return None,
    };
    let (src, dst, ip_len): (IpAddr, IpAddr, u64) = match packet.net.as_ref()? {
        LaxNetSlice::Ipv4(v4) => {
            let header = v4.header();
            (
                header.source_addr().into(),
                header.destination_addr().into(),
                u64::from(header.total_len()),
            )
        }
        LaxNetSlice::Ipv6(v6) => {
            let header = v6.header();
            (
                header.source_addr().into(),
                header.destination_addr().into(),
                u64::from(header.payload_length()) + 40,
            )
        }
        LaxNetSlice::Arp(_) => return None,
    };
    let payload = packet.ip_payload()?;
    if payload.fragmented {
        return None;
    }
    let protocol = match payload.ip_number {
        IpNumber::TCP => 6,
        IpNumber::UDP => 17,
        _ => return None,
    };
    // Both TCP and UDP start with the two ports; only those 4 bytes are
    // needed, so a header cut short by the snap length still counts.
    let ports = payload.payload.get(..4)?;
    let src_port = u16::from_be_bytes([ports[0], ports[1]]);
    let dst_port = u16::from_be_bytes([ports[2], ports[3]]);
    Some(PacketFlow {
        protocol,
        src: SocketAddr::new(src, src_port),
        dst: SocketAddr::new(dst, dst_port),
        ip_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_v4(payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 443, 1, 65535);
        let mut out = Vec::new();
        builder.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn a_truncated_tcp_packet_still_has_its_flow() {
        let packet = tcp_v4(&[0u8; 1000]);
        let flow = flow_of(&packet[..60], Framing::Ethernet).unwrap();
        assert_eq!(flow.protocol, 6);
        assert_eq!(flow.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(flow.dst, "10.0.0.2:443".parse().unwrap());
        assert_eq!(flow.ip_len, 20 + 20 + 1000);
    }

    #[test]
    fn raw_ip_and_ipv6_work() {
        let builder = PacketBuilder::ipv6([1; 16], [2; 16], 64).udp(5353, 53);
        let mut out = Vec::new();
        builder.write(&mut out, b"hello").unwrap();
        let flow = flow_of(&out, Framing::RawIp).unwrap();
        assert_eq!(
            (flow.protocol, flow.src.port(), flow.dst.port()),
            (17, 5353, 53)
        );
        assert_eq!(flow.ip_len, 40 + 8 + 5);
    }

    #[test]
    fn garbage_has_no_flow() {
        assert_eq!(flow_of(&[], Framing::Ethernet), None);
        assert_eq!(flow_of(&[0xff; 40], Framing::Ethernet), None);
        assert_eq!(flow_of(&[0x45; 10], Framing::RawIp), None);
        let packet = tcp_v4(b"x");
        assert_eq!(flow_of(&packet[..36], Framing::Ethernet), None);
        assert_eq!(flow_of(&packet, Framing::Unsupported(280)), None);
    }
}
