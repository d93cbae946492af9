/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * NSS (libssl3.so) over NSPR (libnspr4.so): Firefox, Thunderbird, NSS's own
 * tools. The plaintext passes through NSPR's generic I/O (PR_Read, PR_Write,
 * PR_Recv, PR_Send), which also carries files, pipes and plain sockets; NSS
 * itself exports no data function.
 *
 * Which descriptors are TLS is decided here, in the kernel: SSL_ImportFD
 * returns the descriptor it pushed its SSL layer onto, and that pointer is
 * the connection object (the "ssl" of conn.h). NSPR pushes a layer at the top
 * of a stack by swapping it into the caller's PRFileDesc, so the pointer the
 * application holds stays the same through SSL_ImportFD and any layer pushed
 * on top later (Firefox pushes its own): PR_Write(fd) on that pointer is the
 * TLS data, and a PR_Write on anything else is not looked at beyond one map
 * lookup. PR_Close ends the connection (the pointer may be reused for a plain
 * descriptor afterwards).
 *
 * The socket: the bottom layer of the stack is NSPR's own (identity 0), whose
 * private part holds the OS descriptor; failing that, conn.h's sys_enter
 * fallback names it at the first socket call inside a PR_Read/PR_Write.
 */
#ifndef SPLIFF_BPF_TLS_NSS_H
#define SPLIFF_BPF_TLS_NSS_H

/* struct PRFileDesc (prio.h, stable since NSPR 4.0): methods, secret, lower,
 * higher, dtor, identity. */
#define SPLIFF_PRFD_SECRET 8
#define SPLIFF_PRFD_LOWER 16
#define SPLIFF_PRFD_HIGHER 24
#define SPLIFF_PRFD_IDENTITY 40
/* PR_NSPR_IO_LAYER: the identity of NSPR's own bottom layer. */
#define SPLIFF_PR_NSPR_IO_LAYER 0
/* struct PRFilePrivate on Unix (primpl.h): state, nonblocking, inheritable,
 * next, lockCount, then _MDFileDesc md whose first field is the OS fd. No
 * peek buffer on Linux. */
#define SPLIFF_PRFILEPRIVATE_OSFD 28
/* Layers walked down to the bottom: SSL plus an application's few. */
#define SPLIFF_NSS_MAX_LAYERS 8

/* The OS descriptor at the bottom of `fd`'s layer stack; -1 when the bottom
 * is not NSPR's socket layer (an application's own I/O layer). */
static __always_inline int spliff_nss_os_fd(__u64 fd)
{
	__u64 layer = fd, lower = 0, secret = 0;
	__s32 identity = -1, osfd = -1;

#pragma unroll
	for (int i = 0; i < SPLIFF_NSS_MAX_LAYERS; i++) {
		if (bpf_probe_read_user(&lower, sizeof(lower), (void *)(layer + SPLIFF_PRFD_LOWER)))
			return -1;
		if (!lower)
			break;
		layer = lower;
	}
	if (lower)
		return -1;
	if (bpf_probe_read_user(&identity, sizeof(identity),
				(void *)(layer + SPLIFF_PRFD_IDENTITY)) ||
	    identity != SPLIFF_PR_NSPR_IO_LAYER)
		return -1;
	if (bpf_probe_read_user(&secret, sizeof(secret), (void *)(layer + SPLIFF_PRFD_SECRET)) ||
	    !secret)
		return -1;
	if (bpf_probe_read_user(&osfd, sizeof(osfd), (void *)(secret + SPLIFF_PRFILEPRIVATE_OSFD)))
		return -1;
	return osfd;
}

/* SSL_ImportFD(PRFileDesc *model, PRFileDesc *fd) returns fd with the SSL
 * layer on top (NULL on failure): from now on fd is a TLS connection. */
SEC("uretprobe")
int BPF_KRETPROBE(spliff_nss_import_fd_return, void *fd)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	int osfd;

	if (!fd || !spliff_process_wanted(pid_tgid))
		return 0;
	/* A descriptor at the address of one whose PR_Close was missed is a new
	 * connection: end the old one first. */
	spliff_close(fd, SPLIFF_CLOSE_FREE);
	osfd = spliff_nss_os_fd((__u64)fd);
	if (osfd >= 0)
		return spliff_set_fd(fd, osfd, SPLIFF_LIB_NSS);
	spliff_conn_get(pid_tgid, (__u64)fd, SPLIFF_LIB_NSS);
	return 0;
}

/* Whether `fd` is a descriptor SSL_ImportFD returned in this process. */
static __always_inline bool spliff_nss_is_tls(__u64 pid_tgid, __u64 fd)
{
	struct spliff_conn_key key = { .tgid = pid_tgid >> 32, .ssl = fd };
	struct spliff_conn_state *state = bpf_map_lookup_elem(&spliff_conns, &key);

	return state && state->library == SPLIFF_LIB_NSS;
}

