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
	struct spliff_packet_counters *counters = NULL;
	struct spliff_packet_event *event;
	__u32 wire_len = bpf_xdp_get_buff_len(ctx);
	__u32 caplen = 0;

	event = spliff_packet_begin(ctx->ingress_ifindex, wire_len, SPLIFF_HOOK_XDP,
				    SPLIFF_DIR_INGRESS, &caplen, &counters);
	if (!event)
		return XDP_PASS;
	/* The verifier needs the length as a bounded, non-zero value. */
	if (caplen < 1 || caplen > SPLIFF_PACKET_SNAPLEN_MAX)
		return XDP_PASS;
	if (bpf_xdp_load_bytes(ctx, 0, event->data, caplen))
		return XDP_PASS;
	spliff_packet_submit(event, caplen, counters);
	return XDP_PASS;
}

#endif /* SPLIFF_BPF_NET_XDP_H */
