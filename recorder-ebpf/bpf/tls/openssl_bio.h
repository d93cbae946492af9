/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * OpenSSL 3's SSL BIO (BIO_f_ssl). Data read and written through it goes
 * the BIO's own methods, static functions of libssl that call OpenSSL's
 * internals (ssl_read_internal, ssl_write_internal), never the exported
 * SSL_read/SSL_write: `openssl s_server -WWW` reads its requests with
 * BIO_gets on a buffer BIO over an SSL BIO. User space finds the two
 * methods in the BIO_METHOD that BIO_f_ssl returns (recorder/src/
 * method_table.rs):
 *
 *   int ssl_read(BIO *b, char *buf, size_t size, size_t *readbytes)
 *   int ssl_write(BIO *b, const char *buf, size_t size, size_t *written)
 *
 * SSL_read_ex's shape with a BIO in place of the SSL *: 1 and the count
 * through the last argument. The connection is the BIO's SSL *, so the
 * handshake, fd, ALPN and close probes on SSL_* functions apply to it as to
 * any OpenSSL connection. A connection is never recorded twice: an
 * application calling SSL_read itself does not pass through these, and were
 * an OpenSSL version's method to call the exported SSL_read, that entry
 * would replace this one in the per-thread saved call and only one of the
 * two returns would find it.
 */
#ifndef SPLIFF_BPF_TLS_OPENSSL_BIO_H
#define SPLIFF_BPF_TLS_OPENSSL_BIO_H

/* struct bio_st (OpenSSL 3.0 on): libctx, method, callback, callback_ex,
 * cb_arg, init, shutdown, flags, retry_reason, num, ptr. */
#define SPLIFF_BIO_METHOD 8
#define SPLIFF_BIO_PTR 64
/* BIO_SSL (bio_ssl.c, OpenSSL 3): SSL *ssl comes first. */
#define SPLIFF_BIO_SSL_SSL 0
/* BIO_TYPE_SSL: the first field of the BIO's method. */
#define SPLIFF_BIO_TYPE_SSL 0x207

/* The SSL * of an SSL BIO; 0 when `bio` does not have OpenSSL 3's layout
 * (its method's type is checked: OpenSSL 1.1 keeps a callback there). */
static __always_inline __u64 spliff_bio_ssl(__u64 bio)
{
	__u64 method = 0, ptr = 0, ssl = 0;
	__s32 type = 0;

	if (bpf_probe_read_user(&method, sizeof(method), (void *)(bio + SPLIFF_BIO_METHOD)) ||
	    !method || bpf_probe_read_user(&type, sizeof(type), (void *)method) ||
	    type != SPLIFF_BIO_TYPE_SSL)
		return 0;
	if (bpf_probe_read_user(&ptr, sizeof(ptr), (void *)(bio + SPLIFF_BIO_PTR)) || !ptr)
		return 0;
	if (bpf_probe_read_user(&ssl, sizeof(ssl), (void *)(ptr + SPLIFF_BIO_SSL_SSL)))
		return 0;
	return ssl;
}

static __always_inline int spliff_ssl_bio_entry(struct pt_regs *ctx, __u32 kind)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_data_call call = {};

	if (!spliff_process_wanted(pid_tgid))
		return 0;
	call.ssl = spliff_bio_ssl(PT_REGS_PARM1(ctx));
	if (!call.ssl)
		return 0;
	call.buf = PT_REGS_PARM2(ctx);
	call.out_len = PT_REGS_PARM4(ctx);
	call.entry_ns = bpf_ktime_get_boot_ns();
	call.kind = kind;
	call.library = SPLIFF_LIB_OPENSSL;
	if (!bpf_map_update_elem(&spliff_data_calls, &tid, &call, BPF_ANY))
		spliff_ssl_calls_add(1);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(spliff_ssl_bio_write_entry)
{
	return spliff_ssl_bio_entry(ctx, SPLIFF_CALL_WRITE_EX);
}

SEC("uprobe")
int BPF_KPROBE(spliff_ssl_bio_read_entry)
{
	return spliff_ssl_bio_entry(ctx, SPLIFF_CALL_READ_EX);
}

#endif /* SPLIFF_BPF_TLS_OPENSSL_BIO_H */
