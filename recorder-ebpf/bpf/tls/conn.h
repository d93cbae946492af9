/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * What every TLS library's probes share: the per-connection state keyed by
 * (tgid, connection object), the data calls in flight and their chunked
 * copy into the ring, handshake timing, ALPN out-parameters and close. A
 * library header (openssl.h, gnutls.h, wolfssl.h) adds entry programs that
 * read its functions' arguments and pass its SPLIFF_LIB_* value; the return
 * programs here are shared, since the entry saved everything they need.
 *
 * "ssl" below is the library's connection object: SSL *, gnutls_session_t,
 * WOLFSSL *.
 *
 * Every entry probe checks the capture scope first; return probes only act
 * when their entry saved a call, so out-of-scope processes pay the trap and a
 * map lookup, never a copy.
 */
#ifndef SPLIFF_BPF_TLS_CONN_H
#define SPLIFF_BPF_TLS_CONN_H

/* Which function a saved call belongs to. */
#define SPLIFF_CALL_READ 1
#define SPLIFF_CALL_WRITE 2
#define SPLIFF_CALL_READ_EX 3
#define SPLIFF_CALL_WRITE_EX 4

/* Arguments of a data call in flight, saved at entry for the return probe. */
struct spliff_data_call {
	__u64 ssl;
	__u64 buf;
	__u64 out_len; /* _ex: size_t *; else 0 */
	__u64 entry_ns;
	__u64 sp; /* stack pointer at entry: where the return address is */
	__u32 kind;   /* SPLIFF_CALL_* */
	__u8 library; /* SPLIFF_LIB_* */
	__u8 reserved[3];
};

/* Keyed by thread id: a thread is in at most one data call at a time
 * (OpenSSL and wolfSSL do not nest them; GnuTLS's gnutls_record_send
 * tail-calls gnutls_record_send2 with the same arguments, see gnutls.h). LRU so a thread killed inside a
 * call cannot leak its entry forever. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct spliff_data_call);
} spliff_data_calls SEC(".maps");

struct spliff_hs_call {
	__u64 ssl;
	__u64 entry_ns;
	__u8 library; /* SPLIFF_LIB_* */
	__u8 reserved[7];
};

/* Handshake calls in flight per thread (SSL_connect calls SSL_do_handshake;
 * the outer entry is kept). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct spliff_hs_call);
} spliff_hs_calls SEC(".maps");

/* SSL data and handshake calls in flight, all threads together. The
 * sys_enter fallback below runs for every read/write syscall of the whole
 * machine; while this is zero none of them can be inside an SSL call, and it
 * returns before any per-thread lookup. Counted up at each entry recorded
 * above and down only when a return finds its entry, so an entry lost to
 * LRU eviction or a killed thread leaves it too high (the lookups run, as
 * before), never too low. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s64);
} spliff_ssl_calls_in_flight SEC(".maps");

static __always_inline void spliff_ssl_calls_add(__s64 delta)
{
	__u32 zero = 0;
	__s64 *count = bpf_map_lookup_elem(&spliff_ssl_calls_in_flight, &zero);

	if (count)
		__sync_fetch_and_add(count, delta);
}

/* Where a "which protocol was selected" call writes its answer. */
struct spliff_alpn_call {
	__u64 ssl;
	__u64 data_pp; /* const unsigned char ** (a gnutls_datum_t's data field) */
	__u64 len_p;   /* the length: unsigned int * or, wolfSSL, unsigned short * */
	__s32 ok_ret;  /* with check_ret: the return value of success */
	__u8 len_size; /* 4 or 2 */
	__u8 check_ret;
	__u8 library;
	__u8 reserved;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct spliff_alpn_call);
} spliff_alpn_calls SEC(".maps");

struct spliff_conn_key {
	__u32 tgid;
	__u32 reserved;
	__u64 ssl;
};

/* spliff_conn_state.flags */
#define SPLIFF_STATE_SOCKET_SENT (1U << 0)
#define SPLIFF_STATE_ROLE_SENT (1U << 1)
#define SPLIFF_STATE_ALPN_SENT (1U << 2)
#define SPLIFF_STATE_SHUTDOWN_SENT (1U << 3)
#define SPLIFF_STATE_LIBRARY_SENT (1U << 4)

