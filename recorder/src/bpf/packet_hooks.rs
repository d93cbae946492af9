//! The packet side of the pipeline: attaching the XDP and TC programs to
//! interfaces, telling them which interfaces to capture, reading their ring
//! and their per-interface counters.
//!
//! Which hook goes on which interface is the caller's decision
//! (`crate::net::interfaces`); this module only knows how to attach each one
//! and which fallbacks the kernel offers (native XDP, else generic; tcx,
//! else a clsact qdisc).

use std::{
    mem::offset_of,
    os::fd::{AsFd as _, BorrowedFd},
};

use aya::{
    Ebpf,
    maps::{MapData, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::{
        LinkOrder, ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
        tc::{self, SchedClassifierLink, TcAttachOptions, TcError},
        xdp::XdpLink,
    },
};
use spliff_recorder_ebpf::{
    abi::{
        self, DIR_EGRESS, DIR_INGRESS, EventKind, HOOK_TC, HOOK_XDP, PACKET_HEADER_LEN,
        PACKET_SNAPLEN_MAX, PacketEvent,
    },
    names,
};

use super::{BpfPipeline, DecodeError};

/// Packets handed over per [`PacketRing::drain`] call at most, so a flood
/// cannot keep the record loop from its other work. A drain that hands over
/// this many may have left more behind.
pub const MAX_PACKETS_PER_DRAIN: usize = 65536;

/// Failures of attaching, configuring or reading the packet hooks. Each
/// names the interface or map concerned.
#[derive(Debug, thiserror::Error)]
pub enum PacketHookError {
    /// A packet program or map is missing from the object (a stale object).
    #[error("the BPF object has no {kind} `{name}`: it does not match this build of spliff")]
    Missing {
        /// "map" or "program".
        kind: &'static str,
        /// Its name.
        name: &'static str,
    },
    /// The verifier rejected a packet program.
    #[error(
        "the kernel rejected BPF program `{program}`; this is a spliff bug or an unsupported kernel"
    )]
    Load {
        /// Program name.
        program: &'static str,
        /// aya's error with the verifier log.
        #[source]
        source: ProgramError,
    },
    /// Neither native nor generic XDP could be attached.
    #[error("cannot attach XDP to {name} (ifindex {ifindex}) in native or generic mode")]
    Xdp {
        /// Interface name.
        name: String,
        /// Interface index.
        ifindex: u32,
        /// The generic-mode error (the native one is only a reason to fall back).
        #[source]
        source: ProgramError,
    },
    /// Neither tcx nor a clsact qdisc could take the TC program.
    #[error("cannot attach TC {direction} to {name} (ifindex {ifindex}) with tcx or clsact")]
    Tc {
        /// Interface name.
        name: String,
        /// Interface index.
        ifindex: u32,
        /// "ingress" or "egress".
        direction: &'static str,
        /// The last error.
        #[source]
        source: ProgramError,
    },
    /// A map operation failed.
    #[error("BPF map `{map}` operation failed for ifindex {ifindex}")]
    Map {
        /// Map name.
        map: &'static str,
        /// Interface index.
        ifindex: u32,
        /// aya's error.
        #[source]
        source: aya::maps::MapError,
    },
    /// The number of CPUs could not be read (for the per-CPU counters).
    #[error("cannot read the number of possible CPUs from {0}")]
    Cpus(&'static str, #[source] std::io::Error),
    /// The packet ring could not be added to what the event wait watches.
    #[error(
        "cannot watch the packet ring `{}` for wakeups (epoll)",
        names::PACKETS_MAP
    )]
    Watch(#[source] std::io::Error),
}

/// XDP mode an interface got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// In the driver.
    Native,
    /// In the generic (SKB) path, after the driver refused native mode.
    Generic,
}

/// How a TC program was attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcAttachMode {
    /// A tcx link (Linux 6.6+): no qdisc, detached when the link is dropped.
    Tcx,
    /// A filter on a clsact qdisc (older kernels).
    Clsact,
}

/// An attached packet hook. Dropping it detaches the program; on an
/// interface that is gone already, that is a no-op.
#[derive(Debug)]
pub enum PacketLink {
    /// XDP.
    Xdp(XdpLink),
    /// TC (tcx or clsact).
    Tc(SchedClassifierLink),
}

