/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * spliff kernel <-> user ABI: every type that crosses the kernel boundary.
 *
 * This header is the single definition. It is compiled three ways: into the
 * BPF object (after vmlinux.h), by the host C compiler in the layout test
 * (recorder-ebpf/tests/abi_layout.rs), and mirrored by hand in
 * recorder-ebpf/src/abi.rs, which that test checks field by field.
 *
 * Rules, because user space reinterprets these bytes without a schema:
 *   - fixed-width fields only; no bool, no enums as field types, no pointers;
 *   - every struct is explicitly padded: no compiler-inserted holes, size a
 *     multiple of 8 so records stay 8-aligned in the ring buffer;
 *   - event kinds and stat indices are append-only: a value, once released,
 *     keeps its meaning forever and a retired one is never reused, so old
 *     traces and tools never misread a record.
 */
#ifndef SPLIFF_ABI_H
#define SPLIFF_ABI_H

#if defined(__VMLINUX_H__)
/* vmlinux.h already provides __u8 .. __u64. */
#elif defined(__linux__)
#include <linux/types.h>
#else
/* Host-only builds of the layout test on non-Linux systems. */
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
typedef int32_t __s32;
#endif

/* Event kinds (spliff_event_header.kind). 0 is never emitted, so a zeroed or
 * uninitialised record can never pass as a real event. */
enum spliff_event_kind {
	SPLIFF_EVENT_INVALID = 0,
	SPLIFF_EVENT_PROCESS_EXEC = 1,
	SPLIFF_EVENT_TLS_DATA = 2,      /* struct spliff_tls_data_event */
	SPLIFF_EVENT_TLS_LOSS = 3,      /* struct spliff_tls_loss_event */
	SPLIFF_EVENT_TLS_CONN = 4,      /* struct spliff_tls_conn_event */
	SPLIFF_EVENT_TLS_HANDSHAKE = 5, /* struct spliff_tls_handshake_event */
	SPLIFF_EVENT_TLS_CLOSE = 6,     /* struct spliff_tls_close_event */
	SPLIFF_EVENT_TLS_STRING = 7,    /* struct spliff_tls_string_event */
	SPLIFF_EVENT_PACKET = 8,        /* struct spliff_packet_event (own ring) */
	SPLIFF_EVENT_SOCKET = 9,        /* struct spliff_socket_event (sock_ops) */
	SPLIFF_EVENT_UNIX_CONN = 10,    /* struct spliff_unix_conn_event */
	/* append only */
};

/*
 * Leads every record in the spliff_events ring buffer. The reader trusts
 * nothing after the header until kind and size have been validated.
 */
struct spliff_event_header {
	__u32 kind;  /* enum spliff_event_kind */
	__u32 size;  /* whole record in bytes, header included */
	__u64 ts_ns; /* CLOCK_BOOTTIME (bpf_ktime_get_boot_ns): counts suspend,
		      * so one offset maps it to wall clock for pcapng */
	__u32 pid;   /* tgid, as seen from the initial pid namespace */
	__u32 tid;   /* thread id (kernel pid), initial pid namespace */
};

#define SPLIFF_COMM_LEN 16      /* TASK_COMM_LEN */
#define SPLIFF_FILENAME_MAX 256 /* bytes kept of the exec'd path, NUL included */

/* spliff_process_exec_event.flags */
#define SPLIFF_EXEC_FILENAME_TRUNCATED (1U << 0)
#define SPLIFF_EXEC_FILENAME_UNREADABLE (1U << 1)
/* The kernel sent the process SIGSTOP before its first instruction (--comm
 * attaches per process): user space attaches its uprobes, then SIGCONTs it. */
#define SPLIFF_EXEC_STOPPED (1U << 2)
/* Not an exec: a selected process forked this one (header.pid) without exec;
 * the record comes from the parent's fork, filename is empty and the child
 * already runs (a fork cannot be stopped from the parent's context). */
#define SPLIFF_EXEC_FORKED (1U << 3)

