/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * wolfSSL uprobes. Its API mirrors OpenSSL's (wolfSSL_write(WOLFSSL *, const
 * void *, int) and so on), so these are OpenSSL's programs with wolfSSL's
 * library value; the return, shutdown and free programs are conn.h's.
 */
#ifndef SPLIFF_BPF_TLS_WOLFSSL_H
#define SPLIFF_BPF_TLS_WOLFSSL_H

SEC("uprobe")
int BPF_KPROBE(spliff_wolfssl_write_entry)
{
	return spliff_data_entry(ctx, SPLIFF_CALL_WRITE, SPLIFF_LIB_WOLFSSL, BPF_ANY);
}

SEC("uprobe")
int BPF_KPROBE(spliff_wolfssl_read_entry)
{
	return spliff_data_entry(ctx, SPLIFF_CALL_READ, SPLIFF_LIB_WOLFSSL, BPF_ANY);
}

/* wolfSSL_set_fd(WOLFSSL *, int fd). */
SEC("uprobe")
int BPF_KPROBE(spliff_wolfssl_set_fd, void *ssl, int fd)
{
	return spliff_set_fd(ssl, fd, SPLIFF_LIB_WOLFSSL);
}

/* wolfSSL_connect / wolfSSL_accept: 1 (WOLFSSL_SUCCESS) when done, -1
 * (WOLFSSL_FATAL_ERROR) both for "would block" and for a failure. */
SEC("uprobe")
int BPF_KPROBE(spliff_wolfssl_connect_entry, void *ssl)
{
	return spliff_hs_entry(ssl, SPLIFF_ROLE_CLIENT, SPLIFF_LIB_WOLFSSL);
}

SEC("uprobe")
int BPF_KPROBE(spliff_wolfssl_accept_entry, void *ssl)
{
	return spliff_hs_entry(ssl, SPLIFF_ROLE_SERVER, SPLIFF_LIB_WOLFSSL);
}

#define SPLIFF_WOLFSSL_SNI_HOST_NAME 0

/* wolfSSL_UseSNI(WOLFSSL *, unsigned char type, const void *data,
 * unsigned short size): the name is not NUL terminated. */
SEC("uprobe")
int BPF_KPROBE(spliff_wolfssl_use_sni_entry, void *ssl, unsigned char type, const void *data,
	       unsigned short size)
{
	__u64 pid_tgid;

	if (type != SPLIFF_WOLFSSL_SNI_HOST_NAME || !data || !size)
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	if (!spliff_process_wanted(pid_tgid))
		return 0;
	spliff_emit_string(pid_tgid, (__u64)ssl, SPLIFF_STRING_SNI, data, size, false);
	return 0;
}

#define SPLIFF_WOLFSSL_SUCCESS 1

/* wolfSSL_ALPN_GetProtocol(WOLFSSL *, char **name, unsigned short *size). */
SEC("uprobe")
int BPF_KPROBE(spliff_wolfssl_alpn_entry, void *ssl, void *data_pp, void *len_p)
{
	struct spliff_alpn_call call = {
		.ssl = (__u64)ssl,
		.data_pp = (__u64)data_pp,
		.len_p = (__u64)len_p,
		.ok_ret = SPLIFF_WOLFSSL_SUCCESS,
		.len_size = 2,
		.check_ret = 1,
		.library = SPLIFF_LIB_WOLFSSL,
	};

	return spliff_alpn_entry(&call);
}

#endif /* SPLIFF_BPF_TLS_WOLFSSL_H */