/// Which hook produced a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketHook {
    /// XDP (ingress only).
    Xdp,
    /// TC.
    Tc,
}

/// One packet as a hook saw it (kind [`EventKind::Packet`]), borrowing its bytes from
/// the ring record: whoever keeps it copies what it needs, once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketCapture<'a> {
    /// `CLOCK_BOOTTIME` when the hook ran.
    pub ts_ns: u64,
    /// Interface index (recorder's network namespace).
    pub ifindex: u32,
    /// Whole packet length as the hook saw it.
    pub wire_len: u32,
    /// `true`: received by the host; `false`: sent.
    pub ingress: bool,
    /// Which hook.
    pub hook: PacketHook,
    /// TC egress: cookie of the sending socket; 0 unknown.
    pub socket_cookie: u64,
    /// TC: ethertype of the packet (host order); 0 from XDP.
    pub protocol: u16,
    /// The bytes the hook kept: its headers, or the first snap-length bytes.
    pub data: &'a [u8],
}

/// What the hooks keep of each packet on one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureSettings {
    /// Bytes kept per packet at most (1..=256).
    pub snaplen: u32,
    /// Keep the link, network and transport headers only (measured per packet in the
    /// kernel), never payload, up to `snaplen`.
    pub headers_only: bool,
    /// Packets start with a link-layer (Ethernet) header; `false`: at the IP header.
    pub link_header: bool,
}

/// [`abi::PacketIface`] as a map value: aya reads and writes per-CPU values as plain bytes.
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
struct IfaceValue(abi::PacketIface);

// SAFETY: `PacketIface` is `repr(C)` with integer fields only and no padding (its layout
// test checks it against the C header), so any bytes are a valid value.
unsafe impl aya::Pod for IfaceValue {}

/// Counters of one interface, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketCounters {
    /// Packets the hooks saw.
    pub seen: u64,
    /// Packets put into the ring.
    pub written: u64,
    /// Packets lost because the ring was full.
    pub ring_full: u64,
    /// Wire bytes seen.
    pub bytes: u64,
}

/// The reader of the packet ring (`spliff_packets`).
pub struct PacketRing {
    ring: RingBuf<MapData>,
}

impl std::fmt::Debug for PacketRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketRing").finish_non_exhaustive()
    }
}