/* A task completed execve(); from the sched/sched_process_exec tracepoint. */
struct spliff_process_exec_event {
	struct spliff_event_header header; /* kind = SPLIFF_EVENT_PROCESS_EXEC */
	__u32 ppid;                        /* tgid of real_parent */
	__u32 uid;                         /* real uid, initial user namespace */
	__u32 filename_len;                /* valid bytes in filename, no NUL */
	__u32 flags;                       /* SPLIFF_EXEC_* */
	__u8 comm[SPLIFF_COMM_LEN];        /* new comm, NUL padded */
	__u8 filename[SPLIFF_FILENAME_MAX]; /* path given to execve */
};

/*
 * TLS events. A connection is identified in the kernel by (tgid, SSL *): the
 * pointer alone is reused across processes and after SSL_free. User space
 * maps that pair to the trace's conn_id. "SSL *" stands for each library's
 * connection object: gnutls_session_t for GnuTLS, WOLFSSL * for wolfSSL.
 */

/* Plaintext bytes per TLS data event; larger calls become several events
 * with consecutive stream offsets. Fits a per-CPU scratch map value. */
#define SPLIFF_DATA_CHUNK 16384
/* At most this many chunks are copied per SSL_read/SSL_write call (16 MiB);
 * the rest of a larger call is reported as a truncation loss. */
#define SPLIFF_MAX_CHUNKS_PER_CALL 1024

/* Directions, as in the trace format. */
#define SPLIFF_DIR_EGRESS 1  /* written by the process (SSL_write) */
#define SPLIFF_DIR_INGRESS 2 /* read by the process (SSL_read) */

/*
 * One piece of plaintext. The ring record is variable-sized: header.size =
 * offsetof(data) + data_len (data_len <= SPLIFF_DATA_CHUNK).
 * stream_offset is assigned in the kernel per (connection, direction) when
 * the call returns, so a dropped event leaves a visible gap.
 */
struct spliff_tls_data_event {
	struct spliff_event_header header; /* ts: entry (writes) or return (reads) */
	__u64 ssl;                         /* SSL * in the process */
	__u64 stream_offset;               /* first byte of data in the stream */
	__u32 data_len;                    /* valid bytes in data */
	__u8 direction;                    /* SPLIFF_DIR_* */
	__u8 reserved8;
	__u16 reserved16;
	__u8 data[SPLIFF_DATA_CHUNK];
};

/* spliff_tls_loss_event.cause, equal to the trace format's loss causes. */
#define SPLIFF_LOSS_TRUNCATED 1  /* beyond SPLIFF_MAX_CHUNKS_PER_CALL */
#define SPLIFF_LOSS_READ_FAULT 3 /* bpf_probe_read_user failed */
#define SPLIFF_LOSS_RINGBUF 2    /* a data event did not fit in the ring */

/* A byte range of a stream the kernel could not deliver. */
struct spliff_tls_loss_event {
	struct spliff_event_header header;
	__u64 ssl;
	__u64 stream_offset;
	__u64 length;
	__u8 direction;
	__u8 cause; /* SPLIFF_LOSS_* */
	__u16 reserved16;
	__u32 reserved32;
};

/* spliff_tls_conn_event.flags: which fields are valid. */
#define SPLIFF_CONN_HAS_SOCKET (1U << 0) /* fd, cookie, addresses, ports */
#define SPLIFF_CONN_HAS_ROLE (1U << 1)
#define SPLIFF_CONN_HAS_FD (1U << 2)

/* spliff_tls_conn_event.role, equal to the trace format's roles. */
#define SPLIFF_ROLE_CLIENT 1
#define SPLIFF_ROLE_SERVER 2

/* spliff_tls_conn_event.library: which library's probes saw the connection,
 * equal to the trace format's tls_library values. 0: not known. */
