//! Building IPv4/IPv6 + TCP packets (raw IP link type) for the synthetic sessions. Written by
//! hand: the packets are fixed-shape (no options, no fragmentation) and crates that build
//! packets bring a whole stack for these few lines. Checksums are real so that Wireshark's
//! optional checksum validation passes too.

use std::net::{IpAddr, SocketAddr};

/// TCP flag bits.
pub(crate) const FIN: u8 = 0x01;
pub(crate) const SYN: u8 = 0x02;
pub(crate) const PSH: u8 = 0x08;
pub(crate) const ACK: u8 = 0x10;

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn add_bytes(sum: &mut u32, bytes: &[u8]) {
    // The one's complement sum of 32-bit words, folded, is that of the 16-bit words
    // (RFC 1071 §2): a quarter of the additions, and payloads are most of a replay's pcapng.
    let mut words = bytes.chunks_exact(4);
    let mut wide = 0u64;
    for w in &mut words {
        wide += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    while wide > 0xffff {
        wide = (wide & 0xffff) + (wide >> 16);
    }
    *sum += wide as u32;
    let mut pairs = words.remainder().chunks_exact(2);
    for pair in &mut pairs {
        *sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = pairs.remainder() {
        *sum += u32::from(*last) << 8;
    }
}

/// One TCP segment from `src` to `dst` (same address family) as a raw IP packet.
pub(crate) fn segment(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20 + payload.len());
    tcp.extend_from_slice(&src.port().to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.push(5 << 4); // data offset: 5 words, no options
    tcp.push(flags);
    tcp.extend_from_slice(&65535u16.to_be_bytes()); // window
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    tcp.extend_from_slice(payload);
    let tcp_len = tcp.len() as u32;

    let mut sum = 0u32;
    let mut packet = Vec::with_capacity(40 + tcp.len());
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = 20 + tcp_len as u16;
            packet.extend_from_slice(&[0x45, 0]);
            packet.extend_from_slice(&total.to_be_bytes());
            packet.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]); // id 0, DF, ttl, TCP
            packet.extend_from_slice(&s.octets());
            packet.extend_from_slice(&d.octets());
            let mut ip_sum = 0u32;
            add_bytes(&mut ip_sum, &packet[..20]);
            packet[10..12].copy_from_slice(&fold(ip_sum).to_be_bytes());
            add_bytes(&mut sum, &s.octets());
            add_bytes(&mut sum, &d.octets());
            sum += 6 + tcp_len;
        }
        (s, d) => {
            let to6 = |a: IpAddr| match a {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            let (s, d) = (to6(s), to6(d));
            packet.extend_from_slice(&[0x60, 0, 0, 0]);
            packet.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            packet.extend_from_slice(&[6, 64]); // next header TCP, hop limit
            packet.extend_from_slice(&s.octets());
            packet.extend_from_slice(&d.octets());
            add_bytes(&mut sum, &s.octets());
            add_bytes(&mut sum, &d.octets());
            sum += tcp_len + 6;
        }
    }
    add_bytes(&mut sum, &tcp);
    let csum = fold(sum);
    tcp[16..18].copy_from_slice(&csum.to_be_bytes());
    packet.extend_from_slice(&tcp);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        for (src, dst) in [
            ("10.0.0.1:40000", "10.0.0.2:80"),
            ("[fd00::1]:40000", "[fd00::2]:80"),
        ] {
            let src: SocketAddr = src.parse().expect("addr");
            let dst: SocketAddr = dst.parse().expect("addr");
            let p = segment(src, dst, 1, 2, ACK | PSH, b"GET / HTTP/1.1\r\n\r\nx");
            let (ip_len, mut sum) = if src.is_ipv4() {
                let mut ip = 0u32;
                add_bytes(&mut ip, &p[..20]);
                assert_eq!(fold(ip), 0, "IPv4 header checksum");
                let mut s = 0u32;
                add_bytes(&mut s, &p[12..20]);
                (20, s)
            } else {
                let mut s = 0u32;
                add_bytes(&mut s, &p[8..40]);
                (40, s)
            };
            let tcp = &p[ip_len..];
            sum += 6 + tcp.len() as u32;
            add_bytes(&mut sum, tcp);
            assert_eq!(fold(sum), 0, "TCP checksum of {src}");
        }
    }
}
