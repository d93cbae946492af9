/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * Go crypto/tls uprobes: plaintext of (*Conn).Write and (*Conn).Read,
 * handshake timing and role, and close, for Go >= 1.17 on x86-64 (the
 * register ABI: receiver and arguments in RAX, RBX, RCX, ...; results in
 * RAX, RBX, ...; the running goroutine's g in R14).
 *
 * Go has no return probes: a uretprobe rewrites the return address on the
 * goroutine's stack, which the runtime may copy elsewhere (stack growth) or
 * walk (tracebacks, GC), and then crashes. User space instead attaches the
 * "return" programs below to every RET instruction of the function, found
 * by disassembling it.
 *
 * A call in flight is keyed by (tgid, g), not by thread: a goroutine blocked
 * in Read may resume on another thread. A connection is (tgid, *Conn), the
 * same key space the OpenSSL programs use for SSL *; Go's heap does not move
 * objects, so the pointer is stable for the connection's life.
 */
#ifndef SPLIFF_BPF_TLS_GOTLS_H
#define SPLIFF_BPF_TLS_GOTLS_H

struct spliff_go_call_key {
	__u32 tgid;
	__u32 reserved;
	__u64 g;
};

/* A Read, Write or handshake in flight, saved at entry for its RET. */
struct spliff_go_call {
	__u64 conn;
	__u64 buf;      /* address, or distance below the stack's top (on_stack) */
	__u64 len;
	__u64 entry_ns;
	__u32 kind;     /* SPLIFF_CALL_READ / _WRITE; 0 handshake */
	__u32 on_stack; /* buf is on the goroutine's stack */
};

/* runtime.g starts with its stack bounds (lo, hi), in every Go version. */
struct spliff_go_stack {
	__u64 lo;
	__u64 hi;
};

/*
 * A buffer on the goroutine's own stack (a caller's local array; Go keeps
 * what does not escape there) moves when the stack grows during the call:
 * the runtime copies the stack and keeps every address's distance to the
 * top. Saved as that distance, the buffer is found again at RET.
 */
static __always_inline bool spliff_go_stack_of(__u64 g, struct spliff_go_stack *stack)
{
	return g && !bpf_probe_read_user(stack, sizeof(*stack), (const void *)g) &&
	       stack->lo < stack->hi;
}

/* LRU: a goroutine that never returns (killed process) must not leak. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct spliff_go_call_key);
	__type(value, struct spliff_go_call);
} spliff_go_data_calls SEC(".maps");

/* Separate from data calls: Read and Write run the handshake inside. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct spliff_go_call_key);
	__type(value, struct spliff_go_call);
} spliff_go_hs_calls SEC(".maps");

static __always_inline struct spliff_go_call_key spliff_go_key(struct pt_regs *ctx, __u64 pid_tgid)
{
	struct spliff_go_call_key key = { .tgid = pid_tgid >> 32, .g = ctx->r14 };

	return key;
}

/*
 * The fd behind a *tls.Conn, or -1. The walk: tls.Conn starts with its
 * net.Conn interface (itab, data); data is a *net.TCPConn (or another
 * net.conn wrapper) whose first word is the *netFD; netFD starts with
 * poll.FD, whose fdMutex (16 bytes) precedes Sysfd. This layout is the same
 * from Go 1.9 to at least 1.23. Another net.Conn type behind the
 * interface (a user wrapper) gives a wrong number, which the socket walk
 * rejects unless it happens to be a socket of the process; see docs/golang.md.
 */
#define SPLIFF_GO_NETFD_SYSFD 16

static __always_inline __s32 spliff_go_conn_fd(__u64 conn)
{
	__u64 data = 0, netfd = 0;
	__s64 fd = -1;

	if (bpf_probe_read_user(&data, sizeof(data), (const void *)(conn + 8)) || !data)
		return -1;
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (const void *)data) || !netfd)
		return -1;
	if (bpf_probe_read_user(&fd, sizeof(fd), (const void *)(netfd + SPLIFF_GO_NETFD_SYSFD)))
		return -1;
	return fd >= 0 && fd < (1 << 30) ? (__s32)fd : -1;
}

/* The connection's state, named Go's; with its socket looked up once. */
static __always_inline struct spliff_conn_state *spliff_go_conn(__u64 pid_tgid, __u64 conn)
{
	struct spliff_conn_state *state = spliff_conn_get(pid_tgid, conn, SPLIFF_LIB_GO);

	if (!state)
		return NULL;
	if (state->fd < 0) {
		state->fd = spliff_go_conn_fd(conn);
		state->flags &= ~SPLIFF_STATE_SOCKET_SENT;
	}
	return state;
}

