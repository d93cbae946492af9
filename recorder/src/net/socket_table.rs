//! Every socket the capture knows, keyed by cookie and by 5-tuple, with the process that owns
//! it, the TLS connections on it and the packets counted for it.
//!
//! Sources feed it in any order (sock_ops, sock_diag warm-up, the TLS probes' fd walk); the
//! packet path asks it who a packet belongs to. Both ends of a local connection are separate
//! sockets, so one packet can belong to two sockets (outbound for one, inbound for the other).

use std::collections::VecDeque;

// Looked up several times per captured packet: SipHash was 13 % of the recorder's time under
// iperf3. foldhash is seeded per process, so crafted flows cannot aim at collisions.
use foldhash::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Closed sockets without TLS connections kept this long (in closes) before they are
/// forgotten: their last packets (FIN, ACK) still arrive after the close, and a table that
/// kept every socket of a busy host would grow without end.
const CLOSED_KEPT: usize = 4096;

/// The address packets carry for `addr`: an IPv4-mapped IPv6 address (a dual-stack socket
/// talking IPv4) is the IPv4 address on the wire.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// One end of a flow: protocol and the socket's own (local) and peer (remote) addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// IP protocol number (6 TCP, 17 UDP).
    pub protocol: u8,
    /// The socket's own address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
}

impl FiveTuple {
    /// The tuple with addresses as packets carry them (see [`canonical`]).
    pub fn canonical(self) -> FiveTuple {
        FiveTuple {
            protocol: self.protocol,
            local: canonical(self.local),
            remote: canonical(self.remote),
        }
    }

    /// The same flow seen from the other end.
    pub fn reversed(self) -> FiveTuple {
        FiveTuple {
            protocol: self.protocol,
            local: self.remote,
            remote: self.local,
        }
    }
}

/// Direction of a packet relative to one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Sent by the socket (source = local address).
    Egress,
    /// Received by the socket (destination = local address).
    Ingress,
}

/// Packet and byte counters of one socket, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets sent by the socket.
    pub packets_egress: u64,
    /// Packets received by the socket.
    pub packets_ingress: u64,
    /// Bytes (IP length) sent.
    pub bytes_egress: u64,
    /// Bytes (IP length) received.
    pub bytes_ingress: u64,
}

/// What the capture knows about one socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Socket {
    /// Kernel socket cookie; 0 unknown.
    pub cookie: u64,
    /// Owning process (tgid); 0 unknown. sock_ops callbacks that run in softirq context (a
    /// passive open) cannot tell it; the TLS probes' fd walk or sock_diag + /proc can.
    pub pid: u32,
    /// Command name of the owner; empty unknown.
    pub comm: String,
    /// TLS connections (trace conn_ids) carried by this socket.
    pub conn_ids: Vec<u64>,
    /// Packets matched to it.
    pub counters: Counters,
    /// The kernel reported it closed (sock_ops state change to TCP_CLOSE).
    pub closed: bool,
    /// When it was reported closed (`CLOCK_BOOTTIME` ns); 0 open.
    pub closed_ns: u64,
}

/// A socket a packet belongs to, and in which direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketOwner<'a> {
    /// The socket.
    pub socket: &'a Socket,
    /// The packet's direction relative to it.
    pub flow: Flow,
}

/// All known sockets.
#[derive(Debug, Default)]
pub struct SocketTable {
    sockets: HashMap<FiveTuple, Socket>,
    by_cookie: HashMap<u64, FiveTuple>,
    /// Sockets with TLS connections whose tuple a newer socket took over (a port reused
    /// after close), by cookie: their connections still need them at the end.
    retired: HashMap<u64, (FiveTuple, Socket)>,
    /// Closed sockets without TLS connections, oldest first, forgotten after
    /// [`CLOSED_KEPT`] more closes.
    closed: VecDeque<(u64, FiveTuple)>,
    /// Bumped by every change of who owns what (not by packet counting), so the packet path
    /// can reuse what it worked out for a flow until something changed.
    generation: u64,
}

