//! Every socket the capture knows, keyed by cookie and by 5-tuple, with the process that owns
//! it, the TLS connections on it and the packets counted for it.
//!
//! Sources feed it in any order (sock_ops, sock_diag warm-up, the TLS probes' fd walk); the
//! packet path asks it who a packet belongs to. Both ends of a local connection are separate
//! sockets, so one packet can belong to two sockets (outbound for one, inbound for the other).

use std::collections::HashMap;
use std::net::SocketAddr;

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
}

impl SocketTable {
    /// Records or updates a socket: known fields (non-zero cookie/pid, non-empty comm) replace
    /// earlier ones. A cookie seen before under another tuple moves to this one (a reused
    /// cookie is impossible; a changed tuple is a socket that was bound again).
    pub fn upsert(&mut self, tuple: FiveTuple, cookie: u64, pid: u32, comm: &str) -> &mut Socket {
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
        let socket = self.sockets.entry(tuple).or_default();
        if !socket.conn_ids.contains(&conn_id) {
            socket.conn_ids.push(conn_id);
        }
    }

    /// The socket with this cookie.
    pub fn by_cookie(&self, cookie: u64) -> Option<(&FiveTuple, &Socket)> {
        let tuple = self.by_cookie.get(&cookie)?;
        self.sockets.get_key_value(tuple)
    }

    /// The socket with this tuple.
    pub fn get(&self, tuple: &FiveTuple) -> Option<&Socket> {
        self.sockets.get(tuple)
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
        let egress = FiveTuple {
            protocol,
            local: src,
            remote: dst,
        };
        let ingress = egress.reversed();
        for (tuple, flow) in [(egress, Flow::Egress), (ingress, Flow::Ingress)] {
            if let Some(socket) = self.sockets.get_mut(&tuple) {
                let c = &mut socket.counters;
                match flow {
                    Flow::Egress => {
                        c.packets_egress += 1;
                        c.bytes_egress += bytes;
                    }
                    Flow::Ingress => {
                        c.packets_ingress += 1;
                        c.bytes_ingress += bytes;
                    }
                }
            }
        }
        [(egress, Flow::Egress), (ingress, Flow::Ingress)]
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
        self.sockets.iter()
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
}
