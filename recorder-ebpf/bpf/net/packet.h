/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * What XDP and TC share: the packet ring, the per-interface settings and
 * counters, and filling a packet record. The hooks only observe: they never
 * drop, redirect or modify a packet, whatever happens here.
 *
 * The kernel copies headers and nothing else. It measures them (how long
 * the link, network and transport headers are, for headers-only capture)
 * but decides nothing from them: user space parses them (it must validate
 * the bytes anyway) and joins packets with sockets there, so a packet whose
 * socket is not known yet is never lost to a map lookup that came too early
 * (seeds 004, issue 1).
 */
#ifndef SPLIFF_BPF_NET_PACKET_H
#define SPLIFF_BPF_NET_PACKET_H

/* Separate from spliff_events: a packet flood must not push out plaintext. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SPLIFF_PACKET_RINGBUF_DEFAULT_BYTES);
} spliff_packets SEC(".maps");

/* Interfaces being captured (ifindex -> settings and this CPU's counters),
 * written by user space. Per CPU: counting never contends, and settings and
 * counters in one value cost one lookup per packet. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct spliff_packet_iface);
} spliff_packet_ifaces SEC(".maps");

/* The record is built here and copied into the ring with its real length,
 * so a 66-byte header costs 66 bytes of ring, not the 256-byte maximum. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct spliff_packet_event);
} spliff_packet_scratch SEC(".maps");

/* Headers-only capture reads at most this much before it knows the header
 * length: Ethernet + IPv4/IPv6 + TCP with options fit; deeper headers
 * (extension headers, VLAN stacks) cost a second read. */
#define SPLIFF_PACKET_FIRST_READ 128

/* What spliff_header_len returns when `len` bytes end inside a header. */
#define SPLIFF_HEADERS_NEED_MORE (SPLIFF_PACKET_SNAPLEN_MAX + 1)

/* d[i], i masked into the scratch buffer. The barrier hides what clang
 * knows of i, so the mask stays in the code for the verifier to see. */
static __always_inline __u32 spliff_byte_at(const __u8 *d, __u32 i)
{
	asm volatile("" : "+r"(i));
	return d[i & (SPLIFF_PACKET_SNAPLEN_MAX - 1)];
}

/*
 * Length of the link, network and transport headers at the start of
 * d[0..len): what headers-only capture keeps. Parsing here rather than
 * keeping a fixed snap length is what keeps payload (TLS records) out of the
 * trace, and it shrinks what the ring, the recorder and the file carry per
 * packet by half. Protocols it does not know end the headers where they
 * start; a header cut by `len` gives SPLIFF_HEADERS_NEED_MORE. The result may
 * exceed the snap length: the caller clamps it.
 *
 * A global function: the verifier checks it once, on its own, with `len` and
 * `flags` unknown. As a static function it was checked in every caller's
 * context, twice per hook, and its branches multiplied with the offsets it
 * tracked: 120,000 instructions and 0.15-0.35 s per hook program, most of
 * `spliff record`'s start-up; now 7,000 and a few ms (docs/BENCHMARKS.md).
 */
