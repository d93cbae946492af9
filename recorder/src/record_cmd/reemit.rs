//! What a new file of a rotated capture repeats so that it stands alone: the merged connection
//! record of every connection still open and the process record of its process. The records
//! are kept as written (merged as docs/FORMAT.md prescribes) only while rotation is on, and
//! forgotten at each rotation unless their connection is still open, so memory follows the
//! connections of one file, not of the whole capture.

use std::collections::{BTreeMap, HashSet};

use spliff_formats::{Connection, Process, Record, UnixEndpoints};

use super::process_info::ProcInfo;

/// Connection and process records written so far, merged.
#[derive(Debug, Default)]
pub struct Written {
    connections: BTreeMap<u64, KnownConnection>,
    processes: BTreeMap<u32, (u64, ProcInfo)>,
}

/// A connection's records merged; the byte fields owned (the records borrowed them).
#[derive(Debug)]
struct KnownConnection {
    /// Timestamp of the latest record merged: a repeated record stamped so never moves the
    /// connection's first timestamp, which orders replay's output.
    ts_ns: u64,
    fixed: Connection<'static>,
    alpn: Vec<u8>,
    sni: Vec<u8>,
    library_path: Vec<u8>,
    unix_path: Vec<u8>,
}

/// The fields of `c` that are not borrowed.
fn fixed(c: &Connection<'_>) -> Connection<'static> {
    Connection {
        conn_id: c.conn_id,
        pid: c.pid,
        fd: c.fd,
        socket_cookie: c.socket_cookie,
        open_ns: c.open_ns,
        close_ns: c.close_ns,
        role: c.role,
        tls_library: c.tls_library,
        tls_version: c.tls_version,
        ip_protocol: c.ip_protocol,
        local: c.local,
        remote: c.remote,
        alpn: &[],
        sni: &[],
        library_path: &[],
        counters: c.counters,
        transport: c.transport,
        unix: UnixEndpoints {
            path: &[],
            ..c.unix
        },
    }
}

impl KnownConnection {
    fn view(&self) -> Connection<'_> {
        Connection {
            alpn: &self.alpn,
            sni: &self.sni,
            library_path: &self.library_path,
            unix: UnixEndpoints {
                path: &self.unix_path,
                ..self.fixed.unix
            },
            ..self.fixed.clone()
        }
    }

    fn absorb(&mut self, ts_ns: u64, later: &Connection<'_>) {
        let mut merged = self.view();
        merged.merge(later);
        let (fixed, alpn, sni, library_path, unix_path) = (
            fixed(&merged),
            merged.alpn.to_vec(),
            merged.sni.to_vec(),
            merged.library_path.to_vec(),
            merged.unix.path.to_vec(),
        );
        *self = KnownConnection {
            ts_ns: self.ts_ns.max(ts_ns),
            fixed,
            alpn,
            sni,
            library_path,
            unix_path,
        };
    }
}

impl Written {
    /// Takes note of a record as it is written.
    pub fn observe(&mut self, ts_ns: u64, record: &Record<'_>) {
        match record {
            Record::Connection(c) => match self.connections.get_mut(&c.conn_id) {
                Some(known) => known.absorb(ts_ns, c),
                None => {
                    self.connections.insert(
                        c.conn_id,
                        KnownConnection {
                            ts_ns,
                            fixed: fixed(c),
                            alpn: c.alpn.to_vec(),
                            sni: c.sni.to_vec(),
                            library_path: c.library_path.to_vec(),
                            unix_path: c.unix.path.to_vec(),
                        },
                    );
                }
            },
            Record::Process(p) => {
                self.processes.insert(
                    p.pid,
                    (
                        ts_ns,
                        ProcInfo {
                            pid: p.pid,
                            ppid: p.ppid,
                            uid: p.uid,
                            gid: p.gid,
                            start_ns: p.start_ns,
                            comm: p.comm.to_vec(),
                            exe: p.exe.to_vec(),
                            cmdline: p.cmdline.iter().map(|a| a.to_vec()).collect(),
                            cgroup: p.cgroup.to_vec(),
                            container_id: p.container_id.to_vec(),
                        },
                    ),
                );
            }
            _ => {}
        }
    }

    /// Forgets every connection not in `open` and every process none of the rest belongs to.
    pub fn retain(&mut self, open: &HashSet<u64>) {
        self.connections.retain(|id, _| open.contains(id));
        let pids: HashSet<u32> = self.connections.values().map(|c| c.fixed.pid).collect();
        self.processes.retain(|pid, _| pids.contains(pid));
    }

    /// The processes whose records are kept.
    pub fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.processes.keys().copied()
    }

    /// The records to repeat, with their timestamps, in a fixed order: processes by pid, then
    /// connections by id (a process record before the connections that name it, as a
    /// recording writes them).
    pub fn records(&self) -> impl Iterator<Item = (u64, Record<'_>)> {
        let processes = self.processes.values().map(|(ts_ns, p)| {
            let record = Record::Process(Process {
                pid: p.pid,
                ppid: p.ppid,
                uid: p.uid,
                gid: p.gid,
                start_ns: p.start_ns,
                comm: &p.comm,
                exe: &p.exe,
                cmdline: p.cmdline.iter().map(Vec::as_slice).collect(),
                cgroup: &p.cgroup,
                container_id: &p.container_id,
            });
            (*ts_ns, record)
        });
        let connections = self
            .connections
            .values()
            .map(|c| (c.ts_ns, Record::Connection(c.view())));
        processes.chain(connections)
    }
}

#[cfg(test)]
mod tests {
    use spliff_formats::{ConnectionRole, TlsLibrary};

    use super::*;

    fn conn(conn_id: u64, pid: u32) -> Connection<'static> {
        Connection {
            conn_id,
            pid,
            ..Connection::default()
        }
    }

    fn process(pid: u32) -> Process<'static> {
        Process {
            pid,
            ppid: 1,
            uid: 0,
            gid: 0,
            start_ns: 5,
            comm: b"curl",
            exe: b"/usr/bin/curl",
            cmdline: vec![b"curl", b"https://localhost/"],
            cgroup: b"/",
            container_id: b"",
        }
    }

    #[test]
    fn repeats_the_merged_record_of_open_connections_and_their_processes_only() {
        let mut w = Written::default();
        w.observe(1, &Record::Process(process(7)));
        w.observe(1, &Record::Process(process(8)));
        w.observe(
            2,
            &Record::Connection(Connection {
                tls_library: TlsLibrary::OpenSsl,
                library_path: b"/lib/libssl.so.3",
                open_ns: 2,
                ..conn(1, 7)
            }),
        );
        w.observe(3, &Record::Connection(conn(2, 8)));
        w.observe(
            4,
            &Record::Connection(Connection {
                role: ConnectionRole::Client,
                alpn: b"h2",
                local: "127.0.0.1:4000".parse().ok(),
                ..conn(1, 0)
            }),
        );
        w.retain(&HashSet::from([1]));
        let records: Vec<(u64, Record<'_>)> = w.records().collect();
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!(records[0], (1, Record::Process(process(7))));
        let expected = Connection {
            tls_library: TlsLibrary::OpenSsl,
            library_path: b"/lib/libssl.so.3",
            open_ns: 2,
            role: ConnectionRole::Client,
            alpn: b"h2",
            local: "127.0.0.1:4000".parse().ok(),
            ..conn(1, 7)
        };
        assert_eq!(records[1], (4, Record::Connection(expected)));
    }
}
