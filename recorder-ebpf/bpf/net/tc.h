/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * TC (tcx on kernels that have it, a clsact qdisc otherwise): egress on
 * every captured interface, and ingress where XDP is blind or unusable
 * (tunnels, devices without a link-layer header). Data starts at the
 * link-layer header (TC pushes it back on ingress) or at the IP header on
 * devices without one.
 *
 * The return value is no verdict at all: TC_ACT_UNSPEC (-1), which is also
 * TCX_NEXT. Both hand the packet on to the next program or filter on the
 * hook, and pass it when there is none. TC_ACT_OK (0, TCX_PASS) would be a
 * final verdict that skips whatever other tools attached after us.
 */
#ifndef SPLIFF_BPF_NET_TC_H
#define SPLIFF_BPF_NET_TC_H

#define SPLIFF_TC_PASS (-1) /* TC_ACT_UNSPEC == TCX_NEXT */

static __always_inline int spliff_tc_packet(struct __sk_buff *skb, __u8 direction)
{
	struct spliff_packet_iface *iface = NULL;
	struct spliff_packet_event *event;
	__u64 linear;
	__u32 keep;

	event = spliff_packet_begin(skb->ifindex, skb->len, SPLIFF_HOOK_TC, direction, &iface);
	if (!event || !iface)
		return SPLIFF_TC_PASS;
	/* Pointer difference: allowed to the privileged programs we are. */
	linear = (__u64)(long)skb->data_end - (__u64)(long)skb->data;
	keep = spliff_packet_read(skb, false, iface, event, skb->len, linear);
	if (!keep)
		return SPLIFF_TC_PASS;
	if (spliff_packets_scoped && !spliff_packet_in_scope(event, keep, iface->flags))
		return SPLIFF_TC_PASS;
	/* Egress: the sending socket, which ties the packet to it without a
	 * 5-tuple lookup. Ingress: 0, the stack looks the socket up later. */
	event->socket_cookie = bpf_get_socket_cookie(skb);
	event->protocol = bpf_ntohs(skb->protocol);
	spliff_packet_submit(event, keep, iface);
	return SPLIFF_TC_PASS;
}

SEC("classifier")
int spliff_tc_ingress(struct __sk_buff *skb)
{
	return spliff_tc_packet(skb, SPLIFF_DIR_INGRESS);
}

SEC("classifier")
int spliff_tc_egress(struct __sk_buff *skb)
{
	return spliff_tc_packet(skb, SPLIFF_DIR_EGRESS);
}

#endif /* SPLIFF_BPF_NET_TC_H */