/* What the kernel keeps per live (tgid, SSL *). */
struct spliff_conn_state {
	__u64 pos[2];   /* next stream offset: [0] egress, [1] ingress */
	__u64 hs_start; /* entry of the first handshake call; 0 none yet */
	__s32 fd;       /* -1 unknown */
	__u32 flags;    /* SPLIFF_STATE_* */
	__u8 role;      /* SPLIFF_ROLE_* or 0 */
	__u8 library;   /* SPLIFF_LIB_*: whose probes created it */
	__u8 reserved[6];
};

/* LRU: a process that never calls SSL_free (killed) must not fill it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct spliff_conn_key);
	__type(value, struct spliff_conn_state);
} spliff_conns SEC(".maps");

/* One data event under construction; too large for the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct spliff_tls_data_event);
} spliff_data_scratch SEC(".maps");

/* The state of (tgid, ssl); created for `library` unless that is 0. */
static __always_inline struct spliff_conn_state *spliff_conn_get(__u64 pid_tgid, __u64 ssl,
								  __u8 library)
{
	struct spliff_conn_key key = { .tgid = pid_tgid >> 32, .ssl = ssl };
	struct spliff_conn_state *state = bpf_map_lookup_elem(&spliff_conns, &key);
	struct spliff_conn_state fresh = { .fd = -1, .library = library };

	if (state || !library)
		return state;
	bpf_map_update_elem(&spliff_conns, &key, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&spliff_conns, &key);
}

/* Sends the connection's library (once: with the first report, so user space
 * knows it before any data), what its socket is (once) and its role (once).
 * Must run in the owning task: the fd is looked up in the current task's
 * table. */
static __always_inline void spliff_conn_report(__u64 pid_tgid, __u64 ssl,
					       struct spliff_conn_state *state)
{
	struct spliff_tls_conn_event *event;
	bool socket = !(state->flags & SPLIFF_STATE_SOCKET_SENT) && state->fd >= 0;
	bool role = !(state->flags & SPLIFF_STATE_ROLE_SENT) && state->role;
	bool library = !(state->flags & SPLIFF_STATE_LIBRARY_SENT);

	if (!socket && !role && !library)
		return;
	event = spliff_event_reserve(SPLIFF_EVENT_TLS_CONN, sizeof(*event), pid_tgid);
	if (!event)
		return;
	__builtin_memset((void *)event + sizeof(event->header), 0,
			 sizeof(*event) - sizeof(event->header));
	event->ssl = ssl;
	event->fd = -1;
	event->library = state->library;
	state->flags |= SPLIFF_STATE_LIBRARY_SENT;
	bpf_get_current_comm(event->comm, sizeof(event->comm));
	if (socket) {
		event->fd = state->fd;
		event->flags |= SPLIFF_CONN_HAS_FD;
		if (spliff_socket_from_fd(state->fd, event)) {
			event->flags |= SPLIFF_CONN_HAS_SOCKET;
			/* Only selected processes get here: their packets are kept. */
			spliff_scope_add(event->family, event->local_addr, event->local_port,
					 event->remote_addr, event->remote_port);
		}
		state->flags |= SPLIFF_STATE_SOCKET_SENT;
	}
	if (role) {
		event->role = state->role;
		event->flags |= SPLIFF_CONN_HAS_ROLE;
		state->flags |= SPLIFF_STATE_ROLE_SENT;
	}
	bpf_ringbuf_submit(event, spliff_wakeup_flags(event->header.size));
}

static __always_inline void spliff_emit_loss(__u64 pid_tgid, __u64 ssl, __u64 offset,
					     __u64 length, __u8 direction, __u8 cause)
{
	struct spliff_tls_loss_event *event;

	event = spliff_event_reserve(SPLIFF_EVENT_TLS_LOSS, sizeof(*event), pid_tgid);
	if (!event)
		return;
	event->ssl = ssl;
	event->stream_offset = offset;
	event->length = length;
	event->direction = direction;
	event->cause = cause;
	event->reserved16 = 0;
	event->reserved32 = 0;
	bpf_ringbuf_submit(event, spliff_wakeup_flags(event->header.size));
}

/* ---- data ---- */

