//! The one place kernel events become trace records.
//!
//! Connections are keyed by (pid, SSL *) and numbered here: conn_id is a
//! counter, assigned on first sight and ended by `SSL_free`, so a reused
//! `SSL *` address starts a new connection. Stream offsets come from the
//! kernel (reserved per call when it returns); a jump in them means events
//! were dropped and becomes a loss record with the exact range.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    io::Write,
};

use spliff_formats::{
    Connection, ConnectionRole, Correlation, Direction, Handshake, Loss, LossCause, Process,
    Record, TlsData as TraceTlsData, TlsLibrary, TraceWriter, Transport, UnixEndpoints, WriteError,
};

use super::correlate::{CorrelationReport, Correlator, SocketUpdate};
use super::process_info::{ProcInfo, ProcessSource, Procfs};
use super::reemit::Written;
use spliff_recorder::bpf::{
    Event, TlsConn, TlsDirection, TlsLossCause, TlsString, TlsStringKind, UnixConn,
};
use spliff_recorder::net::socket_table::{FiveTuple, SocketTable};
use spliff_recorder::probes::{self, LibrarySpec};

/// Exec snapshots kept for processes that may be gone when their first TLS
/// event is converted.
const PROC_CACHE_MAX: usize = 4096;

/// Counters for the status line and the summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Connections seen.
    pub connections: u64,
    /// Plaintext bytes written by processes (egress).
    pub bytes_egress: u64,
    /// Plaintext bytes read by processes (ingress).
    pub bytes_ingress: u64,
    /// Records written.
    pub records: u64,
    /// Bytes covered by loss records.
    pub loss_bytes: u64,
    /// Loss records written.
    pub loss_records: u64,
    /// Kernel records that failed validation (skipped).
    pub invalid_events: u64,
}

struct Conn {
    conn_id: u64,
    pid: u32,
    /// Next expected stream offset: [egress, ingress].
    next: [u64; 2],
    closed: bool,
    handshake_done: bool,
    /// Whose probes saw it: the kernel's word once its report came, until
    /// then a guess from the files the process maps (`None`: no guess).
    library: Option<&'static LibrarySpec>,
}