/* The connection `fd` belongs to: `fd` itself when SSL_ImportFD returned it,
 * else the first layer above it that it returned (0: none). NSS hands its
 * own SSL layer, not the top of the stack, to callbacks, so Firefox asks
 * SSL_GetNextProto about the layer below its own. */
static __always_inline __u64 spliff_nss_conn_of(__u64 pid_tgid, __u64 fd)
{
	__u64 layer = fd;

#pragma unroll
	for (int i = 0; i < SPLIFF_NSS_MAX_LAYERS; i++) {
		if (!layer)
			return 0;
		if (spliff_nss_is_tls(pid_tgid, layer))
			return layer;
		if (bpf_probe_read_user(&layer, sizeof(layer), (void *)(layer + SPLIFF_PRFD_HIGHER)))
			return 0;
	}
	return 0;
}

/* PR_Read/PR_Recv/PR_Write/PR_Send(PRFileDesc *fd, void *buf, PRInt32 amount
 * [, flags, timeout]): the same first arguments as SSL_read, and a PRInt32
 * count (or -1) back. NSS's layers call the lower layer through its methods
 * table, never through these functions, so calls do not nest. */
static __always_inline int spliff_nss_data_entry(struct pt_regs *ctx, __u32 kind)
{
	if (!spliff_nss_is_tls(bpf_get_current_pid_tgid(), PT_REGS_PARM1(ctx)))
		return 0;
	return spliff_data_entry(ctx, kind, SPLIFF_LIB_NSS, BPF_ANY);
}