/* `update`: BPF_ANY, or BPF_NOEXIST to keep the outer of two nested calls. */
static __always_inline int spliff_data_entry(struct pt_regs *ctx, __u32 kind, __u8 library,
					     __u64 update)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_data_call call = {};

	if (!spliff_process_wanted(pid_tgid))
		return 0;
	call.ssl = PT_REGS_PARM1(ctx);
	call.buf = PT_REGS_PARM2(ctx);
	if (kind == SPLIFF_CALL_READ_EX || kind == SPLIFF_CALL_WRITE_EX)
		call.out_len = PT_REGS_PARM4(ctx);
	call.entry_ns = bpf_ktime_get_boot_ns();
	call.sp = PT_REGS_SP(ctx);
	call.kind = kind;
	call.library = library;
	if (!bpf_map_update_elem(&spliff_data_calls, &tid, &call, update))
		spliff_ssl_calls_add(1);
	return 0;
}

/* State of one bpf_loop over the chunks of a call. */
struct spliff_copy {
	__u64 pid_tgid;
	__u64 ssl;
	__u64 buf;
	__u64 len;
	__u64 base; /* stream offset of buf[0] */
	__u64 ts_ns;
	__u8 direction;
};

static long spliff_copy_chunk(__u32 index, void *data)
{
	struct spliff_copy *copy = data;
	struct spliff_tls_data_event *event;
	__u64 offset = (__u64)index * SPLIFF_DATA_CHUNK;
	__u32 zero = 0;
	__u64 n;

	if (offset >= copy->len)
		return 1;
	n = copy->len - offset;
	if (n > SPLIFF_DATA_CHUNK)
		n = SPLIFF_DATA_CHUNK;
	event = bpf_map_lookup_elem(&spliff_data_scratch, &zero);
	if (!event)
		return 1;
	if (bpf_probe_read_user(event->data, n, (const void *)(copy->buf + offset))) {
		spliff_emit_loss(copy->pid_tgid, copy->ssl, copy->base + offset, n,
				 copy->direction, SPLIFF_LOSS_READ_FAULT);
		return 0;
	}
	event->header.kind = SPLIFF_EVENT_TLS_DATA;
	event->header.size = offsetof(struct spliff_tls_data_event, data) + n;
	event->header.ts_ns = copy->ts_ns;
	event->header.pid = copy->pid_tgid >> 32;
	event->header.tid = (__u32)copy->pid_tgid;
	event->ssl = copy->ssl;
	event->stream_offset = copy->base + offset;
	event->data_len = n;
	event->direction = copy->direction;
	event->reserved8 = 0;
	event->reserved16 = 0;
	/* A full ring leaves a gap in stream offsets that user space turns into
	 * a loss record with the exact range; the counters make it visible even
	 * if nothing else of the connection arrives. */
	if (bpf_ringbuf_output(&spliff_events, event,
			       offsetof(struct spliff_tls_data_event, data) + n,
			       spliff_wakeup_on_crossing(
				       bpf_ringbuf_query(&spliff_events, BPF_RB_AVAIL_DATA),
				       offsetof(struct spliff_tls_data_event, data) + n))) {
		spliff_stat_inc(SPLIFF_STAT_RINGBUF_FULL);
		spliff_stat_add(SPLIFF_STAT_RINGBUF_FULL_BYTES, n);
	}
	return 0;
}

/*
 * Whether this return is the one of the call whose entry saw `entry_sp`: the
 * return pops the return address the entry found at the top of the stack.
 * The return program runs at the return of every hooked data function, also
 * of calls their entry did not save: NSS's entries keep only TLS descriptors,
 * so PR_Read on a pipe or a plain socket returns through here too. Were any
 * return to take the thread's saved call, a call on another descriptor
 * nested in a TLS one, or following one whose return was not seen, would
 * record its byte count from the TLS call's buffer into the TLS stream, and
 * the TLS call's own return would find nothing. x86-64: a ret pops 8 bytes.
 */
static __always_inline bool spliff_returns_from(struct pt_regs *ctx, __u64 entry_sp)
{
	return PT_REGS_SP(ctx) == entry_sp + 8;
}