impl PacketRing {
    /// Hands every pending packet to `on_packet` without waiting; returns
    /// how many were handed over.
    pub fn drain<F>(&mut self, mut on_packet: F) -> usize
    where
        F: FnMut(Result<PacketCapture<'_>, DecodeError>),
    {
        let mut handed = 0;
        while handed < MAX_PACKETS_PER_DRAIN {
            let Some(item) = self.ring.next() else {
                break;
            };
            on_packet(decode_packet(&item));
            handed += 1;
        }
        handed
    }

    /// The ring's file descriptor (readable when the kernel woke it).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}

/// The fixed fields of a [`PacketEvent`] after its header.
struct PacketFixed {
    socket_cookie: u64,
    ifindex: u32,
    wire_len: u32,
    captured_len: u16,
    direction: u8,
    hook: u8,
    protocol: u16,
}

/// Decodes one record of the packet ring: header, fixed fields, then
/// `captured_len` bytes, all checked against what the ring delivered.
pub fn decode_packet(record: &[u8]) -> Result<PacketCapture<'_>, DecodeError> {
    let kind = EventKind::Packet;
    let len = record.len();
    let header = super::event::checked_header(record)?;
    if EventKind::from_raw(header.kind) != Some(kind) {
        return Err(DecodeError::UnknownKind {
            kind: header.kind,
            len,
        });
    }
    if len < PACKET_HEADER_LEN {
        return Err(DecodeError::WrongSize {
            kind,
            len,
            expected: PACKET_HEADER_LEN,
        });
    }
    // The fixed fields are read where they are: going through a whole PacketEvent meant a
    // zeroed 304-byte copy per packet, for records of about 114 bytes.
    let at = |offset: usize| &record[offset..];
    let u16_at = |offset: usize| u16::from_ne_bytes([at(offset)[0], at(offset)[1]]);
    let u32_at = |offset: usize| u32::from_ne_bytes(at(offset)[..4].try_into().unwrap_or([0; 4]));
    let u64_at = |offset: usize| u64::from_ne_bytes(at(offset)[..8].try_into().unwrap_or([0; 8]));
    let raw = PacketFixed {
        socket_cookie: u64_at(offset_of!(PacketEvent, socket_cookie)),
        ifindex: u32_at(offset_of!(PacketEvent, ifindex)),
        wire_len: u32_at(offset_of!(PacketEvent, wire_len)),
        captured_len: u16_at(offset_of!(PacketEvent, captured_len)),
        direction: at(offset_of!(PacketEvent, direction))[0],
        hook: at(offset_of!(PacketEvent, hook))[0],
        protocol: u16_at(offset_of!(PacketEvent, protocol)),
    };
    let captured = usize::from(raw.captured_len);
    if captured > PACKET_SNAPLEN_MAX || PACKET_HEADER_LEN + captured != len {
        return Err(DecodeError::InvalidField {
            kind,
            field: "captured_len",
            value: raw.captured_len.into(),
        });
    }
    let ingress = match raw.direction {
        DIR_INGRESS => true,
        DIR_EGRESS => false,
        other => {
            return Err(DecodeError::InvalidField {
                kind,
                field: "direction",
                value: other.into(),
            });
        }
    };
    let hook = match raw.hook {
        HOOK_XDP => PacketHook::Xdp,
        HOOK_TC => PacketHook::Tc,
        other => {
            return Err(DecodeError::InvalidField {
                kind,
                field: "hook",
                value: other.into(),
            });
        }
    };
    Ok(PacketCapture {
        ts_ns: header.ts_ns,
        ifindex: raw.ifindex,
        wire_len: raw.wire_len,
        ingress,
        hook,
        socket_cookie: raw.socket_cookie,
        protocol: raw.protocol,
        data: &record[PACKET_HEADER_LEN..],
    })
}

fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, PacketHookError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let program = ebpf.program_mut(name).ok_or(PacketHookError::Missing {
        kind: "program",
        name,
    })?;
    program.try_into().map_err(|source| PacketHookError::Load {
        program: name,
        source,
    })
}

fn map_error(map: &'static str, ifindex: u32) -> impl Fn(aya::maps::MapError) -> PacketHookError {
    move |source| PacketHookError::Map {
        map,
        ifindex,
        source,
    }
}

impl BpfPipeline {
    /// Loads (verifies) the XDP and TC programs; nothing is attached yet.
    /// Not done by [`BpfPipeline::load`]: `--no-packets` must not need them.
    pub fn load_packet_programs(&mut self) -> Result<(), PacketHookError> {
        let xdp: &mut Xdp = program_mut(&mut self.ebpf, names::XDP_PROGRAM)?;
        xdp.load().map_err(|source| PacketHookError::Load {
            program: names::XDP_PROGRAM,
            source,
        })?;
        for name in [names::TC_INGRESS_PROGRAM, names::TC_EGRESS_PROGRAM] {
            let tc: &mut SchedClassifier = program_mut(&mut self.ebpf, name)?;
            tc.load().map_err(|source| PacketHookError::Load {
                program: name,
                source,
            })?;
        }
        Ok(())
    }

    /// Takes the packet ring reader (once). From then on
    /// [`BpfPipeline::read_events`] also returns early when the kernel wakes
    /// the packet ring's reader (its unread data crossed the wakeup
    /// threshold); the caller drains it after each call.
    pub fn take_packet_ring(&mut self) -> Result<PacketRing, PacketHookError> {
        let map = self
            .ebpf
            .take_map(names::PACKETS_MAP)
            .ok_or(PacketHookError::Missing {
                kind: "map",
                name: names::PACKETS_MAP,
            })?;
        let ring = RingBuf::try_from(map).map_err(map_error(names::PACKETS_MAP, 0))?;
        // A flood wakes read_events before the ring overflows, rather than
        // waiting for its timer.
        self.wakeup
            .add_edge_triggered(ring.as_fd())
            .map_err(PacketHookError::Watch)?;
        Ok(PacketRing { ring })
    }

