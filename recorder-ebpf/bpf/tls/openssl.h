/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * OpenSSL (1.1 and 3.x) uprobes: plaintext of SSL_read/SSL_write and their
 * _ex variants, handshake timing, role, SNI, ALPN and close. User space
 * attaches each program to every libssl file it finds, once per file, so all
 * processes mapping that file are covered. The return, shutdown and free
 * programs are in conn.h, shared with the other libraries.
 */
#ifndef SPLIFF_BPF_TLS_OPENSSL_H
#define SPLIFF_BPF_TLS_OPENSSL_H

/* ---- data: SSL_write(SSL *, const void *, int) and the like ---- */

SEC("uprobe")
int BPF_KPROBE(spliff_ssl_write_entry)
{
	return spliff_data_entry(ctx, SPLIFF_CALL_WRITE, SPLIFF_LIB_OPENSSL, BPF_ANY);
}

SEC("uprobe")
int BPF_KPROBE(spliff_ssl_write_ex_entry)
{
	return spliff_data_entry(ctx, SPLIFF_CALL_WRITE_EX, SPLIFF_LIB_OPENSSL, BPF_ANY);
}

SEC("uprobe")
int BPF_KPROBE(spliff_ssl_read_entry)
{
	return spliff_data_entry(ctx, SPLIFF_CALL_READ, SPLIFF_LIB_OPENSSL, BPF_ANY);
}

SEC("uprobe")
int BPF_KPROBE(spliff_ssl_read_ex_entry)
{
	return spliff_data_entry(ctx, SPLIFF_CALL_READ_EX, SPLIFF_LIB_OPENSSL, BPF_ANY);
}

/* ---- connection identity ---- */

/* SSL_set_fd / SSL_set_rfd / SSL_set_wfd (SSL *, int fd). */
SEC("uprobe")
int BPF_KPROBE(spliff_ssl_set_fd, void *ssl, int fd)
{
	return spliff_set_fd(ssl, fd, SPLIFF_LIB_OPENSSL);
}

SEC("uprobe")
int BPF_KPROBE(spliff_ssl_set_connect_state, void *ssl)
{
	return spliff_set_role(ssl, SPLIFF_ROLE_CLIENT, SPLIFF_LIB_OPENSSL);
}

SEC("uprobe")
int BPF_KPROBE(spliff_ssl_set_accept_state, void *ssl)
{
	return spliff_set_role(ssl, SPLIFF_ROLE_SERVER, SPLIFF_LIB_OPENSSL);
}

/* ---- handshake (the return is spliff_ssl_handshake_return) ---- */

SEC("uprobe")
int BPF_KPROBE(spliff_ssl_do_handshake_entry, void *ssl)
{
	return spliff_hs_entry(ssl, 0, SPLIFF_LIB_OPENSSL);
}

SEC("uprobe")
int BPF_KPROBE(spliff_ssl_connect_entry, void *ssl)
{
	return spliff_hs_entry(ssl, SPLIFF_ROLE_CLIENT, SPLIFF_LIB_OPENSSL);
}

SEC("uprobe")
int BPF_KPROBE(spliff_ssl_accept_entry, void *ssl)
{
	return spliff_hs_entry(ssl, SPLIFF_ROLE_SERVER, SPLIFF_LIB_OPENSSL);
}

/* ---- SNI, ALPN ---- */

#define SPLIFF_SSL_CTRL_SET_TLSEXT_HOSTNAME 55

/* SSL_ctrl(SSL *, int cmd, long larg, void *parg); SSL_set_tlsext_host_name
 * is a macro for cmd 55 with the name in parg. */
SEC("uprobe")
int BPF_KPROBE(spliff_ssl_ctrl_entry, void *ssl, int cmd, long larg, const char *name)
{
	__u64 pid_tgid;

	if (cmd != SPLIFF_SSL_CTRL_SET_TLSEXT_HOSTNAME || !name)
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	if (!spliff_process_wanted(pid_tgid))
		return 0;
	spliff_emit_string(pid_tgid, (__u64)ssl, SPLIFF_STRING_SNI, name, 0, true);
	return 0;
}

/* SSL_get0_alpn_selected(const SSL *, const unsigned char **data,
 * unsigned int *len) returns nothing: the result is in the out-parameters
 * at return (spliff_ssl_alpn_return). */
SEC("uprobe")
int BPF_KPROBE(spliff_ssl_alpn_entry, void *ssl, void *data_pp, void *len_p)
{
	struct spliff_alpn_call call = {
		.ssl = (__u64)ssl,
		.data_pp = (__u64)data_pp,
		.len_p = (__u64)len_p,
		.len_size = 4,
		.library = SPLIFF_LIB_OPENSSL,
	};

	return spliff_alpn_entry(&call);
}

#endif /* SPLIFF_BPF_TLS_OPENSSL_H */
