//! `--format records`: one line per block of the trace, in file order. The lowest-level view a
//! user has short of a hex dump; useful to see what the recorder wrote.

use std::io::{self, Write};

use spliff_formats::{Entry, ReadError, Record, TraceReader};

/// What [`write_records`] met on the way.
#[derive(Debug, Default)]
pub struct RecordsSummary {
    /// Number of spliff records listed.
    pub records: u64,
    /// Number of packets listed.
    pub packets: u64,
    /// Problems in the trace, in file order; the last may be fatal (see
    /// [`ReadError::is_fatal`]).
    pub errors: Vec<ReadError>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).escape_debug().to_string()
}

/// Lists every entry of `trace` on `out`, one line each, and returns counts and the problems
/// found (which are not written to `out`).
pub fn write_records(trace: &[u8], out: &mut dyn Write) -> io::Result<RecordsSummary> {
    let mut summary = RecordsSummary::default();
    for entry in TraceReader::new(trace) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                summary.errors.push(e);
                continue;
            }
        };
        match entry {
            Entry::Section { offset, info } => writeln!(
                out,
                "@{offset} section application={:?} os={:?} hardware={:?}",
                info.user_application, info.os, info.hardware
            )?,
            Entry::Interface {
                offset,
                id,
                interface,
            } => writeln!(
                out,
                "@{offset} interface {id} name={:?} linktype={} snaplen={} description={:?}",
                interface.name, interface.linktype, interface.snaplen, interface.description
            )?,
            Entry::Packet { offset, packet } => {
                summary.packets += 1;
                writeln!(
                    out,
                    "@{offset} packet if={} wall_ns={} len={}/{} dir={:?} comment={:?}",
                    packet.interface_id,
                    packet.ts_wall_ns,
                    packet.data.len(),
                    packet.original_len,
                    packet.direction,
                    packet.comment.as_deref().unwrap_or("")
                )?
            }
            Entry::Stats { offset, stats } => writeln!(
                out,
                "@{offset} stats if={} recv={:?} drop={:?} delivered={:?}",
                stats.interface_id, stats.received, stats.dropped, stats.delivered
            )?,
            Entry::UnknownRecord { offset, kind, .. } => writeln!(
                out,
                "@{offset} record of unknown kind {kind} (newer spliff)"
            )?,
            Entry::Other { offset, block_type } => {
                writeln!(out, "@{offset} block type {block_type:#010x}")?
            }
            Entry::Record(r) => {
                summary.records += 1;
                write!(out, "@{} ts={} ", r.offset, r.ts_ns)?;
                match &r.record {
                    Record::CaptureInfo(c) => writeln!(
                        out,
                        "capture-info id={} wall_ns={} clock={:?} version={} host={} kernel={} attached={}",
                        r.capture_id,
                        c.wall_clock_ns,
                        c.clock,
                        lossy(c.spliff_version),
                        lossy(c.hostname),
                        lossy(c.kernel),
                        c.attached.len()
                    )?,
                    Record::Process(p) => writeln!(
                        out,
                        "process pid={} ppid={} uid={} comm={} exe={} argv={:?}",
                        p.pid,
                        p.ppid,
                        p.uid,
                        lossy(p.comm),
                        lossy(p.exe),
                        p.cmdline.iter().map(|a| lossy(a)).collect::<Vec<_>>()
                    )?,
                    Record::Connection(c) => {
                        write!(
                            out,
                            "connection conn={} pid={} fd={} cookie={} local={} remote={} lib={} alpn={} sni={} open={} close={}",
                            c.conn_id,
                            c.pid,
                            c.fd,
                            c.socket_cookie,
                            c.local.map_or("-".into(), |a| a.to_string()),
                            c.remote.map_or("-".into(), |a| a.to_string()),
                            c.tls_library.name(),
                            lossy(c.alpn),
                            lossy(c.sni),
                            c.open_ns,
                            c.close_ns
                        )?;
                        // Only for unix sockets, so TLS connections' views stay as they were.
                        if c.transport == spliff_formats::Transport::UnixStream {
                            write!(
                                out,
                                " unix={} inode={} peer_inode={} peer_pid={}",
                                lossy(c.unix.path),
                                c.unix.inode,
                                c.unix.peer_inode,
                                c.unix.peer_pid
                            )?;
                        }
                        // Only when packets were counted, so pre-1.1 views stay as they were.
                        let n = &c.counters;
                        if !n.is_empty() {
                            write!(
                                out,
                                " packets={}/{} bytes={}/{}",
                                n.packets_egress,
                                n.packets_ingress,
                                n.bytes_egress,
                                n.bytes_ingress
                            )?;
                        }
                        writeln!(out)?;
                    }
                    Record::TlsData(d) => writeln!(
                        out,
                        "tls-data conn={} pid={} tid={} {:?} offset={} len={}",
                        d.conn_id,
                        d.pid,
                        d.tid,
                        d.direction,
                        d.stream_offset,
                        d.payload.len()
                    )?,
                    Record::Handshake(h) => writeln!(
                        out,
                        "handshake conn={} pid={} start={} end={} result={:?} rc={}",
                        h.conn_id, h.pid, h.start_ns, h.end_ns, h.result, h.return_code
                    )?,
                    Record::Loss(l) => writeln!(
                        out,
                        "loss conn={} pid={} {:?} cause={:?} offset={} length={} events={}",
                        l.conn_id, l.pid, l.direction, l.cause, l.stream_offset, l.length, l.events
                    )?,
                    Record::Interface(i) => writeln!(
                        out,
                        "interface if_index={} idb={} {} hook={} name={} detail={}",
                        i.if_index,
                        i.interface_id.map_or("-".into(), |id| id.to_string()),
                        i.event.name(),
                        i.hook.name(),
                        lossy(i.name),
                        lossy(i.detail)
                    )?,
                    Record::Correlation(c) => {
                        writeln!(
                            out,
                            "correlation tls_connections={} with_socket={} with_packets={}",
                            c.tls_connections, c.with_socket, c.with_packets
                        )?;
                        for reason in &c.reasons {
                            writeln!(out, "  {}", lossy(reason))?;
                        }
                    }
                }
            }
        }
    }
    Ok(summary)
}