    /// Starts capturing on `ifindex`: its settings on every CPU, counters at zero. Until
    /// this, a hook already attached there passes packets unseen.
    pub fn capture_interface(
        &mut self,
        ifindex: u32,
        settings: CaptureSettings,
    ) -> Result<(), PacketHookError> {
        let cpus = aya::util::nr_cpus().map_err(|(path, e)| PacketHookError::Cpus(path, e))?;
        let mut flags = 0;
        if settings.headers_only {
            flags |= abi::IFACE_HEADERS_ONLY;
        }
        if !settings.link_header {
            flags |= abi::IFACE_NO_LINK_HEADER;
        }
        let value = IfaceValue(abi::PacketIface {
            snaplen: settings.snaplen.clamp(1, PACKET_SNAPLEN_MAX as u32),
            flags,
            ..Default::default()
        });
        let values = PerCpuValues::try_from(vec![value; cpus])
            .map_err(|e| PacketHookError::Cpus("/sys/devices/system/cpu/possible", e))?;
        self.packet_ifaces(ifindex)?
            .insert(ifindex, values, 0)
            .map_err(map_error(names::PACKET_IFACES_MAP, ifindex))
    }

    /// Stops capturing on `ifindex` and returns its final counters. Detach its hooks
    /// first: packets they see after this are not counted.
    pub fn release_interface(&mut self, ifindex: u32) -> Result<PacketCounters, PacketHookError> {
        let counters = self.interface_counters(ifindex)?;
        // Gone already is fine: the goal is that it is not there.
        let _ = self.packet_ifaces(ifindex)?.remove(&ifindex);
        Ok(counters)
    }

    /// The counters of `ifindex` so far, summed over CPUs (zero when it is
    /// not captured).
    pub fn interface_counters(&self, ifindex: u32) -> Result<PacketCounters, PacketHookError> {
        let map = self
            .ebpf
            .map(names::PACKET_IFACES_MAP)
            .ok_or(PacketHookError::Missing {
                kind: "map",
                name: names::PACKET_IFACES_MAP,
            })?;
        let ifaces = PerCpuHashMap::<_, u32, IfaceValue>::try_from(map)
            .map_err(map_error(names::PACKET_IFACES_MAP, ifindex))?;
        let Ok(per_cpu) = ifaces.get(&ifindex, 0) else {
            return Ok(PacketCounters::default());
        };
        let mut sum = PacketCounters::default();
        for IfaceValue(v) in per_cpu.iter().copied() {
            sum.seen = sum.seen.saturating_add(v.seen);
            sum.written = sum.written.saturating_add(v.written);
            sum.ring_full = sum.ring_full.saturating_add(v.ring_full);
            sum.bytes = sum.bytes.saturating_add(v.bytes);
        }
        Ok(sum)
    }

    fn packet_ifaces(
        &mut self,
        ifindex: u32,
    ) -> Result<PerCpuHashMap<&mut MapData, u32, IfaceValue>, PacketHookError> {
        let map = self
            .ebpf
            .map_mut(names::PACKET_IFACES_MAP)
            .ok_or(PacketHookError::Missing {
                kind: "map",
                name: names::PACKET_IFACES_MAP,
            })?;
        PerCpuHashMap::try_from(map).map_err(map_error(names::PACKET_IFACES_MAP, ifindex))
    }

    /// Attaches XDP to `ifindex`: native mode (when `native`), or generic
    /// mode when the driver has no native XDP (or refuses it). The error is
    /// the generic one; `native_error` receives why native mode was
    /// refused.
    pub fn attach_xdp(
        &mut self,
        ifindex: u32,
        name: &str,
        native: bool,
        native_error: &mut Option<String>,
    ) -> Result<(PacketLink, XdpAttachMode), PacketHookError> {
        let xdp: &mut Xdp = program_mut(&mut self.ebpf, names::XDP_PROGRAM)?;
        let attempt = if native {
            xdp.attach_to_if_index(ifindex, XdpMode::Driver)
                .map_err(|e| error_chain(&e))
        } else {
            Err(String::new())
        };
        let (id, mode) = match attempt {
            Ok(id) => (id, XdpAttachMode::Native),
            Err(why) => {
                if native {
                    *native_error = Some(why);
                }
                let id = xdp
                    .attach_to_if_index(ifindex, XdpMode::Skb)
                    .map_err(|source| PacketHookError::Xdp {
                        name: name.to_string(),
                        ifindex,
                        source,
                    })?;
                (id, XdpAttachMode::Generic)
            }
        };
        let link = xdp.take_link(id).map_err(|source| PacketHookError::Xdp {
            name: name.to_string(),
            ifindex,
            source,
        })?;
        Ok((PacketLink::Xdp(link), mode))
    }

