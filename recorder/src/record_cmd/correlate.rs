//! The join of TLS connections with their sockets, in any event order.
//!
//! A TLS connection learns its socket from the TLS probes' fd walk (cookie and 5-tuple, or
//! only one of them, or nothing for a memory BIO); sockets come from sock_ops and the
//! sock_diag warm-up. Both meet in the [`SocketTable`]. Whenever a connection's best known
//! (cookie, 5-tuple) improves, an update is returned for the converter to write as a
//! connection record (the format merges records field by field), so a TLS record whose
//! socket was reported after it is still correlated and nothing waits or is dropped.

use std::collections::{BTreeMap, HashMap};

use spliff_formats::ConnectionCounters;
use spliff_recorder::{
    bpf::{SocketOp, TcpSocket},
    net::socket_table::{FiveTuple, SocketTable},
};

/// Kernel TCP state number of a closed socket.
const TCP_CLOSE: u8 = 7;

/// What a connection record should now say about a connection's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketUpdate {
    /// The TLS connection.
    pub conn_id: u64,
    /// Its process.
    pub pid: u32,
    /// Socket cookie; 0 unknown.
    pub cookie: u64,
    /// Protocol and addresses, when known.
    pub tuple: Option<FiveTuple>,
    /// Packet counters (only in [`Correlator::finish`]).
    pub counters: ConnectionCounters,
}

/// How a capture's TLS connections were correlated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorrelationReport {
    /// TLS connections.
    pub tls_connections: u64,
    /// With a 5-tuple.
    pub with_socket: u64,
    /// With packets.
    pub with_packets: u64,
    /// `N connection(s): why`, one line per reason.
    pub reasons: Vec<String>,
}

impl CorrelationReport {
    /// One line for the end-of-capture summary.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} TLS connections, {} with their 5-tuple, {} with packets",
            self.tls_connections, self.with_socket, self.with_packets
        );
        if !self.reasons.is_empty() {
            line.push_str("; ");
            line.push_str(&self.reasons.join("; "));
        }
        line
    }
}

#[derive(Debug, Default)]
struct Link {
    pid: u32,
    /// An fd was reported for the SSL (SSL_set_fd or learned from a syscall).
    fd_seen: bool,
    cookie: u64,
    tuple: Option<FiveTuple>,
    /// What the connection records written so far say.
    written: (u64, Option<FiveTuple>),
}

/// The join state of every TLS connection of a capture.
#[derive(Debug, Default)]
pub struct Correlator {
    /// By conn_id; kept after the connection ends for the end-of-capture records.
    links: BTreeMap<u64, Link>,
    /// Connections that know only their cookie, by cookie, until the socket is reported.
    waiting: HashMap<u64, Vec<u64>>,
}

impl Correlator {
    /// A TLS connection seen for the first time.
    pub fn seen(&mut self, conn_id: u64, pid: u32) {
        self.links.entry(conn_id).or_insert_with(|| Link {
            pid,
            ..Link::default()
        });
    }

    /// What the TLS probes learned about a connection's socket. `written` is what the
    /// caller already put into a connection record for it (the event's own cookie and
    /// tuple); the returned update, if any, adds what the table knew beyond that.
    #[allow(clippy::too_many_arguments)]
    pub fn tls_conn(
        &mut self,
        table: &mut SocketTable,
        conn_id: u64,
        pid: u32,
        comm: &str,
        fd_seen: bool,
        cookie: u64,
        tuple: Option<FiveTuple>,
    ) -> Option<SocketUpdate> {
        let tuple = tuple.map(FiveTuple::canonical);
        let link = self.links.entry(conn_id).or_default();
        link.pid = pid;
        link.fd_seen |= fd_seen;
        if cookie != 0 {
            link.cookie = cookie;
            link.written.0 = cookie;
        }
        if let Some(tuple) = tuple {
            link.tuple = Some(tuple);
            link.written.1 = Some(tuple);
            // The TLS side knows the real owner even where sock_ops could not (an accepted
            // socket is reported from softirq).
            table.upsert(tuple, cookie, pid, comm);
            table.bind_connection(tuple, conn_id);
        } else if cookie != 0 {
            match table.by_cookie(cookie).map(|(t, _)| *t) {
                Some(known) => {
                    link.tuple = Some(known);
                    table.bind_connection(known, conn_id);
                }
                None => {
                    let waiting = self.waiting.entry(cookie).or_default();
                    if !waiting.contains(&conn_id) {
                        waiting.push(conn_id);
                    }
                }
            }
        }
        self.refresh(table, conn_id)
    }

