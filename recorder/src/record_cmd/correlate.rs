//! The join of TLS connections with their sockets, in any event order.
//!
//! A TLS connection learns its socket from the TLS probes' fd walk (cookie and 5-tuple, or
//! only one of them, or nothing for a memory BIO); sockets come from sock_ops and the
//! sock_diag warm-up. Both meet in the [`SocketTable`]. Whenever a connection's best known
//! (cookie, 5-tuple) improves, an update is returned for the converter to write as a
//! connection record (the format merges records field by field), so a TLS record whose
//! socket was reported after it is still correlated and nothing waits or is dropped.
//!
//! A connection's last word (socket and packet counters) is written once nothing can change
//! it any more: [`RELEASE_AFTER_NS`] after both its `SSL_free` and its socket's close. Then
//! its state here and its socket in the table are released, so a capture of many short
//! connections holds only the recent ones.

use std::collections::{BTreeMap, HashMap, VecDeque};

use spliff_formats::ConnectionCounters;
use spliff_recorder::{
    bpf::{SocketOp, TcpSocket},
    net::socket_table::{FiveTuple, SocketTable},
};

/// Kernel TCP state number of a closed socket.
const TCP_CLOSE: u8 = 7;

/// How long a connection's state outlives both its `SSL_free` and its socket's close. Packets
/// are counted only after they were held for a while (half a second, more under a packet
/// backlog), and the last ones of a connection (FIN, ACK) come with or after the close.
pub const RELEASE_AFTER_NS: u64 = 10_000_000_000;

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
    /// Packet counters (only in a connection's last word: [`Correlator::release`],
    /// [`Correlator::finish`]).
    pub counters: ConnectionCounters,
}

impl SocketUpdate {
    /// Whether a record of it would say anything.
    pub fn is_empty(&self) -> bool {
        self.cookie == 0 && self.tuple.is_none() && self.counters.is_empty()
    }
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

/// How the connections whose last word was written ended up, for the report.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    tls_connections: u64,
    with_socket: u64,
    with_packets: u64,
    no_fd: u64,
    no_ip_socket: u64,
    cookie_only: u64,
    no_packets: u64,
}

impl Tally {
    fn count(&mut self, link: &Link, last: &SocketUpdate) {
        self.tls_connections += 1;
        match (last.tuple.is_some(), last.counters.is_empty()) {
            (true, false) => {
                self.with_socket += 1;
                self.with_packets += 1;
            }
            (true, true) => {
                self.with_socket += 1;
                self.no_packets += 1;
            }
            (false, _) if last.cookie != 0 => self.cookie_only += 1,
            (false, _) if link.fd_seen => self.no_ip_socket += 1,
            (false, _) => self.no_fd += 1,
        }
    }
}

/// The join state of every TLS connection of a capture.
#[derive(Debug, Default)]
pub struct Correlator {
    /// By conn_id, until the connection's last word is written.
    links: BTreeMap<u64, Link>,
    /// Connections that know only their cookie, by cookie, until the socket is reported.
    waiting: HashMap<u64, Vec<u64>>,
    /// Freed connections, with when to look whether their last word can be written.
    freed: VecDeque<(u64, u64)>,
    /// Connections whose last word was written.
    released: Tally,
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
            table.close(socket.cookie, socket.ts_ns);
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

    /// The TLS connection was freed (`SSL_free`) at `ts_ns`: nothing more comes from the
    /// TLS side.
    pub fn freed(&mut self, conn_id: u64, ts_ns: u64) {
        if self.links.contains_key(&conn_id) {
            self.freed
                .push_back((ts_ns.saturating_add(RELEASE_AFTER_NS), conn_id));
        }
    }

    /// The last word on each freed connection that nothing can change any more (see
    /// [`RELEASE_AFTER_NS`]), its state released. `closes_reported`: sockets' closes are
    /// reported (sock_ops); without, a freed connection is not waited for.
    pub fn release(
        &mut self,
        table: &mut SocketTable,
        now_ns: u64,
        closes_reported: bool,
    ) -> Vec<SocketUpdate> {
        let mut last_words = Vec::new();
        // Looked at in turn; one whose socket is still open goes to the back.
        for _ in 0..self.freed.len() {
            let Some(&(due, conn_id)) = self.freed.front() else {
                break;
            };
            if due > now_ns {
                break;
            }
            self.freed.pop_front();
            let Some(link) = self.links.get(&conn_id) else {
                continue;
            };
            let last = last_word(conn_id, link, table);
            if closes_reported && let Some(later) = settles_at(&last, table, now_ns) {
                self.freed.push_back((later, conn_id));
                continue;
            }
            self.forget(table, &last);
            last_words.push(last);
        }
        last_words
    }

    /// Counts a connection whose last word is written in the report, and drops its state
    /// here and in the table.
    fn forget(&mut self, table: &mut SocketTable, last: &SocketUpdate) {
        let Some(link) = self.links.remove(&last.conn_id) else {
            return;
        };
        self.released.count(&link, last);
        if let Some(ids) = self.waiting.get_mut(&link.cookie) {
            ids.retain(|&id| id != last.conn_id);
            if ids.is_empty() {
                self.waiting.remove(&link.cookie);
            }
        }
        table.release_connection(last.conn_id, last.cookie, last.tuple);
    }