static __always_inline int spliff_data_return(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_data_call *saved, call;
	struct spliff_conn_state *state;
	struct spliff_copy copy = {};
	long ret = PT_REGS_RC(ctx);
	__u64 len, chunks, copied;
	__u8 direction;

	saved = bpf_map_lookup_elem(&spliff_data_calls, &tid);
	if (!saved || !spliff_returns_from(ctx, saved->sp))
		return 0;
	call = *saved;
	if (!bpf_map_delete_elem(&spliff_data_calls, &tid))
		spliff_ssl_calls_add(-1);

	if (call.kind == SPLIFF_CALL_READ_EX || call.kind == SPLIFF_CALL_WRITE_EX) {
		/* _ex: 1 on success, the count through the out-parameter. */
		if ((int)ret != 1 || !call.out_len)
			return 0;
		if (bpf_probe_read_user(&len, sizeof(len), (const void *)call.out_len))
			return 0;
	} else {
		/* int (OpenSSL, wolfSSL) or ssize_t (GnuTLS, which never returns
		 * more than one record's worth): the low 32 bits hold it either way,
		 * and the upper ones of an int return are not defined. */
		if ((int)ret <= 0)
			return 0;
		len = (__u32)(int)ret;
	}
	if (!len)
		return 0;
	direction = (call.kind == SPLIFF_CALL_WRITE || call.kind == SPLIFF_CALL_WRITE_EX)
			    ? SPLIFF_DIR_EGRESS
			    : SPLIFF_DIR_INGRESS;

	state = spliff_conn_get(pid_tgid, call.ssl, call.library);
	if (!state)
		return 0;
	spliff_conn_report(pid_tgid, call.ssl, state);

	copy.pid_tgid = pid_tgid;
	copy.ssl = call.ssl;
	copy.buf = call.buf;
	copy.len = len;
	copy.direction = direction;
	/* Writes are stamped at entry, reads at return (trace format, kind 4). */
	copy.ts_ns = direction == SPLIFF_DIR_EGRESS ? call.entry_ns : bpf_ktime_get_boot_ns();
	/* Reserve the byte range atomically: two threads on one SSL * still get
	 * disjoint ranges. */
	copy.base = __sync_fetch_and_add(&state->pos[direction - 1], len);

	chunks = (len + SPLIFF_DATA_CHUNK - 1) / SPLIFF_DATA_CHUNK;
	if (chunks > SPLIFF_MAX_CHUNKS_PER_CALL)
		chunks = SPLIFF_MAX_CHUNKS_PER_CALL;
	bpf_loop(chunks, spliff_copy_chunk, &copy, 0);

	copied = chunks * SPLIFF_DATA_CHUNK;
	if (len > copied)
		spliff_emit_loss(pid_tgid, call.ssl, copy.base + copied, len - copied, direction,
				 SPLIFF_LOSS_TRUNCATED);
	return 0;
}

/* One return program for every data function of every library: the saved
 * call says which it was. */
SEC("uretprobe")
int BPF_KRETPROBE(spliff_ssl_data_return)
{
	return spliff_data_return(ctx);
}

/* ---- connection identity ---- */

/* The library was told the connection's fd (SSL_set_fd and the like): the
 * race-free source of it. The socket itself is read later, at the first
 * handshake return or data, when it is surely connected. */
static __always_inline int spliff_set_fd(void *ssl, int fd, __u8 library)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct spliff_conn_state *state;

	if (!spliff_process_wanted(pid_tgid))
		return 0;
	state = spliff_conn_get(pid_tgid, (__u64)ssl, library);
	if (!state)
		return 0;
	if (state->fd != fd) {
		state->fd = fd;
		state->flags &= ~SPLIFF_STATE_SOCKET_SENT;
	}
	return 0;
}

static __always_inline int spliff_set_role(void *ssl, __u8 role, __u8 library)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct spliff_conn_state *state;

	if (!spliff_process_wanted(pid_tgid))
		return 0;
	state = spliff_conn_get(pid_tgid, (__u64)ssl, library);
	if (state && !state->role)
		state->role = role;
	return 0;
}

/*
 * Fallback for a connection whose fd the capture did not see set (created
 * before it started, a BIO set up another way, a GnuTLS transport pointer
 * that is not an fd): the first read/write family syscall a thread makes
 * inside a data or handshake call names the fd. The syscall number is checked first, so other syscalls cost a
 * compare.
 */
struct pt_regs___spliff {
	unsigned long di;
} __attribute__((preserve_access_index));

