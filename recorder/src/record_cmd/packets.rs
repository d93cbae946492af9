//! The packet side of `spliff record`: which hooks go on which interface,
//! following interfaces as they come and go, and turning captured headers
//! into pcapng blocks (IDB per interface, EPB per packet, ISB at the end)
//! next to the spliff records.
//!
//! Hook choice, so that each packet is seen once per interface:
//! - Physical Ethernet devices: XDP for ingress (native, else generic; TC
//!   ingress if XDP is refused entirely) and TC for egress.
//! - Virtual Ethernet devices (veth, bridge, bond, macvlan, ...): TC for
//!   both directions unless `--ingress-hook xdp` asks for XDP. Measured on a
//!   veth pair (docs/BENCHMARKS.md): native XDP on veth turns off GRO, so
//!   every MTU-sized frame goes through the stack alone, and generic XDP
//!   copies every non-linear skb; either cost several times the 5% budget,
//!   while TC sees the same packets in place.
//! - Tunnels and devices without a link-layer header: TC for both
//!   directions. XDP runs before decapsulation and misses what a tunnel
//!   delivers (seeds 004, issue 2); TC ingress on the tunnel device sees the
//!   inner packets.
//! - Loopback: TC egress only. Every lo packet passes egress and then
//!   ingress of the same device, so one hook gives each packet once (as
//!   tcpdump shows it); it is marked outbound, where it was taken.
//!
//! Packets wait a short, bounded time before they are written: the SYN of a
//! connection is usually captured before the TLS probes (or sock_ops)
//! report its socket, and the comment naming the process is only known
//! then. Nothing is dropped to keep the bound; the oldest packets are
//! written early instead.

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    fs::File,
    net::SocketAddr,
    rc::Rc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use spliff_formats::{
    HookKind, Interface, InterfaceEvent, InterfaceEventKind, InterfaceStats, Packet,
    PacketDirection, Record,
};
use spliff_recorder::{
    bpf::{
        BpfPipeline, CaptureSettings, MAX_PACKETS_PER_DRAIN, PacketCounters, PacketLink,
        PacketRing, TcAttachMode, XdpAttachMode,
    },
    net::{
        links::{Framing, Link, LinkChange, LinkWatcher},
        packet_headers::{PacketFlow, flow_of},
        socket_table::{FiveTuple, Flow, SocketTable, canonical},
    },
};

use super::convert::Converter;
use super::held_packets::{HeldPacket, HeldPackets};

/// How long a packet waits for its socket to become known.
const HOLD: Duration = Duration::from_millis(500);
/// Packets held at most; beyond, the oldest are written at once.
const MAX_HELD: usize = 100_000;
/// How long the final drain of the packet ring may take: it reads millions of packets a
/// second, so this takes in whatever was captured before the stop.
const FINAL_DRAIN_AT_MOST: Duration = Duration::from_millis(500);
/// pcapng link types.
const LINKTYPE_ETHERNET: u16 = 1;
const LINKTYPE_RAW: u16 = 101;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct PacketOptions {
    /// `-i` names; empty: every interface.
    pub interfaces: Vec<String>,
    /// Bytes kept per packet at most.
    pub snaplen: u32,
    /// Keep only each packet's headers (link, network, transport), up to `snaplen`.
    pub headers_only: bool,
    /// Which hook takes ingress on Ethernet devices.
    pub ingress_hook: IngressHook,
}

/// Which hook takes ingress on Ethernet devices that are not tunnels
/// (tunnels and raw-IP devices always get TC: XDP cannot see their
/// traffic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressHook {
    /// XDP on physical devices, TC on virtual ones.
    Auto,
    /// XDP, native mode where the driver has it, else generic.
    Xdp,
    /// XDP in generic mode only.
    XdpGeneric,
    /// TC everywhere.
    Tc,
}

/// Maps the kernel clock (`CLOCK_BOOTTIME`) to wall-clock ns, from the two
/// clocks read back to back at capture start.
#[derive(Debug, Clone, Copy)]
pub struct ClockMap {
    /// `CLOCK_BOOTTIME` at the reference point.
    pub boot_ns: u64,
    /// `CLOCK_REALTIME` at the reference point.
    pub wall_ns: u64,
}

impl ClockMap {
    fn wall(self, boot_ns: u64) -> u64 {
        let delta = i128::from(boot_ns) - i128::from(self.boot_ns);
        u64::try_from(i128::from(self.wall_ns) + delta).unwrap_or(0)
    }
}