impl SocketTable {
    /// Records or updates a socket: known fields (non-zero cookie/pid, non-empty comm) replace
    /// earlier ones. A cookie seen before under another tuple moves to this one (a reused
    /// cookie is impossible; a changed tuple is a socket that was bound again).
    ///
    /// Addresses are kept as packets carry them ([`FiveTuple::canonical`]). A different
    /// known cookie at the same tuple is a new socket that reuses the ports: the old one is
    /// retired (still found by its cookie) and the new one starts empty.
    pub fn upsert(&mut self, tuple: FiveTuple, cookie: u64, pid: u32, comm: &str) -> &mut Socket {
        // Also covers what the caller changes through the returned socket.
        self.generation += 1;
        let tuple = tuple.canonical();
        if cookie != 0
            && let Some(existing) = self.sockets.get(&tuple)
            && existing.cookie != 0
            && existing.cookie != cookie
            && let Some(old) = self.sockets.remove(&tuple)
        {
            if self.by_cookie.get(&old.cookie) == Some(&tuple) {
                self.by_cookie.remove(&old.cookie);
            }
            if !old.conn_ids.is_empty() {
                self.retired.insert(old.cookie, (tuple, old));
            }
        }
        if cookie != 0
            && let Some(old) = self.by_cookie.get(&cookie).copied()
            && old != tuple
            && let Some(moved) = self.sockets.remove(&old)
        {
            self.sockets.insert(tuple, moved);
        }
        let socket = self.sockets.entry(tuple).or_default();
        if cookie != 0 {
            socket.cookie = cookie;
            self.by_cookie.insert(cookie, tuple);
        }
        if pid != 0 {
            socket.pid = pid;
        }
        if !comm.is_empty() {
            socket.comm = comm.to_string();
        }
        socket
    }

    /// Ties TLS connection `conn_id` to the socket with this tuple (created when unknown).
    pub fn bind_connection(&mut self, tuple: FiveTuple, conn_id: u64) {
        self.generation += 1;
        let socket = self.sockets.entry(tuple.canonical()).or_default();
        if !socket.conn_ids.contains(&conn_id) {
            socket.conn_ids.push(conn_id);
        }
    }

    /// The socket with this cookie.
    pub fn by_cookie(&self, cookie: u64) -> Option<(&FiveTuple, &Socket)> {
        if let Some(tuple) = self.by_cookie.get(&cookie) {
            return self.sockets.get_key_value(tuple);
        }
        self.retired
            .get(&cookie)
            .map(|(tuple, socket)| (tuple, socket))
    }

    /// The socket with this tuple.
    pub fn get(&self, tuple: &FiveTuple) -> Option<&Socket> {
        self.sockets.get(&tuple.canonical())
    }

    /// Marks the socket with this cookie closed at `ts_ns`. One without TLS connections is
    /// forgotten [`CLOSED_KEPT`] closes later (a TLS connection that names it after the
    /// close would be a socket the kernel already freed); one with them once they are
    /// released ([`SocketTable::release_connection`]).
    pub fn close(&mut self, cookie: u64, ts_ns: u64) {
        self.generation += 1;
        let Some(tuple) = self.by_cookie.get(&cookie).copied() else {
            return;
        };
        if let Some(socket) = self.sockets.get_mut(&tuple) {
            socket.closed = true;
            socket.closed_ns = ts_ns;
            if socket.conn_ids.is_empty() {
                self.closed.push_back((cookie, tuple));
            }
        }
        while self.closed.len() > CLOSED_KEPT {
            let Some((old_cookie, old_tuple)) = self.closed.pop_front() else {
                break;
            };
            // Still the same closed socket, still without TLS connections.
            if self.by_cookie.get(&old_cookie) == Some(&old_tuple)
                && let Some(socket) = self.sockets.get(&old_tuple)
                && socket.cookie == old_cookie
                && socket.closed
                && socket.conn_ids.is_empty()
            {
                self.sockets.remove(&old_tuple);
                self.by_cookie.remove(&old_cookie);
            }
        }
    }