#define SPLIFF_LIB_OPENSSL 1
#define SPLIFF_LIB_BORINGSSL 2 /* compiled into a stripped program (Chromium) */
#define SPLIFF_LIB_GNUTLS 3
#define SPLIFF_LIB_NSS 4 /* NSS over NSPR: the connection object is the PRFileDesc * */
#define SPLIFF_LIB_WOLFSSL 5
#define SPLIFF_LIB_GO 6 /* Go crypto/tls, linked into the program */

/* What the kernel learned about a connection: the socket behind its fd
 * (walked from the calling task at first sight), its role, and which
 * library it belongs to (sent with the first report of every connection). */
struct spliff_tls_conn_event {
	struct spliff_event_header header;
	__u64 ssl;
	__u64 socket_cookie; /* 0 when the kernel never assigned one */
	__s32 fd;            /* -1 unknown */
	__u16 family;        /* AF_INET 2, AF_INET6 10; 0 unknown */
	__u16 protocol;      /* IPPROTO_TCP 6 ... */
	__u16 local_port;    /* host order */
	__u16 remote_port;   /* host order */
	__u8 role;           /* SPLIFF_ROLE_* or 0 */
	__u8 flags;          /* SPLIFF_CONN_HAS_* */
	__u8 library;        /* SPLIFF_LIB_* or 0 */
	__u8 reserved8;
	__u8 local_addr[16];  /* IPv4 in the first 4 bytes, network order */
	__u8 remote_addr[16];
	__u8 comm[SPLIFF_COMM_LEN]; /* comm of the calling task */
};

/* Return of SSL_do_handshake / SSL_connect / SSL_accept (or the library's
 * equivalent). Every return is reported (non-blocking sockets return -1 until
 * done); ret is the library's own return value, user space reads it by the
 * connection's library. header.ts_ns is the return time. */
struct spliff_tls_handshake_event {
	struct spliff_event_header header;
	__u64 ssl;
	__u64 start_ns; /* entry of the first handshake call on this SSL */
	__s32 ret;
	__u32 reserved32;
};

/* spliff_tls_close_event.reason */
#define SPLIFF_CLOSE_SHUTDOWN 1 /* SSL_shutdown: the connection stays known */
#define SPLIFF_CLOSE_FREE 2     /* SSL_free: the (tgid, SSL *) pair ends */

/* SSL_shutdown or SSL_free. end_offset[] holds the kernel's stream
 * positions (egress, ingress), so a lost tail is detectable. */
struct spliff_tls_close_event {
	struct spliff_event_header header;
	__u64 ssl;
	__u64 end_offset_egress;
	__u64 end_offset_ingress;
	__u32 reason; /* SPLIFF_CLOSE_* */
	__u32 reserved32;
};

#define SPLIFF_STRING_MAX 256
/* spliff_tls_string_event.kind */
#define SPLIFF_STRING_SNI 1  /* SSL_ctrl(SSL_CTRL_SET_TLSEXT_HOSTNAME) */
#define SPLIFF_STRING_ALPN 2 /* SSL_get0_alpn_selected */

/* A short string learned about a connection. */
struct spliff_tls_string_event {
	struct spliff_event_header header;
	__u64 ssl;
	__u32 kind; /* SPLIFF_STRING_* */
	__u32 len;  /* valid bytes in value */
	__u8 value[SPLIFF_STRING_MAX];
};

/*
 * Packets (XDP and TC). They travel in their own ring, spliff_packets, so a
 * packet flood can fill it without taking room from TLS plaintext in
 * spliff_events; a full packet ring is counted per interface.
 */

/* Largest snap length: Ethernet + VLAN + IPv6 with a few extension headers +
 * TCP with full options fits; payload beyond that is never copied. Fixes the
 * scratch record size, so it is part of the ABI. */
#define SPLIFF_PACKET_SNAPLEN_MAX 256

/* spliff_packet_event.hook */
#define SPLIFF_HOOK_XDP 1 /* XDP, ingress */
#define SPLIFF_HOOK_TC 2  /* TC (tcx or clsact), ingress or egress */

