//! The interfaces of the recorder's network namespace, from rtnetlink: the
//! list at start and every link appearing or disappearing afterwards
//! (seeds 004, issue 4: the original tool attached once and never noticed
//! new interfaces).
//!
//! One socket does both: it joins the link multicast group first and then
//! asks for the dump, so a link created in between is reported (twice at
//! worst, which the caller treats as the same link).

use std::io;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// `RTNLGRP_LINK`: link created, changed, deleted.
const RTNLGRP_LINK: u32 = 1;

/// What the watcher could not do.
#[derive(Debug, thiserror::Error)]
pub enum LinkWatchError {
    /// The netlink socket could not be opened, bound or subscribed.
    #[error("cannot {step} an rtnetlink socket for interface events")]
    Socket {
        /// "open", "bind", "subscribe" ...
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// How a device frames its packets, which decides the hooks and the pcapng
/// link type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// An Ethernet header first (Ethernet devices, also loopback).
    Ethernet,
    /// The IP header first (tunnels such as ipip/sit/gre/wireguard, tun).
    RawIp,
    /// Anything else (CAN, InfiniBand, ...): not captured.
    Unsupported(u16),
}

/// One interface as rtnetlink describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Name, e.g. `eth0`.
    pub name: String,
    /// `IFLA_INFO_KIND`, e.g. `veth`, `vxlan`; empty for physical devices
    /// and loopback.
    pub kind: String,
    /// How packets are framed.
    pub framing: Framing,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
}

impl Link {
    /// Whether XDP would miss traffic here: tunnel devices get their
    /// packets by decapsulation, which XDP (a driver receive hook) never
    /// sees (seeds 004, issue 2), and devices without a link-layer header
    /// are not what XDP programs expect.
    pub fn xdp_blind(&self) -> bool {
        self.framing != Framing::Ethernet
            || matches!(
                self.kind.as_str(),
                "vxlan"
                    | "geneve"
                    | "gretap"
                    | "ip6gretap"
                    | "erspan"
                    | "ip6erspan"
                    | "bareudp"
                    | "wireguard"
                    | "ipip"
                    | "sit"
                    | "gre"
                    | "ip6gre"
                    | "ip6tnl"
                    | "vti"
                    | "vti6"
                    | "xfrm"
                    | "tun"
                    | "gtp"
                    | "amt"
                    | "macsec"
            )
    }
}

/// A change in the set of interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkChange {
    /// The link exists (listed at start, created, or changed: the caller
    /// ignores indexes it already knows).
    Present(Link),
    /// The link was deleted (or moved to another namespace).
    Gone {
        /// Interface index.
        index: u32,
        /// Name, when the message carried one.
        name: String,
    },
}

/// Subscribed rtnetlink socket.
#[derive(Debug)]
pub struct LinkWatcher {
    socket: Socket,
    buffer: Vec<u8>,
    /// Messages that failed to parse (counted, never fatal).
    pub malformed: u64,
}

impl LinkWatcher {
    /// Opens a socket, subscribes to link events and requests the list of
    /// current links (read with [`LinkWatcher::poll`]).
    pub fn open() -> Result<Self, LinkWatchError> {
        let err = |step| move |source| LinkWatchError::Socket { step, source };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(err("open"))?;
        socket.bind(&SocketAddr::new(0, 0)).map_err(err("bind"))?;
        socket
            .add_membership(RTNLGRP_LINK)
            .map_err(err("subscribe"))?;
        // A burst of link events must not be lost silently: a big receive
        // buffer, and ENOBUFS reported (it arrives as an error from recv).
        let _ = socket.set_rx_buf_sz(4 * 1024 * 1024);
        socket.set_non_blocking(true).map_err(err("configure"))?;

        socket
            .send(&link_dump_request(1), 0)
            .map_err(err("send the link dump request on"))?;
        Ok(Self {
            socket,
            buffer: vec![0; 256 * 1024],
            malformed: 0,
        })
    }

