//! Distinct TCP 4-tuples for the synthetic sessions, in constant amortised time per
//! connection and for any number of connections.
//!
//! Two connections with one 4-tuple (merged captures, port reuse, connections without
//! recorded addresses) would be one session to Wireshark. A taken client port is replaced by
//! the next free one after it, from a cursor kept per client address and server: each port is
//! tried at most once per pair, so the work is linear in the connections, not quadratic. When
//! all 64,512 unprivileged ports of a client address are taken, the connection moves to a
//! documentation address (RFC 5737, then RFC 3849 with the server's IPv4 address mapped),
//! which always has a free port eventually: the assignment is total.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Lowest port a taken one is replaced by (below are the well-known ports).
const FIRST_PORT: u32 = 1024;
/// Ports a cursor walks through: 1024..=65535.
const PORTS: u32 = 65536 - FIRST_PORT;

/// Where the search for a free client port of one (client address, server) pair stands.
#[derive(Debug)]
struct Cursor {
    /// Offset into 1024..=65535 of the first port tried.
    base: u32,
    /// Ports tried so far (each at most once).
    tried: u32,
}

/// The 4-tuples given out so far, and how to find the next free one quickly.
#[derive(Debug, Default)]
pub(super) struct Ports {
    used: HashSet<(SocketAddr, SocketAddr)>,
    cursors: HashMap<(IpAddr, SocketAddr), Cursor>,
    /// Per recorded server: documentation client addresses handed out after ports ran out.
    spilled: HashMap<SocketAddr, u64>,
}

impl Ports {
    /// A 4-tuple no earlier call returned: `(client, server)` itself when it is free.
    pub(super) fn assign(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
    ) -> (SocketAddr, SocketAddr) {
        if self.used.insert((client, server)) {
            return (client, server);
        }
        let (mut ip, mut shown_server) = (client.ip(), server);
        let mut tried = None;
        loop {
            if let Some(port) = self.free_port(ip, shown_server, client.port()) {
                return (SocketAddr::new(ip, port), shown_server);
            }
            // The current documentation address is kept until its own ports run out.
            let k = self.spilled.entry(server).or_insert(0);
            if tried == Some(*k) {
                *k += 1;
            }
            tried = Some(*k);
            (ip, shown_server) = documentation_client(*k, server);
        }
    }

    /// The next free port of `ip` towards `server`, after `wanted` for a pair met for the
    /// first time; `None` when all were tried.
    fn free_port(&mut self, ip: IpAddr, server: SocketAddr, wanted: u16) -> Option<u16> {
        let c = self.cursors.entry((ip, server)).or_insert(Cursor {
            base: (u32::from(wanted) + 1).saturating_sub(FIRST_PORT) % PORTS,
            tried: 0,
        });
        while c.tried < PORTS {
            let port = FIRST_PORT + (c.base + c.tried) % PORTS;
            c.tried += 1;
            let port = u16::try_from(port).unwrap_or(u16::MAX);
            if self.used.insert((SocketAddr::new(ip, port), server)) {
                return Some(port);
            }
        }
        None
    }
}

/// The `k`-th documentation client address for `server`, and the server as shown with it:
/// 198.51.100.1–254 and 203.0.113.1–254 (RFC 5737) for an IPv4 server, then 2001:db8::/32
/// (RFC 3849) with an IPv4 server shown mapped into IPv6.
fn documentation_client(k: u64, server: SocketAddr) -> (IpAddr, SocketAddr) {
    const PER_NET: u64 = 254;
    if server.is_ipv4() && k < 2 * PER_NET {
        let net = if k < PER_NET {
            [198, 51, 100]
        } else {
            [203, 0, 113]
        };
        let host = (k % PER_NET + 1) as u8;
        let ip = Ipv4Addr::new(net[0], net[1], net[2], host);
        return (IpAddr::V4(ip), server);
    }
    let n = u128::from(k) + 1;
    let ip = Ipv6Addr::from((0x2001_0db8u128 << 96) | n);
    let server = match server.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), server.port()),
        IpAddr::V6(_) => server,
    };
    (IpAddr::V6(ip), server)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("literal")
    }

    #[test]
    fn a_taken_port_gives_the_next_free_one() {
        let mut p = Ports::default();
        let (c, s) = (addr("10.0.0.1:5000"), addr("10.0.0.2:80"));
        assert_eq!(p.assign(c, s), (c, s));
        assert_eq!(p.assign(c, s).0, addr("10.0.0.1:5001"));
        assert!(p.assign(addr("10.0.0.1:5002"), s).0 == addr("10.0.0.1:5002"));
        assert_eq!(p.assign(c, s).0, addr("10.0.0.1:5003"));
    }

    #[test]
    fn the_top_port_wraps_to_1024() {
        let mut p = Ports::default();
        let (c, s) = (addr("10.0.0.1:65535"), addr("10.0.0.2:80"));
        p.assign(c, s);
        assert_eq!(p.assign(c, s).0, addr("10.0.0.1:1024"));
    }

    #[test]
    fn exhausted_ports_move_to_documentation_addresses() {
        let mut p = Ports::default();
        let (c, s) = (addr("10.0.0.1:40000"), addr("10.0.0.2:80"));
        let mut seen = HashSet::new();
        for _ in 0..(2 * PORTS as usize + 2) {
            assert!(seen.insert(p.assign(c, s)));
        }
        // The first documentation address until its ports run out too, then the next.
        let on = |ip: &str| seen.iter().filter(|t| t.0.ip().to_string() == ip).count();
        assert_eq!(on("198.51.100.1"), PORTS as usize);
        assert_eq!(on("10.0.0.1"), PORTS as usize);
        assert_eq!(on("198.51.100.2"), 2);
        // Past every IPv4 documentation address: IPv6, the server mapped.
        assert_eq!(
            documentation_client(2 * 254, s),
            (
                "2001:db8::1fd".parse::<IpAddr>().expect("literal"),
                addr("[::ffff:10.0.0.2]:80")
            )
        );
    }
}
