//! From trace records to connections: the one place where spliff records become the two
//! plaintext streams of each connection that the protocol layer reads.
//!
//! Records are grouped by [`ConnectionKey`] (capture id and connection id, so merged traces
//! never mix connections), connection records are merged field by field as docs/FORMAT.md
//! prescribes, and the process-relative directions of TLS data (written / read) are turned into
//! request and response streams.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use spliff_formats::{
    CaptureId, ConnectionRole, Direction, Entry, LossCause, ReadError, Record, TlsLibrary,
    TraceReader, Transport,
};

use crate::{ConnectionStreams, DirectionStream, Piece};

/// Identity of a connection, unique across merged traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionKey {
    /// The capture that recorded it.
    pub capture_id: CaptureId,
    /// Its id within that capture.
    pub conn_id: u64,
}

/// Maps a capture's kernel clock to wall-clock time (from its capture info record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockMap {
    /// A kernel-clock instant.
    pub kernel_ns: u64,
    /// The wall-clock time at that instant, ns since the Unix epoch.
    pub wall_ns: u64,
}

impl ClockMap {
    /// Wall-clock time of a kernel-clock instant, ns since the Unix epoch (saturating).
    pub fn wall(&self, kernel_ns: u64) -> u64 {
        let delta = i128::from(kernel_ns) - i128::from(self.kernel_ns);
        (i128::from(self.wall_ns) + delta).clamp(0, i128::from(u64::MAX)) as u64
    }
}

/// The process that owned a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Parent process id (0 unknown).
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Kernel comm.
    pub comm: String,
    /// Executable path.
    pub exe: String,
    /// Arguments, argv\[0\] first.
    pub cmdline: Vec<String>,
    /// Container id, empty when none.
    pub container_id: String,
}

/// Everything the trace says about one connection besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Identity.
    pub key: ConnectionKey,
    /// Owning process id (0 unknown).
    pub pid: u32,
    /// The owning process, when the trace has a process record for it.
    pub process: Option<ProcessInfo>,
    /// TLS library that produced the plaintext.
    pub tls_library: TlsLibrary,
    /// Path of that library file (empty unknown).
    pub library_path: String,
    /// Negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// Server name indication.
    pub sni: Option<String>,
    /// Local socket address of the recorded process.
    pub local: Option<SocketAddr>,
    /// Peer socket address.
    pub remote: Option<SocketAddr>,
    /// Client or server side, as recorded.
    pub role: ConnectionRole,
    /// First sight, kernel clock.
    pub open_ns: Option<u64>,
    /// Close, kernel clock.
    pub close_ns: Option<u64>,
    /// TLS handshake start and end, kernel clock.
    pub handshake_ns: Option<(u64, u64)>,
    /// Earliest timestamp of any of the connection's records.
    pub first_ts_ns: u64,
    /// Kernel-to-wall mapping of the connection's capture, when it has a capture info record.
    pub clock: Option<ClockMap>,
    /// Which process-relative direction carried the requests (egress for a client).
    pub request_direction: Direction,
    /// Observations about the connection that belong to no exchange (losses without a byte
    /// range, a guessed role).
    pub notes: Vec<String>,
    /// The socket path when the connection is a unix stream socket (no TLS); an abstract name
    /// is shown with `@` for its leading NUL, an unnamed socket as empty.
    pub unix_path: Option<String>,
}

impl ConnectionInfo {
    /// The client's and the server's socket addresses, in that order.
    pub fn client_server(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        match self.request_direction {
            Direction::Egress => (self.local, self.remote),
            Direction::Ingress => (self.remote, self.local),
        }
    }
}

/// One connection, ready for reconstruction.
#[derive(Debug, Clone)]
pub struct TraceConnection<'a> {
    /// Metadata.
    pub info: ConnectionInfo,
    /// Both plaintext streams.
    pub streams: ConnectionStreams<'a>,
}

/// A read error and the trace it was met in.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct TraceError {
    /// Index of the trace in the list read ([`TraceIndex::read_many`]); 0 for a single trace.
    pub trace: usize,
    /// The error, with its offset in that trace.
    pub error: ReadError,
}