    /// A socket reported by sock_ops (or any other source with cookie and tuple).
    pub fn socket(&mut self, table: &mut SocketTable, socket: &TcpSocket) -> Vec<SocketUpdate> {
        let tuple = FiveTuple {
            protocol: socket.protocol,
            local: socket.local,
            remote: socket.remote,
        }
        .canonical();
        let entry = table.upsert(tuple, socket.cookie, socket.pid, &socket.comm);
        let mut conn_ids = entry.conn_ids.clone();
        for conn_id in self.waiting.remove(&socket.cookie).unwrap_or_default() {
            table.bind_connection(tuple, conn_id);
            if let Some(link) = self.links.get_mut(&conn_id) {
                link.tuple = Some(tuple);
            }
            if !conn_ids.contains(&conn_id) {
                conn_ids.push(conn_id);
            }
        }
        if matches!(socket.op, SocketOp::State { new, .. } if new == TCP_CLOSE) {
            table.close(socket.cookie);
        }
        conn_ids
            .into_iter()
            .filter_map(|conn_id| self.refresh(table, conn_id))
            .collect()
    }

    /// The best (cookie, tuple) known for `conn_id`, when it says more than was written.
    fn refresh(&mut self, table: &SocketTable, conn_id: u64) -> Option<SocketUpdate> {
        let link = self.links.get_mut(&conn_id)?;
        let (cookie, tuple) = resolve(link, table);
        let better = (cookie != 0 && cookie != link.written.0)
            || (tuple.is_some() && tuple != link.written.1);
        if !better {
            return None;
        }
        link.cookie = cookie;
        link.tuple = tuple;
        link.written = (cookie, tuple);
        Some(SocketUpdate {
            conn_id,
            pid: link.pid,
            cookie,
            tuple,
            counters: ConnectionCounters::default(),
        })
    }

    /// The last word on every connection: socket and packet counters, and the report.
    pub fn finish(&self, table: &SocketTable) -> (Vec<SocketUpdate>, CorrelationReport) {
        let mut report = CorrelationReport::default();
        let (mut no_fd, mut no_ip_socket, mut cookie_only, mut no_packets) = (0, 0, 0, 0);
        let mut updates = Vec::with_capacity(self.links.len());
        for (&conn_id, link) in &self.links {
            let (cookie, tuple) = resolve(link, table);
            let counters = socket_of(cookie, tuple, table)
                .map(|s| ConnectionCounters {
                    packets_egress: s.counters.packets_egress,
                    packets_ingress: s.counters.packets_ingress,
                    bytes_egress: s.counters.bytes_egress,
                    bytes_ingress: s.counters.bytes_ingress,
                })
                .unwrap_or_default();
            report.tls_connections += 1;
            match (tuple.is_some(), counters.is_empty()) {
                (true, false) => {
                    report.with_socket += 1;
                    report.with_packets += 1;
                }
                (true, true) => {
                    report.with_socket += 1;
                    no_packets += 1;
                }
                (false, _) if cookie != 0 => cookie_only += 1,
                (false, _) if link.fd_seen => no_ip_socket += 1,
                (false, _) => no_fd += 1,
            }
            updates.push(SocketUpdate {
                conn_id,
                pid: link.pid,
                cookie,
                tuple,
                counters,
            });
        }
        for (count, why) in [
            (
                no_fd,
                "no socket behind the SSL (memory BIO, or its fd was never seen)",
            ),
            (
                no_ip_socket,
                "its fd held no TCP/IP socket when the probes looked (closed before the \
                 capture learned it, or a Unix socket)",
            ),
            (
                cookie_only,
                "socket cookie known but the socket was never reported (closed before the \
                 capture learned it)",
            ),
            (
                no_packets,
                "5-tuple known but no packets (--no-packets, or its interface was not captured)",
            ),
        ] {
            if count > 0 {
                let noun = if count == 1 {
                    "connection"
                } else {
                    "connections"
                };
                report.reasons.push(format!("{count} {noun}: {why}"));
            }
        }
        (updates, report)
    }
}

/// A link's cookie and tuple, completed from the table.
fn resolve(link: &Link, table: &SocketTable) -> (u64, Option<FiveTuple>) {
    let mut cookie = link.cookie;
    let mut tuple = link.tuple;
    if cookie != 0
        && let Some((known, _)) = table.by_cookie(cookie)
    {
        tuple = Some(*known);
    }
    if cookie == 0
        && let Some(t) = tuple
        && let Some(socket) = table.get(&t)
    {
        cookie = socket.cookie;
    }
    (cookie, tuple)
}

