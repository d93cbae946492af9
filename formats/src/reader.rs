//! Zero-copy trace reader over a memory map.
//!
//! The reader walks blocks in file order. A block whose framing is intact but whose content is
//! bad is reported and skipped; broken framing or a torn tail ends the walk after everything
//! before it has been yielded, so a cut file loses nothing that was complete.

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;

use byteorder_slice::{BigEndian, ByteOrder, LittleEndian};
use pcap_file::Endianness;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::blocks::interface_statistics::InterfaceStatisticsOption;
use pcap_file::pcapng::blocks::opt_common::CommonOption;
use pcap_file::pcapng::blocks::section_header::SectionHeaderOption;
use pcap_file::pcapng::{Block, PcapNgState, RawBlock, RawBlockParseError};

use crate::error::{BlockKind, ReadError, ReadErrorKind};
use crate::ids::{RECORD_HEADER_LEN, SPLIFF_PEN};
use crate::packet::{Interface, InterfaceStats, Packet, PacketDirection};
use crate::record::{self, CaptureId, DecodeError, Record, RecordKind};
use crate::writer::SectionInfo;

const SHB_TYPE: u32 = 0x0A0D_0D0A;
const CUSTOM_COPYABLE: u32 = 0x0000_0BAD;
const CUSTOM_NON_COPYABLE: u32 = 0x4000_0BAD;

/// A trace file mapped into memory.
///
/// The map is read-only; like every mmap-based reader, the file must not be truncated by
/// another process while it is being read.
#[derive(Debug)]
pub struct TraceFile {
    map: Option<memmap2::Mmap>,
}

impl TraceFile {
    /// Opens and maps `path`.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let io = |e| ReadError {
            offset: 0,
            block: BlockKind::File,
            kind: ReadErrorKind::Io(e),
        };
        let file = File::open(path).map_err(io)?;
        Self::map(&file)
    }

    /// Maps an open file (e.g. standard input spooled into a temporary file).
    pub fn map(file: &File) -> Result<Self, ReadError> {
        let io = |e| ReadError {
            offset: 0,
            block: BlockKind::File,
            kind: ReadErrorKind::Io(e),
        };
        let len = file.metadata().map_err(io)?.len();
        // An empty file cannot be mapped on every OS; it reads as an empty slice instead.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only and private to this process; see the type's doc for
            // the usual caveat about concurrent truncation.
            Some(unsafe { memmap2::Mmap::map(file) }.map_err(io)?)
        };
        Ok(TraceFile { map })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// A reader over the file, in file order.
    pub fn reader(&self) -> TraceReader<'_> {
        TraceReader::new(self.bytes())
    }
}

/// A spliff record and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAt<'a> {
    /// Offset of its Custom Block in the file.
    pub offset: u64,
    /// The capture that wrote it.
    pub capture_id: CaptureId,
    /// Its timestamp on the capture's kernel clock.
    pub ts_ns: u64,
    /// Minor format version it was written with.
    pub minor_version: u16,
    /// The record.
    pub record: Record<'a>,
}

/// One item of a trace, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A Section Header Block. A new section resets the interface list.
    Section {
        /// Offset in the file.
        offset: u64,
        /// Its descriptive options.
        info: SectionInfo,
    },
    /// An Interface Description Block; `id` is its index in the section.
    Interface {
        /// Offset in the file.
        offset: u64,
        /// Index in the current section.
        id: u32,
        /// The interface.
        interface: Interface,
    },
    /// An Enhanced Packet Block.
    Packet {
        /// Offset in the file.
        offset: u64,
        /// The packet.
        packet: Packet<'a>,
    },
    /// An Interface Statistics Block.
    Stats {
        /// Offset in the file.
        offset: u64,
        /// The counters.
        stats: InterfaceStats,
    },
    /// A spliff record.
    Record(RecordAt<'a>),
    /// A spliff record of a kind this version does not know (written by a newer spliff).
    UnknownRecord {
        /// Offset in the file.
        offset: u64,
        /// The kind id.
        kind: u16,
        /// The capture that wrote it.
        capture_id: CaptureId,
    },
    /// Any other block (another vendor's custom block, name resolution, ...), kept as-is.
    Other {
        /// Offset in the file.
        offset: u64,
        /// The block type.
        block_type: u32,
    },
}

