/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * XDP: received packets, before the stack allocates anything. Used on
 * Ethernet devices (native mode where the driver has it, generic otherwise).
 * It sees ingress only, and nothing a tunnel decapsulates: those devices get
 * TC ingress instead (tc.h); user space decides which hook goes where.
 *
 * "xdp.frags": the program copes with multi-buffer packets (it reads with
 * bpf_xdp_load_bytes), so the kernel need not linearise large frames for it.
 */
#ifndef SPLIFF_BPF_NET_XDP_H
#define SPLIFF_BPF_NET_XDP_H

SEC("xdp.frags")
int spliff_xdp_ingress(struct xdp_md *ctx)
{
	struct spliff_packet_iface *iface = NULL;
	struct spliff_packet_event *event;
	__u32 wire_len = bpf_xdp_get_buff_len(ctx);
	__u64 linear;
	__u32 keep;

	event = spliff_packet_begin(ctx->ingress_ifindex, wire_len, SPLIFF_HOOK_XDP,
				    SPLIFF_DIR_INGRESS, &iface);
	if (!event || !iface)
		return XDP_PASS;
	/* The first buffer; the rest are fragments (see tc.h for the pointer
	 * difference). */
	linear = (__u64)(long)ctx->data_end - (__u64)(long)ctx->data;
	keep = spliff_packet_read(ctx, true, iface, event, wire_len, linear);
	if (!keep)
		return XDP_PASS;
	if (spliff_packets_scoped && !spliff_packet_in_scope(event, keep, iface->flags))
		return XDP_PASS;
	spliff_packet_submit(event, keep, iface);
	return XDP_PASS;
}

#endif /* SPLIFF_BPF_NET_XDP_H */