SEC("raw_tracepoint/sys_enter")
int spliff_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	const __u64 *args = (const void *)ctx;
	struct pt_regs___spliff *regs = (void *)args[0];
	long id = (long)args[1];
	__u64 pid_tgid;
	__u32 tid;
	struct spliff_data_call *call;
	struct spliff_hs_call *hs;
	struct spliff_conn_state *state;
	__s64 *in_flight;
	__u32 zero = 0;
	__u64 ssl;
	__u8 library;

	/* x86_64: read 0, write 1, readv 19, writev 20, sendto 44,
	 * recvfrom 45, sendmsg 46, recvmsg 47. */
	if (!(id == 0 || id == 1 || id == 19 || id == 20 || (id >= 44 && id <= 47)))
		return 0;
	in_flight = bpf_map_lookup_elem(&spliff_ssl_calls_in_flight, &zero);
	if (!in_flight || *in_flight <= 0)
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	tid = (__u32)pid_tgid;
	call = bpf_map_lookup_elem(&spliff_data_calls, &tid);
	if (call) {
		ssl = call->ssl;
		library = call->library;
	} else {
		hs = bpf_map_lookup_elem(&spliff_hs_calls, &tid);
		if (!hs)
			return 0;
		ssl = hs->ssl;
		library = hs->library;
	}
	/* Created here if need be: for an SSL * older than the capture this is
	 * its first call, and the state must exist for the return probe to
	 * report the socket before the data. */
	state = spliff_conn_get(pid_tgid, ssl, library);
	if (!state || state->fd >= 0)
		return 0;
	state->fd = (__s32)BPF_CORE_READ(regs, di);
	state->flags &= ~SPLIFF_STATE_SOCKET_SENT;
	return 0;
}

/* ---- handshake ---- */

static __always_inline int spliff_hs_entry(void *ssl, __u8 role, __u8 library)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_hs_call call = { .ssl = (__u64)ssl, .library = library };
	struct spliff_conn_state *state;

	if (!spliff_process_wanted(pid_tgid))
		return 0;
	call.entry_ns = bpf_ktime_get_boot_ns();
	state = spliff_conn_get(pid_tgid, call.ssl, library);
	if (state) {
		if (!state->hs_start)
			state->hs_start = call.entry_ns;
		if (role && !state->role)
			state->role = role;
	}
	/* NOEXIST keeps the outer call of SSL_connect -> SSL_do_handshake (and
	 * wolfSSL's equivalents). */
	if (!bpf_map_update_elem(&spliff_hs_calls, &tid, &call, BPF_NOEXIST))
		spliff_ssl_calls_add(1);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(spliff_ssl_handshake_return, int ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_tls_handshake_event *event;
	struct spliff_hs_call *saved, call;
	struct spliff_conn_state *state;

	saved = bpf_map_lookup_elem(&spliff_hs_calls, &tid);
	if (!saved)
		return 0;
	call = *saved;
	if (!bpf_map_delete_elem(&spliff_hs_calls, &tid))
		spliff_ssl_calls_add(-1);
	state = spliff_conn_get(pid_tgid, call.ssl, call.library);
	if (!state)
		return 0;
	spliff_conn_report(pid_tgid, call.ssl, state);

	event = spliff_event_reserve(SPLIFF_EVENT_TLS_HANDSHAKE, sizeof(*event), pid_tgid);
	if (!event)
		return 0;
	event->ssl = call.ssl;
	event->start_ns = state->hs_start ? state->hs_start : call.entry_ns;
	event->ret = ret;
	event->reserved32 = 0;
	bpf_ringbuf_submit(event, spliff_wakeup_flags(event->header.size));
	return 0;
}

/* ---- SNI, ALPN ---- */

/* The string event goes out before any other report of a connection whose
 * name is set before its first data; user space then tells the library from
 * the process's mapped files until the connection report comes. */

static __always_inline void spliff_emit_string(__u64 pid_tgid, __u64 ssl, __u32 kind,
					       const void *src, __u32 len, bool user_str)
{
	struct spliff_tls_string_event *event;
	long copied;

	event = spliff_event_reserve(SPLIFF_EVENT_TLS_STRING, sizeof(*event), pid_tgid);
	if (!event)
		return;
	__builtin_memset(event->value, 0, sizeof(event->value));
	event->ssl = ssl;
	event->kind = kind;
	if (user_str) {
		copied = bpf_probe_read_user_str(event->value, sizeof(event->value), src);
		event->len = copied > 0 ? copied - 1 : 0;
	} else {
		if (len > SPLIFF_STRING_MAX)
			len = SPLIFF_STRING_MAX;
		event->len = bpf_probe_read_user(event->value, len, src) ? 0 : len;
	}
	bpf_ringbuf_submit(event, spliff_wakeup_flags(event->header.size));
}