    /// Attaches the TC program for one direction to interface `name`: a tcx
    /// link where the kernel has tcx (6.6+), else a filter on a clsact
    /// qdisc (added when missing; left in place at the end, as tc(8) would,
    /// since other tools may have filters on it by then).
    pub fn attach_tc(
        &mut self,
        ifindex: u32,
        name: &str,
        ingress: bool,
    ) -> Result<(PacketLink, TcAttachMode), PacketHookError> {
        let (program, attach_type, direction) = if ingress {
            (names::TC_INGRESS_PROGRAM, TcAttachType::Ingress, "ingress")
        } else {
            (names::TC_EGRESS_PROGRAM, TcAttachType::Egress, "egress")
        };
        let tc: &mut SchedClassifier = program_mut(&mut self.ebpf, program)?;
        let failed = |source| PacketHookError::Tc {
            name: name.to_string(),
            ifindex,
            direction,
            source,
        };
        let (id, mode) = match tc.attach_with_options(
            name,
            attach_type,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        ) {
            Ok(id) => (id, TcAttachMode::Tcx),
            Err(_) => {
                match tc::qdisc_add_clsact(name) {
                    Ok(()) | Err(TcError::AlreadyAttached) => {}
                    // Reported through the attach error below.
                    Err(_) => {}
                }
                let id = tc
                    .attach_with_options(
                        name,
                        attach_type,
                        TcAttachOptions::Netlink(tc::NlOptions::default()),
                    )
                    .map_err(failed)?;
                (id, TcAttachMode::Clsact)
            }
        };
        let link = tc.take_link(id).map_err(failed)?;
        Ok((PacketLink::Tc(link), mode))
    }
}

/// `error` and its sources on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use spliff_recorder_ebpf::abi::{AbiRecord as _, EventHeader};

    fn record(captured: u16, declared_captured: u16) -> Vec<u8> {
        let mut event = PacketEvent {
            header: EventHeader {
                kind: EventKind::Packet as u32,
                size: (PACKET_HEADER_LEN + usize::from(captured)) as u32,
                ts_ns: 5,
                pid: 0,
                tid: 0,
            },
            socket_cookie: 9,
            ifindex: 3,
            wire_len: 1500,
            captured_len: declared_captured,
            direction: DIR_EGRESS,
            hook: HOOK_TC,
            protocol: 0x0800,
            reserved16: 0,
            data: [0; PACKET_SNAPLEN_MAX],
        };
        event.data[0] = 0xab;
        event.as_bytes()[..PACKET_HEADER_LEN + usize::from(captured)].to_vec()
    }

    #[test]
    fn packets_decode_with_exactly_their_captured_bytes() {
        let bytes = record(60, 60);
        let packet = decode_packet(&bytes).unwrap();
        assert_eq!(packet.data.len(), 60);
        assert_eq!(packet.data[0], 0xab);
        assert_eq!(
            (packet.ifindex, packet.ingress, packet.hook),
            (3, false, PacketHook::Tc)
        );
        assert_eq!(packet.socket_cookie, 9);
    }

    #[test]
    fn inconsistent_lengths_are_errors_not_panics() {
        assert!(matches!(
            decode_packet(&record(60, 61)),
            Err(DecodeError::InvalidField {
                field: "captured_len",
                ..
            })
        ));
        assert!(decode_packet(&record(0, 0)).is_ok());
        let mut bad = record(10, 10);
        bad.truncate(20);
        assert!(decode_packet(&bad).is_err());
        let mut dir = record(10, 10);
        dir[offset_of_direction()] = 7;
        assert!(matches!(
            decode_packet(&dir),
            Err(DecodeError::InvalidField {
                field: "direction",
                ..
            })
        ));
    }

    fn offset_of_direction() -> usize {
        core::mem::offset_of!(PacketEvent, direction)
    }
}