/// Counters for the summary line.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetStats {
    /// EPBs written.
    pub packets: u64,
    /// Of those, with a process comment.
    pub commented: u64,
    /// Packets lost in the kernel (packet ring full), all interfaces.
    pub dropped: u64,
    /// Interfaces captured (ever).
    pub interfaces: u64,
    /// Packet records that failed validation.
    pub invalid: u64,
    /// Packets of an interface the recorder did not know (skipped).
    pub unknown_interface: u64,
}

/// One hook on an interface.
struct Hook {
    kind: HookKind,
    link: PacketLink,
}

/// An interface with an IDB.
struct Captured {
    link: Link,
    interface_id: u32,
    hooks: Vec<Hook>,
    start_wall_ns: u64,
    delivered: u64,
}

/// The packet capture of one recording.
pub struct Network {
    ring: PacketRing,
    watcher: LinkWatcher,
    wanted: Option<HashSet<String>>,
    snaplen: u32,
    headers_only: bool,
    ingress_hook: IngressHook,
    clock: ClockMap,
    /// Interfaces the capture knows (reported as appeared), by index.
    known: HashMap<u32, String>,
    /// Interfaces with hooks, by index.
    captured: HashMap<u32, Captured>,
    /// Interfaces that went away: their IDB id and framing, for packets
    /// still in the ring or held.
    retired: HashMap<u32, (u32, Framing)>,
    held: HeldPackets,
    /// Bytes of the packet being written (reused).
    scratch: Vec<u8>,
    /// Owner and comment per flow, reused while the socket table is unchanged: a bulk flow
    /// sends thousands of packets with the same answer, and working it out anew (hashing,
    /// formatting) was most of the recorder's time per packet.
    flows: FlowCache,
    /// Messages for the user, held back while `started` is false: the
    /// first line spliff prints says that recording started.
    messages: Vec<String>,
    started: bool,
    /// What happened so far.
    pub stats: NetStats,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Network {
    /// Loads the packet programs, subscribes to interface events and
    /// attaches to every wanted interface that exists now.
    pub fn start(
        pipeline: &mut BpfPipeline,
        converter: &mut Converter<File>,
        options: &PacketOptions,
        clock: ClockMap,
        now_boot_ns: u64,
    ) -> anyhow::Result<Self> {
        pipeline
            .load_packet_programs()
            .context("cannot load the packet programs (use --no-packets to record without)")?;
        let ring = pipeline.take_packet_ring()?;
        let watcher = LinkWatcher::open()
            .context("cannot follow network interfaces (use --no-packets to record without)")?;
        let mut network = Self {
            ring,
            watcher,
            wanted: (!options.interfaces.is_empty())
                .then(|| options.interfaces.iter().cloned().collect()),
            snaplen: options.snaplen,
            headers_only: options.headers_only,
            ingress_hook: options.ingress_hook,
            clock,
            known: HashMap::new(),
            captured: HashMap::new(),
            retired: HashMap::new(),
            held: HeldPackets::default(),
            scratch: Vec::new(),
            flows: FlowCache::default(),
            messages: Vec::new(),
            started: false,
            stats: NetStats::default(),
        };
        network.follow_links(pipeline, converter, now_boot_ns)?;
        if let Some(wanted) = &network.wanted {
            for name in wanted {
                if !network.known.values().any(|n| n == name) {
                    network.messages.push(format!(
                        "spliff: warning: no interface {name} (-i) in this network namespace yet; \
                         it is captured if it appears"
                    ));
                }
            }
        }
        Ok(network)
    }

    /// Prints what happened at start (after spliff's "recording" line);
    /// from now on messages are printed as they come.
    pub fn started(&mut self) {
        self.started = true;
        for message in self.messages.drain(..) {
            eprintln!("{message}");
        }
    }

    fn say(&mut self, message: String) {
        if self.started {
            eprintln!("{message}");
        } else {
            self.messages.push(message);
        }
    }

    /// One turn of the record loop: interface changes, new packets, and the
    /// packets whose wait is over. Returns whether the packet ring may still
    /// hold more (the drain stopped at its limit): the loop should not sleep
    /// before the next turn.
    pub fn turn(
        &mut self,
        pipeline: &mut BpfPipeline,
        converter: &mut Converter<File>,
        now_boot_ns: u64,
    ) -> anyhow::Result<bool> {
        self.follow_links(pipeline, converter, now_boot_ns)?;
        let backlog = self.drain() >= MAX_PACKETS_PER_DRAIN;
        let cutoff = now_boot_ns.saturating_sub(HOLD.as_nanos() as u64);
        self.write_held(converter, Some(cutoff))?;
        self.flows.flush(converter.sockets());
        Ok(backlog)
    }

    /// The end: every packet written, every hook detached, one ISB per
    /// interface.
    pub fn finish(
        mut self,
        pipeline: &mut BpfPipeline,
        converter: &mut Converter<File>,
        now_boot_ns: u64,
    ) -> anyhow::Result<NetStats> {
        // Bounded: the hooks are still attached, so on a busy interface the ring never runs
        // dry, and what arrives after the stop is not part of the capture.
        let until = Instant::now() + FINAL_DRAIN_AT_MOST;
        while self.drain() > 0 && Instant::now() < until {}
        self.write_held(converter, None)?;
        self.flows.flush(converter.sockets());
        let indexes: Vec<u32> = self.captured.keys().copied().collect();
        for index in indexes {
            self.release(pipeline, converter, index, now_boot_ns)?;
        }
        if self.watcher.malformed > 0 {
            eprintln!(
                "spliff: warning: {} malformed rtnetlink messages were ignored",
                self.watcher.malformed
            );
        }
        Ok(self.stats)
    }

    fn drain(&mut self) -> usize {
        let held = &mut self.held;
        let stats = &mut self.stats;
        self.ring.drain(|packet| match packet {
            Ok(packet) => held.push(&packet),
            Err(_) => stats.invalid += 1,
        })
    }

    fn follow_links(
        &mut self,
        pipeline: &mut BpfPipeline,
        converter: &mut Converter<File>,
        now_boot_ns: u64,
    ) -> anyhow::Result<()> {
        let mut overrun = false;
        let changes = self
            .watcher
            .poll(&mut overrun)
            .context("reading interface events from rtnetlink failed")?;
        if overrun {
            // Events were lost: the full list again tells what exists; a
            // removal missed in between shows as packets stopping, and
            // the hook of a deleted device is gone with it anyway.
            eprintln!(
                "spliff: warning: interface events were lost (rtnetlink overrun); re-listing"
            );
            self.watcher.request_dump().ok();
        }
        for change in changes {
            match change {
                LinkChange::Present(link) => {
                    if self.known.get(&link.index) == Some(&link.name) {
                        continue;
                    }
                    if let Some(known) = self.known.get_mut(&link.index) {
                        // Renamed: the IDB keeps the old name; nothing
                        // else changes for the hooks.
                        *known = link.name.clone();
                        continue;
                    }
                    self.appeared(pipeline, converter, link, now_boot_ns)?;
                }
                LinkChange::Gone { index, name } => {
                    self.disappeared(pipeline, converter, index, &name, now_boot_ns)?;
                }
            }
        }
        Ok(())
    }

    fn record(
        converter: &mut Converter<File>,
        ts_ns: u64,
        event: InterfaceEvent<'_>,
    ) -> anyhow::Result<()> {
        converter
            .write_record(ts_ns, &Record::Interface(event))
            .context("cannot write the trace")
    }

    fn appeared(
        &mut self,
        pipeline: &mut BpfPipeline,
        converter: &mut Converter<File>,
        link: Link,
        ts: u64,
    ) -> anyhow::Result<()> {
        self.known.insert(link.index, link.name.clone());
        let selected = self.wanted.as_ref().is_none_or(|w| w.contains(&link.name));
        let detail = format!(
            "{}{}",
            if link.kind.is_empty() {
                "device"
            } else {
                &link.kind
            },
            if selected { "" } else { "; not selected (-i)" }
        );
        Self::record(
            converter,
            ts,
            event(
                link.index,
                None,
                InterfaceEventKind::Appeared,
                HookKind::None,
                &link.name,
                &detail,
            ),
        )?;
        if !selected {
            return Ok(());
        }
        let (index, name) = (link.index, link.name.clone());
        let failed = |converter: &mut Converter<File>, why: &str| {
            Self::record(
                converter,
                ts,
                event(
                    index,
                    None,
                    InterfaceEventKind::AttachFailed,
                    HookKind::None,
                    &name,
                    why,
                ),
            )
        };
        if let Framing::Unsupported(linktype) = link.framing {
            return failed(
                converter,
                &format!("link type {linktype} is not supported (Ethernet and raw IP are)"),
            );
        }
        let settings = CaptureSettings {
            snaplen: self.snaplen,
            headers_only: self.headers_only,
            link_header: link.framing == Framing::Ethernet,
        };
        if let Err(error) = pipeline.capture_interface(index, settings) {
            return failed(converter, &format!("{:#}", anyhow::Error::from(error)));
        }
        let (hooks, failures) = attach_hooks(pipeline, &link, self.ingress_hook);
        if hooks.is_empty() {
            let _ = pipeline.release_interface(index);
            for (kind, why) in &failures {
                Self::record(
                    converter,
                    ts,
                    event(
                        index,
                        None,
                        InterfaceEventKind::AttachFailed,
                        *kind,
                        &name,
                        why,
                    ),
                )?;
            }
            self.say(format!(
                "spliff: warning: cannot capture packets on {name}: {}",
                failures
                    .iter()
                    .map(|(_, why)| why.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            return Ok(());
        }
        let description = format!(
            "spliff: {}{}",
            hooks
                .iter()
                .map(|(hook, _)| hook.kind.name())
                .collect::<Vec<_>>()
                .join(", "),
            if link.kind.is_empty() {
                String::new()
            } else {
                format!(" ({})", link.kind)
            }
        );
        let interface_id = converter
            .writer()
            .add_interface(&Interface {
                linktype: match link.framing {
                    Framing::RawIp => LINKTYPE_RAW,
                    _ => LINKTYPE_ETHERNET,
                },
                snaplen: self.snaplen,
                name: name.clone(),
                description,
            })
            .context("cannot write the trace")?;
        for (hook, note) in &hooks {
            Self::record(
                converter,
                ts,
                event(
                    index,
                    Some(interface_id),
                    InterfaceEventKind::Attached,
                    hook.kind,
                    &name,
                    note,
                ),
            )?;
        }
        for (kind, why) in &failures {
            Self::record(
                converter,
                ts,
                event(
                    index,
                    Some(interface_id),
                    InterfaceEventKind::AttachFailed,
                    *kind,
                    &name,
                    why,
                ),
            )?;
        }
        self.say(format!(
            "spliff: capturing packets on {name}: {}",
            hooks
                .iter()
                .map(|(hook, _)| hook.kind.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        self.stats.interfaces += 1;
        self.retired.remove(&index);
        self.captured.insert(
            index,
            Captured {
                link,
                interface_id,
                hooks: hooks.into_iter().map(|(hook, _)| hook).collect(),
                start_wall_ns: self.clock.wall(ts),
                delivered: 0,
            },
        );
        Ok(())
    }

    fn disappeared(
        &mut self,
        pipeline: &mut BpfPipeline,
        converter: &mut Converter<File>,
        index: u32,
        name: &str,
        ts: u64,
    ) -> anyhow::Result<()> {
        let Some(known) = self.known.remove(&index) else {
            return Ok(());
        };
        let name = if name.is_empty() {
            known
        } else {
            name.to_string()
        };
        let interface_id = self.captured.get(&index).map(|c| c.interface_id);
        if self.captured.contains_key(&index) {
            self.say(format!(
                "spliff: interface {name} is gone; its hooks are detached"
            ));
            // Its last packets first, while the interface is still known.
            self.drain();
            self.write_held_of(converter, index)?;
            self.release(pipeline, converter, index, ts)?;
        }
        Self::record(
            converter,
            ts,
            event(
                index,
                interface_id,
                InterfaceEventKind::Disappeared,
                HookKind::None,
                &name,
                "",
            ),
        )
    }

    /// Detaches `index`'s hooks and writes its ISB.
    fn release(
        &mut self,
        pipeline: &mut BpfPipeline,
        converter: &mut Converter<File>,
        index: u32,
        ts: u64,
    ) -> anyhow::Result<()> {
        let Some(captured) = self.captured.remove(&index) else {
            return Ok(());
        };
        let mut detached = Vec::with_capacity(captured.hooks.len());
        for hook in captured.hooks {
            // Dropping the link detaches it (a no-op for a deleted device,
            // whose hooks the kernel removed with it). Before the counters
            // are read: a packet the hooks count after that would be lost.
            drop(hook.link);
            detached.push(hook.kind);
        }
        let counters = pipeline.release_interface(index).unwrap_or_else(|error| {
            eprintln!("spliff: warning: {:#}", anyhow::Error::from(error));
            PacketCounters::default()
        });
        for kind in detached {
            Self::record(
                converter,
                ts,
                event(
                    index,
                    Some(captured.interface_id),
                    InterfaceEventKind::Detached,
                    kind,
                    &captured.link.name,
                    "",
                ),
            )?;
        }
        self.stats.dropped += counters.ring_full;
        let end = self.clock.wall(ts);
        converter
            .writer()
            .write_interface_stats(&InterfaceStats {
                interface_id: captured.interface_id,
                ts_wall_ns: end,
                start_wall_ns: Some(captured.start_wall_ns),
                end_wall_ns: Some(end),
                received: Some(counters.seen),
                dropped: Some(counters.ring_full),
                delivered: Some(captured.delivered),
                comment: Some(format!(
                    "{} packets ({} bytes) seen by the hooks, {} written, {} dropped because the \
                     packet ring was full",
                    counters.seen, counters.bytes, captured.delivered, counters.ring_full
                )),
            })
            .context("cannot write the trace")?;
        self.retired
            .insert(index, (captured.interface_id, captured.link.framing));
        Ok(())
    }

    /// Writes held packets older than `cutoff` (all with `None`), and the
    /// oldest beyond the bound.
    fn write_held(
        &mut self,
        converter: &mut Converter<File>,
        cutoff: Option<u64>,
    ) -> anyhow::Result<()> {
        let mut buf = std::mem::take(&mut self.scratch);
        while let Some(front) = self.held.front() {
            let due = cutoff.is_none_or(|c| front.ts_ns <= c) || self.held.len() > MAX_HELD;
            if !due {
                break;
            }
            if let Some(packet) = self.held.pop_front(&mut buf) {
                self.write_packet(converter, &packet, &buf)?;
            }
        }
        self.scratch = buf;
        Ok(())
    }

    fn write_held_of(&mut self, converter: &mut Converter<File>, index: u32) -> anyhow::Result<()> {
        let mut mine = self.held.take_interface(index);
        let mut buf = Vec::new();
        while let Some(packet) = mine.pop_front(&mut buf) {
            self.write_packet(converter, &packet, &buf)?;
        }
        Ok(())
    }

    fn write_packet(
        &mut self,
        converter: &mut Converter<File>,
        packet: &HeldPacket,
        data: &[u8],
    ) -> anyhow::Result<()> {
        let (interface_id, framing) = match self.captured.get_mut(&packet.ifindex) {
            Some(captured) => {
                captured.delivered += 1;
                (captured.interface_id, captured.link.framing)
            }
            None => match self.retired.get(&packet.ifindex) {
                Some(&(id, framing)) => (id, framing),
                None => {
                    self.stats.unknown_interface += 1;
                    return Ok(());
                }
            },
        };
        let comment = flow_of(data, framing).and_then(|flow| {
            self.flows
                .comment(converter.sockets(), flow, packet.socket_cookie)
        });
        if comment.is_some() {
            self.stats.commented += 1;
        }
        converter
            .writer()
            .write_packet(&Packet {
                interface_id,
                ts_wall_ns: self.clock.wall(packet.ts_ns),
                original_len: packet.wire_len,
                data,
                direction: Some(if packet.ingress {
                    PacketDirection::Inbound
                } else {
                    PacketDirection::Outbound
                }),
                comment: comment.as_deref().map(Cow::Borrowed),
            })
            .context("cannot write the trace")?;
        self.stats.packets += 1;
        Ok(())
    }
}

/// What [`owner_of`] said about a flow, and when (the socket table's generation).
struct FlowOwner {
    generation: u64,
    src: SocketAddr,
    dst: SocketAddr,
    comment: Option<Rc<str>>,
    /// Packets (and their IP bytes) answered from the cache and not yet counted in the
    /// socket table: counted in one go by [`FlowCache::flush`].
    pending_packets: u64,
    pending_bytes: u64,
}

/// Owner and comment per flow (protocol, addresses, sending socket's cookie), for the
/// socket table's current generation only: an answer from an older one is never used again,
/// and keeping it would grow the cache by every flow of a capture of short connections.
#[derive(Default)]
struct FlowCache {
    flows: foldhash::HashMap<(u8, SocketAddr, SocketAddr, u64), FlowOwner>,
    /// Flows with pending counts.
    dirty: Vec<(u8, SocketAddr, SocketAddr, u64)>,
    /// The table generation all cached answers are from.
    generation: u64,
}

impl FlowCache {
    /// Who owns `flow` ([`owner_of`]), from the cache while the socket table is unchanged;
    /// counts the packet either way (a cached answer's count waits for [`FlowCache::flush`]).
    fn comment(
        &mut self,
        sockets: &mut SocketTable,
        flow: PacketFlow,
        cookie: u64,
    ) -> Option<Rc<str>> {
        let key = (flow.protocol, flow.src, flow.dst, cookie);
        let generation = sockets.generation();
        if let Some(known) = self.flows.get_mut(&key)
            && known.generation == generation
        {
            if known.pending_packets == 0 {
                self.dirty.push(key);
            }
            known.pending_packets += 1;
            known.pending_bytes += flow.ip_len;
            return known.comment.clone();
        }
        // The table changed since those counts were taken: they belong to it as it was.
        self.flush(sockets);
        let (src, dst, comment) = owner_of(sockets, flow, cookie);
        if self.flows.len() >= FLOWS_CACHED || self.generation != generation {
            self.flows.clear();
            self.generation = generation;
        }
        let comment: Option<Rc<str>> = comment.map(Rc::from);
        self.flows.insert(
            key,
            FlowOwner {
                generation,
                src,
                dst,
                comment: comment.clone(),
                pending_packets: 0,
                pending_bytes: 0,
            },
        );
        comment
    }

    /// Counts the pending packets in the socket table. Called before the table can change
    /// (the end of each turn, before the socket events of the next) and at the end, so each
    /// packet is counted against the table it was looked up in, as if counted at once;
    /// hashing the flow into the table for every packet was a large share of the time per
    /// packet.
    fn flush(&mut self, sockets: &mut SocketTable) {
        for key in self.dirty.drain(..) {
            if let Some(known) = self.flows.get_mut(&key) {
                sockets.count_only(
                    key.0,
                    known.src,
                    known.dst,
                    known.pending_packets,
                    known.pending_bytes,
                );
                known.pending_packets = 0;
                known.pending_bytes = 0;
            }
        }
    }
}

/// Flows whose owner is cached at most; beyond, the cache starts over (bounded memory).
const FLOWS_CACHED: usize = 65_536;

/// Attaches the hooks `link` gets (see the module comment). Returns the
/// attached hooks with a note each, and the failures.
#[allow(clippy::type_complexity)]
fn attach_hooks(
    pipeline: &mut BpfPipeline,
    link: &Link,
    ingress_hook: IngressHook,
) -> (Vec<(Hook, String)>, Vec<(HookKind, String)>) {
    let mut hooks = Vec::new();
    let mut failures = Vec::new();
    let (index, name) = (link.index, link.name.as_str());
    let tc = |pipeline: &mut BpfPipeline,
              ingress: bool,
              note: String,
              hooks: &mut Vec<(Hook, String)>,
              failures: &mut Vec<(HookKind, String)>| {
        match pipeline.attach_tc(index, name, ingress) {
            Ok((link, mode)) => {
                let kind = match (mode, ingress) {
                    (TcAttachMode::Tcx, true) => HookKind::TcxIngress,
                    (TcAttachMode::Tcx, false) => HookKind::TcxEgress,
                    (TcAttachMode::Clsact, true) => HookKind::ClsactIngress,
                    (TcAttachMode::Clsact, false) => HookKind::ClsactEgress,
                };
                hooks.push((Hook { kind, link }, note));
            }
            Err(error) => failures.push((
                if ingress {
                    HookKind::TcxIngress
                } else {
                    HookKind::TcxEgress
                },
                format!("{:#}", anyhow::Error::from(error)),
            )),
        }
    };
    if link.loopback {
        tc(
            pipeline,
            false,
            "loopback: egress only, each packet once".into(),
            &mut hooks,
            &mut failures,
        );
        return (hooks, failures);
    }
    if link.xdp_blind() {
        tc(
            pipeline,
            true,
            format!(
                "ingress by TC: XDP does not see what a {} device receives",
                if link.kind.is_empty() {
                    "raw-IP"
                } else {
                    &link.kind
                }
            ),
            &mut hooks,
            &mut failures,
        );
    } else if ingress_hook == IngressHook::Tc
        || (ingress_hook == IngressHook::Auto && !link.kind.is_empty())
    {
        let note = if ingress_hook == IngressHook::Tc {
            "ingress by TC (--ingress-hook tc)".to_string()
        } else {
            format!(
                "ingress by TC: on a virtual device ({}) XDP costs throughput for nothing \
                 (--ingress-hook xdp forces it)",
                link.kind
            )
        };
        tc(pipeline, true, note, &mut hooks, &mut failures);
    } else {
        let mut native_error = None;
        let native = ingress_hook != IngressHook::XdpGeneric;
        match pipeline.attach_xdp(index, name, native, &mut native_error) {
            Ok((link, mode)) => {
                let (kind, note) = match mode {
                    XdpAttachMode::Native => (HookKind::XdpNative, "native mode".to_string()),
                    XdpAttachMode::Generic => (
                        HookKind::XdpGeneric,
                        match native_error {
                            Some(why) => format!("generic mode; native refused: {why}"),
                            None => "generic mode (--ingress-hook xdp-generic)".to_string(),
                        },
                    ),
                };
                hooks.push((Hook { kind, link }, note));
            }
            Err(error) => {
                failures.push((
                    HookKind::XdpGeneric,
                    format!("{:#}", anyhow::Error::from(error)),
                ));
                tc(
                    pipeline,
                    true,
                    "ingress by TC: XDP could not be attached".into(),
                    &mut hooks,
                    &mut failures,
                );
            }
        }
    }
    tc(pipeline, false, String::new(), &mut hooks, &mut failures);
    (hooks, failures)
}

/// `pid=1234 comm=curl conn=3` for each known socket the packet belongs
/// to (two when both ends are local), counting the packet for them.
///
/// `cookie` (TC egress: the sending socket) finds the owner when the
/// headers do not: source NAT rewrites the packet before TC egress sees
/// it, so its tuple is not the socket's any more.
#[cfg(test)]
fn owner_comment(sockets: &mut SocketTable, flow: PacketFlow, cookie: u64) -> Option<String> {
    owner_of(sockets, flow, cookie).2
}

/// Counts the packet for the sockets it belongs to and describes them. Returns the addresses
/// it was counted under (the sending socket's own when only the cookie knew it) and the
/// comment.
fn owner_of(
    sockets: &mut SocketTable,
    flow: PacketFlow,
    cookie: u64,
) -> (SocketAddr, SocketAddr, Option<String>) {
    // The table stores IPv4-mapped addresses (dual-stack sockets) as IPv4,
    // as the packets carry them.
    let sent = FiveTuple {
        protocol: flow.protocol,
        local: canonical(flow.src),
        remote: canonical(flow.dst),
    };
    let by_headers = sockets.get(&sent).is_some() || sockets.get(&sent.reversed()).is_some();
    let by_cookie = match cookie {
        0 => None,
        _ if by_headers => None,
        cookie => sockets.by_cookie(cookie).map(|(tuple, _)| *tuple),
    };
    // Counted and described as the socket's own packet when only the
    // cookie knows it.
    let (src, dst) = by_cookie.map_or((flow.src, flow.dst), |t| (t.local, t.remote));
    let owners = sockets.count_packet(flow.protocol, src, dst, flow.ip_len);
    let parts: Vec<String> = owners
        .iter()
        .map(|owner| {
            let socket = owner.socket;
            let mut text = Vec::new();
            if socket.pid != 0 {
                text.push(format!("pid={}", socket.pid));
            }
            if !socket.comm.is_empty() {
                text.push(format!("comm={}", socket.comm));
            }
            if !socket.conn_ids.is_empty() {
                let ids: Vec<String> = socket.conn_ids.iter().map(u64::to_string).collect();
                text.push(format!("conn={}", ids.join(",")));
            }
            text.push(
                match owner.flow {
                    Flow::Egress => "sent",
                    Flow::Ingress => "received",
                }
                .to_string(),
            );
            text.join(" ")
        })
        .collect();
    (src, dst, (!parts.is_empty()).then(|| parts.join("; ")))
}

/// An interface record (name and detail as the format stores them).
fn event<'a>(
    if_index: u32,
    interface_id: Option<u32>,
    event: InterfaceEventKind,
    hook: HookKind,
    name: &'a str,
    detail: &'a str,
) -> InterfaceEvent<'a> {
    InterfaceEvent {
        if_index,
        interface_id,
        event,
        hook,
        name: name.as_bytes(),
        detail: detail.as_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP socket's tuple.
    fn tcp(local: &str, remote: &str) -> FiveTuple {
        FiveTuple {
            protocol: 6,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
        }
    }

    fn flow(src: &str, dst: &str) -> PacketFlow {
        PacketFlow {
            protocol: 6,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ip_len: 60,
        }
    }

    #[test]
    fn the_flow_cache_counts_every_packet_and_follows_table_changes() {
        let mut sockets = SocketTable::default();
        let mut cache = FlowCache::default();
        let client = tcp("10.0.0.1:40000", "10.0.0.2:443");
        let packet = flow("10.0.0.1:40000", "10.0.0.2:443");
        assert_eq!(cache.comment(&mut sockets, packet, 0), None);
        sockets.upsert(client, 7, 100, "curl");
        for _ in 0..3 {
            assert_eq!(
                cache.comment(&mut sockets, packet, 0).as_deref(),
                Some("pid=100 comm=curl sent")
            );
        }
        sockets.bind_connection(client, 3);
        assert_eq!(
            cache.comment(&mut sockets, packet, 0).as_deref(),
            Some("pid=100 comm=curl conn=3 sent")
        );
        // Four packets since the socket was known, hits included.
        cache.flush(&mut sockets);
        assert_eq!(sockets.get(&client).unwrap().counters.packets_egress, 4);
    }

    #[test]
    fn the_flow_cache_holds_only_flows_of_the_current_table() {
        let mut sockets = SocketTable::default();
        let mut cache = FlowCache::default();
        for port in 1000..2000u16 {
            let client = tcp(&format!("10.0.0.1:{port}"), "10.0.0.2:443");
            sockets.upsert(client, u64::from(port), 100, "curl");
            let packet = flow(&format!("10.0.0.1:{port}"), "10.0.0.2:443");
            assert!(cache.comment(&mut sockets, packet, 0).is_some());
            assert!(cache.comment(&mut sockets, packet, 0).is_some());
        }
        assert_eq!(cache.flows.len(), 1);
        cache.flush(&mut sockets);
        let last = tcp("10.0.0.1:1999", "10.0.0.2:443");
        assert_eq!(sockets.get(&last).unwrap().counters.packets_egress, 2);
    }

    #[test]
    fn a_packet_between_two_local_sockets_names_both() {
        let mut sockets = SocketTable::default();
        let client = tcp("10.0.0.1:40000", "10.0.0.2:443");
        sockets.upsert(client, 7, 100, "curl");
        sockets.bind_connection(client, 3);
        sockets.upsert(client.reversed(), 8, 200, "nginx");
        let comment = owner_comment(&mut sockets, flow("10.0.0.1:40000", "10.0.0.2:443"), 0);
        assert_eq!(
            comment.as_deref(),
            Some("pid=100 comm=curl conn=3 sent; pid=200 comm=nginx received")
        );
        assert_eq!(sockets.get(&client).unwrap().counters.packets_egress, 1);
        assert_eq!(
            owner_comment(&mut sockets, flow("10.0.0.9:1", "10.0.0.2:443"), 0),
            None
        );
    }

    #[test]
    fn the_sending_sockets_cookie_finds_a_packet_rewritten_by_nat() {
        let mut sockets = SocketTable::default();
        let client = tcp("172.17.0.2:40000", "10.0.0.2:443");
        sockets.upsert(client, 7, 100, "curl");
        // Source NAT ran before TC egress: the headers name another tuple.
        let natted = flow("192.168.1.5:61000", "10.0.0.2:443");
        assert_eq!(owner_comment(&mut sockets, natted, 0), None);
        assert_eq!(
            owner_comment(&mut sockets, natted, 7).as_deref(),
            Some("pid=100 comm=curl sent")
        );
        assert_eq!(sockets.get(&client).unwrap().counters.packets_egress, 1);
    }

    #[test]
    fn a_dual_stack_socket_owns_its_ipv4_packets() {
        let mut sockets = SocketTable::default();
        let server = tcp("[::ffff:10.0.0.2]:443", "[::ffff:10.0.0.1]:40000");
        sockets.upsert(server, 0, 200, "python3");
        let comment = owner_comment(&mut sockets, flow("10.0.0.1:40000", "10.0.0.2:443"), 0);
        assert_eq!(comment.as_deref(), Some("pid=200 comm=python3 received"));
    }

    #[test]
    fn wall_clock_follows_the_kernel_clock_both_ways() {
        let clock = ClockMap {
            boot_ns: 1_000,
            wall_ns: 1_700_000_000_000_000_000,
        };
        assert_eq!(clock.wall(1_500), 1_700_000_000_000_000_500);
        assert_eq!(clock.wall(400), 1_699_999_999_999_999_400);
    }
}
