/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * BoringSSL compiled into a stripped program (Chromium): no symbol names its
 * functions, so user space finds them by what they do
 * (recorder/src/boringssl) and attaches these programs by offset. The
 * arguments are OpenSSL's; only the library value differs. Returns and
 * close are conn.h's.
 */
#ifndef SPLIFF_BPF_TLS_BORINGSSL_H
#define SPLIFF_BPF_TLS_BORINGSSL_H

/* SSL_write(SSL *, const void *, int) */
SEC("uprobe")
int BPF_KPROBE(spliff_boringssl_write_entry)
{
	return spliff_data_entry(ctx, SPLIFF_CALL_WRITE, SPLIFF_LIB_BORINGSSL, BPF_ANY);
}

/* SSL_read(SSL *, void *, int) */
SEC("uprobe")
int BPF_KPROBE(spliff_boringssl_read_entry)
{
	return spliff_data_entry(ctx, SPLIFF_CALL_READ, SPLIFF_LIB_BORINGSSL, BPF_ANY);
}

/* SSL_do_handshake(SSL *): done at 1, failed at 0, as OpenSSL's. */
SEC("uprobe")
int BPF_KPROBE(spliff_boringssl_do_handshake_entry, void *ssl)
{
	return spliff_hs_entry(ssl, 0, SPLIFF_LIB_BORINGSSL);
}

/* SSL_new's return. SSL_free reports no error and so cannot be found; a new
 * SSL at the address of a connection the capture knew means that one was
 * freed: it ends here, and what follows at that address is a new one. */
SEC("uretprobe")
int BPF_KRETPROBE(spliff_boringssl_new_return, void *ssl)
{
	if (!ssl)
		return 0;
	return spliff_close(ssl, SPLIFF_CLOSE_FREE);
}

#endif /* SPLIFF_BPF_TLS_BORINGSSL_H */
