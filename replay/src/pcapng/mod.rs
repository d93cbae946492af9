//! pcapng output that stock Wireshark dissects as HTTP: every connection becomes a synthetic
//! TCP session (handshake, data segments with consistent sequence and acknowledgement numbers,
//! FIN at close) carrying the decrypted plaintext.
//!
//! - Link type raw IP; IPv4 or IPv6 with the recorded addresses (documentation addresses when
//!   the trace has none).
//! - The server port of a connection rebuilt into HTTP exchanges is shown as 80, the port
//!   Wireshark's HTTP dissector claims, so that HTTP/1 and the HTTP/2 preface are found without
//!   "Decode As"; other connections keep their recorded port, so their bytes are not taken for
//!   HTTP. The recorded ports are kept in the comment of the connection's first packet, with the
//!   process (`pid=… comm=… exe=…`).
//! - Every connection gets its own TCP 4-tuple, in constant time per connection (see
//!   `ports`).
//! - Bytes the trace lost leave a sequence gap (Wireshark: "previous segment not captured")
//!   and the next segment's comment says how many bytes were lost and why.
//!
//! Packets of a connection are planned as small descriptors, sorted by time, then built; the
//! connections' packets are merged by time ([`PcapngSink`] streams them through
//! [`crate::pipeline::replay_to`]).

mod ports;
mod tcp;

use std::borrow::Cow;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption, InterfaceTsResolution,
};
use pcap_file::pcapng::blocks::opt_common::CommonOption;
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::{DataLink, Endianness};

use crate::ConnectionStreams;
use crate::lazy::LazyConnection;
use crate::pipeline::{Item, Replayed, ReplayedConnection, Sink};
use crate::stream::{DirectionStream, Hole};
use crate::trace_input::{ConnectionInfo, PendingConnection};
use ports::Ports;

/// The server port written in place of the recorded one: Wireshark's HTTP dissector claims
/// port 80, and its HTTP dissector hands the HTTP/2 preface to the HTTP/2 dissector.
pub const HTTP_PORT: u16 = 80;

/// Options of the pcapng output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcapngOptions {
    /// Largest TCP payload of one synthetic segment.
    pub max_segment: usize,
}

impl Default for PcapngOptions {
    fn default() -> Self {
        // Far below the 65535-byte IPv4 total length and Wireshark's 262144-byte packet limit,
        // and large enough to keep packet counts low.
        PcapngOptions {
            max_segment: 16_000,
        }
    }
}

/// Server port of a non-HTTP connection whose port was not recorded (discard, RFC 863).
const DISCARD_PORT: u16 = 9;

const CLIENT_ISN: u32 = 1_000_000;
const SERVER_ISN: u32 = 2_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum What {
    Syn,
    SynAck,
    HandshakeAck,
    /// Data from `side` at stream offset `offset`, `len` bytes.
    Data {
        side: u8,
        offset: u64,
        len: u64,
    },
    Fin {
        side: u8,
    },
    FinAck,
}

/// One planned packet. Ordered by time, then connection, then position in the connection, so
/// the output order is total and deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Planned {
    ts_ns: u64,
    conn: usize,
    seq_no: u64,
    what: What,
}

/// Addresses and first-packet comment of one connection's synthetic session.
#[derive(Debug, Clone)]
pub struct Flow {
    client: SocketAddr,
    server: SocketAddr,
    comment: String,
}

fn stream<'c, 'a>(c: &'c ConnectionStreams<'a>, side: u8) -> &'c DirectionStream<'a> {
    if side == 0 { &c.request } else { &c.response }
}

