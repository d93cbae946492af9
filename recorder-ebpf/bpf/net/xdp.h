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
	__u32 max, read, keep;
	__u64 linear;

	event = spliff_packet_begin(ctx->ingress_ifindex, wire_len, SPLIFF_HOOK_XDP,
				    SPLIFF_DIR_INGRESS, &iface);
	if (!event || !iface)
		return XDP_PASS;
	max = spliff_packet_max(iface, wire_len);
	/* The first buffer; the rest are fragments (see tc.h for the pointer
	 * difference). */
	linear = (__u64)(long)ctx->data_end - (__u64)(long)ctx->data;
	read = spliff_packet_first_read(iface, max, linear);
	/* The verifier needs each length as a bounded, non-zero value. */
	if (read < 1 || read > SPLIFF_PACKET_SNAPLEN_MAX)
		return XDP_PASS;
	if (bpf_xdp_load_bytes(ctx, 0, event->data, read))
		return XDP_PASS;
	keep = spliff_packet_keep(iface, event, read, max);
	if (keep > read) {
		if (max < 1 || max > SPLIFF_PACKET_SNAPLEN_MAX)
			return XDP_PASS;
		if (bpf_xdp_load_bytes(ctx, 0, event->data, max))
			return XDP_PASS;
		keep = spliff_packet_keep(iface, event, max, max);
	}
	spliff_packet_submit(event, keep, iface);
	return XDP_PASS;
}

#endif /* SPLIFF_BPF_NET_XDP_H */