    /// Reads every pending message without blocking and returns the
    /// changes they describe, in order. `Err` only for a socket failure
    /// other than "nothing pending"; an overrun (ENOBUFS: events were lost)
    /// is returned as `Ok` with `overrun` set, so the caller can re-list.
    pub fn poll(&mut self, overrun: &mut bool) -> io::Result<Vec<LinkChange>> {
        let mut changes = Vec::new();
        loop {
            let n = match self.socket.recv(&mut &mut self.buffer[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    *overrun = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.parse(n, &mut changes);
        }
        Ok(changes)
    }

    /// Asks for the full list again (after an overrun).
    pub fn request_dump(&mut self) -> io::Result<()> {
        self.socket.send(&link_dump_request(0), 0).map(|_| ())
    }

    fn parse(&mut self, n: usize, changes: &mut Vec<LinkChange>) {
        let mut offset = 0;
        while offset < n {
            let bytes = &self.buffer[offset..n];
            let message = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
                Ok(message) => message,
                Err(_) => {
                    // Without a valid length the rest of the datagram
                    // cannot be framed: skip it.
                    self.malformed += 1;
                    return;
                }
            };
            let len = usize::try_from(message.header.length).unwrap_or(0);
            // nlmsg lengths are 4-aligned in the datagram.
            let step = len.div_ceil(4) * 4;
            if step == 0 {
                self.malformed += 1;
                return;
            }
            offset += step;
            match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    if let Some(link) = describe(&link) {
                        changes.push(LinkChange::Present(link));
                    }
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    changes.push(LinkChange::Gone {
                        index: link.header.index,
                        name: name_of(&link).unwrap_or_default(),
                    });
                }
                _ => {}
            }
        }
    }
}

fn name_of(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}

/// The link a NEWLINK message describes; `None` without a name (never
/// seen in practice, but nothing could be attached by name then).
pub fn describe(link: &LinkMessage) -> Option<Link> {
    let name = name_of(link)?;
    let kind = link
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Kind(kind) => Some(kind_name(kind)),
                _ => None,
            }),
            _ => None,
        })
        .unwrap_or_default();
    let framing = match link.header.link_layer_type {
        LinkLayerType::Ether | LinkLayerType::Loopback => Framing::Ethernet,
        LinkLayerType::None
        | LinkLayerType::Tunnel
        | LinkLayerType::Tunnel6
        | LinkLayerType::Sit
        | LinkLayerType::Ipgre
        | LinkLayerType::Ip6gre => Framing::RawIp,
        other => Framing::Unsupported(u16::from(other)),
    };
    Some(Link {
        index: link.header.index,
        name,
        kind,
        framing,
        loopback: link.header.flags.contains(LinkFlags::Loopback),
    })
}

fn kind_name(kind: &InfoKind) -> String {
    // InfoKind's Display is the kernel's IFLA_INFO_KIND string.
    kind.to_string()
}

/// An RTM_GETLINK dump request: the list of every link, as `RTM_NEWLINK` messages.
fn link_dump_request(sequence_number: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = sequence_number;
    let mut request = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(LinkMessage::default())),
    );
    request.finalize();
    let mut bytes = vec![0; request.buffer_len()];
    request.serialize(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(kind: &str, framing: Framing) -> Link {
        Link {
            index: 2,
            name: "x".into(),
            kind: kind.into(),
            framing,
            loopback: false,
        }
    }

    #[test]
    fn tunnels_and_headerless_devices_are_xdp_blind() {
        assert!(!link("veth", Framing::Ethernet).xdp_blind());
        assert!(!link("", Framing::Ethernet).xdp_blind());
        assert!(link("vxlan", Framing::Ethernet).xdp_blind());
        assert!(link("wireguard", Framing::RawIp).xdp_blind());
        assert!(link("", Framing::RawIp).xdp_blind());
    }

    #[test]
    fn garbage_datagrams_are_counted_not_fatal() {
        let mut watcher = LinkWatcher {
            socket: Socket::new(NETLINK_ROUTE).unwrap(),
            buffer: vec![0xff; 64],
            malformed: 0,
        };
        let mut changes = Vec::new();
        watcher.parse(64, &mut changes);
        assert!(changes.is_empty());
        assert_eq!(watcher.malformed, 1);
    }
}
