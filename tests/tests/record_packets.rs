//! `spliff record` with packets, in network namespaces joined by veth
//! pairs and tunnels: every TLS connection gets its 5-tuple and its
//! packets, as EPBs on the right interface in both directions, commented
//! with the process; tunnels correlate too (TC where XDP is blind);
//! interfaces created during a capture are captured; tshark shows it all.
#![cfg(target_os = "linux")]

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::{Path, PathBuf},
};

use etherparse::{LaxNetSlice, LaxSlicedPacket};
use spliff_formats::{
    Entry, HookKind, InterfaceEventKind, InterfaceStats, PacketDirection, Record, TraceFile,
};
use spliff_tests::{
    netns::{BackgroundRecorder, Netns, TlsServer, tun_pair, veth, vxlan},
    require_bpf,
    spliff::spliff_bin,
    tls_workload::self_signed_cert,
    tools::{TempDir, run},
};

const PORT: u16 = 4433;

/// One EPB, decoded.
#[derive(Debug, Clone)]
struct PacketSeen {
    interface: String,
    direction: Option<PacketDirection>,
    comment: Option<String>,
    /// (src, dst) of a TCP packet.
    flow: Option<(SocketAddr, SocketAddr)>,
    /// Bytes captured, and the packet's length on the wire.
    captured: usize,
    original: u32,
    /// TCP payload bytes among those captured, when the whole TCP header was.
    tcp_payload_captured: Option<usize>,
}

/// One interface event, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IfaceEvent {
    name: String,
    event: InterfaceEventKind,
    hook: HookKind,
    interface_id: Option<u32>,
}

/// What the tests look at in a trace.
#[derive(Debug, Default)]
struct View {
    /// IDB id -> (name, linktype).
    interfaces: BTreeMap<u32, (String, u16)>,
    packets: Vec<PacketSeen>,
    /// conn_id -> (local, remote), merged over the connection's records.
    conns: BTreeMap<u64, (Option<SocketAddr>, Option<SocketAddr>)>,
    /// Connections that carried plaintext.
    tls_conns: BTreeSet<u64>,
    events: Vec<IfaceEvent>,
    stats: Vec<InterfaceStats>,
    /// conn_id -> (packets out, packets in) from the connection's counters.
    counters: BTreeMap<u64, (u64, u64)>,
    /// The correlation record: (TLS connections, with socket, with packets).
    correlation: Option<(u64, u64, u64)>,
}

fn tcp_flow(data: &[u8], linktype: u16) -> Option<(SocketAddr, SocketAddr)> {
    let packet = match linktype {
        1 => LaxSlicedPacket::from_ethernet(data).ok()?,
        101 => LaxSlicedPacket::from_ip(data).ok()?,
        _ => return None,
    };
    let (src, dst) = match packet.net.as_ref()? {
        LaxNetSlice::Ipv4(v4) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        ),
        LaxNetSlice::Ipv6(v6) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        ),
        LaxNetSlice::Arp(_) => return None,
    };
    let payload = packet.ip_payload()?;
    if payload.ip_number != etherparse::IpNumber::TCP {
        return None;
    }
    let p = payload.payload.get(..4)?;
    Some((
        SocketAddr::new(src, u16::from_be_bytes([p[0], p[1]])),
        SocketAddr::new(dst, u16::from_be_bytes([p[2], p[3]])),
    ))
}

/// How many TCP payload bytes `data` holds; `None` unless it holds a whole TCP header.
fn tcp_payload_captured(data: &[u8], linktype: u16) -> Option<usize> {
    let packet = match linktype {
        1 => LaxSlicedPacket::from_ethernet(data).ok()?,
        101 => LaxSlicedPacket::from_ip(data).ok()?,
        _ => return None,
    };
    match packet.transport? {
        etherparse::TransportSlice::Tcp(tcp) => Some(tcp.payload().len()),
        _ => None,
    }
}

