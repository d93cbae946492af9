/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * What XDP and TC share: the packet ring, the per-interface settings and
 * counters, and filling a packet record. The hooks only observe: they never
 * drop, redirect or modify a packet, whatever happens here.
 *
 * The kernel copies headers and nothing else; it does not parse them. User
 * space parses (it must validate the bytes anyway) and joins packets with
 * sockets there, so a packet whose socket is not known yet is never lost to
 * a map lookup that came too early (seeds 004, issue 1).
 */
#ifndef SPLIFF_BPF_NET_PACKET_H
#define SPLIFF_BPF_NET_PACKET_H

/* Separate from spliff_events: a packet flood must not push out plaintext. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SPLIFF_PACKET_RINGBUF_DEFAULT_BYTES);
} spliff_packets SEC(".maps");

/* Interfaces being captured (ifindex -> settings), written by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct spliff_packet_iface);
} spliff_packet_ifaces SEC(".maps");

/* Per CPU: counting never contends. User space creates the entry with the
 * interface; without one, the hooks count nothing. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct spliff_packet_counters);
} spliff_packet_counters SEC(".maps");

/* The record is built here and copied into the ring with its real length,
 * so a 128-byte snap costs 128 bytes of ring, not the 256-byte maximum. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct spliff_packet_event);
} spliff_packet_scratch SEC(".maps");

/* Same policy as TLS events (common.h): wake the reader only when the ring
 * fills up, it polls on a short timer otherwise. */
#define SPLIFF_PACKET_WAKEUP_BYTES (1U << 20)

/*
 * Starts a packet record for `ifindex`: NULL when the interface is not
 * captured (or no scratch), otherwise the scratch record with the common
 * fields set and *caplen the number of bytes to copy (at least 1 when
 * wire_len is non-zero, never more than SPLIFF_PACKET_SNAPLEN_MAX).
 */
static __always_inline struct spliff_packet_event *
spliff_packet_begin(__u32 ifindex, __u32 wire_len, __u8 hook, __u8 direction, __u32 *caplen,
		    struct spliff_packet_counters **counters)
{
	struct spliff_packet_iface *iface = bpf_map_lookup_elem(&spliff_packet_ifaces, &ifindex);
	struct spliff_packet_event *event;
	__u32 zero = 0, len;

	if (!iface)
		return NULL;
	*counters = bpf_map_lookup_elem(&spliff_packet_counters, &ifindex);
	if (*counters) {
		(*counters)->seen += 1;
		(*counters)->bytes += wire_len;
	}
	event = bpf_map_lookup_elem(&spliff_packet_scratch, &zero);
	if (!event)
		return NULL;
	len = iface->snaplen;
	if (len > wire_len)
		len = wire_len;
	if (len > SPLIFF_PACKET_SNAPLEN_MAX)
		len = SPLIFF_PACKET_SNAPLEN_MAX;
	*caplen = len;

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

/* Puts the record (with `caplen` valid data bytes) into the ring. */
static __always_inline void spliff_packet_submit(struct spliff_packet_event *event, __u32 caplen,
						 struct spliff_packet_counters *counters)
{
	__u64 size;
	__u64 flags;

	if (caplen > SPLIFF_PACKET_SNAPLEN_MAX)
		caplen = SPLIFF_PACKET_SNAPLEN_MAX;
	event->captured_len = caplen;
	size = offsetof(struct spliff_packet_event, data) + caplen;
	event->header.size = size;
	flags = bpf_ringbuf_query(&spliff_packets, BPF_RB_AVAIL_DATA) > SPLIFF_PACKET_WAKEUP_BYTES
			? BPF_RB_FORCE_WAKEUP
			: BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&spliff_packets, event, size, flags)) {
		if (counters)
			counters->ring_full += 1;
		return;
	}
	if (counters)
		counters->written += 1;
}

#endif /* SPLIFF_BPF_NET_PACKET_H */
