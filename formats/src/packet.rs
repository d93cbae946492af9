//! Packet metadata from the network hooks, carried as ordinary pcapng blocks (IDB, EPB, ISB) so
//! that any pcapng tool shows it.

use std::borrow::Cow;

/// An interface the recorder captured packets on (one pcapng Interface Description Block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Link type (1 = Ethernet, 101 = raw IP, 276 = Linux cooked v2).
    pub linktype: u16,
    /// Largest number of bytes kept per packet.
    pub snaplen: u32,
    /// Interface name, e.g. `eth0` (`if_name`).
    pub name: String,
    /// Free text, e.g. the hook and mode (`xdp generic`) (`if_description`).
    pub description: String,
}

/// Direction of a packet as pcapng's `epb_flags` encode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketDirection {
    /// Received by the host.
    Inbound,
    /// Sent by the host.
    Outbound,
}

/// One packet (an Enhanced Packet Block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Index of the interface in the order interfaces were added in this section.
    pub interface_id: u32,
    /// Wall-clock time in ns since the Unix epoch (written with `if_tsresol` = 9).
    pub ts_wall_ns: u64,
    /// Length of the packet on the wire; at least `data.len()`.
    pub original_len: u32,
    /// Captured bytes (headers only unless the user asked for payload).
    pub data: &'a [u8],
    /// Direction, when known.
    pub direction: Option<PacketDirection>,
    /// Free text, e.g. `pid=1234 comm=curl` for a packet of a known socket.
    pub comment: Option<Cow<'a, str>>,
}

/// Counters of one interface at the end of a capture (an Interface Statistics Block).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceStats {
    /// Interface index.
    pub interface_id: u32,
    /// When the counters were read, ns since the Unix epoch.
    pub ts_wall_ns: u64,
    /// Capture start, ns since the Unix epoch (`isb_starttime`).
    pub start_wall_ns: Option<u64>,
    /// Capture end, ns since the Unix epoch (`isb_endtime`).
    pub end_wall_ns: Option<u64>,
    /// Packets seen by the hook (`isb_ifrecv`).
    pub received: Option<u64>,
    /// Packets the hook dropped (`isb_ifdrop`).
    pub dropped: Option<u64>,
    /// Packets written to the trace (`isb_usrdeliv`).
    pub delivered: Option<u64>,
    /// Free text, e.g. the loss summary.
    pub comment: Option<String>,
}