fn read(path: &Path) -> View {
    let file = TraceFile::open(path).expect("open the trace");
    let mut view = View::default();
    for entry in file.reader() {
        match entry.expect("the trace reads without errors") {
            Entry::Interface { id, interface, .. } => {
                view.interfaces
                    .insert(id, (interface.name.clone(), interface.linktype));
            }
            Entry::Packet { packet, .. } => {
                let (name, linktype) = view.interfaces[&packet.interface_id].clone();
                view.packets.push(PacketSeen {
                    interface: name,
                    direction: packet.direction,
                    comment: packet.comment.as_deref().map(str::to_string),
                    flow: tcp_flow(packet.data, linktype),
                    captured: packet.data.len(),
                    original: packet.original_len,
                    tcp_payload_captured: tcp_payload_captured(packet.data, linktype),
                });
            }
            Entry::Stats { stats, .. } => view.stats.push(stats),
            Entry::Record(at) => match at.record {
                Record::Connection(c) => {
                    let slot = view.conns.entry(c.conn_id).or_default();
                    slot.0 = slot.0.or(c.local);
                    slot.1 = slot.1.or(c.remote);
                    if !c.counters.is_empty() {
                        view.counters.insert(
                            c.conn_id,
                            (c.counters.packets_egress, c.counters.packets_ingress),
                        );
                    }
                }
                Record::Correlation(c) => {
                    view.correlation = Some((c.tls_connections, c.with_socket, c.with_packets));
                }
                Record::TlsData(d) => {
                    view.tls_conns.insert(d.conn_id);
                }
                Record::Interface(i) => view.events.push(IfaceEvent {
                    name: String::from_utf8_lossy(i.name).into_owned(),
                    event: i.event,
                    hook: i.hook,
                    interface_id: i.interface_id,
                }),
                _ => {}
            },
            _ => {}
        }
    }
    view
}

impl View {
    /// Headers only (the default): every TCP packet on `interface` holds its whole TCP
    /// header and not one payload byte, and some of them had payload.
    fn assert_headers_only(&self, interface: &str) {
        let tcp: Vec<&PacketSeen> = self
            .packets
            .iter()
            .filter(|p| p.interface == interface && p.flow.is_some())
            .collect();
        assert!(!tcp.is_empty(), "no TCP packets on {interface}");
        for p in &tcp {
            assert_eq!(
                p.tcp_payload_captured,
                Some(0),
                "{interface}: a TCP packet of {} bytes kept {} bytes: {p:?}",
                p.original,
                p.captured
            );
        }
        assert!(
            tcp.iter().any(|p| p.original as usize > p.captured),
            "{interface}: no TCP packet had payload, the check proves nothing"
        );
    }

    /// The TLS connections to `server`, with their client address; each
    /// must have its full 5-tuple.
    fn connections_to(&self, server: SocketAddr) -> Vec<(u64, SocketAddr)> {
        assert!(!self.tls_conns.is_empty(), "no TLS data in the trace");
        let mut found = Vec::new();
        for id in &self.tls_conns {
            let (local, remote) = self.conns[id];
            if remote == Some(server) {
                let local = local.unwrap_or_else(|| panic!("connection {id} has no local address"));
                found.push((*id, local));
            }
        }
        found
    }

    /// Checks that every packet of the TCP flow client<->server is on
    /// `interface`, that both directions are there with the right
    /// direction flag, and that each names the process and connection.
    fn assert_flow_correlated(
        &self,
        interface: &str,
        conn_id: u64,
        client: SocketAddr,
        server: SocketAddr,
        comm: &str,
    ) {
        let mut directions = BTreeSet::new();
        let wanted = format!("comm={comm} conn={conn_id}");
        for packet in &self.packets {
            let Some((src, dst)) = packet.flow else {
                continue;
            };
            let outbound = (src, dst) == (client, server);
            let inbound = (src, dst) == (server, client);
            if !outbound && !inbound {
                continue;
            }
            assert_eq!(
                packet.interface, interface,
                "packet {src} -> {dst} of connection {conn_id} on the wrong interface"
            );
            let expected = if outbound {
                PacketDirection::Outbound
            } else {
                PacketDirection::Inbound
            };
            assert_eq!(packet.direction, Some(expected), "{src} -> {dst}");
            directions.insert(outbound);
            let comment = packet.comment.as_deref().unwrap_or_else(|| {
                panic!("packet {src} -> {dst} of connection {conn_id} has no process comment")
            });
            assert!(
                comment.contains(&wanted),
                "packet {src} -> {dst}: comment {comment:?} does not say {wanted:?}"
            );
        }
        assert_eq!(
            directions.len(),
            2,
            "connection {conn_id} ({client} -> {server}) lacks packets in one direction on \
             {interface}: {directions:?}"
        );
    }

    fn events_of(&self, name: &str) -> Vec<&IfaceEvent> {
        self.events.iter().filter(|e| e.name == name).collect()
    }
}