    /// Unties TLS connection `conn_id` from the socket it was bound to (found by `cookie`,
    /// else by `tuple`), once its last record is written. A closed socket left without
    /// connections is forgotten at once: whatever came after its close has been counted.
    pub fn release_connection(&mut self, conn_id: u64, cookie: u64, tuple: Option<FiveTuple>) {
        self.generation += 1;
        if cookie != 0
            && let Some((_, socket)) = self.retired.get_mut(&cookie)
        {
            socket.conn_ids.retain(|&id| id != conn_id);
            if socket.conn_ids.is_empty() {
                self.retired.remove(&cookie);
            }
            return;
        }
        let tuple = match self.by_cookie.get(&cookie) {
            Some(tuple) if cookie != 0 => *tuple,
            _ => match tuple {
                Some(tuple) => tuple.canonical(),
                None => return,
            },
        };
        let Some(socket) = self.sockets.get_mut(&tuple) else {
            return;
        };
        socket.conn_ids.retain(|&id| id != conn_id);
        if socket.closed && socket.conn_ids.is_empty() {
            let cookie = socket.cookie;
            self.sockets.remove(&tuple);
            if self.by_cookie.get(&cookie) == Some(&tuple) {
                self.by_cookie.remove(&cookie);
            }
        }
    }

    /// Changes whenever ownership changes (a socket added, updated, bound to a connection or
    /// closed); packet counting leaves it alone.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Counts `packets` packets of `bytes` IP bytes in all like [`SocketTable::count_packet`],
    /// without listing their owners.
    pub fn count_only(
        &mut self,
        protocol: u8,
        src: SocketAddr,
        dst: SocketAddr,
        packets: u64,
        bytes: u64,
    ) {
        let egress = FiveTuple {
            protocol,
            local: canonical(src),
            remote: canonical(dst),
        };
        if let Some(socket) = self.sockets.get_mut(&egress) {
            socket.counters.packets_egress += packets;
            socket.counters.bytes_egress += bytes;
        }
        if let Some(socket) = self.sockets.get_mut(&egress.reversed()) {
            socket.counters.packets_ingress += packets;
            socket.counters.bytes_ingress += bytes;
        }
    }

    /// How many sockets the table holds (retired ones included).
    pub fn len(&self) -> usize {
        self.sockets.len() + self.retired.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts a packet from `src` to `dst` (IP length `bytes`) for every known socket it
    /// belongs to and returns those sockets: at most two (both ends on this host).
    pub fn count_packet(
        &mut self,
        protocol: u8,
        src: SocketAddr,
        dst: SocketAddr,
        bytes: u64,
    ) -> Vec<PacketOwner<'_>> {
        self.count_only(protocol, src, dst, 1, bytes);
        let egress = FiveTuple {
            protocol,
            local: canonical(src),
            remote: canonical(dst),
        };
        [(egress, Flow::Egress), (egress.reversed(), Flow::Ingress)]
            .into_iter()
            .filter_map(|(tuple, flow)| {
                self.sockets
                    .get(&tuple)
                    .map(|socket| PacketOwner { socket, flow })
            })
            .collect()
    }