/// Addresses of a connection as shown: recorded ones, else documentation addresses
/// (192.0.2.0/24, RFC 5737). Connections rebuilt into HTTP exchanges get server port 80; others keep
/// their recorded port (9, discard, when none), so Wireshark does not dissect non-HTTP bytes
/// as HTTP.
fn flow(index: usize, info: &ConnectionInfo, is_http: bool, ports: &mut Ports) -> Flow {
    let (client, server) = info.client_server();
    let n = index as u32;
    let fallback_client = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 0);
    // ALPN alone does not make bytes HTTP: only a connection that yielded exchanges is shown
    // where Wireshark's HTTP dissectors will claim it (`is_http`, see pipeline::is_http).
    let fallback_server = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), DISCARD_PORT);
    let mut client_addr = client.unwrap_or(fallback_client);
    let mut server_addr = server.unwrap_or(fallback_server);
    // One family per packet: a mixed pair is shown as IPv6 with the IPv4 side mapped.
    if client_addr.is_ipv4() != server_addr.is_ipv4() {
        let to6 = |a: SocketAddr| match a.ip() {
            IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
            IpAddr::V6(_) => a,
        };
        client_addr = to6(client_addr);
        server_addr = to6(server_addr);
    }
    if is_http {
        server_addr.set_port(HTTP_PORT);
    }
    if client.is_none() || client_addr.port() == 0 {
        client_addr.set_port(40_000u32.wrapping_add(n % 20_000) as u16);
    }
    let wanted_ip = client_addr.ip();
    (client_addr, server_addr) = ports.assign(client_addr, server_addr);
    let mut comment = format!(
        "spliff connection {}:{}",
        info.key.capture_id, info.key.conn_id
    );
    if let Some(p) = &info.process {
        comment.push_str(&format!(" pid={} comm={} exe={}", p.pid, p.comm, p.exe));
    } else {
        comment.push_str(&format!(" pid={}", info.pid));
    }
    comment.push_str(&format!(
        "; recorded client {} server {}",
        client.map_or("unknown".to_string(), |a| a.to_string()),
        server.map_or("unknown".to_string(), |a| a.to_string()),
    ));
    if client_addr.ip() != wanted_ip {
        comment.push_str(&format!(
            "; shown from client {client_addr}: every client port towards this server was taken"
        ));
    }
    if is_http {
        comment.push_str(&format!(
            "; shown with server port {HTTP_PORT} so Wireshark dissects HTTP"
        ));
    } else {
        comment.push_str("; not recognised as HTTP, so shown on its recorded port");
    }
    match &info.unix_path {
        Some(path) => comment.push_str(&format!("; unix socket {path} (no TLS)")),
        None => comment.push_str(&format!("; tls={}", info.tls_library.name())),
    }
    if let Some(alpn) = &info.alpn {
        comment.push_str(&format!(" alpn={}", String::from_utf8_lossy(alpn)));
    }
    if let Some(sni) = &info.sni {
        comment.push_str(&format!(" sni={sni}"));
    }
    Flow {
        client: client_addr,
        server: server_addr,
        comment,
    }
}

/// Data segments of one direction: split at the segment size and wherever the timestamp
/// changes, so each segment carries the time of the write or read that produced it.
fn plan_data(
    conn: usize,
    side: u8,
    s: &DirectionStream<'_>,
    max: u64,
    seq_no: &mut u64,
    out: &mut Vec<Planned>,
) {
    for (offset, len) in s.spans() {
        // Spans end at or before u64::MAX (the stream clips pieces that would run past it);
        // saturating keeps a span near the top of the offset space from wrapping around and
        // restarting at a low offset, which planned segments without end.
        let end = offset.saturating_add(len);
        let mut pos = offset;
        while pos < end {
            let ts = s.ts_at(pos).unwrap_or(0);
            let mut stop = pos.saturating_add(max).min(end);
            // Shrink to the first byte with another timestamp (binary search: stamps only
            // ever change at piece boundaries, and timestamps are constant within a piece).
            if s.ts_at(stop - 1) != Some(ts) {
                let (mut lo, mut hi) = (pos, stop - 1);
                while lo + 1 < hi {
                    let mid = lo + (hi - lo) / 2;
                    if s.ts_at(mid) == Some(ts) {
                        lo = mid
                    } else {
                        hi = mid
                    }
                }
                stop = hi;
            }
            out.push(Planned {
                ts_ns: ts,
                conn,
                seq_no: *seq_no,
                what: What::Data {
                    side,
                    offset: pos,
                    len: stop - pos,
                },
            });
            *seq_no += 1;
            pos = stop;
        }
    }
}

/// The comment of the first segment after a hole in the stream of `side`.
fn hole_comment(side: usize, h: &Hole) -> String {
    let mut c = format!(
        "spliff: {} bytes of the {} lost before this segment (stream offset {}): {}",
        h.len,
        if side == 0 {
            "request stream"
        } else {
            "response stream"
        },
        h.offset,
        h.reason
    );
    // TCP sequence numbers are 32 bits and compared modulo 2^32: a larger jump reads to
    // Wireshark as a retransmission or a small gap, so the comment is where the loss shows.
    if h.len >= 1 << 31 {
        c.push_str(
            "; too many bytes for TCP sequence numbers to show: the sequence numbers around \
             this segment are not a measure of the loss",
        );
    }
    c
}