/* Headers of one packet as a hook saw it. Variable-sized in the ring:
 * header.size = offsetof(data) + captured_len. header.pid/tid are 0: hooks
 * run in softirq or in whatever task sends, neither names the owner. */
struct spliff_packet_event {
	struct spliff_event_header header;
	__u64 socket_cookie; /* TC egress: the sending socket's; 0 unknown */
	__u32 ifindex;       /* in the recorder's network namespace */
	__u32 wire_len;      /* whole packet as the hook saw it (a GSO skb
			      * counts all its segments) */
	__u16 captured_len;  /* valid bytes in data */
	__u8 direction;      /* SPLIFF_DIR_INGRESS (received) / _EGRESS (sent) */
	__u8 hook;           /* SPLIFF_HOOK_* */
	__u16 protocol;      /* TC: skb->protocol (ethertype, host order); 0 XDP */
	__u16 reserved16;
	__u8 data[SPLIFF_PACKET_SNAPLEN_MAX]; /* from the link-layer header (or
					       * IP on devices without one) */
};

/* spliff_packet_iface.flags */
#define SPLIFF_IFACE_HEADERS_ONLY 1 /* keep the parsed link, network and transport
				     * headers, at most snaplen bytes: no payload */
#define SPLIFF_IFACE_NO_LINK_HEADER 2 /* packets start at the IP header (tunnels) */

/* Value of spliff_packet_ifaces (per CPU, key: ifindex): an interface the
 * recorder captures on, its settings (the same on every CPU) and its counters
 * (this CPU's). One entry holds both so a packet costs one map lookup. Hooks
 * on an interface without an entry pass packets unseen. User space detaches
 * the hooks before it reads the counters and deletes the entry. */
struct spliff_packet_iface {
	__u32 snaplen;   /* bytes kept per packet at most, 1..SPLIFF_PACKET_SNAPLEN_MAX */
	__u32 flags;     /* SPLIFF_IFACE_* */
	__u64 seen;      /* packets the hooks saw */
	__u64 written;   /* packets put into spliff_packets */
	__u64 ring_full; /* packets lost: spliff_packets had no room */
	__u64 bytes;     /* wire_len of the packets seen */
};

/* Default size of the spliff_packets ring buffer. */
#define SPLIFF_PACKET_RINGBUF_DEFAULT_BYTES (8U * 1024 * 1024)

/* spliff_socket_event.op: which sock_ops callback reported the socket. */
#define SPLIFF_SOCKET_CONNECT 1             /* connect(): in the owner's context */
#define SPLIFF_SOCKET_ACTIVE_ESTABLISHED 2  /* SYN-ACK received (client) */
#define SPLIFF_SOCKET_PASSIVE_ESTABLISHED 3 /* handshake done (accepted child) */
#define SPLIFF_SOCKET_STATE 4               /* TCP state change, close included */

/* spliff_socket_event.flags */
/* header.pid and comm are the socket's owner. Only connect() runs in the
 * owner's context; the other callbacks mostly run in softirq, where the
 * current task is whoever was interrupted, so they report pid 0. */
#define SPLIFF_SOCKET_HAS_OWNER (1U << 0)

/* TCP states in old_state/new_state, as the kernel numbers them. */
#define SPLIFF_TCP_ESTABLISHED 1
#define SPLIFF_TCP_CLOSE 7

/*
 * A TCP socket as sock_ops sees it, at connect, establishment and every
 * state change. The cookie is the kernel's socket cookie (the program asks
 * for it, which also makes the kernel assign it, so the TLS probes' fd walk
 * reads the same value afterwards).
 */