/// Iterates over the entries of a trace in file order. Yields `Err` for each problem; after an
/// error for which [`ReadError::is_fatal`] is true, the iterator ends.
#[derive(Debug)]
pub struct TraceReader<'a> {
    data: &'a [u8],
    pos: usize,
    state: PcapNgState,
    started: bool,
    done: bool,
    /// Set when an interface description of the current section could not be read: interface
    /// ids of later packets would then point at the wrong interface, so those packets are
    /// reported instead of being misattributed.
    interfaces_broken: Option<u64>,
}

impl<'a> TraceReader<'a> {
    /// A reader over trace bytes (e.g. [`TraceFile::bytes`]).
    pub fn new(data: &'a [u8]) -> Self {
        TraceReader {
            data,
            pos: 0,
            state: PcapNgState::default(),
            started: false,
            done: false,
            interfaces_broken: None,
        }
    }

    /// All spliff records, sorted by kernel timestamp (ties keep file order), and every error
    /// met on the way. Other entries are skipped.
    pub fn records_by_time(self) -> (Vec<RecordAt<'a>>, Vec<ReadError>) {
        let mut records = Vec::new();
        let mut errors = Vec::new();
        for item in self {
            match item {
                Ok(Entry::Record(r)) => records.push(r),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        records.sort_by_key(|r| (r.ts_ns, r.offset));
        (records, errors)
    }

    fn fail(&mut self, offset: u64, block: BlockKind, kind: ReadErrorKind) -> ReadError {
        let err = ReadError {
            offset,
            block,
            kind,
        };
        if err.is_fatal() {
            self.done = true;
        }
        err
    }

    fn next_entry(&mut self) -> Option<Result<Entry<'a>, ReadError>> {
        if self.done {
            return None;
        }
        let rest = &self.data[self.pos..];
        let offset = self.pos as u64;
        if rest.is_empty() {
            self.done = true;
            if !self.started {
                return Some(Err(self.fail(
                    0,
                    BlockKind::File,
                    ReadErrorKind::NotPcapng("the file is empty".into()),
                )));
            }
            return None;
        }
        let endianness = self.state.endianness();
        let peek_type = |b: &[u8]| -> Option<u32> {
            let t: [u8; 4] = b.get(..4)?.try_into().ok()?;
            Some(match endianness {
                Endianness::Big => u32::from_be_bytes(t),
                Endianness::Little => u32::from_le_bytes(t),
            })
        };
        let block_type = peek_type(rest);
        if !self.started {
            self.started = true;
            // The SHB type reads the same in both byte orders, so a prefix of it is all a
            // file cut inside its first block can show; anything else is not pcapng at all.
            let shb_magic = SHB_TYPE.to_be_bytes();
            if !shb_magic.starts_with(&rest[..rest.len().min(4)]) {
                return Some(Err(self.fail(
                    0,
                    BlockKind::File,
                    ReadErrorKind::NotPcapng(
                        "the first block is not a Section Header Block".into(),
                    ),
                )));
            }
        }
        let kind = block_type.map_or(BlockKind::File, BlockKind::from_type);
        let parsed = match endianness {
            Endianness::Big => RawBlock::from_slice::<BigEndian>(rest),
            Endianness::Little => RawBlock::from_slice::<LittleEndian>(rest),
        };
        let (rem, raw) = match parsed {
            Ok(v) => v,
            Err(RawBlockParseError::IncompleteBuffer(needed, available)) => {
                return Some(Err(self.fail(
                    offset,
                    kind,
                    ReadErrorKind::TornTail {
                        needed: needed as u64,
                        available: available.min(rest.len()) as u64,
                    },
                )));
            }
            Err(RawBlockParseError::InvalidFormat(e)) => {
                let kind_err = if offset == 0 {
                    ReadErrorKind::NotPcapng(crate::error::chain(&e))
                } else {
                    ReadErrorKind::Framing(crate::error::chain(&e))
                };
                return Some(Err(self.fail(offset, kind, kind_err)));
            }
        };
        self.pos = self.data.len() - rem.len();
        Some(self.classify(offset, raw))
    }

    fn classify(&mut self, offset: u64, raw: RawBlock<'a>) -> Result<Entry<'a>, ReadError> {
        let block = BlockKind::from_type(raw.type_);
        if matches!(raw.type_, CUSTOM_COPYABLE | CUSTOM_NON_COPYABLE) {
            return self.custom(offset, raw);
        }
        match self.state.decode_block_if_needed(&raw) {
            Ok(Some(decoded)) => {
                self.state.update_from_block(&decoded);
                return Ok(match decoded {
                    Block::SectionHeader(shb) => {
                        self.interfaces_broken = None;
                        let mut info = SectionInfo::default();
                        for opt in &shb.options {
                            match opt {
                                SectionHeaderOption::Hardware(v) => info.hardware = v.to_string(),
                                SectionHeaderOption::OS(v) => info.os = v.to_string(),
                                SectionHeaderOption::UserApplication(v) => {
                                    info.user_application = v.to_string()
                                }
                                SectionHeaderOption::Common(_) => {}
                            }
                        }
                        Entry::Section { offset, info }
                    }
                    Block::InterfaceDescription(idb) => {
                        let mut interface = Interface {
                            linktype: u32::from(idb.linktype) as u16,
                            snaplen: idb.snaplen,
                            name: String::new(),
                            description: String::new(),
                        };
                        for opt in &idb.options {
                            match opt {
                                InterfaceDescriptionOption::IfName(v) => {
                                    interface.name = v.to_string()
                                }
                                InterfaceDescriptionOption::IfDescription(v) => {
                                    interface.description = v.to_string()
                                }
                                _ => {}
                            }
                        }
                        Entry::Interface {
                            offset,
                            id: (self.state.interfaces().len() as u32).saturating_sub(1),
                            interface,
                        }
                    }
                    _ => Entry::Other {
                        offset,
                        block_type: raw.type_,
                    },
                });
            }
            Ok(None) => {}
            Err(e) => {
                if raw.type_ == SHB_TYPE {
                    // Without a readable section header the byte order of what follows is
                    // unknown, so nothing after it can be located.
                    return Err(self.fail(
                        offset,
                        block,
                        ReadErrorKind::Framing(crate::error::chain(&e)),
                    ));
                }
                self.interfaces_broken.get_or_insert(offset);
                return Err(self.fail(
                    offset,
                    block,
                    ReadErrorKind::Content(crate::error::chain(&e)),
                ));
            }
        }
        if let (BlockKind::EnhancedPacket | BlockKind::InterfaceStatistics, Some(at)) =
            (block, self.interfaces_broken)
        {
            return Err(self.fail(
                offset,
                block,
                ReadErrorKind::Content(format!(
                    "the interface description at byte offset {at} could not be read, so this \
                     block's interface is unknown"
                )),
            ));
        }
        let decoded = match raw.clone().try_into_block(&self.state) {
            Ok(b) => b,
            Err(e) => {
                return Err(self.fail(
                    offset,
                    block,
                    ReadErrorKind::Content(crate::error::chain(&e)),
                ));
            }
        };
        Ok(match decoded {
            Block::EnhancedPacket(epb) => {
                let mut direction = None;
                let mut comment = None;
                for opt in epb.options {
                    match opt {
                        EnhancedPacketOption::Flags(f) => {
                            direction = match f & 3 {
                                1 => Some(PacketDirection::Inbound),
                                2 => Some(PacketDirection::Outbound),
                                _ => None,
                            }
                        }
                        EnhancedPacketOption::Common(CommonOption::Comment(c)) => {
                            comment.get_or_insert(c);
                        }
                        _ => {}
                    }
                }
                let Cow::Borrowed(data) = epb.data else {
                    // pcap-file borrows packet data from the input slice; an owned copy would
                    // mean a behaviour change in the crate, so report it instead of guessing.
                    return Err(self.fail(
                        offset,
                        block,
                        ReadErrorKind::Content("packet data was not borrowed".into()),
                    ));
                };
                Entry::Packet {
                    offset,
                    packet: Packet {
                        interface_id: epb.interface_id,
                        ts_wall_ns: u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX),
                        original_len: epb.original_len,
                        data,
                        direction,
                        comment,
                    },
                }
            }
            Block::InterfaceStatistics(isb) => {
                let to_ns =
                    |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                let mut stats = InterfaceStats {
                    interface_id: isb.interface_id,
                    ts_wall_ns: to_ns(isb.timestamp),
                    ..InterfaceStats::default()
                };
                for opt in isb.options {
                    match opt {
                        InterfaceStatisticsOption::IsbStartTime(d) => {
                            stats.start_wall_ns = Some(to_ns(d))
                        }
                        InterfaceStatisticsOption::IsbEndTime(d) => {
                            stats.end_wall_ns = Some(to_ns(d))
                        }
                        InterfaceStatisticsOption::IsbIfRecv(v) => stats.received = Some(v),
                        InterfaceStatisticsOption::IsbIfDrop(v) => stats.dropped = Some(v),
                        InterfaceStatisticsOption::IsbUsrDeliv(v) => stats.delivered = Some(v),
                        InterfaceStatisticsOption::Common(CommonOption::Comment(c)) => {
                            stats.comment.get_or_insert_with(|| c.to_string());
                        }
                        _ => {}
                    }
                }
                Entry::Stats { offset, stats }
            }
            _ => Entry::Other {
                offset,
                block_type: raw.type_,
            },
        })
    }

    fn custom(&mut self, offset: u64, raw: RawBlock<'a>) -> Result<Entry<'a>, ReadError> {
        let other = Entry::Other {
            offset,
            block_type: raw.type_,
        };
        let Cow::Borrowed(body) = raw.body else {
            return Ok(other);
        };
        let Some(pen_bytes) = body.get(..4) else {
            return Ok(other);
        };
        let pen = match self.state.endianness() {
            Endianness::Big => BigEndian::read_u32(pen_bytes),
            Endianness::Little => LittleEndian::read_u32(pen_bytes),
        };
        if pen != SPLIFF_PEN {
            return Ok(other);
        }
        let data = &body[4..];
        let (header, rec_body) = match record::decode_header(data) {
            Ok(v) => v,
            // Another user of the documentation PEN: not ours, not an error.
            Err(DecodeError::NotSpliff) => return Ok(other),
            Err(e) => return Err(self.decode_error(offset, BlockKind::SpliffRecordUnknown(0), e)),
        };
        let block = RecordKind::from_id(header.kind).map_or(
            BlockKind::SpliffRecordUnknown(header.kind),
            BlockKind::SpliffRecord,
        );
        match record::decode_body(header.kind, rec_body).map_err(|e| match e {
            // Body field positions are relative to the body; errors count from the start of
            // the record, as docs/FORMAT.md does.
            DecodeError::Short(mut s) => {
                s.at += RECORD_HEADER_LEN;
                DecodeError::Short(s)
            }
            e => e,
        }) {
            Ok(record) => Ok(Entry::Record(RecordAt {
                offset,
                capture_id: header.capture_id,
                ts_ns: header.ts_ns,
                minor_version: header.minor,
                record,
            })),
            Err(DecodeError::UnknownKind(kind)) => Ok(Entry::UnknownRecord {
                offset,
                kind,
                capture_id: header.capture_id,
            }),
            Err(e) => Err(self.decode_error(offset, block, e)),
        }
    }

    fn decode_error(&mut self, offset: u64, block: BlockKind, e: DecodeError) -> ReadError {
        let kind = match e {
            DecodeError::Short(s) => ReadErrorKind::Truncated {
                field: s.field,
                at: s.at,
                needed: s.needed,
                left: s.left,
            },
            DecodeError::Version { major, minor } => {
                ReadErrorKind::UnsupportedVersion { major, minor }
            }
            DecodeError::BadValue { field, value } => ReadErrorKind::BadValue { field, value },
            DecodeError::NotSpliff | DecodeError::UnknownKind(_) => {
                ReadErrorKind::Content("not a spliff record".into())
            }
        };
        self.fail(offset, block, kind)
    }
}

impl<'a> Iterator for TraceReader<'a> {
    type Item = Result<Entry<'a>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry()
    }
}