    /// Connections whose state is held (not yet released).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.links.len()
    }

    /// The last word on every connection not released yet: socket and packet counters, and
    /// the report (released connections included).
    pub fn finish(&self, table: &SocketTable) -> (Vec<SocketUpdate>, CorrelationReport) {
        let mut tally = self.released;
        let mut updates = Vec::with_capacity(self.links.len());
        for (&conn_id, link) in &self.links {
            let last = last_word(conn_id, link, table);
            tally.count(link, &last);
            updates.push(last);
        }
        let mut report = CorrelationReport {
            tls_connections: tally.tls_connections,
            with_socket: tally.with_socket,
            with_packets: tally.with_packets,
            reasons: Vec::new(),
        };
        for (count, why) in [
            (
                tally.no_fd,
                "no socket behind the SSL (memory BIO, or its fd was never seen)",
            ),
            (
                tally.no_ip_socket,
                "its fd held no TCP/IP socket when the probes looked (closed before the \
                 capture learned it, or a Unix socket)",
            ),
            (
                tally.cookie_only,
                "socket cookie known but the socket was never reported (closed before the \
                 capture learned it)",
            ),
            (
                tally.no_packets,
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

/// A connection's socket and packet counters as the table has them now.
fn last_word(conn_id: u64, link: &Link, table: &SocketTable) -> SocketUpdate {
    let (cookie, tuple) = resolve(link, table);
    let counters = socket_of(cookie, tuple, table)
        .map(|s| ConnectionCounters {
            packets_egress: s.counters.packets_egress,
            packets_ingress: s.counters.packets_ingress,
            bytes_egress: s.counters.bytes_egress,
            bytes_ingress: s.counters.bytes_ingress,
        })
        .unwrap_or_default();
    SocketUpdate {
        conn_id,
        pid: link.pid,
        cookie,
        tuple,
        counters,
    }
}

/// When to look again at a freed connection whose socket may still see packets: `None` if
/// it cannot (closed long enough ago, or no socket known).
fn settles_at(last: &SocketUpdate, table: &SocketTable, now_ns: u64) -> Option<u64> {
    let socket = socket_of(last.cookie, last.tuple, table)?;
    if !socket.closed {
        return Some(now_ns.saturating_add(RELEASE_AFTER_NS));
    }
    let settled = socket.closed_ns.saturating_add(RELEASE_AFTER_NS);
    (settled > now_ns).then_some(settled)
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

    #[test]
    fn a_freed_connection_is_released_only_once_its_socket_has_been_closed_long_enough() {
        let t = tuple("10.0.0.1:5000", "10.0.0.2:443");
        let (mut table, mut c, _) = run(&[
            Step::Tls(1, true, 5, Some(t)),
            Step::Sock(5, t, SocketOp::Connect),
        ]);
        c.freed(1, 0);
        assert!(c.release(&mut table, RELEASE_AFTER_NS, true).is_empty());
        // Still open: packets still count for it.
        table.count_packet(6, t.local, t.remote, 60);
        let close_at = 3 * RELEASE_AFTER_NS;
        c.socket(
            &mut table,
            &TcpSocket {
                ts_ns: close_at,
                ..sock(5, t, SocketOp::State { old: 1, new: 7 }, 0)
            },
        );
        assert!(c.release(&mut table, close_at + 1, true).is_empty());
        assert_eq!(c.held(), 1);
        let last = c.release(&mut table, close_at + RELEASE_AFTER_NS + 1, true);
        assert_eq!(last.len(), 1);
        assert_eq!(
            (
                last[0].cookie,
                last[0].tuple,
                last[0].counters.packets_egress
            ),
            (5, Some(t), 1)
        );
        assert_eq!((c.held(), table.len()), (0, 0));
        let (finals, report) = c.finish(&table);
        assert!(finals.is_empty());
        assert_eq!(
            (
                report.tls_connections,
                report.with_socket,
                report.with_packets
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn without_reported_closes_a_freed_connection_waits_only_the_grace_period() {
        let (mut table, mut c, _) = run(&[Step::Tls(1, true, 99, None), Step::Seen(2)]);
        c.freed(1, 10);
        c.freed(2, 20);
        assert!(
            c.release(&mut table, 10 + RELEASE_AFTER_NS - 1, false)
                .is_empty()
        );
        let last = c.release(&mut table, 20 + RELEASE_AFTER_NS, false);
        assert_eq!(last.iter().map(|u| u.conn_id).collect::<Vec<_>>(), [1, 2]);
        // The cookie it waited for is no longer waited for.
        assert!(c.waiting.is_empty());
        let (_, report) = c.finish(&table);
        assert_eq!(report.tls_connections, 2);
        assert_eq!(report.reasons.len(), 2, "{:?}", report.reasons);
    }
}
