//! Streaming trace writer. Memory stays bounded: one scratch buffer of at most one record, and
//! the `BufWriter` in front of the output.

use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::time::Duration;

use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::block_common::RawBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption, InterfaceTsResolution,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};
use pcap_file::pcapng::blocks::opt_common::CommonOption;
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::{DataLink, Endianness};

use crate::error::{BlockKind, WriteError};
use crate::ids::{CUSTOM_BLOCK_COPYABLE, MAX_BLOCK_LEN, RECORD_HEADER_LEN, SPLIFF_PEN};
use crate::packet::{Interface, InterfaceStats, Packet, PacketDirection};
use crate::record::{self, CaptureId, Record, TlsData};

/// Default largest payload of one TLS data record; larger writes are split by stream offset.
/// 64 KiB keeps every block far below Wireshark's 16 MiB block limit and matches the largest
/// TLS record plaintext (16 KiB) times four, so a typical write is one record.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024;

/// `if_name` of interface 0, the interface every trace opens with. It never carries packets.
pub const RECORDS_INTERFACE_NAME: &str = "spliff";
/// `if_description` of interface 0.
pub const RECORDS_INTERFACE_DESCRIPTION: &str =
    "spliff records (custom blocks); no packets on this interface";
/// Link type of interface 0 (Ethernet: the type the packet interfaces most often have, so a
/// trace usually keeps a single file encapsulation).
pub const RECORDS_INTERFACE_LINKTYPE: u16 = 1;

/// Bytes around a record in its block: block type, two lengths, PEN, up to 3 bytes of padding.
const BLOCK_OVERHEAD: usize = 4 + 4 + 4 + 4 + 3;

/// The Section Header Block's descriptive options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SectionInfo {
    /// `shb_hardware`, e.g. the CPU model.
    pub hardware: String,
    /// `shb_os`, e.g. `Linux 6.1.0`.
    pub os: String,
    /// `shb_userappl`, e.g. `spliff 0.1.0`.
    pub user_application: String,
}

/// Writes a spliff trace: one pcapng section (little-endian), spliff records as copyable Custom
/// Blocks, packets as Enhanced Packet Blocks.
///
/// Call [`TraceWriter::finish`] (or at least [`TraceWriter::flush`]) at the end; dropping the
/// writer flushes too but cannot report an error.
pub struct TraceWriter<W: Write> {
    out: PcapNgWriter<BufWriter<Counted<W>>>,
    capture_id: CaptureId,
    section: SectionInfo,
    max_payload: usize,
    scratch: Vec<u8>,
    /// Every interface added, in id order: a continuation file repeats them so that the ids
    /// written so far stay valid in it.
    interfaces: Vec<Interface>,
}

/// The output, counting what reached it (the size of a file being rotated by size).
struct Counted<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> std::fmt::Debug for TraceWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceWriter")
            .field("capture_id", &self.capture_id)
            .field("max_payload", &self.max_payload)
            .field("interfaces", &self.interfaces.len())
            .finish_non_exhaustive()
    }
}

fn encode_err(block: BlockKind) -> impl FnOnce(pcap_file::pcapng::PcapNgWriteError) -> WriteError {
    move |e| match e {
        pcap_file::pcapng::PcapNgWriteError::Io(io) => WriteError::Io(io),
        other => WriteError::Encode {
            block,
            message: crate::error::chain(&other),
        },
    }
}

/// pcapng block type of an Enhanced Packet Block.
const ENHANCED_PACKET_BLOCK: u32 = 6;
/// Option codes (pcapng §3.5 and §4.3).
const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const EPB_FLAGS: u16 = 2;

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn pad4(b: &mut Vec<u8>) {
    let pad = (4 - b.len() % 4) % 4;
    b.extend_from_slice(&[0u8; 3][..pad]);
}