fn socket_of(
    cookie: u64,
    tuple: Option<FiveTuple>,
    table: &SocketTable,
) -> Option<&spliff_recorder::net::socket_table::Socket> {
    if cookie != 0
        && let Some((_, socket)) = table.by_cookie(cookie)
    {
        return Some(socket);
    }
    table.get(&tuple?)
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

    fn sock(cookie: u64, t: FiveTuple, op: SocketOp, pid: u32) -> TcpSocket {
        TcpSocket {
            ts_ns: 0,
            pid,
            comm: if pid == 0 { String::new() } else { "c".into() },
            cookie,
            op,
            protocol: 6,
            local: t.local,
            remote: t.remote,
        }
    }

    /// What one TLS conn event tells.
    #[derive(Clone, Copy)]
    enum Step {
        /// TLS connection first seen (data).
        Seen(u64),
        /// TLS conn event: conn, fd seen, cookie, tuple.
        Tls(u64, bool, u64, Option<FiveTuple>),
        /// sock_ops event.
        Sock(u64, FiveTuple, SocketOp),
    }

    fn run(steps: &[Step]) -> (SocketTable, Correlator, Vec<SocketUpdate>) {
        let mut table = SocketTable::default();
        let mut c = Correlator::default();
        let mut updates = Vec::new();
        for step in steps {
            match *step {
                Step::Seen(id) => c.seen(id, 100 + id as u32),
                Step::Tls(id, fd, cookie, t) => {
                    c.seen(id, 100 + id as u32);
                    updates.extend(c.tls_conn(&mut table, id, 100 + id as u32, "p", fd, cookie, t));
                }
                Step::Sock(cookie, t, op) => {
                    updates.extend(c.socket(&mut table, &sock(cookie, t, op, 0)));
                }
            }
        }
        (table, c, updates)
    }

    fn permutations(steps: &[Step]) -> Vec<Vec<Step>> {
        if steps.len() <= 1 {
            return vec![steps.to_vec()];
        }
        let mut all = Vec::new();
        for i in 0..steps.len() {
            let mut rest = steps.to_vec();
            let first = rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, first);
                all.push(tail);
            }
        }
        all
    }

    #[test]
    fn every_event_order_ends_with_the_same_correlation() {
        let client = tuple("127.0.0.1:40000", "127.0.0.1:443");
        let server = client.reversed();
        let steps = [
            Step::Seen(1),
            // Client: cookie 0 from the fd walk (the sock_ops cookie came later).
            Step::Tls(1, true, 0, Some(client)),
            // Server: cookie only.
            Step::Tls(2, true, 22, None),
            Step::Sock(11, client, SocketOp::Connect),
            Step::Sock(22, server, SocketOp::PassiveEstablished),
            Step::Sock(11, client, SocketOp::State { old: 1, new: 7 }),
        ];
        for order in permutations(&steps) {
            let (table, c, updates) = run(&order);
            let (finals, report) = c.finish(&table);
            let by_id: HashMap<u64, (u64, Option<FiveTuple>)> = finals
                .iter()
                .map(|u| (u.conn_id, (u.cookie, u.tuple)))
                .collect();
            assert_eq!(by_id[&1], (11, Some(client)), "{:?}", updates);
            assert_eq!(by_id[&2], (22, Some(server)));
            assert_eq!((report.tls_connections, report.with_socket), (2, 2));
            // The streaming updates alone already carry everything the finals say (a
            // trace cut before the end is correlated too).
            for id in [1, 2] {
                let mut merged = (0, None);
                for u in updates.iter().filter(|u| u.conn_id == id) {
                    if u.cookie != 0 {
                        merged.0 = u.cookie;
                    }
                    if u.tuple.is_some() {
                        merged.1 = u.tuple;
                    }
                }
                // The TLS event's own values are written by the caller.
                let own = match id {
                    1 => (0, Some(client)),
                    _ => (22, None),
                };
                let combined = (
                    if merged.0 != 0 { merged.0 } else { own.0 },
                    merged.1.or(own.1),
                );
                assert_eq!(combined, by_id[&id]);
            }
        }
    }

    #[test]
    fn reasons_and_counters_at_the_end() {
        let t = tuple("10.0.0.1:5000", "10.0.0.2:443");
        let quiet = tuple("10.0.0.1:5001", "10.0.0.2:443");
        let (mut table, c, _) = run(&[
            Step::Tls(1, true, 5, Some(t)),
            Step::Tls(2, true, 6, Some(quiet)),
            Step::Seen(3),                // memory BIO
            Step::Tls(4, true, 0, None),  // fd, but no IP socket
            Step::Tls(5, true, 99, None), // cookie never reported
            Step::Sock(5, t, SocketOp::Connect),
        ]);
        table.count_packet(6, t.local, t.remote, 60);
        table.count_packet(6, t.remote, t.local, 1500);
        let (finals, report) = c.finish(&table);
        let first = finals.iter().find(|u| u.conn_id == 1).unwrap();
        assert_eq!(
            first.counters,
            ConnectionCounters {
                packets_egress: 1,
                packets_ingress: 1,
                bytes_egress: 60,
                bytes_ingress: 1500
            }
        );
        assert_eq!(
            (
                report.tls_connections,
                report.with_socket,
                report.with_packets
            ),
            (5, 2, 1)
        );
        assert_eq!(report.reasons.len(), 4, "{:?}", report.reasons);
        assert!(report.reasons[0].starts_with("1 connection: no socket behind the SSL"));
        assert!(
            report
                .summary()
                .starts_with("5 TLS connections, 2 with their 5-tuple")
        );
    }
}