static __always_inline int spliff_go_data_entry(struct pt_regs *ctx, __u32 kind)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct spliff_go_call_key key = spliff_go_key(ctx, pid_tgid);
	struct spliff_go_call call = {};
	struct spliff_go_stack stack;

	if (!spliff_process_wanted(pid_tgid))
		return 0;
	/* func (c *Conn) Write(b []byte) (int, error): c RAX, b = RBX, RCX. */
	call.conn = ctx->ax;
	call.buf = ctx->bx;
	call.len = ctx->cx;
	if (spliff_go_stack_of(key.g, &stack) && call.buf >= stack.lo && call.buf < stack.hi) {
		call.buf = stack.hi - call.buf;
		call.on_stack = 1;
	}
	call.entry_ns = bpf_ktime_get_boot_ns();
	call.kind = kind;
	bpf_map_update_elem(&spliff_go_data_calls, &key, &call, BPF_ANY);
	return 0;
}

SEC("uprobe")
int spliff_go_write_entry(struct pt_regs *ctx)
{
	return spliff_go_data_entry(ctx, SPLIFF_CALL_WRITE);
}

SEC("uprobe")
int spliff_go_read_entry(struct pt_regs *ctx)
{
	return spliff_go_data_entry(ctx, SPLIFF_CALL_READ);
}

/* At each RET of Read and Write: n in RAX. */
SEC("uprobe")
int spliff_go_data_return(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct spliff_go_call_key key = spliff_go_key(ctx, pid_tgid);
	struct spliff_go_call *saved, call;
	struct spliff_conn_state *state;
	struct spliff_copy copy = {};
	struct spliff_go_stack stack;
	__s64 n = (__s64)ctx->ax;
	__u64 chunks, copied;

	saved = bpf_map_lookup_elem(&spliff_go_data_calls, &key);
	if (!saved)
		return 0;
	call = *saved;
	bpf_map_delete_elem(&spliff_go_data_calls, &key);
	/* n > len(b) would be a broken callee (or a RET that is not this
	 * function's): copy nothing rather than bytes past the buffer. */
	if (n <= 0 || (__u64)n > call.len)
		return 0;
	if (call.on_stack) {
		if (!spliff_go_stack_of(key.g, &stack) || call.buf > stack.hi - stack.lo)
			return 0;
		call.buf = stack.hi - call.buf;
	}

	state = spliff_go_conn(pid_tgid, call.conn);
	if (!state)
		return 0;
	spliff_conn_report(pid_tgid, call.conn, state);

	copy.pid_tgid = pid_tgid;
	copy.ssl = call.conn;
	copy.buf = call.buf;
	copy.len = n;
	copy.direction = call.kind == SPLIFF_CALL_WRITE ? SPLIFF_DIR_EGRESS : SPLIFF_DIR_INGRESS;
	copy.ts_ns = copy.direction == SPLIFF_DIR_EGRESS ? call.entry_ns : bpf_ktime_get_boot_ns();
	/* Goroutines of one connection may read and write at once (HTTP/2). */
	copy.base = __sync_fetch_and_add(&state->pos[copy.direction - 1], copy.len);

	chunks = (copy.len + SPLIFF_DATA_CHUNK - 1) / SPLIFF_DATA_CHUNK;
	if (chunks > SPLIFF_MAX_CHUNKS_PER_CALL)
		chunks = SPLIFF_MAX_CHUNKS_PER_CALL;
	bpf_loop(chunks, spliff_copy_chunk, &copy, 0);

	copied = chunks * SPLIFF_DATA_CHUNK;
	if (copy.len > copied)
		spliff_emit_loss(pid_tgid, call.conn, copy.base + copied, copy.len - copied,
				 copy.direction, SPLIFF_LOSS_TRUNCATED);
	return 0;
}

/* ---- handshake: (*Conn).clientHandshake / serverHandshake ---- */

static __always_inline int spliff_go_hs_entry(struct pt_regs *ctx, __u8 role)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct spliff_go_call_key key = spliff_go_key(ctx, pid_tgid);
	struct spliff_go_call call = { .conn = ctx->ax };
	struct spliff_conn_state *state;

	if (!spliff_process_wanted(pid_tgid))
		return 0;
	call.entry_ns = bpf_ktime_get_boot_ns();
	state = spliff_go_conn(pid_tgid, call.conn);
	if (state) {
		if (!state->hs_start)
			state->hs_start = call.entry_ns;
		if (!state->role)
			state->role = role;
	}
	bpf_map_update_elem(&spliff_go_hs_calls, &key, &call, BPF_ANY);
	return 0;
}

SEC("uprobe")
int spliff_go_client_hs_entry(struct pt_regs *ctx)
{
	return spliff_go_hs_entry(ctx, SPLIFF_ROLE_CLIENT);
}

SEC("uprobe")
int spliff_go_server_hs_entry(struct pt_regs *ctx)
{
	return spliff_go_hs_entry(ctx, SPLIFF_ROLE_SERVER);
}

/* At each RET of the handshake: the error interface's itab in RAX, nil on
 * success. Reported as OpenSSL's 1 (done) or 0 (failed). */