struct spliff_socket_event {
	struct spliff_event_header header; /* pid 0 unless SPLIFF_SOCKET_HAS_OWNER */
	__u64 cookie;
	__u8 op;        /* SPLIFF_SOCKET_* */
	__u8 old_state; /* SPLIFF_SOCKET_STATE: state before, else 0 */
	__u8 new_state; /* SPLIFF_SOCKET_STATE: state after, else the current */
	__u8 flags;     /* SPLIFF_SOCKET_HAS_* */
	__u16 family;   /* AF_INET 2, AF_INET6 10 */
	__u16 protocol; /* IPPROTO_TCP */
	__u16 local_port;  /* host order */
	__u16 remote_port; /* host order */
	__u32 reserved32;
	__u8 local_addr[16];  /* IPv4 in the first 4 bytes, network order */
	__u8 remote_addr[16];
	__u8 comm[SPLIFF_COMM_LEN]; /* with SPLIFF_SOCKET_HAS_OWNER */
};

/*
 * Unix stream sockets (--unix). Their bytes travel as TLS data, loss and
 * close events whose "ssl" field holds the kernel address of the socket's
 * struct sock: a kernel address never equals a user-space SSL *, so the two
 * kinds of connection cannot share a (tgid, ssl) key. The connection itself
 * is announced once, before its first data, by a spliff_unix_conn_event.
 */

/* sun_path's size in struct sockaddr_un. */
#define SPLIFF_UNIX_PATH_MAX 108

/* Key of spliff_unix_paths: a socket path as the kernel stores it, zero
 * padded. A path name socket is its bytes (then zeros); an abstract one starts
 * with a NUL byte and is exactly its address length. */
struct spliff_unix_path_key {
	__u8 path[SPLIFF_UNIX_PATH_MAX];
};

/* First sight of a selected unix stream socket in a process. */
struct spliff_unix_conn_event {
	struct spliff_event_header header;
	__u64 sk;         /* struct sock *: the "ssl" of its data events */
	__u64 inode;      /* this end's socket inode (as in /proc/net/unix) */
	__u64 peer_inode; /* the other end's; 0 unknown (not yet accepted) */
	__u32 peer_pid;   /* SO_PEERCRED's pid (the peer at connect or listen
			   * time, initial pid namespace); 0 unknown */
	__s32 fd;
	__u8 role;        /* SPLIFF_ROLE_CLIENT: this end connected (unbound);
			   * SPLIFF_ROLE_SERVER: accepted (bound to the path) */
	__u8 reserved8;
	__u16 path_len;   /* valid bytes in path; 0 unnamed (socketpair) */
	__u32 reserved32;
	__u8 path[SPLIFF_UNIX_PATH_MAX]; /* abstract names start with NUL */
	__u8 comm[SPLIFF_COMM_LEN];      /* comm of the calling task */
	__u8 reserved_tail[4];
};

/* Indices of the per-CPU counters in the spliff_stats map. Append only. */
enum spliff_stat {
	SPLIFF_STAT_RINGBUF_FULL = 0, /* events lost: ring buffer had no room */
	SPLIFF_STAT_RINGBUF_FULL_BYTES = 1, /* plaintext bytes of those events */
	SPLIFF_STAT_COUNT,            /* number of counters, not a counter */
};

/* spliff_tracked_tgids values: how a tracked process is treated. */
#define SPLIFF_TRACK_RECORD 1 /* record it (and its future children) */
#define SPLIFF_TRACK_FOLLOW 2 /* do not record it, but record its children */
#define SPLIFF_TRACK_ONLY 3   /* record it, not its children (--pid) */

/*
 * Key of the spliff_stopped map: one SIGSTOP the exec program sent. ts_ns is
 * the header.ts_ns of the exec event reporting that stop, so two stops of one
 * pid (a continued process that execs again) are two entries and the
 * recorder removes exactly the one it continued.
 */
struct spliff_stop_key {
	__u32 pid; /* tgid */
	__u32 reserved32;
	__u64 ts_ns;
};

/* Stops pending at once at most; with the map full the exec program stops
 * nothing (a missed first TLS call is better than a stop nobody undoes). */
#define SPLIFF_STOPPED_MAX 4096

/* Default size of the spliff_events ring buffer; user space may override it
 * (power of two, multiple of the page size). */
#define SPLIFF_RINGBUF_DEFAULT_BYTES (4U * 1024 * 1024)

#endif /* SPLIFF_ABI_H */