__noinline __u32 spliff_header_len(const struct spliff_packet_event *event, __u32 len, __u32 flags)
{
/* Every index is masked into the scratch buffer for the verifier; the length
 * checks before each read are what make the value meaningful. */
#define SPLIFF_B(i) spliff_byte_at(d, (i))
	__u32 off = 0, proto, l4, next, fragment, i;
	const __u8 *d;

	if (!event)
		return SPLIFF_HEADERS_NEED_MORE;
	d = event->data;

	if (len > SPLIFF_PACKET_SNAPLEN_MAX)
		len = SPLIFF_PACKET_SNAPLEN_MAX;
	if (flags & SPLIFF_IFACE_NO_LINK_HEADER) {
		if (len < 1)
			return SPLIFF_HEADERS_NEED_MORE;
		switch (SPLIFF_B(0) >> 4) {
		case 4:
			proto = 0x0800;
			break;
		case 6:
			proto = 0x86dd;
			break;
		default:
			return 1;
		}
	} else {
		if (len < 14)
			return SPLIFF_HEADERS_NEED_MORE;
		proto = (SPLIFF_B(12) << 8) | SPLIFF_B(13);
		off = 14;
#pragma unroll
		for (i = 0; i < 2; i++) {
			if (proto != 0x8100 && proto != 0x88a8)
				break;
			if (off + 4 > len)
				return SPLIFF_HEADERS_NEED_MORE;
			proto = (SPLIFF_B(off + 2) << 8) | SPLIFF_B(off + 3);
			off += 4;
		}
	}
	if (proto == 0x0800) {
		__u32 ihl;

		if (off + 20 > len)
			return SPLIFF_HEADERS_NEED_MORE;
		ihl = (SPLIFF_B(off) & 0xf) * 4;
		if (ihl < 20)
			return off + 20;
		l4 = SPLIFF_B(off + 9);
		fragment = ((SPLIFF_B(off + 6) & 0x1f) << 8) | SPLIFF_B(off + 7);
		off += ihl;
		/* A later fragment starts with payload, not a transport header. */
		if (fragment)
			return off;
	} else if (proto == 0x86dd) {
		if (off + 40 > len)
			return SPLIFF_HEADERS_NEED_MORE;
		l4 = SPLIFF_B(off + 6);
		off += 40;
#pragma unroll
		for (i = 0; i < 4; i++) {
			if (l4 == 0 || l4 == 43 || l4 == 60) {
				/* Hop-by-hop, routing, destination options. */
				if (off + 2 > len)
					return SPLIFF_HEADERS_NEED_MORE;
				next = SPLIFF_B(off);
				off += (SPLIFF_B(off + 1) + 1) * 8;
				l4 = next;
			} else if (l4 == 44) {
				if (off + 8 > len)
					return SPLIFF_HEADERS_NEED_MORE;
				next = SPLIFF_B(off);
				fragment = ((SPLIFF_B(off + 2) << 8) | SPLIFF_B(off + 3)) & 0xfff8;
				off += 8;
				/* A later fragment: payload follows. */
				if (fragment)
					return off;
				l4 = next;
			} else {
				break;
			}
		}
	} else if (proto == 0x0806) {
		return off + 28; /* ARP for IPv4 over Ethernet: all header */
	} else {
		return off ? off : 1;
	}
	switch (l4) {
	case 6: { /* TCP: data offset, options included */
		__u32 doff;

		if (off + 13 > len)
			return SPLIFF_HEADERS_NEED_MORE;
		doff = (SPLIFF_B(off + 12) >> 4) * 4;
		return off + (doff < 20 ? 20 : doff);
	}
	case 17:  /* UDP */
	case 1:   /* ICMP */
	case 58:  /* ICMPv6 */
		return off + 8;
	default:
		return off;
	}
#undef SPLIFF_B
}

/*
 * Starts a packet record for `ifindex`: NULL when the interface is not
 * captured (or no scratch), otherwise the scratch record with the common
 * fields set, and *iface the interface's entry for this CPU (counted as
 * seen here).
 */
static __always_inline struct spliff_packet_event *
spliff_packet_begin(__u32 ifindex, __u32 wire_len, __u8 hook, __u8 direction,
		    struct spliff_packet_iface **iface)
{
	struct spliff_packet_event *event;
	__u32 zero = 0;

	*iface = bpf_map_lookup_elem(&spliff_packet_ifaces, &ifindex);
	if (!*iface)
		return NULL;
	(*iface)->seen += 1;
	(*iface)->bytes += wire_len;
	event = bpf_map_lookup_elem(&spliff_packet_scratch, &zero);
	if (!event)
		return NULL;
	event->header.kind = SPLIFF_EVENT_PACKET;
	event->header.ts_ns = bpf_ktime_get_boot_ns();
	event->header.pid = 0;
	event->header.tid = 0;
	event->socket_cookie = 0;
	event->ifindex = ifindex;
	event->wire_len = wire_len;
	event->captured_len = 0;
	event->direction = direction;
	event->hook = hook;
	event->protocol = 0;
	event->reserved16 = 0;
	return event;
}

/* The most bytes of a `wire_len` packet the interface keeps. */
static __always_inline __u32 spliff_packet_max(const struct spliff_packet_iface *iface,
					       __u32 wire_len)
{
	__u32 len = iface->snaplen;

	if (len > wire_len)
		len = wire_len;
	if (len > SPLIFF_PACKET_SNAPLEN_MAX)
		len = SPLIFF_PACKET_SNAPLEN_MAX;
	return len;
}

