/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * From a file descriptor of the current task to its socket's addresses, in
 * the kernel and in the task's own context: no /proc race with short-lived
 * connections or processes, and sockets opened before the capture work too.
 */
#ifndef SPLIFF_BPF_NET_SOCKET_H
#define SPLIFF_BPF_NET_SOCKET_H

/* Minimal CO-RE views (see common.h for why not vmlinux.h's types). The
 * kernel nests some of these fields in anonymous unions; CO-RE matching
 * looks through them. */
struct file___spliff {
	void *private_data;
} __attribute__((preserve_access_index));

struct fdtable___spliff {
	unsigned int max_fds;
	struct file___spliff **fd;
} __attribute__((preserve_access_index));

struct files_struct___spliff {
	struct fdtable___spliff *fdt;
} __attribute__((preserve_access_index));

struct sock_common___spliff {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	atomic64_t skc_cookie;
} __attribute__((preserve_access_index));

struct sock___spliff {
	struct sock_common___spliff __sk_common;
	__u16 sk_protocol;
} __attribute__((preserve_access_index));

struct socket___spliff {
	struct file___spliff *file;
	struct sock___spliff *sk;
} __attribute__((preserve_access_index));

#define SPLIFF_AF_INET 2
#define SPLIFF_AF_INET6 10

/*
 * Fills the socket fields of `event` from fd `fd` of the current task.
 * Returns false when fd is not an open socket (a pipe, a file, closed). The
 * check that socket->file points back at the file rejects non-socket files,
 * whose private_data is something else entirely.
 */
static __always_inline bool spliff_socket_from_fd(__s32 fd, struct spliff_tls_conn_event *event)
{
	struct task_struct___spliff *task = (void *)bpf_get_current_task();
	struct fdtable___spliff *fdt = BPF_CORE_READ(task, files, fdt);
	struct file___spliff **fds, *file;
	struct socket___spliff *sock;
	struct sock___spliff *sk;
	unsigned int max_fds;

	if (!fdt || fd < 0)
		return false;
	max_fds = BPF_CORE_READ(fdt, max_fds);
	if ((unsigned int)fd >= max_fds)
		return false;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return false;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock || BPF_CORE_READ(sock, file) != file)
		return false;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return false;

	event->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	event->protocol = BPF_CORE_READ(sk, sk_protocol);
	event->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	event->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	event->socket_cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (event->family == SPLIFF_AF_INET) {
		__be32 local = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 remote = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(event->local_addr, &local, 4);
		__builtin_memcpy(event->remote_addr, &remote, 4);
	} else if (event->family == SPLIFF_AF_INET6) {
		BPF_CORE_READ_INTO(&event->local_addr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&event->remote_addr, sk, __sk_common.skc_v6_daddr);
	} else {
		/* A Unix socket or similar: the fd is still worth reporting. */
		event->local_port = 0;
		event->remote_port = 0;
	}
	return true;
}

#endif /* SPLIFF_BPF_NET_SOCKET_H */