/// The packets of connection `i`, in output order (time, then position in the session).
fn plan(
    i: usize,
    info: &ConnectionInfo,
    c: &ConnectionStreams<'_>,
    options: &PcapngOptions,
) -> Vec<Planned> {
    let max = options.max_segment.max(1) as u64;
    let mut out = Vec::new();
    let first_data = [0u8, 1]
        .iter()
        .filter_map(|&side| {
            let s = stream(c, side);
            s.spans().next().and_then(|(o, _)| s.ts_at(o))
        })
        .min();
    let t0 = info
        .open_ns
        .or(first_data)
        .unwrap_or(info.first_ts_ns)
        .min(first_data.unwrap_or(u64::MAX));
    let mut seq_no = 0;
    for what in [What::Syn, What::SynAck, What::HandshakeAck] {
        out.push(Planned {
            ts_ns: t0,
            conn: i,
            seq_no,
            what,
        });
        seq_no += 1;
    }
    let mut last = t0;
    for side in [0u8, 1] {
        let s = stream(c, side);
        let before = out.len();
        plan_data(i, side, s, max, &mut seq_no, &mut out);
        last = out[before..].iter().map(|p| p.ts_ns).fold(last, u64::max);
    }
    if let Some(close) = info.close_ns {
        let t = close.max(last);
        for what in [What::Fin { side: 0 }, What::Fin { side: 1 }, What::FinAck] {
            out.push(Planned {
                ts_ns: t,
                conn: i,
                seq_no,
                what,
            });
            seq_no += 1;
        }
    }
    // Data of both directions was planned side by side; the sort interleaves it by time, and
    // seq_no keeps the handshake first and the FIN last within equal timestamps.
    out.sort_unstable();
    out
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn section_header() -> SectionHeaderBlock<'static> {
    SectionHeaderBlock {
        endianness: Endianness::Little,
        major_version: 1,
        minor_version: 0,
        section_length: -1,
        options: vec![SectionHeaderOption::UserApplication(Cow::Owned(format!(
            "spliff {} replay (decrypted sessions as synthetic TCP)",
            env!("CARGO_PKG_VERSION")
        )))],
    }
}

/// A writer into memory that has written the section header and the one interface: what
/// follows are packet blocks encoded exactly as in the output file.
fn block_writer() -> io::Result<PcapNgWriter<Vec<u8>>> {
    let mut w = PcapNgWriter::with_section_header(Vec::new(), section_header()).map_err(io_err)?;
    let idb = InterfaceDescriptionBlock {
        linktype: DataLink::RAW,
        snaplen: 0,
        options: vec![
            InterfaceDescriptionOption::IfName(Cow::Borrowed("spliff")),
            InterfaceDescriptionOption::IfDescription(Cow::Borrowed(
                "decrypted TLS sessions rebuilt by spliff replay",
            )),
            InterfaceDescriptionOption::IfTsResol(
                InterfaceTsResolution::new(false, 9).map_err(io_err)?,
            ),
        ],
    };
    w.write_pcapng_block(idb).map_err(io_err)?;
    Ok(w)
}

/// The packets of one connection being written, one at a time: the plan and what the packets
/// so far have told Wireshark (acknowledged offsets, lost ranges reported).
struct Packets {
    flow: Flow,
    plan: std::vec::IntoIter<Planned>,
    /// Highest stream offset delivered so far per side: the ACK numbers.
    delivered: [u64; 2],
    announced: bool,
    reported_holes: [usize; 2],
    w: PcapNgWriter<Vec<u8>>,
}

impl Packets {
    fn new(
        i: usize,
        info: &ConnectionInfo,
        c: &ConnectionStreams<'_>,
        flow: Flow,
        options: &PcapngOptions,
    ) -> io::Result<Packets> {
        let mut w = block_writer()?;
        w.get_mut().clear();
        Ok(Packets {
            flow,
            plan: plan(i, info, c, options).into_iter(),
            delivered: [stream(c, 0).start(), stream(c, 1).start()],
            announced: false,
            reported_holes: [0; 2],
            w,
        })
    }

