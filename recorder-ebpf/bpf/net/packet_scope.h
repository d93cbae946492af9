/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * Packets of the selected processes only. With a scope (-- CMD, --pid,
 * --comm, --ppid) and without --all-packets, the packet hooks keep a packet
 * only when its TCP connection belongs to a selected process. Decided in the
 * kernel, so other processes' packets never cost ring space or recorder time.
 *
 * Who owns a connection is known where the socket is: sock_ops at connect()
 * runs in the connecting task (the SYN leaves after it, so a client's
 * connection is kept from its first packet), and the TLS probes, which run
 * only in selected processes, read the socket behind the descriptor (a
 * server's accepted connection is kept from its first TLS call on; its
 * handshake's first packets come before that and are not kept). Both add
 * the connection's two directions to spliff_scoped_flows; a hook looks the
 * packet's own addresses and ports up there, which works in both directions
 * and on ingress, where no socket is known yet.
 *
 * Kept out: everything that is not TCP over IPv4/IPv6 (ARP, DNS over UDP,
 * ICMP), IPv6 packets with extension headers before TCP, and packets cut by a
 * --snaplen shorter than their TCP ports.
 */
#ifndef SPLIFF_BPF_NET_PACKET_SCOPE_H
#define SPLIFF_BPF_NET_PACKET_SCOPE_H

/* 1: keep only packets of connections in spliff_scoped_flows. */
const volatile __u32 spliff_packets_scoped = 0;

/* One direction of a TCP connection: addresses as on the wire (IPv4 in the
 * first 4 bytes, the rest zero), ports in host order. */
struct spliff_flow_key {
	__u8 family; /* SPLIFF_AF_INET or SPLIFF_AF_INET6 */
	__u8 reserved[3];
	__u16 src_port;
	__u16 dst_port;
	__u8 src_addr[16];
	__u8 dst_addr[16];
};

/* Both directions of every selected connection; value unused. LRU: closed
 * connections leave as new ones come. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct spliff_flow_key);
	__type(value, __u8);
} spliff_scoped_flows SEC(".maps");

/* An IPv4 peer of an IPv6 socket (::ffff:a.b.c.d) travels as IPv4. */
static __always_inline bool spliff_v4_mapped(const __u8 *addr)
{
	__u32 i;

#pragma unroll
	for (i = 0; i < 10; i++)
		if (addr[i])
			return false;
	return addr[10] == 0xff && addr[11] == 0xff;
}

static __always_inline void spliff_flow_addr(__u8 *to, const __u8 *from, bool v4)
{
	__builtin_memset(to, 0, 16);
	if (v4)
		__builtin_memcpy(to, from, 4);
	else
		__builtin_memcpy(to, from, 16);
}

/*
 * Adds both directions of the connection local:lport <-> remote:rport of a
 * selected process (addresses as the socket holds them: 4 bytes for
 * AF_INET, 16 for AF_INET6).
 */
static __always_inline void spliff_scope_add(__u16 family, const __u8 *local, __u16 lport,
					     const __u8 *remote, __u16 rport)
{
	struct spliff_flow_key out = {}, in = {};
	__u8 one = 1;
	bool v4 = family == SPLIFF_AF_INET;

	if (!spliff_packets_scoped)
		return;
	if (family == SPLIFF_AF_INET6 && spliff_v4_mapped(local) && spliff_v4_mapped(remote)) {
		local += 12;
		remote += 12;
		v4 = true;
	} else if (family != SPLIFF_AF_INET && family != SPLIFF_AF_INET6) {
		return;
	}
	out.family = in.family = v4 ? SPLIFF_AF_INET : SPLIFF_AF_INET6;
	out.src_port = in.dst_port = lport;
	out.dst_port = in.src_port = rport;
	spliff_flow_addr(out.src_addr, local, v4);
	spliff_flow_addr(in.dst_addr, local, v4);
	spliff_flow_addr(out.dst_addr, remote, v4);
	spliff_flow_addr(in.src_addr, remote, v4);
	bpf_map_update_elem(&spliff_scoped_flows, &out, &one, BPF_ANY);
	bpf_map_update_elem(&spliff_scoped_flows, &in, &one, BPF_ANY);
}

/*
 * Whether the packet in event->data[0..len) belongs to a selected
 * connection. A global function, verified once on its own (see
 * spliff_header_len).
 */
__noinline int spliff_packet_in_scope(const struct spliff_packet_event *event, __u32 len,
				      __u32 flags)
{
#define SPLIFF_B(i) spliff_byte_at(d, (i))
	struct spliff_flow_key key = {};
	__u32 off = 0, proto, ports, src, dst, i;
	const __u8 *d;

	if (!event)
		return 0;
	d = event->data;
	if (len > SPLIFF_PACKET_SNAPLEN_MAX)
		len = SPLIFF_PACKET_SNAPLEN_MAX;
	if (flags & SPLIFF_IFACE_NO_LINK_HEADER) {
		if (len < 1)
			return 0;
		proto = (SPLIFF_B(0) >> 4) == 4 ? 0x0800 : 0x86dd;
	} else {
		if (len < 14)
			return 0;
		proto = (SPLIFF_B(12) << 8) | SPLIFF_B(13);
		off = 14;
		/* At most two VLAN tags, as spliff_header_len. */
		if (proto == 0x8100 || proto == 0x88a8) {
			proto = (SPLIFF_B(16) << 8) | SPLIFF_B(17);
			off = 18;
		}
		if (proto == 0x8100 || proto == 0x88a8) {
			proto = (SPLIFF_B(20) << 8) | SPLIFF_B(21);
			off = 22;
		}
	}
	if (proto == 0x0800) {
		if (off + 20 > len || SPLIFF_B(off + 9) != 6)
			return 0;
		key.family = SPLIFF_AF_INET;
		src = off + 12;
		dst = off + 16;
		ports = off + (SPLIFF_B(off) & 0xf) * 4;
		for (i = 0; i < 4; i++) {
			key.src_addr[i] = SPLIFF_B(src + i);
			key.dst_addr[i] = SPLIFF_B(dst + i);
		}
	} else if (proto == 0x86dd) {
		if (off + 40 > len || SPLIFF_B(off + 6) != 6)
			return 0;
		key.family = SPLIFF_AF_INET6;
		src = off + 8;
		dst = off + 24;
		ports = off + 40;
		for (i = 0; i < 16; i++) {
			key.src_addr[i] = SPLIFF_B(src + i);
			key.dst_addr[i] = SPLIFF_B(dst + i);
		}
	} else {
		return 0;
	}
	if (ports + 4 > len)
		return 0;
	key.src_port = (SPLIFF_B(ports) << 8) | SPLIFF_B(ports + 1);
	key.dst_port = (SPLIFF_B(ports + 2) << 8) | SPLIFF_B(ports + 3);
	return bpf_map_lookup_elem(&spliff_scoped_flows, &key) != NULL;
#undef SPLIFF_B
}

#endif /* SPLIFF_BPF_NET_PACKET_SCOPE_H */