SEC("uprobe")
int spliff_go_hs_return(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct spliff_go_call_key key = spliff_go_key(ctx, pid_tgid);
	struct spliff_tls_handshake_event *event;
	struct spliff_go_call *saved, call;
	struct spliff_conn_state *state;

	saved = bpf_map_lookup_elem(&spliff_go_hs_calls, &key);
	if (!saved)
		return 0;
	call = *saved;
	bpf_map_delete_elem(&spliff_go_hs_calls, &key);
	state = spliff_go_conn(pid_tgid, call.conn);
	if (!state)
		return 0;
	spliff_conn_report(pid_tgid, call.conn, state);

	event = spliff_event_reserve(SPLIFF_EVENT_TLS_HANDSHAKE, sizeof(*event), pid_tgid);
	if (!event)
		return 0;
	event->ssl = call.conn;
	event->start_ns = state->hs_start ? state->hs_start : call.entry_ns;
	event->ret = ctx->ax == 0 ? 1 : 0;
	event->reserved32 = 0;
	bpf_ringbuf_submit(event, spliff_wakeup_flags(event->header.size));
	return 0;
}

/* ---- ALPN, server side: crypto/tls.negotiateALPN ---- */

/* At each RET of negotiateALPN, which serverHandshake calls on its own
 * goroutine (so the handshake in flight names the *Conn): the chosen
 * protocol, a Go string, in RAX (data) and RBX (length). The client side
 * checks the server's choice in a function the compiler inlines, so clients
 * get no ALPN yet. */
SEC("uprobe")
int spliff_go_alpn_return(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct spliff_go_call_key key = spliff_go_key(ctx, pid_tgid);
	struct spliff_conn_state *state;
	struct spliff_go_call *hs;
	__u64 data = ctx->ax, len = ctx->bx, conn;

	hs = bpf_map_lookup_elem(&spliff_go_hs_calls, &key);
	if (!hs || !data || !len || len > SPLIFF_STRING_MAX)
		return 0;
	conn = hs->conn;
	state = spliff_conn_get(pid_tgid, conn, SPLIFF_LIB_GO);
	if (!state || (state->flags & SPLIFF_STATE_ALPN_SENT))
		return 0;
	state->flags |= SPLIFF_STATE_ALPN_SENT;
	/* Mid-handshake: the connection's first event, which must name Go. */
	spliff_conn_report(pid_tgid, conn, state);
	spliff_emit_string(pid_tgid, conn, SPLIFF_STRING_ALPN, (const void *)data, len, false);
	return 0;
}

/* ---- ALPN, any side: (*Conn).ConnectionState ---- */

/* ConnectionState calls in flight: the *Conn, by goroutine. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct spliff_go_call_key);
	__type(value, __u64);
} spliff_go_state_calls SEC(".maps");

SEC("uprobe")
int spliff_go_state_entry(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct spliff_go_call_key key = spliff_go_key(ctx, pid_tgid);
	__u64 conn = ctx->ax;

	if (!spliff_process_wanted(pid_tgid))
		return 0;
	bpf_map_update_elem(&spliff_go_state_calls, &key, &conn, BPF_ANY);
	return 0;
}

/*
 * At each RET of ConnectionState (net/http's client asks right after the
 * handshake). The result struct does not fit in registers, so the register
 * ABI returns it on the stack, right above the return address: at RET it
 * starts at RSP + 8. ConnectionState begins Version uint16,
 * HandshakeComplete bool, DidResume bool, CipherSuite uint16, then
 * NegotiatedProtocol string (data, length) at +8 and +16, the same from
 * Go 1.1 to at least 1.23.
 */
#define SPLIFF_GO_STATE_PROTOCOL 8
/* ALPN protocol IDs in use are short; a longer one means a misread. */
#define SPLIFF_GO_ALPN_MAX 32

SEC("uprobe")
int spliff_go_state_return(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct spliff_go_call_key key = spliff_go_key(ctx, pid_tgid);
	struct spliff_conn_state *state;
	__u64 *saved, conn, proto[2] = {};
	__u8 complete = 0;
	__u64 result = ctx->sp + 8;

	saved = bpf_map_lookup_elem(&spliff_go_state_calls, &key);
	if (!saved)
		return 0;
	conn = *saved;
	bpf_map_delete_elem(&spliff_go_state_calls, &key);
	if (bpf_probe_read_user(&complete, 1, (const void *)(result + 2)) || complete != 1)
		return 0;
	if (bpf_probe_read_user(proto, sizeof(proto),
				(const void *)(result + SPLIFF_GO_STATE_PROTOCOL)))
		return 0;
	if (!proto[0] || !proto[1] || proto[1] > SPLIFF_GO_ALPN_MAX)
		return 0;
	state = spliff_conn_get(pid_tgid, conn, 0);
	if (!state || (state->flags & SPLIFF_STATE_ALPN_SENT))
		return 0;
	state->flags |= SPLIFF_STATE_ALPN_SENT;
	spliff_conn_report(pid_tgid, conn, state);
	spliff_emit_string(pid_tgid, conn, SPLIFF_STRING_ALPN, (const void *)proto[0], proto[1],
			   false);
	return 0;
}

/* ---- close: (*Conn).Close ---- */

SEC("uprobe")
int spliff_go_close_entry(struct pt_regs *ctx)
{
	/* After Close the *Conn may be collected and its address reused. */
	return spliff_close((void *)ctx->ax, SPLIFF_CLOSE_FREE);
}

#endif /* SPLIFF_BPF_TLS_GOTLS_H */