    /// Time of the next packet, `u64::MAX` when none is left (the plan is in time order).
    fn floor(&self) -> u64 {
        self.plan.as_slice().first().map_or(u64::MAX, |p| p.ts_ns)
    }

    /// The next packet block, with its time, from windowed streams: the window is moved to
    /// show the packet's bytes (256 KiB at a time, as packets go forward).
    fn next_windowed(
        &mut self,
        info: &ConnectionInfo,
        c: &mut ConnectionStreams<'_>,
    ) -> Option<io::Result<Item>> {
        if let Some(&Planned {
            what: What::Data { side, offset, len },
            ..
        }) = self.plan.as_slice().first()
        {
            let s = if side == 0 {
                &mut c.request
            } else {
                &mut c.response
            };
            // Moved only when the packet leaves it: moving it for every packet copied 256 KiB
            // per packet (16 times the plaintext, for 16 KiB packets).
            let shown = s
                .window_range()
                .is_some_and(|(from, to)| from <= offset && offset.saturating_add(len) <= to);
            if !shown {
                s.set_window(offset, len.max(256 << 10));
            }
        }
        self.next(info, c)
    }

    /// The next packet block, with its time.
    fn next(
        &mut self,
        info: &ConnectionInfo,
        c: &ConnectionStreams<'_>,
    ) -> Option<io::Result<Item>> {
        let p = self.plan.next()?;
        Some(self.packet(info, c, p))
    }

    fn packet(
        &mut self,
        info: &ConnectionInfo,
        c: &ConnectionStreams<'_>,
        p: Planned,
    ) -> io::Result<Item> {
        let f = &self.flow;
        let isn = [CLIENT_ISN, SERVER_ISN];
        let end = [stream(c, 0).end(), stream(c, 1).end()];
        let seq_at = |side: usize, off: u64| isn[side].wrapping_add(1).wrapping_add(off as u32);
        let d = self.delivered;
        let ack_for = |side: usize| seq_at(1 - side, d[1 - side]);
        let mut comment: Vec<String> = Vec::new();
        if !self.announced {
            self.announced = true;
            comment.push(f.comment.clone());
        }
        let (src, dst, seq, ack, flags, payload): (_, _, u32, u32, u8, &[u8]) = match p.what {
            What::Syn => (f.client, f.server, CLIENT_ISN, 0, tcp::SYN, &[]),
            What::SynAck => (
                f.server,
                f.client,
                SERVER_ISN,
                CLIENT_ISN.wrapping_add(1),
                tcp::SYN | tcp::ACK,
                &[],
            ),
            What::HandshakeAck => (
                f.client,
                f.server,
                CLIENT_ISN.wrapping_add(1),
                SERVER_ISN.wrapping_add(1),
                tcp::ACK,
                &[],
            ),
            What::Data { side, offset, len } => {
                let s = stream(c, side);
                let side = usize::from(side);
                let holes = s.holes();
                let seen = &mut self.reported_holes[side];
                while *seen < holes.len() && holes[*seen].offset < offset {
                    comment.push(hole_comment(side, &holes[*seen]));
                    *seen += 1;
                }
                let bytes = s.slice(offset, offset + len).unwrap_or(&[]);
                self.delivered[side] = self.delivered[side].max(offset + len);
                let (src, dst) = if side == 0 {
                    (f.client, f.server)
                } else {
                    (f.server, f.client)
                };
                (
                    src,
                    dst,
                    seq_at(side, offset),
                    ack_for(side),
                    tcp::ACK | tcp::PSH,
                    bytes,
                )
            }
            What::Fin { side } => {
                let side = usize::from(side);
                let (src, dst) = if side == 0 {
                    (f.client, f.server)
                } else {
                    (f.server, f.client)
                };
                // The FIN follows the last byte of the stream, lost or not.
                let ack = seq_at(1 - side, end[1 - side]).wrapping_add(u32::from(side == 1));
                (
                    src,
                    dst,
                    seq_at(side, end[side]),
                    ack,
                    tcp::FIN | tcp::ACK,
                    &[],
                )
            }
            What::FinAck => (
                f.client,
                f.server,
                seq_at(0, end[0]).wrapping_add(1),
                seq_at(1, end[1]).wrapping_add(1),
                tcp::ACK,
                &[],
            ),
        };
        let packet = tcp::segment(src, dst, seq, ack, flags, payload);
        let wall = info.clock.map_or(p.ts_ns, |m| m.wall(p.ts_ns));
        let mut options = Vec::new();
        if !comment.is_empty() {
            options.push(EnhancedPacketOption::Common(CommonOption::Comment(
                Cow::Owned(comment.join("; ")),
            )));
        }
        let epb = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(wall),
            original_len: packet.len() as u32,
            data: Cow::Owned(packet),
            options,
        };
        self.w.write_pcapng_block(epb).map_err(io_err)?;
        Ok(Item::new(p.ts_ns, std::mem::take(self.w.get_mut())))
    }
}