    /// Every socket, for the end-of-capture connection records and correlation report.
    pub fn iter(&self) -> impl Iterator<Item = (&FiveTuple, &Socket)> {
        self.sockets
            .iter()
            .chain(self.retired.values().map(|(tuple, socket)| (tuple, socket)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(local: &str, remote: &str) -> FiveTuple {
        FiveTuple {
            protocol: 6,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
        }
    }

    #[test]
    fn a_local_connection_packet_belongs_to_both_ends() {
        let mut table = SocketTable::default();
        let client = tuple("10.0.0.1:40000", "10.0.0.2:443");
        table.upsert(client, 11, 100, "curl");
        table.upsert(client.reversed(), 12, 200, "nginx");
        let owners = table.count_packet(6, client.local, client.remote, 60);
        let seen: Vec<(u32, Flow)> = owners.iter().map(|o| (o.socket.pid, o.flow)).collect();
        assert_eq!(seen, vec![(100, Flow::Egress), (200, Flow::Ingress)]);
        assert_eq!(table.get(&client).unwrap().counters.bytes_egress, 60);
        assert_eq!(
            table
                .get(&client.reversed())
                .unwrap()
                .counters
                .packets_ingress,
            1
        );
        assert!(
            table
                .count_packet(17, client.local, client.remote, 60)
                .is_empty()
        );
    }

    #[test]
    fn later_fields_fill_in_and_cookies_follow_a_rebound_socket() {
        let mut table = SocketTable::default();
        let first = tuple("0.0.0.0:40000", "10.0.0.2:443");
        table.upsert(first, 7, 0, "");
        table.bind_connection(first, 3);
        let bound = tuple("10.0.0.1:40000", "10.0.0.2:443");
        table.upsert(bound, 7, 42, "curl");
        let (t, socket) = table.by_cookie(7).unwrap();
        assert_eq!(*t, bound);
        assert_eq!((socket.pid, socket.comm.as_str()), (42, "curl"));
        assert_eq!(socket.conn_ids, vec![3]);
        assert!(table.get(&first).is_none());
    }

    #[test]
    fn mapped_ipv6_addresses_are_stored_as_ipv4() {
        let mut table = SocketTable::default();
        let mapped = tuple("[::ffff:10.0.0.1]:40000", "[::ffff:10.0.0.2]:443");
        table.upsert(mapped, 5, 1, "curl");
        let plain = tuple("10.0.0.1:40000", "10.0.0.2:443");
        assert_eq!(table.by_cookie(5).map(|(t, _)| *t), Some(plain));
        assert!(table.get(&mapped).is_some());
        let owners = table.count_packet(6, plain.local, plain.remote, 40);
        assert_eq!(owners.len(), 1);
    }

    #[test]
    fn a_reused_tuple_retires_the_old_socket_with_its_connections() {
        let mut table = SocketTable::default();
        let t = tuple("10.0.0.1:40000", "10.0.0.2:443");
        table.upsert(t, 1, 10, "a");
        table.bind_connection(t, 7);
        table.count_packet(6, t.local, t.remote, 100);
        table.close(1, 1);
        table.upsert(t, 2, 11, "b");
        let (_, old) = table.by_cookie(1).unwrap();
        assert_eq!(
            (old.conn_ids.as_slice(), old.counters.bytes_egress),
            (&[7][..], 100)
        );
        let new = table.get(&t).unwrap();
        assert_eq!((new.cookie, new.pid, new.conn_ids.len()), (2, 11, 0));
        assert_eq!(table.iter().count(), 2);
    }

    #[test]
    fn closed_sockets_without_connections_are_forgotten_later() {
        let mut table = SocketTable::default();
        let kept = tuple("10.0.0.1:1", "10.0.0.2:443");
        table.upsert(kept, 1, 0, "");
        table.bind_connection(kept, 1);
        table.close(1, 1);
        for port in 2..(CLOSED_KEPT as u16 + 10) {
            let t = tuple(&format!("10.0.0.1:{port}"), "10.0.0.2:443");
            table.upsert(t, u64::from(port), 0, "");
            table.close(u64::from(port), 1);
        }
        assert!(table.by_cookie(1).is_some_and(|(_, s)| s.closed));
        assert!(table.by_cookie(2).is_none());
        assert!(table.by_cookie(u64::from(CLOSED_KEPT as u16 + 9)).is_some());
        assert_eq!(table.len(), CLOSED_KEPT + 1);
    }

    #[test]
    fn a_closed_socket_goes_with_its_last_released_connection() {
        let mut table = SocketTable::default();
        let t = tuple("10.0.0.1:40000", "10.0.0.2:443");
        table.upsert(t, 1, 10, "a");
        table.bind_connection(t, 7);
        table.bind_connection(t, 8);
        table.close(1, 5);
        table.release_connection(7, 1, Some(t));
        assert_eq!(
            table.by_cookie(1).map(|(_, s)| s.conn_ids.clone()),
            Some(vec![8])
        );
        table.release_connection(8, 0, Some(t));
        assert!(table.is_empty());
        // A retired socket (its tuple reused) goes the same way; the new one stays.
        table.upsert(t, 2, 10, "a");
        table.bind_connection(t, 9);
        table.close(2, 6);
        table.upsert(t, 3, 11, "b");
        table.release_connection(9, 2, None);
        assert_eq!(table.len(), 1);
        assert!(table.by_cookie(3).is_some());
    }
}