fn ok(output: &std::process::Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A scratch directory named after `tag` with a certificate in it, and the client and server
/// network namespaces.
/// `spliff record ARGS -o TRACE -- curl -sk -o /dev/null URL` in `ns`; it must succeed.
fn record_curl(ns: &Netns, args: &[&str], trace: &Path, url: &str) {
    let out = ns
        .command(spliff_bin())
        .arg("record")
        .args(args)
        .arg("-o")
        .arg(trace)
        .args(["--", "curl", "-sk", "-o", "/dev/null", url])
        .output()
        .unwrap();
    ok(&out, &format!("spliff record {}", args.join(" ")));
}

fn setup(tag: &str, client: &str, server: &str) -> (TempDir, PathBuf, PathBuf, Netns, Netns) {
    let dir = TempDir::new(tag);
    let (cert, key) = self_signed_cert(dir.path());
    (dir, cert, key, Netns::new(client), Netns::new(server))
}

/// `veth0` between the namespaces on 10.77.`net`.0/24 (client .1, server .2) and a TLS
/// server on the server's side; returns the server (stops on drop) and its address.
fn veth_with_server(
    client: &Netns,
    server_ns: &Netns,
    net: u8,
    cert: &Path,
    key: &Path,
) -> (TlsServer, String) {
    let server = format!("10.77.{net}.2");
    veth(
        client,
        "veth0",
        &format!("10.77.{net}.1/24"),
        server_ns,
        "veth0",
        &format!("{server}/24"),
    );
    (
        TlsServer::start(server_ns, &server, PORT, cert, key),
        server,
    )
}

#[test]
fn veth_packets_of_each_request_carry_their_process_in_both_directions() {
    if !require_bpf() {
        return;
    }
    let (dir, cert, key, client, server_ns) = setup("packets-veth", "cli", "srv");
    let (_server, address) = veth_with_server(&client, &server_ns, 0, &cert, &key);
    let trace = dir.path().join("t.pcapng");
    let url = format!("https://{address}:{PORT}/");
    // Two requests, two connections: each one's packets must name it.
    let script = format!("curl -sk -o /dev/null {url} && curl -sk -o /dev/null {url}");
    let out = client
        .command(spliff_bin())
        .arg("record")
        // XDP on purpose: `auto` would take TC on a veth.
        .args(["-i", "veth0", "--ingress-hook", "xdp", "-o"])
        .arg(&trace)
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    ok(&out, "spliff record");

    let view = read(&trace);
    let server: SocketAddr = format!("{address}:{PORT}").parse().unwrap();
    let conns = view.connections_to(server);
    assert_eq!(conns.len(), 2, "two curl connections: {conns:?}");
    for (conn_id, local) in &conns {
        assert_eq!(local.ip().to_string(), "10.77.0.1");
        view.assert_flow_correlated("veth0", *conn_id, *local, server, "curl");
        // The packets were counted for the connection, both ways.
        let (out, inn) = view.counters.get(conn_id).copied().unwrap_or_default();
        assert!(
            out > 0 && inn > 0,
            "connection {conn_id} counters: {out} out, {inn} in"
        );
    }
    // The capture says so itself: every TLS connection has its socket and
    // its packets.
    assert_eq!(view.correlation, Some((2, 2, 2)));
    // No --snaplen: headers, never payload (XDP ingress and TC egress alike).
    view.assert_headers_only("veth0");
    // -i veth0: only that interface, with XDP ingress and TC egress.
    let names: BTreeSet<&str> = view.interfaces.values().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["spliff", "veth0"]));
    let hooks: Vec<HookKind> = view
        .events_of("veth0")
        .iter()
        .filter(|e| e.event == InterfaceEventKind::Attached)
        .map(|e| e.hook)
        .collect();
    assert!(
        hooks.contains(&HookKind::TcxEgress) || hooks.contains(&HookKind::ClsactEgress),
        "{hooks:?}"
    );
    assert!(
        hooks.contains(&HookKind::XdpNative) || hooks.contains(&HookKind::XdpGeneric),
        "{hooks:?}"
    );
    let veth_id = view
        .interfaces
        .iter()
        .find(|(_, (n, _))| n == "veth0")
        .map(|(id, _)| *id)
        .unwrap();
    let stats = view
        .stats
        .iter()
        .find(|s| s.interface_id == veth_id)
        .expect("an ISB for veth0");
    assert_eq!(stats.dropped, Some(0));
    assert!(stats.received.unwrap_or(0) >= stats.delivered.unwrap_or(0));
    assert!(stats.delivered.unwrap_or(0) > 10, "{stats:?}");

    // What Wireshark users see: the packets of port 4433 with comments.
    let trace_arg = trace.to_str().unwrap();
    let out = run(
        "tshark",
        &[
            "-r",
            trace_arg,
            "-Y",
            "tcp.port == 4433",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "frame.interface_name",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "frame.comment",
        ],
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines.len() > 10,
        "tshark shows too few packets:\n{}",
        out.stdout
    );
    let mut sources = BTreeSet::new();
    for line in &lines {
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields[0], "veth0", "{line}");
        sources.insert(fields[1]);
        assert!(
            fields[3].contains("comm=curl conn="),
            "tshark shows a packet without its process: {line}"
        );
    }
    assert_eq!(sources, BTreeSet::from(["10.77.0.1", "10.77.0.2"]));
}