/// Converts events into records of one trace.
pub struct Converter<W: Write> {
    writer: TraceWriter<W>,
    conns: HashMap<(u32, u64), Conn>,
    next_conn_id: u64,
    processes_written: HashSet<u32>,
    /// Processes found gone at the last sweep ([`Converter::release_gone_processes`]).
    gone: HashSet<u32>,
    proc_cache: HashMap<u32, ProcInfo>,
    proc_cache_order: VecDeque<u32>,
    /// Where processes are looked up: /proc, but for tests.
    processes: Box<dyn ProcessSource>,
    /// Hooked library files, to name the one a process maps.
    library_paths: Vec<(Vec<u8>, &'static LibrarySpec)>,
    /// What happened so far.
    pub stats: Stats,
    /// Every socket known to the capture (the seam with the packet side).
    sockets: SocketTable,
    /// TLS connections joined with their sockets.
    correlator: Correlator,
    /// Rotation only: the records a new file repeats.
    written: Option<Written>,
    /// Sockets' closes are reported (sock_ops attached), so a freed connection's state is
    /// kept until its socket is closed.
    closes_reported: bool,
}

impl<W: Write> std::fmt::Debug for Converter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn index(direction: TlsDirection) -> usize {
    match direction {
        TlsDirection::Egress => 0,
        TlsDirection::Ingress => 1,
    }
}

fn trace_direction(direction: TlsDirection) -> Direction {
    match direction {
        TlsDirection::Egress => Direction::Egress,
        TlsDirection::Ingress => Direction::Ingress,
    }
}

impl<W: Write> Converter<W> {
    /// Starts converting into `writer` (capture info already written).
    pub fn new(
        writer: TraceWriter<W>,
        library_paths: Vec<(Vec<u8>, &'static LibrarySpec)>,
    ) -> Self {
        Self::with_processes(writer, library_paths, Box::new(Procfs))
    }

    /// [`Converter::new`] looking processes up in `processes`.
    pub fn with_processes(
        writer: TraceWriter<W>,
        library_paths: Vec<(Vec<u8>, &'static LibrarySpec)>,
        processes: Box<dyn ProcessSource>,
    ) -> Self {
        Self {
            writer,
            conns: HashMap::new(),
            next_conn_id: 1,
            processes_written: HashSet::new(),
            gone: HashSet::new(),
            proc_cache: HashMap::new(),
            proc_cache_order: VecDeque::new(),
            processes,
            library_paths,
            stats: Stats::default(),
            sockets: SocketTable::default(),
            correlator: Correlator::default(),
            written: None,
            closes_reported: true,
        }
    }

    /// Rotation: keeps what a new file must repeat (see [`Converter::repeat_open_records`]).
    pub fn keep_for_rotation(&mut self) {
        self.written.get_or_insert_with(Written::default);
    }

    /// Rotation, right after the writer moved to a new file: writes into it the process and
    /// connection records of every connection not yet freed, so that its data refers to known
    /// records.
    pub fn repeat_open_records(&mut self) -> Result<(), WriteError> {
        let Some(written) = &mut self.written else {
            return Ok(());
        };
        let open: HashSet<u64> = self.conns.values().map(|c| c.conn_id).collect();
        written.retain(&open);
        // A process with no open connection gets its record again with its next connection
        // in this file (read from /proc then, as the first time).
        self.processes_written = written.pids().collect();
        for (ts_ns, record) in written.records() {
            self.writer.write(ts_ns, &record)?;
            self.stats.records += 1;
        }
        Ok(())
    }

    /// Whether sockets' closes are reported (sock_ops attached).
    pub fn set_closes_reported(&mut self, reported: bool) {
        self.closes_reported = reported;
    }

    /// Every socket the capture knows.
    pub fn sockets(&mut self) -> &mut SocketTable {
        &mut self.sockets
    }

    /// A library file hooked during the capture.
    pub fn add_library_path(&mut self, path: Vec<u8>, library: &'static LibrarySpec) {
        self.library_paths.push((path, library));
    }

    /// Writes a record produced outside the converter (interface events),
    /// counted like its own.
    pub fn write_record(&mut self, ts_ns: u64, record: &Record<'_>) -> Result<(), WriteError> {
        self.write(ts_ns, record)
    }

    /// The writer, e.g. to flush.
    pub fn writer(&mut self) -> &mut TraceWriter<W> {
        &mut self.writer
    }

    /// Finishes the trace.
    pub fn into_writer(self) -> TraceWriter<W> {
        self.writer
    }

    fn write(&mut self, ts_ns: u64, record: &Record<'_>) -> Result<(), WriteError> {
        self.writer.write(ts_ns, record)?;
        self.stats.records += 1;
        if let Some(written) = &mut self.written {
            written.observe(ts_ns, record);
        }
        Ok(())
    }

    /// Remembers what /proc says about a process that just exec'd, in case
    /// it is gone before its TLS events are converted.
    pub fn snapshot_process(&mut self, pid: u32) {
        if self.processes_written.contains(&pid) {
            return;
        }
        if let Some(info) = self.processes.info(pid) {
            self.cache_snapshot(info);
        }
    }

    fn cache_snapshot(&mut self, info: ProcInfo) {
        let pid = info.pid;
        if self.proc_cache.insert(pid, info).is_none() {
            self.proc_cache_order.push_back(pid);
        }
        while self.proc_cache_order.len() > PROC_CACHE_MAX {
            if let Some(old) = self.proc_cache_order.pop_front() {
                self.proc_cache.remove(&old);
            }
        }
    }

    /// A recorder that lags reads /proc of a process already exiting (no exe any more) or
    /// gone: what the exec event itself says stands in, the path the kernel exec'd included
    /// when it was read whole and is absolute.
    fn exec_filename(&mut self, exec: &spliff_recorder::bpf::ProcessExec) {
        if self.processes_written.contains(&exec.pid) {
            return;
        }
        use std::os::unix::ffi::OsStrExt as _;
        // A relative path was relative to a working directory the trace does not know.
        let exe =
            (!exec.filename_truncated && !exec.filename_unreadable && exec.filename.is_absolute())
                .then(|| exec.filename.as_os_str().as_bytes().to_vec());
        match self.proc_cache.get_mut(&exec.pid) {
            Some(info) => {
                if info.exe.is_empty()
                    && let Some(exe) = exe
                {
                    info.exe = exe;
                }
            }
            None => {
                let info = ProcInfo {
                    pid: exec.pid,
                    ppid: exec.ppid,
                    uid: exec.uid,
                    comm: exec.comm.as_bytes().to_vec(),
                    exe: exe.unwrap_or_default(),
                    ..ProcInfo::default()
                };
                self.cache_snapshot(info);
            }
        }
    }

    /// Writes the process record of `pid` once.
    fn ensure_process(&mut self, ts_ns: u64, pid: u32, comm: &str) -> Result<(), WriteError> {
        if !self.processes_written.insert(pid) {
            return Ok(());
        }
        // Live /proc first (most complete), then the exec snapshot, then
        // what the kernel event said.
        let snapshot = self.proc_cache.remove(&pid);
        let info = match (self.processes.info(pid), snapshot) {
            (Some(mut live), Some(snapshot)) => {
                live.fill_from_snapshot(snapshot);
                live
            }
            (live, snapshot) => live.or(snapshot).unwrap_or_else(|| ProcInfo {
                pid,
                comm: comm.as_bytes().to_vec(),
                ..ProcInfo::default()
            }),
        };
        let cmdline: Vec<&[u8]> = info.cmdline.iter().map(Vec::as_slice).collect();
        self.write(
            ts_ns,
            &Record::Process(Process {
                pid,
                ppid: info.ppid,
                uid: info.uid,
                gid: info.gid,
                start_ns: info.start_ns,
                comm: &info.comm,
                exe: &info.exe,
                cmdline,
                cgroup: &info.cgroup,
                container_id: &info.container_id,
            }),
        )
    }

    /// The library file among the hooked ones of `library` (any, if `None`)
    /// that `pid` maps.
    fn library_of(
        &self,
        pid: u32,
        library: Option<&'static LibrarySpec>,
    ) -> Option<(Vec<u8>, &'static LibrarySpec)> {
        let maps = self.processes.maps(pid);
        let hooked =
            |p: &&(Vec<u8>, &'static LibrarySpec)| library.is_none_or(|l| l.kind == p.1.kind);
        // Every mapped file, not only those named like a library: node's
        // OpenSSL is in /usr/bin/node.
        for path in super::libraries::mapped_files(&maps).iter().map(|f| f.path) {
            if let Some(known) = self
                .library_paths
                .iter()
                .filter(hooked)
                .find(|p| p.0.ends_with(path.as_bytes()) || path.as_bytes().ends_with(&p.0))
            {
                return Some(known.clone());
            }
        }
        self.library_paths.iter().find(hooked).cloned()
    }

    /// The connection of (pid, ssl), opened (and recorded) on first sight.
    /// `library` is the kernel's word when the event carries it; otherwise
    /// the first hooked library file the process maps says.
    fn conn(
        &mut self,
        ts_ns: u64,
        pid: u32,
        ssl: u64,
        library: Option<&'static LibrarySpec>,
    ) -> Result<u64, WriteError> {
        if let Some(conn) = self.conns.get(&(pid, ssl)) {
            return Ok(conn.conn_id);
        }
        let conn_id = self.next_conn_id;
        self.next_conn_id += 1;
        self.stats.connections += 1;
        self.correlator.seen(conn_id, pid);
        let (library_path, guessed) = match library {
            // Go links its TLS into the program: the program is the library.
            Some(go) if go.kind == TlsLibrary::GoCryptoTls => (self.processes.exe(pid), None),
            _ => self.library_of(pid, library).unzip(),
        };
        let library = library.or(guessed);
        self.write(
            ts_ns,
            &Record::Connection(Connection {
                conn_id,
                pid,
                fd: -1,
                open_ns: ts_ns,
                tls_library: library.map_or(TlsLibrary::Unknown, |l| l.kind),
                library_path: library_path.as_deref().unwrap_or_default(),
                ..Connection::default()
            }),
        )?;
        self.conns.insert(
            (pid, ssl),
            Conn {
                conn_id,
                pid,
                next: [0; 2],
                closed: false,
                handshake_done: false,
                library,
            },
        );
        Ok(conn_id)
    }

    /// A loss record for a gap before `offset` in a stream.
    fn fill_gap(
        &mut self,
        ts_ns: u64,
        key: (u32, u64),
        tid: u32,
        direction: TlsDirection,
        offset: u64,
        cause: LossCause,
    ) -> Result<(), WriteError> {
        let Some(conn) = self.conns.get_mut(&key) else {
            return Ok(());
        };
        let expected = conn.next[index(direction)];
        if offset <= expected {
            return Ok(());
        }
        conn.next[index(direction)] = offset;
        let conn_id = conn.conn_id;
        self.write_loss(
            Loss {
                conn_id,
                pid: key.0,
                tid,
                direction: Some(trace_direction(direction)),
                cause,
                stream_offset: expected,
                length: offset - expected,
                events: 0,
            },
            ts_ns,
        )
    }

    fn write_loss(&mut self, loss: Loss, ts_ns: u64) -> Result<(), WriteError> {
        self.stats.loss_records += 1;
        self.stats.loss_bytes = self.stats.loss_bytes.saturating_add(loss.length);
        self.write(ts_ns, &Record::Loss(loss))
    }

    /// Converts one kernel event. Returns the pid of an exec event (for a
    /// library rescan).
    pub fn event(&mut self, event: Event) -> Result<Option<u32>, WriteError> {
        match event {
            Event::ProcessExec(exec) => {
                self.snapshot_process(exec.pid);
                self.exec_filename(&exec);
                return Ok(Some(exec.pid));
            }
            Event::TlsData(data) => {
                let key = (data.pid, data.ssl);
                let conn_id = self.conn(data.ts_ns, data.pid, data.ssl, None)?;
                self.ensure_process(data.ts_ns, data.pid, "")?;
                self.fill_gap(
                    data.ts_ns,
                    key,
                    data.tid,
                    data.direction,
                    data.stream_offset,
                    LossCause::RingBufferFull,
                )?;
                let len = data.payload.len() as u64;
                if let Some(conn) = self.conns.get_mut(&key) {
                    let next = &mut conn.next[index(data.direction)];
                    *next = (*next).max(data.stream_offset.saturating_add(len));
                }
                match data.direction {
                    TlsDirection::Egress => self.stats.bytes_egress += len,
                    TlsDirection::Ingress => self.stats.bytes_ingress += len,
                }
                self.write(
                    data.ts_ns,
                    &Record::TlsData(TraceTlsData {
                        conn_id,
                        pid: data.pid,
                        tid: data.tid,
                        direction: trace_direction(data.direction),
                        stream_offset: data.stream_offset,
                        payload: &data.payload,
                    }),
                )?;
            }
            Event::TlsLoss(loss) => {
                let key = (loss.pid, loss.ssl);
                let conn_id = self.conn(loss.ts_ns, loss.pid, loss.ssl, None)?;
                self.ensure_process(loss.ts_ns, loss.pid, "")?;
                self.fill_gap(
                    loss.ts_ns,
                    key,
                    loss.tid,
                    loss.direction,
                    loss.stream_offset,
                    LossCause::RingBufferFull,
                )?;
                if let Some(conn) = self.conns.get_mut(&key) {
                    let next = &mut conn.next[index(loss.direction)];
                    *next = (*next).max(loss.stream_offset.saturating_add(loss.length));
                }
                let cause = match loss.cause {
                    TlsLossCause::Truncated => LossCause::Truncated,
                    TlsLossCause::ReadFault => LossCause::ReadFault,
                    TlsLossCause::RingBuffer => LossCause::RingBufferFull,
                };
                self.write_loss(
                    Loss {
                        conn_id,
                        pid: loss.pid,
                        tid: loss.tid,
                        direction: Some(trace_direction(loss.direction)),
                        cause,
                        stream_offset: loss.stream_offset,
                        length: loss.length,
                        events: 0,
                    },
                    loss.ts_ns,
                )?;
            }
            Event::TlsConn(conn) => self.conn_info(&conn)?,
            Event::UnixConn(conn) => self.unix_conn(&conn)?,
            Event::TlsHandshake(hs) => {
                let key = (hs.pid, hs.ssl);
                let conn_id = self.conn(hs.ts_ns, hs.pid, hs.ssl, None)?;
                let Some(conn) = self.conns.get_mut(&key) else {
                    return Ok(None);
                };
                // Non-blocking handshakes return "not yet" until they end;
                // only the end counts, and each library says it its way.
                // The kernel names the library before a handshake returns;
                // without it, OpenSSL's meaning is the oldest guess.
                let library = conn.library.unwrap_or(&probes::OPENSSL);
                let Some(result) = (library.handshake_result)(hs.ret) else {
                    return Ok(None);
                };
                if conn.handshake_done {
                    return Ok(None);
                }
                conn.handshake_done = true;
                self.write(
                    hs.ts_ns,
                    &Record::Handshake(Handshake {
                        conn_id,
                        pid: hs.pid,
                        tid: hs.tid,
                        start_ns: hs.start_ns,
                        end_ns: hs.ts_ns,
                        result,
                        return_code: hs.ret,
                    }),
                )?;
            }
            Event::TlsString(string) => self.conn_string(&string)?,
            Event::TcpSocket(socket) => {
                for update in self.correlator.socket(&mut self.sockets, &socket) {
                    self.write_socket_update(socket.ts_ns, &update)?;
                }
            }
            Event::TlsClose(close) => {
                let key = (close.pid, close.ssl);
                if !self.conns.contains_key(&key) {
                    return Ok(None);
                }
                for direction in [TlsDirection::Egress, TlsDirection::Ingress] {
                    self.fill_gap(
                        close.ts_ns,
                        key,
                        close.tid,
                        direction,
                        close.end_offsets[index(direction)],
                        LossCause::RingBufferFull,
                    )?;
                }
                if let Some(conn) = self.conns.get_mut(&key)
                    && !conn.closed
                {
                    conn.closed = true;
                    let (conn_id, pid) = (conn.conn_id, conn.pid);
                    self.write(
                        close.ts_ns,
                        &Record::Connection(Connection {
                            conn_id,
                            pid,
                            fd: -1,
                            close_ns: close.ts_ns,
                            ..Connection::default()
                        }),
                    )?;
                }
                if close.freed
                    && let Some(conn) = self.conns.remove(&key)
                {
                    self.correlator.freed(conn.conn_id, close.ts_ns);
                }
            }
            _ => {}
        }
        Ok(None)
    }

    fn conn_info(&mut self, info: &TlsConn) -> Result<(), WriteError> {
        let library = info.library.and_then(probes::library_of_kernel_id);
        let conn_id = self.conn(info.ts_ns, info.pid, info.ssl, library)?;
        if let Some(library) = library
            && let Some(conn) = self.conns.get_mut(&(info.pid, info.ssl))
        {
            conn.library = Some(library);
        }
        self.ensure_process(info.ts_ns, info.pid, &info.comm)?;
        let role = match info.role {
            Some(1) => ConnectionRole::Client,
            Some(2) => ConnectionRole::Server,
            Some(other) => ConnectionRole::Other(other),
            None => ConnectionRole::Unknown,
        };
        // A socket closed before the probes looked has given its local port back (0): those
        // addresses name no socket, and the cookie still finds the real one.
        let addresses = info
            .addresses
            .filter(|(local, remote)| local.port() != 0 && remote.port() != 0);
        let (local, remote) = addresses.unzip();
        self.write(
            info.ts_ns,
            &Record::Connection(Connection {
                conn_id,
                pid: info.pid,
                fd: info.fd.unwrap_or(-1),
                socket_cookie: info.socket_cookie,
                role,
                tls_library: library.map_or(TlsLibrary::Unknown, |l| l.kind),
                ip_protocol: info.protocol,
                local,
                remote,
                ..Connection::default()
            }),
        )?;
        let tuple = addresses.map(|(local, remote)| FiveTuple {
            protocol: info.protocol,
            local,
            remote,
        });
        if let Some(update) = self.correlator.tls_conn(
            &mut self.sockets,
            conn_id,
            info.pid,
            &info.comm,
            info.fd.is_some(),
            info.socket_cookie,
            tuple,
        ) {
            self.write_socket_update(info.ts_ns, &update)?;
        }
        Ok(())
    }

    /// A unix stream socket's first sight: its connection (no TLS library to name, no
    /// 5-tuple to correlate), its process and the peer's.
    fn unix_conn(&mut self, info: &UnixConn) -> Result<(), WriteError> {
        let key = (info.pid, info.sk);
        let conn_id = match self.conns.get(&key) {
            Some(conn) => conn.conn_id,
            None => {
                let conn_id = self.next_conn_id;
                self.next_conn_id += 1;
                self.stats.connections += 1;
                self.conns.insert(
                    key,
                    Conn {
                        conn_id,
                        pid: info.pid,
                        next: [0; 2],
                        closed: false,
                        handshake_done: false,
                        library: None,
                    },
                );
                conn_id
            }
        };
        self.ensure_process(info.ts_ns, info.pid, &info.comm)?;
        self.write(
            info.ts_ns,
            &Record::Connection(Connection {
                conn_id,
                pid: info.pid,
                fd: info.fd,
                open_ns: info.ts_ns,
                role: match info.role {
                    1 => ConnectionRole::Client,
                    2 => ConnectionRole::Server,
                    _ => ConnectionRole::Unknown,
                },
                transport: Transport::UnixStream,
                unix: UnixEndpoints {
                    path: &info.path,
                    inode: info.inode,
                    peer_inode: info.peer_inode,
                    peer_pid: info.peer_pid,
                },
                ..Connection::default()
            }),
        )?;
        // The peer is named by its own process record (when /proc still has it).
        if info.peer_pid != 0 && info.peer_pid != info.pid {
            self.ensure_process(info.ts_ns, info.peer_pid, "")?;
        }
        Ok(())
    }

    /// A connection record with what is now known about a connection's socket.
    fn write_socket_update(&mut self, ts_ns: u64, update: &SocketUpdate) -> Result<(), WriteError> {
        self.write(
            ts_ns,
            &Record::Connection(Connection {
                conn_id: update.conn_id,
                pid: update.pid,
                fd: -1,
                socket_cookie: update.cookie,
                ip_protocol: update.tuple.map_or(0, |t| t.protocol),
                local: update.tuple.map(|t| t.local),
                remote: update.tuple.map(|t| t.remote),
                counters: update.counters,
                ..Connection::default()
            }),
        )
    }

    /// Ends the connections of processes that are gone without `SSL_free` (killed, or exited
    /// without cleaning up) as if freed, and forgets that their process record was written
    /// (a reused pid is another process). A process counts as gone when it was at the last
    /// sweep too: its last events may still have been in the ring then.
    pub fn release_gone_processes(&mut self, now_ns: u64) {
        let pids: HashSet<u32> = self
            .conns
            .keys()
            .map(|&(pid, _)| pid)
            .chain(self.processes_written.iter().copied())
            .collect();
        let gone: HashSet<u32> = pids
            .into_iter()
            .filter(|&pid| self.processes.is_gone(pid))
            .collect();
        let confirmed: HashSet<u32> = gone.intersection(&self.gone).copied().collect();
        let ended: Vec<(u32, u64)> = self
            .conns
            .keys()
            .filter(|(pid, _)| confirmed.contains(pid))
            .copied()
            .collect();
        for key in ended {
            if let Some(conn) = self.conns.remove(&key) {
                self.correlator.freed(conn.conn_id, now_ns);
            }
        }
        self.processes_written
            .retain(|pid| !confirmed.contains(pid));
        self.gone = &gone - &confirmed;
    }

    /// Writes the last word (socket and packet counters) of every connection that has ended
    /// long enough ago, and forgets it: the records [`Converter::finish_correlation`] would
    /// write for it at the end, written now.
    pub fn release_ended(&mut self, now_ns: u64) -> Result<(), WriteError> {
        let last_words = self
            .correlator
            .release(&mut self.sockets, now_ns, self.closes_reported);
        for last in last_words.iter().filter(|u| !u.is_empty()) {
            self.write_socket_update(now_ns, last)?;
        }
        Ok(())
    }

    /// At the end of the capture: one connection record per TLS connection not released yet
    /// with its socket and packet counters, then the correlation record.
    pub fn finish_correlation(&mut self, ts_ns: u64) -> Result<CorrelationReport, WriteError> {
        let (updates, report) = self.correlator.finish(&self.sockets);
        for update in updates.iter().filter(|u| !u.is_empty()) {
            self.write_socket_update(ts_ns, update)?;
        }
        self.write(
            ts_ns,
            &Record::Correlation(Correlation {
                tls_connections: report.tls_connections,
                with_socket: report.with_socket,
                with_packets: report.with_packets,
                reasons: report.reasons.iter().map(|r| r.as_bytes()).collect(),
            }),
        )?;
        Ok(report)
    }

    fn conn_string(&mut self, string: &TlsString) -> Result<(), WriteError> {
        let conn_id = self.conn(string.ts_ns, string.pid, string.ssl, None)?;
        let (alpn, sni): (&[u8], &[u8]) = match string.kind {
            TlsStringKind::Alpn => (&string.value, &[]),
            TlsStringKind::Sni => (&[], &string.value),
        };
        self.write(
            string.ts_ns,
            &Record::Connection(Connection {
                conn_id,
                pid: string.pid,
                fd: -1,
                alpn,
                sni,
                ..Connection::default()
            }),
        )
    }

    /// Records events the kernel dropped that no gap explains (counted
    /// per CPU in the kernel), as one unattributed loss record.
    pub fn kernel_drops(&mut self, ts_ns: u64, events: u64, bytes: u64) -> Result<(), WriteError> {
        if events == 0 {
            return Ok(());
        }
        self.stats.loss_records += 1;
        self.write(
            ts_ns,
            &Record::Loss(Loss {
                conn_id: 0,
                pid: 0,
                tid: 0,
                direction: None,
                cause: LossCause::RingBufferFull,
                stream_offset: 0,
                length: bytes,
                events,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use spliff_formats::{
        CaptureId, ConnectionCounters, HandshakeResult, SectionInfo, TraceReader,
    };
    use spliff_recorder::bpf::{SocketOp, TcpSocket, TlsClose, TlsData, TlsHandshake};

    use super::super::correlate::RELEASE_AFTER_NS;

    use super::*;

    const CLIENT: &str = "127.0.0.1:40000";
    const SERVER: &str = "127.0.0.1:443";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn data(ts_ns: u64) -> Event {
        Event::TlsData(TlsData {
            ts_ns,
            pid: 4_000_000,
            tid: 4_000_000,
            ssl: 0xabc,
            direction: TlsDirection::Egress,
            stream_offset: 0,
            payload: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        })
    }

    fn tls_conn(ts_ns: u64) -> Event {
        // The fd walk ran before anyone asked for the cookie: tuple only.
        Event::TlsConn(TlsConn {
            ts_ns,
            pid: 4_000_000,
            tid: 4_000_000,
            ssl: 0xabc,
            comm: "curl".into(),
            fd: Some(5),
            socket_cookie: 0,
            protocol: 6,
            addresses: Some((addr(CLIENT), addr(SERVER))),
            role: Some(1),
            library: Some(1),
        })
    }

    fn socket(ts_ns: u64, op: SocketOp) -> Event {
        Event::TcpSocket(TcpSocket {
            ts_ns,
            pid: 0,
            comm: String::new(),
            cookie: 77,
            op,
            protocol: 6,
            local: addr(CLIENT),
            remote: addr(SERVER),
        })
    }

    /// Processes as a test sets them up: those in `running` exist, with the maps given.
    #[derive(Default)]
    struct Processes {
        running: HashMap<u32, ProcInfo>,
        maps: HashMap<u32, String>,
    }

    impl Processes {
        fn running(pid: u32) -> Self {
            let info = ProcInfo {
                pid,
                comm: b"curl".to_vec(),
                exe: b"/usr/bin/curl".to_vec(),
                ..ProcInfo::default()
            };
            Processes {
                running: HashMap::from([(pid, info)]),
                ..Processes::default()
            }
        }
    }

    impl ProcessSource for Processes {
        fn info(&self, pid: u32) -> Option<ProcInfo> {
            self.running.get(&pid).cloned()
        }

        fn maps(&self, pid: u32) -> String {
            self.maps.get(&pid).cloned().unwrap_or_default()
        }

        fn exe(&self, pid: u32) -> Option<Vec<u8>> {
            self.running.get(&pid).map(|info| info.exe.clone())
        }

        fn is_gone(&self, pid: u32) -> bool {
            !self.running.contains_key(&pid)
        }
    }

    fn converter() -> Converter<Vec<u8>> {
        converter_with(Vec::new(), Processes::default())
    }

    fn converter_with(
        library_paths: Vec<(Vec<u8>, &'static LibrarySpec)>,
        processes: Processes,
    ) -> Converter<Vec<u8>> {
        let writer = TraceWriter::new(
            Vec::new(),
            &SectionInfo {
                hardware: String::new(),
                os: String::new(),
                user_application: String::new(),
            },
            CaptureId([1; 16]),
        )
        .unwrap();
        Converter::with_processes(writer, library_paths, Box::new(processes))
    }

    /// Converts `events` in this order, counts two packets, finishes; returns the trace.
    fn convert(events: Vec<Event>) -> Vec<u8> {
        let mut converter = converter();
        for event in events {
            converter.event(event).unwrap();
        }
        converter
            .sockets()
            .count_packet(6, addr(CLIENT), addr(SERVER), 60);
        converter
            .sockets()
            .count_packet(6, addr(SERVER), addr(CLIENT), 1500);
        let report = converter.finish_correlation(1000).unwrap();
        assert_eq!(report.with_packets, 1);
        converter.into_writer().finish().unwrap()
    }

    #[test]
    fn a_unix_socket_is_a_connection_of_its_own_kind_not_a_tls_one() {
        let mut converter = converter();
        let sk = 0xffff_8880_1234_5678;
        converter
            .event(Event::UnixConn(UnixConn {
                ts_ns: 1,
                pid: 4_000_000,
                tid: 4_000_000,
                sk,
                comm: "curl".into(),
                fd: 5,
                inode: 11,
                peer_inode: 12,
                peer_pid: 0,
                role: 1,
                path: b"/run/app.sock".to_vec(),
            }))
            .unwrap();
        if let Event::TlsData(mut d) = data(2) {
            d.ssl = sk;
            converter.event(Event::TlsData(d)).unwrap();
        }
        let report = converter.finish_correlation(3).unwrap();
        assert_eq!(report.with_socket, 0);
        let trace = converter.into_writer().finish().unwrap();
        let mut merged = Connection::default();
        let mut data_conns = Vec::new();
        for entry in spliff_formats::TraceReader::new(&trace) {
            if let spliff_formats::Entry::Record(r) = entry.unwrap() {
                match r.record {
                    Record::Connection(c) => {
                        merged.conn_id = c.conn_id;
                        merged.merge(&c);
                    }
                    Record::TlsData(d) => data_conns.push(d.conn_id),
                    Record::Correlation(c) => assert_eq!(c.tls_connections, 0),
                    _ => {}
                }
            }
        }
        assert_eq!(merged.transport, Transport::UnixStream);
        assert_eq!(merged.unix.path, b"/run/app.sock");
        assert_eq!((merged.unix.inode, merged.unix.peer_inode), (11, 12));
        assert_eq!(merged.role, ConnectionRole::Client);
        assert_eq!(merged.tls_library, TlsLibrary::Unknown);
        assert_eq!(
            data_conns,
            vec![merged.conn_id],
            "the data joined the unix connection"
        );
    }

    #[test]
    fn a_tls_record_before_its_socket_is_correlated_and_counted_in_any_order() {
        let orders: [Vec<Event>; 3] = [
            vec![data(1), tls_conn(2), socket(3, SocketOp::ActiveEstablished)],
            vec![socket(1, SocketOp::Connect), data(2), tls_conn(3)],
            vec![
                data(1),
                socket(2, SocketOp::State { old: 1, new: 7 }),
                tls_conn(3),
            ],
        ];
        for events in orders {
            let bytes = convert(events);
            let (records, errors) = TraceReader::new(&bytes).records_by_time();
            assert!(errors.is_empty(), "{errors:?}");
            let mut merged: Option<Connection<'_>> = None;
            let mut correlation = None;
            let mut data_records = 0;
            for at in &records {
                match &at.record {
                    Record::Connection(c) => match &mut merged {
                        Some(m) => m.merge(c),
                        None => merged = Some(c.clone()),
                    },
                    Record::Correlation(c) => correlation = Some(c.clone()),
                    Record::TlsData(_) => data_records += 1,
                    _ => {}
                }
            }
            assert_eq!(data_records, 1);
            let c = merged.expect("connection records");
            assert_eq!(
                (c.socket_cookie, c.local, c.remote, c.ip_protocol),
                (77, Some(addr(CLIENT)), Some(addr(SERVER)), 6)
            );
            assert_eq!(
                c.counters,
                ConnectionCounters {
                    packets_egress: 1,
                    packets_ingress: 1,
                    bytes_egress: 60,
                    bytes_ingress: 1500,
                }
            );
            let correlation = correlation.expect("correlation record");
            assert_eq!(
                (
                    correlation.tls_connections,
                    correlation.with_socket,
                    correlation.with_packets
                ),
                (1, 1, 1)
            );
            assert!(correlation.reasons.is_empty());
        }
    }

    fn handshake(ts_ns: u64, ret: i32) -> Event {
        Event::TlsHandshake(TlsHandshake {
            ts_ns,
            pid: 4_000_000,
            tid: 4_000_000,
            ssl: 0xabc,
            start_ns: 1,
            ret,
        })
    }

    /// The merged connection record and the handshake results of a conversion.
    fn connection_and_handshakes(bytes: &[u8]) -> (TlsLibrary, Vec<HandshakeResult>) {
        let (records, errors) = TraceReader::new(bytes).records_by_time();
        assert!(errors.is_empty(), "{errors:?}");
        let mut library = TlsLibrary::Unknown;
        let mut results = Vec::new();
        for at in &records {
            match &at.record {
                Record::Connection(c) if c.tls_library != TlsLibrary::Unknown => {
                    library = c.tls_library;
                }
                Record::Handshake(h) => results.push(h.result),
                _ => {}
            }
        }
        (library, results)
    }

    #[test]
    fn the_kernel_names_the_library_and_its_handshake_codes_are_read_its_way() {
        let gnutls = |ts_ns| match tls_conn(ts_ns) {
            Event::TlsConn(conn) => Event::TlsConn(TlsConn {
                library: Some(probes::GNUTLS.kernel_id),
                ..conn
            }),
            other => other,
        };
        // GnuTLS: GNUTLS_E_AGAIN (-28) is "not yet", 0 is done.
        let bytes = convert(vec![
            gnutls(1),
            handshake(2, -28),
            handshake(3, 0),
            data(4),
            socket(5, SocketOp::ActiveEstablished),
        ]);
        assert_eq!(
            connection_and_handshakes(&bytes),
            (TlsLibrary::GnuTls, vec![HandshakeResult::Ok])
        );
        // OpenSSL: 0 is a failure.
        let bytes = convert(vec![
            tls_conn(1),
            handshake(2, 0),
            data(4),
            socket(5, SocketOp::ActiveEstablished),
        ]);
        assert_eq!(
            connection_and_handshakes(&bytes),
            (TlsLibrary::OpenSsl, vec![HandshakeResult::Failed])
        );
    }

    /// One short connection `i` (the same `SSL *` every time, as an allocator reuses it),
    /// from its first record to `SSL_free` after its socket closed, with two packets.
    fn short_connection(converter: &mut Converter<Vec<u8>>, i: u64) {
        let ts = i * 1_000_000_000;
        let client = SocketAddr::new(addr(CLIENT).ip(), 30_000 + i as u16);
        let mut conn = tls_conn(ts);
        if let Event::TlsConn(c) = &mut conn {
            c.addresses = Some((client, addr(SERVER)));
        }
        let socket = |ts_ns, op| {
            Event::TcpSocket(TcpSocket {
                ts_ns,
                pid: 0,
                comm: String::new(),
                cookie: 1000 + i,
                op,
                protocol: 6,
                local: client,
                remote: addr(SERVER),
            })
        };
        for event in [
            conn,
            socket(ts + 1, SocketOp::ActiveEstablished),
            data(ts + 2),
        ] {
            converter.event(event).unwrap();
        }
        converter
            .sockets()
            .count_packet(6, client, addr(SERVER), 60);
        converter
            .sockets()
            .count_packet(6, addr(SERVER), client, 1500);
        for event in [
            socket(ts + 3, SocketOp::State { old: 4, new: 7 }),
            Event::TlsClose(TlsClose {
                ts_ns: ts + 4,
                pid: 4_000_000,
                tid: 4_000_000,
                ssl: 0xabc,
                freed: true,
                end_offsets: [18, 0],
            }),
        ] {
            converter.event(event).unwrap();
        }
    }

    /// `n` short connections a second apart, releasing as the record loop does when
    /// `release`; returns the state held at the end and the records, in any order.
    fn short_connections(n: u64, release: bool) -> ((usize, usize), Vec<String>) {
        let mut converter = converter();
        for i in 0..n {
            short_connection(&mut converter, i);
            if release {
                converter.release_ended(i * 1_000_000_000 + 5).unwrap();
            }
        }
        let held = (converter.correlator.held(), converter.sockets().len());
        let report = converter.finish_correlation(n * 1_000_000_000).unwrap();
        assert_eq!(
            (report.tls_connections, report.with_packets),
            (n, n),
            "{report:?}"
        );
        let bytes = converter.into_writer().finish().unwrap();
        let (records, errors) = TraceReader::new(&bytes).records_by_time();
        assert!(errors.is_empty(), "{errors:?}");
        let mut records: Vec<String> = records
            .iter()
            .map(|at| format!("{:?}", at.record))
            .collect();
        records.sort();
        (held, records)
    }

    #[test]
    fn without_the_kernels_word_the_library_file_the_process_maps_names_it() {
        const OPENSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
        const GNUTLS: &str = "/usr/lib/x86_64-linux-gnu/libgnutls.so.30";
        let mut processes = Processes::running(4_000_000);
        processes.maps.insert(
            4_000_000,
            format!(
                "7f0000000000-7f0000100000 r-xp 00000000 08:01 1234 {GNUTLS}\n\
                 7f0000200000-7f0000300000 r-xp 00000000 08:01 99 /usr/bin/curl\n"
            ),
        );
        let hooked = vec![
            (OPENSSL.as_bytes().to_vec(), &probes::OPENSSL),
            (GNUTLS.as_bytes().to_vec(), &probes::GNUTLS),
        ];
        let mut converter = converter_with(hooked, processes);
        // A data record carries no library: the connection opens on it.
        converter.event(data(1)).unwrap();
        let bytes = converter.into_writer().finish().unwrap();
        let (records, errors) = TraceReader::new(&bytes).records_by_time();
        assert!(errors.is_empty(), "{errors:?}");
        let named: Vec<(TlsLibrary, Vec<u8>)> = records
            .iter()
            .filter_map(|at| match &at.record {
                Record::Connection(c) => Some((c.tls_library, c.library_path.to_vec())),
                _ => None,
            })
            .collect();
        assert_eq!(
            named,
            vec![(TlsLibrary::GnuTls, GNUTLS.as_bytes().to_vec())]
        );
    }

    #[test]
    fn a_gone_process_without_ssl_free_has_its_connections_released() {
        const RUNNING: u32 = 4242;
        let mut converter = converter_with(Vec::new(), Processes::running(RUNNING));
        // The kernel closed its socket when it died.
        for event in [
            data(1),
            tls_conn(2),
            socket(3, SocketOp::State { old: 1, new: 7 }),
        ] {
            converter.event(event).unwrap();
        }
        // Its pid is no process here: gone at the first sweep, released at the second.
        converter.release_gone_processes(10);
        converter.release_ended(10 + RELEASE_AFTER_NS).unwrap();
        assert_eq!(converter.correlator.held(), 1);
        converter.release_gone_processes(20);
        assert!(converter.conns.is_empty() && converter.processes_written.is_empty());
        converter.release_ended(20 + RELEASE_AFTER_NS).unwrap();
        assert_eq!(converter.correlator.held(), 0);
        let report = converter.finish_correlation(30 + RELEASE_AFTER_NS).unwrap();
        assert_eq!((report.tls_connections, report.with_socket), (1, 1));
        // A running process is never gone.
        converter.ensure_process(40, RUNNING, "").unwrap();
        converter.release_gone_processes(50);
        converter.release_gone_processes(60);
        assert!(converter.processes_written.contains(&RUNNING));
    }

    #[test]
    fn ended_connections_are_released_with_the_same_records_as_at_the_end() {
        let n = 300;
        let (held, released) = short_connections(n, true);
        let (held_to_end, kept) = short_connections(n, false);
        // Only those that ended within the grace period are still held.
        let recent = (RELEASE_AFTER_NS / 1_000_000_000) as usize + 1;
        assert!(held.0 <= recent && held.1 <= recent, "{held:?}");
        assert_eq!(held_to_end, (n as usize, n as usize));
        assert_eq!(released, kept);
        // Each connection's last word has its packets.
        let with_counters = released
            .iter()
            .filter(|r| r.contains("packets_ingress: 1,"))
            .count();
        assert_eq!(with_counters, n as usize);
    }
}