/// The packet blocks of connection `i`, each with its time, in the connection's order.
fn render(
    i: usize,
    c: &ReplayedConnection<'_>,
    f: Flow,
    options: &PcapngOptions,
) -> io::Result<Vec<Item>> {
    let mut packets = Packets::new(i, &c.info, &c.streams, f, options)?;
    let mut items = Vec::new();
    while let Some(item) = packets.next(&c.info, &c.streams) {
        items.push(item?);
    }
    Ok(items)
}

/// The pcapng view as a streaming [`Sink`]: the same bytes as [`write_pcapng`].
#[derive(Debug, Default)]
pub struct PcapngSink {
    options: PcapngOptions,
    /// 4-tuples given out so far (contexts are made one at a time, in order).
    ports: Mutex<Ports>,
}

impl PcapngSink {
    /// A sink writing with `options`.
    pub fn new(options: PcapngOptions) -> PcapngSink {
        PcapngSink {
            options,
            ports: Mutex::new(Ports::default()),
        }
    }
}

/// [`PcapngSink`]'s state for a connection written packet by packet (the error of setting it
/// up, if any, is reported by the first [`Sink::next_item`]).
pub struct Cursor(io::Result<Packets>);

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cursor")
    }
}

impl Sink for PcapngSink {
    type Context = Flow;
    type Cursor = Cursor;

    fn earliest(&self, pending: &PendingConnection<'_>) -> u64 {
        // The handshake is stamped with the open time when the trace has one.
        pending
            .open_ns()
            .map_or(pending.first_ts_ns(), |t| t.min(pending.first_ts_ns()))
    }

    fn context(&self, index: usize, info: &ConnectionInfo, http: bool) -> Flow {
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        flow(index, info, http, &mut ports)
    }

    fn render(
        &self,
        index: usize,
        conn: &ReplayedConnection<'_>,
        context: Flow,
    ) -> io::Result<Vec<Item>> {
        render(index, conn, context, &self.options)
    }

    fn start(&self, index: usize, conn: &LazyConnection<'_>, context: Flow) -> Cursor {
        Cursor(Packets::new(
            index,
            &conn.info,
            &conn.streams,
            context,
            &self.options,
        ))
    }

    fn next_item(
        &self,
        conn: &mut LazyConnection<'_>,
        cursor: &mut Cursor,
    ) -> Option<io::Result<Item>> {
        match &mut cursor.0 {
            Ok(p) => p.next_windowed(&conn.info, &mut conn.streams),
            Err(e) => {
                // Reported once; the connection then has nothing more.
                let e = std::mem::replace(e, io::Error::other("reported"));
                cursor.0 = Err(io::Error::other("reported"));
                Some(Err(e))
            }
        }
    }

    fn floor(&self, _conn: &LazyConnection<'_>, cursor: &Cursor) -> u64 {
        cursor.0.as_ref().map_or(0, Packets::floor)
    }

    fn begin(&self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&block_writer()?.into_inner())
    }

    fn end(&self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the synthetic sessions of `replayed` as pcapng. The bytes depend only on
/// `replayed` and `options`.
pub fn write_pcapng(
    replayed: &Replayed<'_>,
    options: &PcapngOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    let sink = PcapngSink::new(*options);
    sink.begin(out)?;
    let mut all = Vec::new();
    for (i, c) in replayed.connections.iter().enumerate() {
        let f = sink.context(
            i,
            &c.info,
            crate::pipeline::is_http(&c.result.detection, !c.result.exchanges.is_empty()),
        );
        for (pos, item) in sink.render(i, c, f)?.into_iter().enumerate() {
            all.push(((item.ts_ns, i, pos), item.bytes));
        }
    }
    all.sort_unstable_by_key(|(key, _)| *key);
    for (_, bytes) in all {
        out.write_all(&bytes)?;
    }
    Ok(())
}
