/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * Socket identity from sock_ops, attached at the root of a cgroup v2
 * hierarchy so it sees every TCP socket: cookie and 5-tuple at connect,
 * establishment and every state change. User space joins these with the TLS
 * connections by cookie and 5-tuple, in any order, so a TLS record whose
 * socket event comes later is still correlated (seeds 004, issue 1: the
 * original tool looked the cookie up in the kernel at probe time and lost
 * the race).
 *
 * Observes only: the return value is 1 and reply is never written, so no
 * connection is refused or tuned.
 */
#ifndef SPLIFF_BPF_NET_SOCKOPS_H
#define SPLIFF_BPF_NET_SOCKOPS_H

static __always_inline void spliff_socket_report(struct bpf_sock_ops *skops, __u8 op,
						 __u8 old_state, __u8 new_state, bool owner)
{
	struct spliff_socket_event *event;
	__u64 pid_tgid = owner ? bpf_get_current_pid_tgid() : 0;
	__u32 family = skops->family;

	if (family != SPLIFF_AF_INET && family != SPLIFF_AF_INET6)
		return;
	event = spliff_event_reserve(SPLIFF_EVENT_SOCKET, sizeof(*event), pid_tgid);
	if (!event)
		return;
	__builtin_memset((void *)event + sizeof(event->header), 0,
			 sizeof(*event) - sizeof(event->header));
	/* Also assigns the cookie if the socket had none yet, which is what
	 * lets the TLS probes' fd walk (net/socket.h) read it later. */
	event->cookie = bpf_get_socket_cookie(skops);
	event->op = op;
	event->old_state = old_state;
	event->new_state = new_state;
	event->family = family;
	event->protocol = 6; /* sock_ops runs for TCP only */
	event->local_port = skops->local_port;
	event->remote_port = bpf_ntohl(skops->remote_port);
	if (family == SPLIFF_AF_INET) {
		__u32 local = skops->local_ip4;
		__u32 remote = skops->remote_ip4;

		__builtin_memcpy(event->local_addr, &local, 4);
		__builtin_memcpy(event->remote_addr, &remote, 4);
	} else {
		/* Context fields are read one u32 at a time: the verifier
		 * rewrites each access and allows no wider copy. */
		__u32 local[4] = { skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2],
				   skops->local_ip6[3] };
		__u32 remote[4] = { skops->remote_ip6[0], skops->remote_ip6[1],
				    skops->remote_ip6[2], skops->remote_ip6[3] };

		__builtin_memcpy(event->local_addr, local, 16);
		__builtin_memcpy(event->remote_addr, remote, 16);
	}
	if (owner) {
		event->flags |= SPLIFF_SOCKET_HAS_OWNER;
		bpf_get_current_comm(event->comm, sizeof(event->comm));
	}
	/* Socket events are rare next to TLS data; the same wakeup policy
	 * keeps one rule for the whole ring. */
	bpf_ringbuf_submit(event, spliff_wakeup_flags(event->header.size));
}

/* A selected process connecting: its packets are kept from the SYN on
 * (net/packet_scope.h). Context fields are read one u32 at a time. */
static __always_inline void spliff_sock_ops_scope(struct bpf_sock_ops *skops)
{
	__u32 family = skops->family;
	__u16 lport = skops->local_port;
	__u16 rport = bpf_ntohl(skops->remote_port);

	if (!spliff_packets_scoped || !spliff_process_wanted(bpf_get_current_pid_tgid()))
		return;
	if (family == SPLIFF_AF_INET) {
		__u32 local = skops->local_ip4;
		__u32 remote = skops->remote_ip4;

		spliff_scope_add(family, (__u8 *)&local, lport, (__u8 *)&remote, rport);
	} else if (family == SPLIFF_AF_INET6) {
		__u32 local[4] = { skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2],
				   skops->local_ip6[3] };
		__u32 remote[4] = { skops->remote_ip6[0], skops->remote_ip6[1],
				    skops->remote_ip6[2], skops->remote_ip6[3] };

		spliff_scope_add(family, (__u8 *)local, lport, (__u8 *)remote, rport);
	}
}

SEC("sockops")
int spliff_sock_ops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		/* Inside connect(): the current task owns the socket, and the
		 * local port is already bound. */
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							 BPF_SOCK_OPS_STATE_CB_FLAG);
		spliff_socket_report(skops, SPLIFF_SOCKET_CONNECT, 0, skops->state, true);
		spliff_sock_ops_scope(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							 BPF_SOCK_OPS_STATE_CB_FLAG);
		spliff_socket_report(skops, SPLIFF_SOCKET_ACTIVE_ESTABLISHED, 0,
				     SPLIFF_TCP_ESTABLISHED, false);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		/* Runs in softirq on the new child socket: no owner yet. */
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							 BPF_SOCK_OPS_STATE_CB_FLAG);
		spliff_socket_report(skops, SPLIFF_SOCKET_PASSIVE_ESTABLISHED, 0,
				     SPLIFF_TCP_ESTABLISHED, false);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		spliff_socket_report(skops, SPLIFF_SOCKET_STATE, skops->args[0], skops->args[1],
				     false);
		break;
	default:
		break;
	}
	return 1;
}

#endif /* SPLIFF_BPF_NET_SOCKOPS_H */