/// The connections of a trace and the problems met reading it.
#[derive(Debug, Default)]
pub struct TraceContents<'a> {
    /// Connections ordered by first timestamp, then key: the same trace always gives the same
    /// order.
    pub connections: Vec<TraceConnection<'a>>,
    /// Read errors in file order (the last may be fatal, e.g. a torn tail).
    pub errors: Vec<TraceError>,
    /// Losses the trace could not attribute to a connection.
    pub unattributed_loss: Vec<String>,
    /// Number of spliff records read.
    pub records: u64,
}

#[derive(Debug, Default)]
struct Building<'a> {
    /// The merge of `conn_records`, made once every trace is read.
    conn: Option<spliff_formats::Connection<'a>>,
    /// Connection records as `(timestamp, position in the input, record)`: merged in
    /// timestamp order, position breaking ties, as docs/FORMAT.md (kind 3) says, whatever
    /// order the files hold them in (mergecap, an SNI learned later than a close).
    conn_records: Vec<(u64, u64, spliff_formats::Connection<'a>)>,
    first_ts: Option<u64>,
    egress: Vec<Piece<'a>>,
    ingress: Vec<Piece<'a>>,
    handshake: Option<(u64, u64)>,
    notes: Vec<String>,
    /// Process id seen on data records, for connections without a connection record.
    data_pid: u32,
    data_len: u64,
}

impl Building<'_> {
    /// Merges the connection records in timestamp order, position in the input breaking
    /// ties (a stable sort keeps input order for equal timestamps).
    fn merge_connection_records(&mut self) {
        let mut records = std::mem::take(&mut self.conn_records);
        records.sort_by_key(|(ts, position, _)| (*ts, *position));
        for (_, _, c) in records {
            match &mut self.conn {
                Some(known) => known.merge(&c),
                None => self.conn = Some(c),
            }
        }
    }
}

/// A connection as indexed: what its records said, and its pieces still borrowed from the
/// trace. Nothing is assembled until [`TraceIndex::assemble`], so a whole trace can be indexed
/// in memory proportional to its number of records, not its bytes.
#[derive(Debug)]
pub struct PendingConnection<'a> {
    key: ConnectionKey,
    b: Building<'a>,
}

impl PendingConnection<'_> {
    /// Identity.
    pub fn key(&self) -> ConnectionKey {
        self.key
    }

    /// Earliest timestamp of any of its records.
    pub fn first_ts_ns(&self) -> u64 {
        self.b.first_ts.unwrap_or(0)
    }

    /// Open time from its connection record, when recorded.
    pub fn open_ns(&self) -> Option<u64> {
        self.b.conn.as_ref().map(|c| c.open_ns).filter(|&t| t != 0)
    }

    /// Plaintext bytes in its data records (both directions, overlaps counted twice).
    pub fn data_len(&self) -> u64 {
        self.b.data_len
    }
}

/// A trace read once: its connections, not yet assembled, in output order.
#[derive(Debug, Default)]
pub struct TraceIndex<'a> {
    /// Connections ordered by first timestamp, then key.
    pub connections: Vec<PendingConnection<'a>>,
    /// Read errors in file order, trace by trace (the last of a trace may be fatal to it,
    /// e.g. a torn tail).
    pub errors: Vec<TraceError>,
    /// Losses the trace could not attribute to a connection.
    pub unattributed_loss: Vec<String>,
    /// Number of spliff records read.
    pub records: u64,
    processes: BTreeMap<(CaptureId, u32), spliff_formats::Process<'a>>,
    clocks: BTreeMap<CaptureId, ClockMap>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn cause_text(cause: LossCause) -> &'static str {
    match cause {
        LossCause::Truncated => "the kernel program copied only part of the buffer",
        LossCause::RingBufferFull => "the kernel ring buffer was full",
        LossCause::ReadFault => "reading the process's memory failed",
        LossCause::UserQueueFull => "the recorder's queue was full",
        LossCause::Other(_) => "lost for a reason this spliff does not know",
    }
}

/// Reads a whole trace into connections. Never fails: problems are collected in
/// [`TraceContents::errors`] and everything readable is kept.
pub fn read_connections(trace: &[u8]) -> TraceContents<'_> {
    let mut index = TraceIndex::read(trace);
    let pending = std::mem::take(&mut index.connections);
    TraceContents {
        connections: pending.into_iter().map(|c| index.assemble(c)).collect(),
        errors: index.errors,
        unattributed_loss: index.unattributed_loss,
        records: index.records,
    }
}