/// One option: code, length, value, padding to 4 bytes.
fn put_option(b: &mut Vec<u8>, code: u16, value: &[u8]) {
    b.extend_from_slice(&code.to_le_bytes());
    b.extend_from_slice(&(value.len() as u16).to_le_bytes());
    b.extend_from_slice(value);
    pad4(b);
}

/// An option value fits in 65535 bytes; a longer text is cut at a character boundary.
fn truncate_option(text: &[u8]) -> &[u8] {
    if text.len() <= usize::from(u16::MAX) {
        return text;
    }
    let mut end = usize::from(u16::MAX);
    // UTF-8 continuation bytes are 0b10xx_xxxx: back up to the start of a character.
    while end > 0 && text[end] & 0xc0 == 0x80 {
        end -= 1;
    }
    &text[..end]
}

fn ns(d: u64) -> Duration {
    Duration::from_nanos(d)
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace: writes the Section Header Block. `capture_id` must be random per capture
    /// (it keeps identifiers unique when traces are merged).
    pub fn new(out: W, section: &SectionInfo, capture_id: CaptureId) -> Result<Self, WriteError> {
        let mut options = Vec::new();
        for (value, make) in [
            (
                &section.hardware,
                SectionHeaderOption::Hardware as fn(Cow<'static, str>) -> _,
            ),
            (&section.os, SectionHeaderOption::OS),
            (
                &section.user_application,
                SectionHeaderOption::UserApplication,
            ),
        ] {
            if !value.is_empty() {
                options.push(make(Cow::Owned(value.clone())));
            }
        }
        let shb = SectionHeaderBlock {
            endianness: Endianness::Little,
            major_version: 1,
            minor_version: 0,
            section_length: -1,
            options,
        };
        let out = Counted {
            inner: out,
            written: 0,
        };
        let out = PcapNgWriter::with_section_header(BufWriter::with_capacity(256 * 1024, out), shb)
            .map_err(encode_err(BlockKind::SectionHeader))?;
        let mut writer = TraceWriter {
            out,
            capture_id,
            section: section.clone(),
            max_payload: DEFAULT_MAX_PAYLOAD,
            scratch: Vec::new(),
            interfaces: Vec::new(),
        };
        // editcap refuses to rewrite a pcapng section whose blocks come before any interface
        // ("can't be written as a pcapng file"), so every trace opens with this interface.
        writer.add_interface(&Interface {
            linktype: RECORDS_INTERFACE_LINKTYPE,
            snaplen: 0,
            name: RECORDS_INTERFACE_NAME.into(),
            description: RECORDS_INTERFACE_DESCRIPTION.into(),
        })?;
        Ok(writer)
    }

    /// Sets the largest payload of one TLS data record (at least 1 byte, at most what fits in
    /// one block).
    pub fn with_max_payload(mut self, max_payload: usize) -> Self {
        self.max_payload = max_payload.clamp(1, MAX_BLOCK_LEN - 1024);
        self
    }

    /// The capture id written into every record.
    pub fn capture_id(&self) -> CaptureId {
        self.capture_id
    }

    /// Writes one record stamped with `ts_ns` (the capture's kernel clock). A [`TlsData`] whose
    /// payload exceeds the maximum payload is written as several records with consecutive
    /// stream offsets and the same timestamp.
    pub fn write(&mut self, ts_ns: u64, record: &Record<'_>) -> Result<(), WriteError> {
        if let Record::TlsData(data) = record
            && data.payload.len() > self.max_payload
        {
            let mut offset = data.stream_offset;
            for piece in data.payload.chunks(self.max_payload) {
                let part = Record::TlsData(TlsData {
                    stream_offset: offset,
                    payload: piece,
                    ..data.clone()
                });
                self.write_one(ts_ns, &part)?;
                offset += piece.len() as u64;
            }
            return Ok(());
        }
        self.write_one(ts_ns, record)
    }

    fn write_one(&mut self, ts_ns: u64, record: &Record<'_>) -> Result<(), WriteError> {
        self.scratch.clear();
        self.scratch.extend_from_slice(&SPLIFF_PEN.to_le_bytes());
        record::encode(&mut self.scratch, self.capture_id, ts_ns, record);
        let len = self.scratch.len() + BLOCK_OVERHEAD;
        if len > MAX_BLOCK_LEN {
            return Err(WriteError::TooLarge {
                what: "record",
                len: self.scratch.len() - 4 - RECORD_HEADER_LEN,
                max: MAX_BLOCK_LEN - BLOCK_OVERHEAD - RECORD_HEADER_LEN,
            });
        }
        while !self.scratch.len().is_multiple_of(4) {
            self.scratch.push(0);
        }
        let total = (self.scratch.len() + 12) as u32;
        let raw = RawBlock {
            type_: CUSTOM_BLOCK_COPYABLE,
            initial_len: total,
            body: Cow::Borrowed(&self.scratch),
            trailer_len: total,
        };
        self.out
            .write_raw_block(&raw)
            .map_err(encode_err(BlockKind::SpliffRecord(record.kind())))?;
        Ok(())
    }

    /// Adds an interface (an Interface Description Block with `if_tsresol` = 9) and returns its
    /// id for [`Packet::interface_id`]. Id 0 is the records interface written by
    /// [`TraceWriter::new`], so the first interface added here gets id 1.
    pub fn add_interface(&mut self, iface: &Interface) -> Result<u32, WriteError> {
        let mut options = vec![InterfaceDescriptionOption::IfTsResol(
            InterfaceTsResolution::new(false, 9).map_err(|e| WriteError::Encode {
                block: BlockKind::InterfaceDescription,
                message: e.to_string(),
            })?,
        )];
        if !iface.name.is_empty() {
            options.push(InterfaceDescriptionOption::IfName(Cow::Borrowed(
                &iface.name,
            )));
        }
        if !iface.description.is_empty() {
            options.push(InterfaceDescriptionOption::IfDescription(Cow::Borrowed(
                &iface.description,
            )));
        }
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::from(u32::from(iface.linktype)),
            snaplen: iface.snaplen,
            options,
        };
        self.out
            .write_pcapng_block(idb)
            .map_err(encode_err(BlockKind::InterfaceDescription))?;
        self.interfaces.push(iface.clone());
        Ok(self.interfaces.len() as u32 - 1)
    }

    /// Continues the capture in a new output, as a rotating recorder does: finishes the current
    /// output and starts `out` with its own Section Header Block and every interface added so
    /// far, in the same order, so that interface ids stay valid in the new output. The capture
    /// id and the maximum payload stay. Returns the finished output.
    ///
    /// Records are not repeated: what the new output needs of them (capture info, open
    /// connections) is the caller's to write (docs/FORMAT.md, section 7.1).
    pub fn continue_in(&mut self, out: W) -> Result<W, WriteError> {
        let mut next = TraceWriter::new(out, &self.section, self.capture_id)?;
        next.max_payload = self.max_payload;
        // Interface 0, the records interface, was written by `new`.
        for iface in self.interfaces.iter().skip(1) {
            next.add_interface(iface)?;
        }
        std::mem::replace(self, next).finish()
    }

    /// Bytes written to the current output so far, buffered ones included.
    pub fn bytes_written(&self) -> u64 {
        self.out.get_ref().get_ref().written + self.out.get_ref().buffer().len() as u64
    }

    /// Writes one packet as an Enhanced Packet Block.
    pub fn write_packet(&mut self, packet: &Packet<'_>) -> Result<(), WriteError> {
        if packet.interface_id >= self.interface_count() {
            return Err(WriteError::NoSuchInterface(
                packet.interface_id,
                self.interface_count(),
            ));
        }
        if packet.data.len() > MAX_BLOCK_LEN - 1024 {
            return Err(WriteError::TooLarge {
                what: "packet",
                len: packet.data.len(),
                max: MAX_BLOCK_LEN - 1024,
            });
        }
        // Built by hand into the scratch buffer rather than through pcap-file's
        // EnhancedPacketBlock: that path encodes every block twice (once to measure it) in
        // small writes and allocates its option list, which made it most of the recorder's
        // cost per packet under load. The bytes are the same (a test compares them).
        let comment = packet
            .comment
            .as_deref()
            .map(|c| truncate_option(c.as_bytes()));
        let b = &mut self.scratch;
        b.clear();
        put_u32(b, ENHANCED_PACKET_BLOCK);
        put_u32(b, 0); // block length, set below
        put_u32(b, packet.interface_id);
        put_u32(b, (packet.ts_wall_ns >> 32) as u32);
        put_u32(b, packet.ts_wall_ns as u32);
        put_u32(b, packet.data.len() as u32);
        put_u32(b, packet.original_len.max(packet.data.len() as u32));
        b.extend_from_slice(packet.data);
        pad4(b);
        if let Some(dir) = packet.direction {
            let flags: u32 = match dir {
                PacketDirection::Inbound => 1,
                PacketDirection::Outbound => 2,
            };
            put_option(b, EPB_FLAGS, &flags.to_le_bytes());
        }
        if let Some(c) = comment {
            put_option(b, OPT_COMMENT, c);
        }
        if packet.direction.is_some() || comment.is_some() {
            put_option(b, OPT_ENDOFOPT, &[]);
        }
        let total = (b.len() + 4) as u32;
        b[4..8].copy_from_slice(&total.to_le_bytes());
        put_u32(b, total);
        // Straight to the buffered output: an EPB changes nothing in pcap-file's section
        // state (only SHBs and IDBs do), so its writer has nothing to track.
        self.out
            .get_mut()
            .write_all(&self.scratch)
            .map_err(WriteError::Io)?;
        Ok(())
    }

    /// Writes an Interface Statistics Block.
    pub fn write_interface_stats(&mut self, stats: &InterfaceStats) -> Result<(), WriteError> {
        if stats.interface_id >= self.interface_count() {
            return Err(WriteError::NoSuchInterface(
                stats.interface_id,
                self.interface_count(),
            ));
        }
        let mut options = Vec::new();
        if let Some(v) = stats.start_wall_ns {
            options.push(InterfaceStatisticsOption::IsbStartTime(ns(v)));
        }
        if let Some(v) = stats.end_wall_ns {
            options.push(InterfaceStatisticsOption::IsbEndTime(ns(v)));
        }
        if let Some(v) = stats.received {
            options.push(InterfaceStatisticsOption::IsbIfRecv(v));
        }
        if let Some(v) = stats.dropped {
            options.push(InterfaceStatisticsOption::IsbIfDrop(v));
        }
        if let Some(v) = stats.delivered {
            options.push(InterfaceStatisticsOption::IsbUsrDeliv(v));
        }
        if let Some(c) = &stats.comment {
            options.push(InterfaceStatisticsOption::Common(CommonOption::Comment(
                Cow::Borrowed(c),
            )));
        }
        let isb = InterfaceStatisticsBlock {
            interface_id: stats.interface_id,
            timestamp: ns(stats.ts_wall_ns),
            options,
        };
        self.out
            .write_pcapng_block(isb)
            .map_err(encode_err(BlockKind::InterfaceStatistics))?;
        Ok(())
    }

    /// Pushes buffered blocks to the output. Blocks are only ever written whole into the
    /// buffer, so a crash after a flush loses nothing that was flushed.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        self.out.get_mut().flush()?;
        Ok(())
    }

    /// Flushes and returns the output.
    pub fn finish(self) -> Result<W, WriteError> {
        self.out
            .into_inner()
            .into_inner()
            .map(|counted| counted.inner)
            .map_err(|e| WriteError::Io(e.into_error()))
    }

    fn interface_count(&self) -> u32 {
        self.interfaces.len() as u32
    }
}