/* Saves where a "selected protocol" call will write its answer. */
static __always_inline int spliff_alpn_entry(struct spliff_alpn_call *call)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;

	if (!spliff_process_wanted(pid_tgid))
		return 0;
	bpf_map_update_elem(&spliff_alpn_calls, &tid, call, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(spliff_ssl_alpn_return, int ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_alpn_call *saved, call;
	struct spliff_conn_state *state;
	const void *data = NULL;
	__u32 len = 0;
	__u16 len16 = 0;

	saved = bpf_map_lookup_elem(&spliff_alpn_calls, &tid);
	if (!saved)
		return 0;
	call = *saved;
	bpf_map_delete_elem(&spliff_alpn_calls, &tid);
	/* A failed call may leave the out-parameters unwritten (stack garbage). */
	if (call.check_ret && ret != call.ok_ret)
		return 0;
	if (call.len_size == 2) {
		if (bpf_probe_read_user(&len16, sizeof(len16), (const void *)call.len_p))
			return 0;
		len = len16;
	} else if (bpf_probe_read_user(&len, sizeof(len), (const void *)call.len_p)) {
		return 0;
	}
	if (bpf_probe_read_user(&data, sizeof(data), (const void *)call.data_pp) || !data || !len)
		return 0;
	/* Applications ask repeatedly (nghttp2 per session, curl per call);
	 * report it once per connection. */
	state = spliff_conn_get(pid_tgid, call.ssl, call.library);
	if (!state || (state->flags & SPLIFF_STATE_ALPN_SENT))
		return 0;
	state->flags |= SPLIFF_STATE_ALPN_SENT;
	spliff_emit_string(pid_tgid, call.ssl, SPLIFF_STRING_ALPN, data, len, false);
	return 0;
}

/* ---- close ---- */

static __always_inline int spliff_close(void *ssl, __u32 reason)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct spliff_conn_key key = { .tgid = pid_tgid >> 32, .ssl = (__u64)ssl };
	struct spliff_tls_close_event *event;
	struct spliff_conn_state *state;

	/* Only connections the capture saw have state: no scope check needed,
	 * and freeing unseen objects costs one lookup. */
	state = bpf_map_lookup_elem(&spliff_conns, &key);
	if (!state)
		return 0;
	if (reason == SPLIFF_CLOSE_SHUTDOWN) {
		if (state->flags & SPLIFF_STATE_SHUTDOWN_SENT)
			return 0;
		state->flags |= SPLIFF_STATE_SHUTDOWN_SENT;
	}
	event = spliff_event_reserve(SPLIFF_EVENT_TLS_CLOSE, sizeof(*event), pid_tgid);
	if (event) {
		event->ssl = (__u64)ssl;
		event->end_offset_egress = state->pos[0];
		event->end_offset_ingress = state->pos[1];
		event->reason = reason;
		event->reserved32 = 0;
		bpf_ringbuf_submit(event, spliff_wakeup_flags(event->header.size));
	}
	if (reason == SPLIFF_CLOSE_FREE)
		bpf_map_delete_elem(&spliff_conns, &key);
	return 0;
}

/* Shared by every library: a close creates no state, so it need not know
 * whose it is (SSL_shutdown, gnutls_bye, wolfSSL_shutdown). */
SEC("uprobe")
int BPF_KPROBE(spliff_ssl_shutdown_entry, void *ssl)
{
	return spliff_close(ssl, SPLIFF_CLOSE_SHUTDOWN);
}

/* SSL_free, gnutls_deinit, wolfSSL_free: the pointer may be reused for a new
 * connection from now on. */
SEC("uprobe")
int BPF_KPROBE(spliff_ssl_free_entry, void *ssl)
{
	return spliff_close(ssl, SPLIFF_CLOSE_FREE);
}

#endif /* SPLIFF_BPF_TLS_CONN_H */