impl<'a> TraceIndex<'a> {
    /// Indexes a trace: one pass over its records, no plaintext copied. Never fails: problems
    /// are collected in [`TraceIndex::errors`] and everything readable is kept.
    pub fn read(trace: &'a [u8]) -> TraceIndex<'a> {
        TraceIndex::read_many(&[trace])
    }

    /// Indexes several traces as one, e.g. the files of a rotated capture (in the order they
    /// were written, which a glob of their names gives). Records are joined by capture id and
    /// connection id whatever file holds them, so a connection that spans files is rebuilt
    /// whole: its data by stream offset, its connection records merged in timestamp order
    /// (file order breaking ties, as docs/FORMAT.md says). What a
    /// rotation repeats at the start of a file (the capture info, the merged records of open
    /// connections and their processes) therefore changes nothing, and neither does the order
    /// of the connections (first timestamp, then key).
    pub fn read_many(traces: &[&'a [u8]]) -> TraceIndex<'a> {
        let mut out = TraceIndex::default();
        let mut building: BTreeMap<ConnectionKey, Building<'a>> = BTreeMap::new();
        for (i, trace) in traces.iter().enumerate() {
            out.index_trace(i, trace, &mut building);
        }
        let mut connections: Vec<PendingConnection<'a>> = building
            .into_iter()
            .map(|(key, mut b)| {
                b.merge_connection_records();
                // Growth slack would otherwise stay allocated until the connection is rebuilt.
                b.egress.shrink_to_fit();
                b.ingress.shrink_to_fit();
                PendingConnection { key, b }
            })
            .collect();
        connections.sort_by_key(|c| (c.first_ts_ns(), c.key));
        out.connections = connections;
        out
    }

    fn index_trace(
        &mut self,
        trace_index: usize,
        trace: &'a [u8],
        building: &mut BTreeMap<ConnectionKey, Building<'a>>,
    ) {
        let out = self;
        for entry in TraceReader::new(trace) {
            let r = match entry {
                Ok(Entry::Record(r)) => r,
                Ok(_) => continue,
                Err(error) => {
                    out.errors.push(TraceError {
                        trace: trace_index,
                        error,
                    });
                    continue;
                }
            };
            out.records += 1;
            let key = |conn_id| ConnectionKey {
                capture_id: r.capture_id,
                conn_id,
            };
            let touch = |b: &mut Building<'_>| {
                b.first_ts = Some(b.first_ts.map_or(r.ts_ns, |t| t.min(r.ts_ns)));
            };
            match r.record {
                Record::CaptureInfo(c) => {
                    out.clocks.entry(r.capture_id).or_insert(ClockMap {
                        kernel_ns: r.ts_ns,
                        wall_ns: c.wall_clock_ns,
                    });
                }
                Record::Process(p) => {
                    out.processes.insert((r.capture_id, p.pid), p);
                }
                Record::Connection(c) => {
                    let b = building.entry(key(c.conn_id)).or_default();
                    touch(b);
                    b.conn_records.push((r.ts_ns, out.records, c));
                }
                Record::TlsData(d) => {
                    let b = building.entry(key(d.conn_id)).or_default();
                    touch(b);
                    if b.data_pid == 0 {
                        b.data_pid = d.pid;
                    }
                    b.data_len += d.payload.len() as u64;
                    let piece = Piece::Data {
                        offset: d.stream_offset,
                        ts_ns: r.ts_ns,
                        bytes: d.payload.into(),
                    };
                    match d.direction {
                        Direction::Egress => b.egress.push(piece),
                        Direction::Ingress => b.ingress.push(piece),
                    }
                }
                // Network-side facts: the text records view shows them; exchanges do not need
                // them.
                Record::Interface(_) | Record::Correlation(_) => {}
                Record::Handshake(h) => {
                    let b = building.entry(key(h.conn_id)).or_default();
                    touch(b);
                    if h.end_ns != 0 {
                        b.handshake = Some((h.start_ns, h.end_ns));
                    }
                }
                Record::Loss(l) => {
                    let what = format!(
                        "{} bytes lost at offset {} ({}, {} events)",
                        l.length,
                        l.stream_offset,
                        cause_text(l.cause),
                        l.events
                    );
                    if l.conn_id == 0 {
                        out.unattributed_loss
                            .push(format!("{what}, pid {} (no connection known)", l.pid));
                        continue;
                    }
                    let b = building.entry(key(l.conn_id)).or_default();
                    touch(b);
                    match (l.direction, l.length) {
                        (Some(dir), len) if len > 0 => {
                            let gap = Piece::Gap {
                                offset: l.stream_offset,
                                len,
                                ts_ns: r.ts_ns,
                                reason: cause_text(l.cause).to_string(),
                            };
                            match dir {
                                Direction::Egress => b.egress.push(gap),
                                Direction::Ingress => b.ingress.push(gap),
                            }
                        }
                        _ => b.notes.push(format!(
                            "data lost without a known byte range: {} events ({})",
                            l.events,
                            cause_text(l.cause)
                        )),
                    }
                }
            }
        }
    }

    /// Assembles a connection's streams and metadata (copying plaintext only where a run of
    /// bytes spans several records).
    pub fn assemble(&self, pending: PendingConnection<'a>) -> TraceConnection<'a> {
        finish(pending.key, pending.b, &self.processes, &self.clocks, false)
    }

    /// Like [`TraceIndex::assemble`], with windowed streams ([`DirectionStream::windowed`]):
    /// no plaintext is joined yet.
    pub fn assemble_windowed(&self, pending: PendingConnection<'a>) -> TraceConnection<'a> {
        finish(pending.key, pending.b, &self.processes, &self.clocks, true)
    }
}

fn finish<'a>(
    key: ConnectionKey,
    b: Building<'a>,
    processes: &BTreeMap<(CaptureId, u32), spliff_formats::Process<'_>>,
    clocks: &BTreeMap<CaptureId, ClockMap>,
    windowed: bool,
) -> TraceConnection<'a> {
    let conn = b.conn.unwrap_or_default();
    let pid = if conn.pid != 0 { conn.pid } else { b.data_pid };
    let process = processes.get(&(key.capture_id, pid)).map(|p| ProcessInfo {
        pid: p.pid,
        ppid: p.ppid,
        uid: p.uid,
        comm: lossy(p.comm),
        exe: lossy(p.exe),
        cmdline: p.cmdline.iter().map(|a| lossy(a)).collect(),
        container_id: lossy(p.container_id),
    });
    let (egress, ingress) = if windowed {
        (
            DirectionStream::windowed(b.egress),
            DirectionStream::windowed(b.ingress),
        )
    } else {
        (
            DirectionStream::from_pieces(b.egress),
            DirectionStream::from_pieces(b.ingress),
        )
    };
    let mut notes = b.notes;
    let request_direction = match conn.role {
        ConnectionRole::Client => Direction::Egress,
        ConnectionRole::Server => Direction::Ingress,
        _ => {
            let guess = guess_request_direction(&egress, &ingress);
            notes.push(format!(
                "client or server side not recorded; the {} bytes look like requests",
                match guess {
                    Direction::Egress => "written",
                    Direction::Ingress => "read",
                }
            ));
            guess
        }
    };
    let (request, response) = match request_direction {
        Direction::Egress => (egress, ingress),
        Direction::Ingress => (ingress, egress),
    };
    let nonempty = |b: &[u8]| (!b.is_empty()).then(|| b.to_vec());
    TraceConnection {
        info: ConnectionInfo {
            key,
            pid,
            process,
            tls_library: conn.tls_library,
            library_path: lossy(conn.library_path),
            alpn: nonempty(conn.alpn),
            sni: nonempty(conn.sni).map(|s| lossy(&s)),
            local: conn.local,
            remote: conn.remote,
            role: conn.role,
            open_ns: (conn.open_ns != 0).then_some(conn.open_ns),
            close_ns: (conn.close_ns != 0).then_some(conn.close_ns),
            handshake_ns: b.handshake,
            first_ts_ns: b.first_ts.unwrap_or(0),
            clock: clocks.get(&key.capture_id).copied(),
            request_direction,
            notes,
            unix_path: (conn.transport == Transport::UnixStream).then(|| unix_path(conn.unix.path)),
        },
        streams: ConnectionStreams {
            alpn: nonempty(conn.alpn),
            request,
            response,
            closed: conn.close_ns != 0,
        },
    }
}

/// A unix socket path for display: an abstract name with `@` for its NUL, as `ss` shows it.
fn unix_path(path: &[u8]) -> String {
    match path.strip_prefix(&[0]) {
        Some(name) => format!("@{}", lossy(name)),
        None => lossy(path),
    }
}

/// Whether a stream's first bytes look like the start of an HTTP request: the HTTP/2 client
/// preface, or an HTTP/1 method token followed by a space.
fn looks_like_request(s: &DirectionStream<'_>) -> bool {
    let head = s.contiguous(s.start());
    if head.starts_with(b"PRI * HTTP/2.0") {
        return true;
    }
    let token_len = head.iter().take_while(|c| c.is_ascii_uppercase()).count();
    (1..=16).contains(&token_len) && head.get(token_len) == Some(&b' ')
}

/// For connections whose role was not recorded: the direction whose bytes start like a
/// request, defaulting to egress (the recorded process as client, the common case).
fn guess_request_direction(
    egress: &DirectionStream<'_>,
    ingress: &DirectionStream<'_>,
) -> Direction {
    if looks_like_request(ingress) && !looks_like_request(egress) {
        Direction::Ingress
    } else {
        Direction::Egress
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spliff_formats::{Connection, Loss, SectionInfo, TlsData, TraceWriter};

    fn data(conn_id: u64, dir: Direction, off: u64, payload: &[u8]) -> Record<'_> {
        Record::TlsData(TlsData {
            conn_id,
            pid: 7,
            tid: 7,
            direction: dir,
            stream_offset: off,
            payload,
        })
    }

    fn trace(capture: u8, records: &[(u64, Record<'_>)]) -> Vec<u8> {
        let mut w = TraceWriter::new(
            Vec::new(),
            &SectionInfo::default(),
            CaptureId([capture; 16]),
        )
        .expect("vec");
        for (ts, r) in records {
            w.write(*ts, r).expect("write");
        }
        w.finish().expect("finish")
    }

    #[test]
    fn connection_records_merge_in_timestamp_order_then_file_order() {
        let conn = |sni: &'static [u8], alpn: &'static [u8]| {
            Record::Connection(Connection {
                conn_id: 5,
                sni,
                alpn,
                ..Connection::default()
            })
        };
        // As after mergecap, or a record learned late but stamped early: the file holds the
        // newer SNI first. Equal timestamps keep file order (the later ALPN wins).
        let bytes = trace(
            1,
            &[
                (20, conn(b"new.example", b"h2")),
                (10, conn(b"old.example", b"")),
                (20, conn(b"", b"http/1.1")),
                (30, data(5, Direction::Egress, 0, b"x")),
            ],
        );
        let c = read_connections(&bytes);
        let info = &c.connections[0].info;
        assert_eq!(info.sni.as_deref(), Some("new.example"));
        assert_eq!(info.alpn.as_deref(), Some(&b"http/1.1"[..]));
    }

    #[test]
    fn server_side_connections_read_requests_from_ingress() {
        let bytes = trace(
            1,
            &[
                (
                    1,
                    Record::Connection(Connection {
                        conn_id: 5,
                        role: ConnectionRole::Server,
                        close_ns: 9,
                        ..Connection::default()
                    }),
                ),
                (2, data(5, Direction::Ingress, 0, b"GET / HTTP/1.1\r\n\r\n")),
                (
                    3,
                    data(5, Direction::Egress, 0, b"HTTP/1.1 204 No Content\r\n\r\n"),
                ),
            ],
        );
        let c = read_connections(&bytes);
        assert_eq!(c.connections.len(), 1);
        let conn = &c.connections[0];
        assert_eq!(conn.info.request_direction, Direction::Ingress);
        assert!(conn.streams.closed);
        assert_eq!(
            conn.streams.request.contiguous(0),
            b"GET / HTTP/1.1\r\n\r\n"
        );
        assert!(conn.info.notes.is_empty());
    }

    #[test]
    fn unknown_role_is_guessed_from_the_bytes_and_said() {
        let bytes = trace(
            1,
            &[
                (
                    2,
                    data(5, Direction::Ingress, 0, b"POST /x HTTP/1.1\r\n\r\n"),
                ),
                (3, data(5, Direction::Egress, 0, b"HTTP/1.1 200 OK\r\n\r\n")),
            ],
        );
        let c = read_connections(&bytes);
        let conn = &c.connections[0];
        assert_eq!(conn.info.request_direction, Direction::Ingress);
        assert_eq!(conn.info.pid, 7, "pid from the data records");
        assert!(conn.info.notes[0].contains("look like requests"));
    }

    #[test]
    fn merged_captures_keep_equal_connection_ids_apart_and_losses_become_holes() {
        let a = trace(
            1,
            &[(5, data(1, Direction::Egress, 0, b"GET /a HTTP/1.1\r\n\r\n"))],
        );
        let b = trace(
            2,
            &[
                (4, data(1, Direction::Egress, 0, b"GET /b")),
                (
                    6,
                    Record::Loss(Loss {
                        conn_id: 1,
                        pid: 7,
                        tid: 7,
                        direction: Some(Direction::Egress),
                        cause: LossCause::RingBufferFull,
                        stream_offset: 6,
                        length: 10,
                        events: 1,
                    }),
                ),
                (7, data(1, Direction::Egress, 16, b"tail")),
            ],
        );
        let mut both = a.clone();
        both.extend_from_slice(&b);
        let c = read_connections(&both);
        assert_eq!(c.connections.len(), 2);
        // Ordered by first timestamp: capture 2's connection (ts 4) first.
        assert_eq!(c.connections[0].info.key.capture_id, CaptureId([2; 16]));
        let holes = c.connections[0].streams.request.holes();
        assert_eq!(holes.len(), 1);
        assert_eq!((holes[0].offset, holes[0].len), (6, 10));
        assert!(holes[0].recorded);
        assert_eq!(
            c.connections[1].streams.request.contiguous(0),
            b"GET /a HTTP/1.1\r\n\r\n"
        );
    }

    #[test]
    fn a_connection_split_over_files_is_rebuilt_whole_and_errors_name_their_file() {
        let conn = |close_ns| {
            Record::Connection(Connection {
                conn_id: 1,
                role: ConnectionRole::Client,
                close_ns,
                ..Connection::default()
            })
        };
        let head = data(1, Direction::Egress, 0, b"GET / HTTP/1.1\r\n");
        let tail = data(1, Direction::Egress, 16, b"\r\n");
        let whole = trace(
            1,
            &[
                (1, conn(0)),
                (2, head.clone()),
                (3, tail.clone()),
                (4, conn(9)),
            ],
        );
        // The second file starts with the connection record repeated, as a rotation writes it.
        let first = trace(1, &[(1, conn(0)), (2, head)]);
        let second = trace(1, &[(1, conn(0)), (3, tail), (4, conn(9))]);

        let one = read_connections(&whole);
        let mut index = TraceIndex::read_many(&[&first, &second]);
        assert!(index.errors.is_empty(), "{:?}", index.errors);
        let pending = std::mem::take(&mut index.connections);
        assert_eq!(pending.len(), 1);
        let split = index.assemble(pending.into_iter().next().expect("one"));
        let alone = &one.connections[0];
        assert_eq!(split.info, alone.info);
        assert_eq!(
            split.streams.request.contiguous(0),
            b"GET / HTTP/1.1\r\n\r\n"
        );
        assert_eq!(split.streams.request.overlapped_bytes(), 0);
        assert!(split.streams.closed);

        let torn = &second[..second.len() - 2];
        let index = TraceIndex::read_many(&[&first, torn]);
        assert_eq!(index.errors.len(), 1);
        assert_eq!(index.errors[0].trace, 1);
        assert!(index.errors[0].error.is_fatal());
    }

    #[test]
    fn clock_map_converts_and_saturates() {
        let m = ClockMap {
            kernel_ns: 1_000,
            wall_ns: 5_000,
        };
        assert_eq!(m.wall(1_500), 5_500);
        assert_eq!(m.wall(0), 4_000);
        let early = ClockMap {
            kernel_ns: 10,
            wall_ns: 0,
        };
        assert_eq!(early.wall(0), 0);
    }
}
