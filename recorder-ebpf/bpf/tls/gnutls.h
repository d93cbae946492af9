/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * GnuTLS (3.x, libgnutls.so.30) uprobes. The connection object is the
 * gnutls_session_t; the return, shutdown (gnutls_bye) and free
 * (gnutls_deinit) programs are conn.h's.
 */
#ifndef SPLIFF_BPF_TLS_GNUTLS_H
#define SPLIFF_BPF_TLS_GNUTLS_H

/* ---- data ---- */

/* gnutls_record_send(session, const void *, size_t) tail-calls
 * gnutls_record_send2 with the same arguments: NOEXIST keeps one saved call,
 * and the second of the two returns (which fire together) finds none. The
 * recv functions do not nest, but a stale entry is as harmless for them. */
SEC("uprobe")
int BPF_KPROBE(spliff_gnutls_send_entry)
{
	return spliff_data_entry(ctx, SPLIFF_CALL_WRITE, SPLIFF_LIB_GNUTLS, BPF_NOEXIST);
}

/* gnutls_record_recv(session, void *, size_t) and gnutls_record_recv_seq
 * (the same plus a sequence number out-parameter). */
SEC("uprobe")
int BPF_KPROBE(spliff_gnutls_recv_entry)
{
	return spliff_data_entry(ctx, SPLIFF_CALL_READ, SPLIFF_LIB_GNUTLS, BPF_NOEXIST);
}

/* ---- connection identity ---- */

/* gnutls_init's flags. */
#define SPLIFF_GNUTLS_SERVER 1
#define SPLIFF_GNUTLS_CLIENT 2

struct spliff_gnutls_init_call {
	__u64 session_p; /* gnutls_session_t * */
	__u32 flags;
	__u32 reserved;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct spliff_gnutls_init_call);
} spliff_gnutls_init_calls SEC(".maps");

/* gnutls_init(gnutls_session_t *session, unsigned int flags): the session
 * exists at return, and the flags say client or server. */
SEC("uprobe")
int BPF_KPROBE(spliff_gnutls_init_entry, void *session_p, unsigned int flags)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_gnutls_init_call call = { .session_p = (__u64)session_p, .flags = flags };

	if (!spliff_process_wanted(pid_tgid))
		return 0;
	bpf_map_update_elem(&spliff_gnutls_init_calls, &tid, &call, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(spliff_gnutls_init_return, int ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_gnutls_init_call *saved, call;
	__u64 session = 0;
	__u8 role = 0;

	saved = bpf_map_lookup_elem(&spliff_gnutls_init_calls, &tid);
	if (!saved)
		return 0;
	call = *saved;
	bpf_map_delete_elem(&spliff_gnutls_init_calls, &tid);
	if (ret != 0 ||
	    bpf_probe_read_user(&session, sizeof(session), (const void *)call.session_p) ||
	    !session)
		return 0;
	/* A session at the address of one whose gnutls_deinit was missed is a
	 * new connection: end the old one first. */
	spliff_close((void *)session, SPLIFF_CLOSE_FREE);
	if (call.flags & SPLIFF_GNUTLS_SERVER)
		role = SPLIFF_ROLE_SERVER;
	else if (call.flags & SPLIFF_GNUTLS_CLIENT)
		role = SPLIFF_ROLE_CLIENT;
	if (role)
		return spliff_set_role((void *)session, role, SPLIFF_LIB_GNUTLS);
	spliff_conn_get(pid_tgid, session, SPLIFF_LIB_GNUTLS);
	return 0;
}

/* gnutls_transport_set_int2(session, int recv_fd, int send_fd); set_int is
 * a macro for it. The send side names the socket. */
SEC("uprobe")
int BPF_KPROBE(spliff_gnutls_set_int2, void *session, int recv_fd, int send_fd)
{
	return spliff_set_fd(session, send_fd, SPLIFF_LIB_GNUTLS);
}

/* A transport pointer is what the application's push/pull functions get;
 * wget and libcurl store the fd in it. Anything else (a real pointer) is
 * left to the sys_enter fallback. */
static __always_inline int spliff_gnutls_ptr_fd(void *session, __u64 ptr)
{
	if (ptr > 0x7fffffff)
		return 0;
	return spliff_set_fd(session, (int)ptr, SPLIFF_LIB_GNUTLS);
}

/* gnutls_transport_set_ptr(session, gnutls_transport_ptr_t). */
SEC("uprobe")
int BPF_KPROBE(spliff_gnutls_set_ptr, void *session, __u64 ptr)
{
	return spliff_gnutls_ptr_fd(session, ptr);
}

/* gnutls_transport_set_ptr2(session, recv_ptr, send_ptr). */
SEC("uprobe")
int BPF_KPROBE(spliff_gnutls_set_ptr2, void *session, __u64 recv_ptr, __u64 send_ptr)
{
	return spliff_gnutls_ptr_fd(session, send_ptr);
}

/* ---- handshake: gnutls_handshake(session), 0 when done, negative else
 * (GNUTLS_E_AGAIN and GNUTLS_E_INTERRUPTED: not yet) ---- */

SEC("uprobe")
int BPF_KPROBE(spliff_gnutls_handshake_entry, void *session)
{
	return spliff_hs_entry(session, 0, SPLIFF_LIB_GNUTLS);
}

/* ---- SNI, ALPN ---- */

#define SPLIFF_GNUTLS_NAME_DNS 1

/* gnutls_server_name_set(session, type, const void *name, size_t len). */
SEC("uprobe")
int BPF_KPROBE(spliff_gnutls_server_name_set_entry, void *session, int type, const void *name,
	       __u64 len)
{
	__u64 pid_tgid;

	if (type != SPLIFF_GNUTLS_NAME_DNS || !name || !len)
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	if (!spliff_process_wanted(pid_tgid))
		return 0;
	spliff_emit_string(pid_tgid, (__u64)session, SPLIFF_STRING_SNI, name,
			   len > SPLIFF_STRING_MAX ? SPLIFF_STRING_MAX : (__u32)len, false);
	return 0;
}

/* gnutls_alpn_get_selected_protocol(session, gnutls_datum_t *protocol):
 * 0 and the datum ({unsigned char *data; unsigned int size}) on success. */
SEC("uprobe")
int BPF_KPROBE(spliff_gnutls_alpn_entry, void *session, void *datum)
{
	struct spliff_alpn_call call = {
		.ssl = (__u64)session,
		.data_pp = (__u64)datum,
		.len_p = (__u64)datum + 8,
		.ok_ret = 0,
		.len_size = 4,
		.check_ret = 1,
		.library = SPLIFF_LIB_GNUTLS,
	};

	return spliff_alpn_entry(&call);
}

#endif /* SPLIFF_BPF_TLS_GNUTLS_H */