#[test]
fn vxlan_tunnel_traffic_is_correlated_through_tc() {
    if !require_bpf() {
        return;
    }
    let (dir, cert, key, client, server_ns) = setup("packets-vxlan", "vxc", "vxs");
    veth(
        &client,
        "under0",
        "10.77.1.1/24",
        &server_ns,
        "under0",
        "10.77.1.2/24",
    );
    vxlan(&client, "vx0", 42, "under0", "10.77.1.2", "10.88.0.1/24");
    vxlan(&server_ns, "vx0", 42, "under0", "10.77.1.1", "10.88.0.2/24");
    let _server = TlsServer::start(&server_ns, "10.88.0.2", PORT, &cert, &key);
    let trace = dir.path().join("t.pcapng");
    // Every interface: the tunnel and its underlay. --all-packets: with the scope of
    // `-- curl` alone, the underlay's encapsulated packets (UDP) would not be kept.
    record_curl(
        &client,
        &["--all-packets"],
        &trace,
        &format!("https://10.88.0.2:{PORT}/"),
    );

    let view = read(&trace);
    let server: SocketAddr = format!("10.88.0.2:{PORT}").parse().unwrap();
    let conns = view.connections_to(server);
    assert_eq!(conns.len(), 1, "{conns:?}");
    let (conn_id, local) = conns[0];
    assert_eq!(local.ip().to_string(), "10.88.0.1");
    // The inner packets, both directions, on the tunnel device: what XDP
    // alone never sees (it runs before decapsulation).
    view.assert_flow_correlated("vx0", conn_id, local, server, "curl");
    view.assert_headers_only("vx0");
    assert_eq!(
        view.correlation,
        Some((1, 1, 1)),
        "correlation through the tunnel"
    );
    let hooks: Vec<HookKind> = view
        .events_of("vx0")
        .iter()
        .filter(|e| e.event == InterfaceEventKind::Attached)
        .map(|e| e.hook)
        .collect();
    assert!(
        hooks.contains(&HookKind::TcxIngress) || hooks.contains(&HookKind::ClsactIngress),
        "the tunnel's ingress must be TC: {hooks:?}"
    );
    assert!(
        !hooks.contains(&HookKind::XdpNative) && !hooks.contains(&HookKind::XdpGeneric),
        "no XDP on a tunnel: {hooks:?}"
    );
    // The underlay carries the same traffic encapsulated (UDP 4789), each
    // packet once per interface: no inner TCP flow appears there.
    let underlay: Vec<&PacketSeen> = view
        .packets
        .iter()
        .filter(|p| p.interface == "under0")
        .collect();
    assert!(!underlay.is_empty(), "no packets on the underlay");
    assert!(underlay.iter().all(|p| p.flow.is_none()));
}

#[test]
fn a_device_without_link_layer_header_keeps_ip_and_tcp_headers_only() {
    if !require_bpf() {
        return;
    }
    let (dir, cert, key, client, server_ns) = setup("packets-tun", "tnc", "tns");
    let _link = tun_pair(
        &client,
        "tun0",
        "10.89.0.1/24",
        &server_ns,
        "tun0",
        "10.89.0.2/24",
    );
    let _server = TlsServer::start(&server_ns, "10.89.0.2", PORT, &cert, &key);
    let trace = dir.path().join("t.pcapng");
    record_curl(
        &client,
        &["-i", "tun0"],
        &trace,
        &format!("https://10.89.0.2:{PORT}/"),
    );

    let view = read(&trace);
    let linktype = view
        .interfaces
        .values()
        .find(|(n, _)| n == "tun0")
        .map(|(_, t)| *t);
    assert_eq!(linktype, Some(101), "tun0 is raw IP (LINKTYPE_RAW)");
    let server: SocketAddr = format!("10.89.0.2:{PORT}").parse().unwrap();
    let conns = view.connections_to(server);
    assert_eq!(conns.len(), 1, "{conns:?}");
    let (conn_id, local) = conns[0];
    view.assert_flow_correlated("tun0", conn_id, local, server, "curl");
    // The header length is found from the IP header on: no Ethernet header to skip.
    view.assert_headers_only("tun0");
}