/*
 * How many bytes to read first: the most the interface keeps, but with
 * headers only no more than SPLIFF_PACKET_FIRST_READ and no more than the
 * packet's linear part (`linear`, 0 when unknown). Headers sit in the linear
 * part on every path we know, and reading past it walks page fragments,
 * which costs more than the rest of the hook.
 */
static __always_inline __u32 spliff_packet_first_read(const struct spliff_packet_iface *iface,
						      __u32 max, __u64 linear)
{
	__u32 len = max;

	if (!(iface->flags & SPLIFF_IFACE_HEADERS_ONLY))
		return len;
	if (len > SPLIFF_PACKET_FIRST_READ)
		len = SPLIFF_PACKET_FIRST_READ;
	if (linear > 0 && linear < len)
		len = linear;
	return len;
}

/* How many of the `read` bytes in event->data to keep: all of `max` without
 * headers-only, else the headers; more than `read` means read again. */
static __always_inline __u32 spliff_packet_keep(const struct spliff_packet_iface *iface,
						struct spliff_packet_event *event, __u32 read,
						__u32 max)
{
	__u32 keep;

	if (!(iface->flags & SPLIFF_IFACE_HEADERS_ONLY))
		return max;
	keep = spliff_header_len(event, read, iface->flags);
	return keep < max ? keep : max;
}

/* Copies the first `len` bytes of the packet into event->data. `xdp` is a
 * constant at each call site, so only one helper remains after inlining. */
static __always_inline long spliff_packet_load(void *ctx, bool xdp,
					       struct spliff_packet_event *event, __u32 len)
{
	return xdp ? bpf_xdp_load_bytes(ctx, 0, event->data, len)
		   : bpf_skb_load_bytes(ctx, 0, event->data, len);
}

/*
 * Fills event->data with what the interface keeps of a `wire_len` packet whose
 * first buffer holds `linear` bytes: a first read, then a second one when the
 * headers turned out longer. Returns the bytes kept, 0 when nothing could be
 * read. `ctx` is the XDP or TC context (`xdp` says which).
 */
static __always_inline __u32 spliff_packet_read(void *ctx, bool xdp,
						const struct spliff_packet_iface *iface,
						struct spliff_packet_event *event, __u32 wire_len,
						__u64 linear)
{
	__u32 max = spliff_packet_max(iface, wire_len);
	__u32 read = spliff_packet_first_read(iface, max, linear);
	__u32 keep;

	/* The verifier needs each length as a bounded, non-zero value. */
	if (read < 1 || read > SPLIFF_PACKET_SNAPLEN_MAX)
		return 0;
	if (spliff_packet_load(ctx, xdp, event, read))
		return 0;
	keep = spliff_packet_keep(iface, event, read, max);
	if (keep <= read)
		return keep;
	/* Headers longer than the first read: read all there is to keep. */
	if (max < 1 || max > SPLIFF_PACKET_SNAPLEN_MAX)
		return 0;
	if (spliff_packet_load(ctx, xdp, event, max))
		return 0;
	return spliff_packet_keep(iface, event, max, max);
}

/* Puts the record (with `caplen` valid data bytes) into the ring. */
static __always_inline void spliff_packet_submit(struct spliff_packet_event *event, __u32 caplen,
						 struct spliff_packet_iface *iface)
{
	__u64 size;
	__u64 flags;

	if (caplen > SPLIFF_PACKET_SNAPLEN_MAX)
		caplen = SPLIFF_PACKET_SNAPLEN_MAX;
	event->captured_len = caplen;
	size = offsetof(struct spliff_packet_event, data) + caplen;
	event->header.size = size;
	/* The policy of the TLS ring (common.h). */
	flags = spliff_wakeup_on_crossing(bpf_ringbuf_query(&spliff_packets, BPF_RB_AVAIL_DATA),
					  size);
	if (bpf_ringbuf_output(&spliff_packets, event, size, flags)) {
		iface->ring_full += 1;
		return;
	}
	iface->written += 1;
}

#endif /* SPLIFF_BPF_NET_PACKET_H */