SEC("uprobe")
int BPF_KPROBE(spliff_nss_write_entry)
{
	return spliff_nss_data_entry(ctx, SPLIFF_CALL_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(spliff_nss_read_entry)
{
	return spliff_nss_data_entry(ctx, SPLIFF_CALL_READ);
}

/* prio.h: PR_Recv's flags are 0 or PR_MSG_PEEK. */
#define SPLIFF_PR_MSG_PEEK 0x2

/* PR_Recv(fd, buf, amount, PRIntn flags, timeout): a peek (Firefox peeks one
 * byte to see whether an idle connection is still alive) leaves the bytes to
 * the next read, which records them. */
SEC("uprobe")
int BPF_KPROBE(spliff_nss_recv_entry)
{
	if (PT_REGS_PARM4(ctx) & SPLIFF_PR_MSG_PEEK)
		return 0;
	return spliff_nss_data_entry(ctx, SPLIFF_CALL_READ);
}

/* PR_Writev(fd, const PRIOVec *iov, PRInt32 iov_size, timeout) on a TLS
 * descriptor: its bytes are not copied (no known NSS client uses it; Firefox
 * does not import it) but reported as a truncation loss of their exact
 * range, so the stream shows the gap instead of silently joining around
 * it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} spliff_nss_writev_calls SEC(".maps");

SEC("uprobe")
int BPF_KPROBE(spliff_nss_writev_entry, void *fd)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	__u64 key = (__u64)fd;

	if (!spliff_process_wanted(pid_tgid) || !spliff_nss_is_tls(pid_tgid, key))
		return 0;
	bpf_map_update_elem(&spliff_nss_writev_calls, &tid, &key, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(spliff_nss_writev_return, int ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_conn_state *state;
	__u64 *saved, fd, base;

	saved = bpf_map_lookup_elem(&spliff_nss_writev_calls, &tid);
	if (!saved)
		return 0;
	fd = *saved;
	bpf_map_delete_elem(&spliff_nss_writev_calls, &tid);
	if (ret <= 0)
		return 0;
	state = spliff_conn_get(pid_tgid, fd, SPLIFF_LIB_NSS);
	if (!state)
		return 0;
	spliff_conn_report(pid_tgid, fd, state);
	base = __sync_fetch_and_add(&state->pos[SPLIFF_DIR_EGRESS - 1], (__u64)ret);
	spliff_emit_loss(pid_tgid, fd, base, (__u64)ret, SPLIFF_DIR_EGRESS, SPLIFF_LOSS_TRUNCATED);
	return 0;
}

/* ---- role ---- */

/* SSL_ResetHandshake(PRFileDesc *fd, PRBool asServer). */
SEC("uprobe")
int BPF_KPROBE(spliff_nss_reset_handshake_entry, void *fd, int as_server)
{
	__u64 conn = spliff_nss_conn_of(bpf_get_current_pid_tgid(), (__u64)fd);

	if (!conn)
		return 0;
	return spliff_set_role((void *)conn, as_server ? SPLIFF_ROLE_SERVER : SPLIFF_ROLE_CLIENT,
			       SPLIFF_LIB_NSS);
}

/* ssl.h's SSL_HANDSHAKE_AS_CLIENT and SSL_HANDSHAKE_AS_SERVER options. */
#define SPLIFF_NSS_AS_CLIENT 5
#define SPLIFF_NSS_AS_SERVER 6

/* SSL_OptionSet(PRFileDesc *fd, PRInt32 option, PRIntn on): only the role
 * options. Role setters only act on descriptors SSL_ImportFD returned, so
 * that they never make a descriptor look like TLS. */
SEC("uprobe")
int BPF_KPROBE(spliff_nss_option_set_entry, void *fd, int option, int on)
{
	__u64 conn;

	if (!on || (option != SPLIFF_NSS_AS_CLIENT && option != SPLIFF_NSS_AS_SERVER))
		return 0;
	conn = spliff_nss_conn_of(bpf_get_current_pid_tgid(), (__u64)fd);
	if (!conn)
		return 0;
	return spliff_set_role((void *)conn,
			       option == SPLIFF_NSS_AS_SERVER ? SPLIFF_ROLE_SERVER
							      : SPLIFF_ROLE_CLIENT,
			       SPLIFF_LIB_NSS);
}

/* ---- handshake: SSL_ForceHandshake(fd), SECSuccess (0) when done; SECFailure
 * (-1) both when it would block and when it failed ---- */

SEC("uprobe")
int BPF_KPROBE(spliff_nss_force_handshake_entry, void *fd)
{
	__u64 conn = spliff_nss_conn_of(bpf_get_current_pid_tgid(), (__u64)fd);

	if (!conn)
		return 0;
	return spliff_hs_entry((void *)conn, 0, SPLIFF_LIB_NSS);
}

/* ---- SNI, ALPN ---- */

/* SSL_SetURL(PRFileDesc *fd, const char *url): the host name NSS sends as
 * SNI and checks the certificate against. Read at return: NSS has copied it
 * by then, so its page is in memory (a string literal's page may not be
 * yet at entry, and a uprobe cannot fault it in). */
struct spliff_nss_url_call {
	__u64 fd;
	__u64 url;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct spliff_nss_url_call);
} spliff_nss_url_calls SEC(".maps");

SEC("uprobe")
int BPF_KPROBE(spliff_nss_set_url_entry, void *fd, const char *url)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_nss_url_call call = { .url = (__u64)url };

	if (!url || !spliff_process_wanted(pid_tgid))
		return 0;
	call.fd = spliff_nss_conn_of(pid_tgid, (__u64)fd);
	if (call.fd)
		bpf_map_update_elem(&spliff_nss_url_calls, &tid, &call, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(spliff_nss_set_url_return, int ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_nss_url_call *saved, call;

	saved = bpf_map_lookup_elem(&spliff_nss_url_calls, &tid);
	if (!saved)
		return 0;
	call = *saved;
	bpf_map_delete_elem(&spliff_nss_url_calls, &tid);
	if (ret == 0)
		spliff_emit_string(pid_tgid, call.fd, SPLIFF_STRING_SNI, (const void *)call.url, 0,
				   true);
	return 0;
}

struct spliff_nss_alpn_call {
	__u64 fd;
	__u64 buf;   /* unsigned char *: the protocol itself, not a pointer to it */
	__u64 len_p; /* unsigned int * */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct spliff_nss_alpn_call);
} spliff_nss_alpn_calls SEC(".maps");

/* SSL_GetNextProto(PRFileDesc *fd, SSLNextProtoState *state, unsigned char
 * *buf, unsigned int *bufLen, unsigned int bufLenMax): SECSuccess and the
 * protocol copied into buf (length 0 when none was negotiated). */
SEC("uprobe")
int BPF_KPROBE(spliff_nss_alpn_entry, void *fd, void *state, void *buf, void *len_p)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_nss_alpn_call call = {
		.fd = spliff_nss_conn_of(pid_tgid, (__u64)fd),
		.buf = (__u64)buf,
		.len_p = (__u64)len_p,
	};

	if (!buf || !len_p || !call.fd)
		return 0;
	bpf_map_update_elem(&spliff_nss_alpn_calls, &tid, &call, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(spliff_nss_alpn_return, int ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_nss_alpn_call *saved, call;
	struct spliff_conn_state *state;
	__u32 len = 0;

	saved = bpf_map_lookup_elem(&spliff_nss_alpn_calls, &tid);
	if (!saved)
		return 0;
	call = *saved;
	bpf_map_delete_elem(&spliff_nss_alpn_calls, &tid);
	if (ret != 0 || bpf_probe_read_user(&len, sizeof(len), (const void *)call.len_p) || !len)
		return 0;
	/* Firefox asks at every handshake callback: once per connection. */
	state = spliff_conn_get(pid_tgid, call.fd, SPLIFF_LIB_NSS);
	if (!state || (state->flags & SPLIFF_STATE_ALPN_SENT))
		return 0;
	state->flags |= SPLIFF_STATE_ALPN_SENT;
	spliff_emit_string(pid_tgid, call.fd, SPLIFF_STRING_ALPN, (const void *)call.buf, len,
			   false);
	return 0;
}

#endif /* SPLIFF_BPF_TLS_NSS_H */