#[test]
fn snaplen_keeps_the_first_bytes_payload_included() {
    if !require_bpf() {
        return;
    }
    let (dir, cert, key, client, server_ns) = setup("packets-snaplen", "snc", "sns");
    let (_server, address) = veth_with_server(&client, &server_ns, 4, &cert, &key);
    let trace = dir.path().join("t.pcapng");
    record_curl(
        &client,
        &["-i", "veth0", "--snaplen", "200"],
        &trace,
        &format!("https://{address}:{PORT}/"),
    );

    let view = read(&trace);
    let tcp: Vec<&PacketSeen> = view
        .packets
        .iter()
        .filter(|p| p.interface == "veth0" && p.flow.is_some())
        .collect();
    assert!(!tcp.is_empty(), "no TCP packets");
    for p in &tcp {
        assert_eq!(p.captured, (p.original as usize).min(200), "{p:?}");
    }
    // Asked for: payload is there (TLS records after the TCP header).
    assert!(
        tcp.iter().any(|p| p.tcp_payload_captured.unwrap_or(0) > 0),
        "no TCP payload captured with --snaplen 200"
    );
}

#[test]
fn an_interface_created_during_the_capture_is_attached_and_detached() {
    if !require_bpf() {
        return;
    }
    let (dir, cert, key, client, server_ns) = setup("packets-late", "ltc", "lts");
    let trace = dir.path().join("t.pcapng");
    let recorder =
        BackgroundRecorder::start(&client, &spliff_bin(), &["-o", trace.to_str().unwrap()]);
    veth(
        &client,
        "late0",
        "10.77.2.1/24",
        &server_ns,
        "late0",
        "10.77.2.2/24",
    );
    recorder.wait_for("capturing packets on late0");
    let _server = TlsServer::start(&server_ns, "10.77.2.2", PORT, &cert, &key);
    let out = client.run(
        "curl",
        &[
            "-sk",
            "-o",
            "/dev/null",
            &format!("https://10.77.2.2:{PORT}/"),
        ],
    );
    ok(&out, "curl");
    client.ip(&["link", "del", "late0"]);
    recorder.wait_for("interface late0 is gone");
    recorder.stop();

    let view = read(&trace);
    let server: SocketAddr = format!("10.77.2.2:{PORT}").parse().unwrap();
    let conns = view.connections_to(server);
    assert_eq!(conns.len(), 1, "{conns:?}");
    view.assert_flow_correlated("late0", conns[0].0, conns[0].1, server, "curl");
    let kinds: Vec<InterfaceEventKind> = view.events_of("late0").iter().map(|e| e.event).collect();
    for wanted in [
        InterfaceEventKind::Appeared,
        InterfaceEventKind::Attached,
        InterfaceEventKind::Detached,
        InterfaceEventKind::Disappeared,
    ] {
        assert!(kinds.contains(&wanted), "late0 events: {kinds:?}");
    }
    // `auto` on a veth: TC for ingress (XDP would cost throughput there).
    assert!(
        view.events_of("late0")
            .iter()
            .any(|e| e.event == InterfaceEventKind::Attached
                && matches!(e.hook, HookKind::TcxIngress | HookKind::ClsactIngress)),
        "{:?}",
        view.events_of("late0")
    );
    let late_id = view
        .events_of("late0")
        .iter()
        .find_map(|e| e.interface_id)
        .expect("late0 has an IDB");
    let stats = view
        .stats
        .iter()
        .find(|s| s.interface_id == late_id)
        .expect("an ISB for late0");
    assert!(stats.delivered.unwrap_or(0) > 0, "{stats:?}");
}

#[test]
fn no_packets_records_tls_only() {
    if !require_bpf() {
        return;
    }
    let (dir, cert, key, client, server_ns) = setup("packets-none", "npc", "nps");
    let (_server, address) = veth_with_server(&client, &server_ns, 3, &cert, &key);
    let trace = dir.path().join("t.pcapng");
    record_curl(
        &client,
        &["--no-packets"],
        &trace,
        &format!("https://{address}:{PORT}/"),
    );
    let view = read(&trace);
    let server: SocketAddr = format!("{address}:{PORT}").parse().unwrap();
    assert_eq!(view.connections_to(server).len(), 1);
    assert!(view.packets.is_empty());
    assert!(view.events.is_empty());
    assert_eq!(view.interfaces.len(), 1, "only the records interface");
}
