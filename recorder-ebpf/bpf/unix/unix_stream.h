/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * Unix stream sockets (--unix PATH|any), from the syscall tracepoints: this
 * kernel has neither kprobes nor fentry, so unix_stream_sendmsg cannot be
 * hooked; every byte a process moves through a socket passes one of the
 * read/write family syscalls instead (sendfile and splice excepted).
 *
 * sys_enter walks fd -> file -> socket -> sock in the calling task and
 * returns before anything else unless the socket is a selected AF_UNIX
 * SOCK_STREAM one; only then is the call saved for sys_exit, which copies
 * the bytes the syscall moved, iovec by iovec, in 16 KiB chunks. The path
 * check runs once per (process, socket); its answer is cached.
 *
 * Data, loss and close travel as the TLS events do, with the struct sock
 * address in place of the SSL * (see spliff_abi.h), so user space numbers,
 * orders and checks them the same way.
 */
#ifndef SPLIFF_BPF_UNIX_STREAM_H
#define SPLIFF_BPF_UNIX_STREAM_H

/* Minimal CO-RE views (see common.h). */
struct inode___spliff_unix {
	unsigned long i_ino;
} __attribute__((preserve_access_index));

struct file___spliff_unix {
	void *private_data;
	struct inode___spliff_unix *f_inode;
} __attribute__((preserve_access_index));

struct fdtable___spliff_unix {
	unsigned int max_fds;
	struct file___spliff_unix **fd;
} __attribute__((preserve_access_index));

struct files_struct___spliff_unix {
	struct fdtable___spliff_unix *fdt;
} __attribute__((preserve_access_index));

struct task_struct___spliff_unix {
	struct files_struct___spliff_unix *files;
} __attribute__((preserve_access_index));

struct upid___spliff_unix {
	int nr;
} __attribute__((preserve_access_index));

struct pid___spliff_unix {
	struct upid___spliff_unix numbers[0];
} __attribute__((preserve_access_index));

struct sock_common___spliff_unix {
	unsigned short skc_family;
} __attribute__((preserve_access_index));

struct socket___spliff_unix;

struct sock___spliff_unix {
	struct sock_common___spliff_unix __sk_common;
	struct pid___spliff_unix *sk_peer_pid;
	struct socket___spliff_unix *sk_socket;
} __attribute__((preserve_access_index));

struct socket___spliff_unix {
	short type;
	struct file___spliff_unix *file;
	struct sock___spliff_unix *sk;
} __attribute__((preserve_access_index));

struct unix_address___spliff_unix {
	int len;
	struct sockaddr_un name[0];
} __attribute__((preserve_access_index));

struct unix_sock___spliff_unix {
	struct unix_address___spliff_unix *addr;
	struct sock___spliff_unix *peer;
} __attribute__((preserve_access_index));

struct pt_regs___spliff_unix {
	unsigned long di;
	unsigned long si;
	unsigned long dx;
	unsigned long r10;
} __attribute__((preserve_access_index));

#define SPLIFF_AF_UNIX 1
#define SPLIFF_SOCK_STREAM 1

/* Paths given with --unix; entry 0 of spliff_unix_any is nonzero for
 * --unix any. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct spliff_unix_path_key);
	__type(value, __u8);
} spliff_unix_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} spliff_unix_any SEC(".maps");

struct spliff_unix_key {
	__u32 tgid;
	__u32 reserved;
	__u64 sk;
};

/* What the kernel keeps per (process, unix stream socket) it has looked at. */
struct spliff_unix_state {
	__u64 pos[2];    /* next stream offset: [0] egress, [1] ingress */
	__u8 selected;   /* 0: not recorded (the path check said no) */
	__u8 reserved[7];
};

/* LRU: sockets closed behind the capture's back (exit without close, an
 * fd passed away) must not fill it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct spliff_unix_key);
	__type(value, struct spliff_unix_state);
} spliff_unix_socks SEC(".maps");

/* How a saved call finds its bytes. */
#define SPLIFF_UNIX_FLAT 0   /* buf, len */
#define SPLIFF_UNIX_IOVEC 1  /* struct iovec *, count */

/* A read or write on a selected socket, saved at sys_enter for sys_exit. */
struct spliff_unix_call {
	__u64 sk;
	__u64 buf;     /* the buffer, or the iovec array */
	__u64 count;   /* its length, or the iovec count */
	__u64 entry_ns;
	__u8 layout;   /* SPLIFF_UNIX_FLAT / _IOVEC */
	__u8 direction;
	__u8 reserved[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct spliff_unix_call);
} spliff_unix_calls SEC(".maps");

/* Saved calls of all threads together. sys_exit runs for every syscall of
 * the machine; while this is zero it returns before the per-thread lookup.
 * Counted up at each save and down when an exit finds its call, so a call
 * lost to LRU eviction leaves it too high (the lookups run), never too low. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s64);
} spliff_unix_in_flight SEC(".maps");

static __always_inline void spliff_unix_in_flight_add(__s64 delta)
{
	__u32 zero = 0;
	__s64 *count = bpf_map_lookup_elem(&spliff_unix_in_flight, &zero);

	if (count)
		__sync_fetch_and_add(count, delta);
}

/*
 * Bytes per data event from a unix socket. The copy fills an event from
 * several iovecs at a variable offset below this, and the verifier must see
 * that offset plus a chunk stay inside the buffer, so the scratch holds two;
 * a per-CPU value may not exceed 32 KiB, hence a little under 16 KiB.
 */
#define SPLIFF_UNIX_CHUNK (SPLIFF_DATA_CHUNK - 64)

/* One data event under construction, laid out as spliff_tls_data_event. */
struct spliff_unix_scratch {
	struct spliff_event_header header;
	__u64 ssl;
	__u64 stream_offset;
	__u32 data_len;
	__u8 direction;
	__u8 reserved8;
	__u16 reserved16;
	__u8 data[2 * SPLIFF_UNIX_CHUNK];
};

_Static_assert(__builtin_offsetof(struct spliff_unix_scratch, data) ==
		       __builtin_offsetof(struct spliff_tls_data_event, data),
	       "the scratch must be laid out as a TLS data event");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct spliff_unix_scratch);
} spliff_unix_scratch_map SEC(".maps");

/* The socket behind fd `fd` of the current task when it is an AF_UNIX
 * stream socket; NULL otherwise (a file, a pipe, a TCP socket, closed). */
static __always_inline struct sock___spliff_unix *spliff_unix_sock_of_fd(__s32 fd,
									  __u64 *inode)
{
	struct task_struct___spliff_unix *task = (void *)bpf_get_current_task();
	struct fdtable___spliff_unix *fdt = BPF_CORE_READ(task, files, fdt);
	struct file___spliff_unix **fds, *file;
	struct socket___spliff_unix *sock;
	struct sock___spliff_unix *sk;

	if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	/* A socket's file points at the socket, which points back at it; any
	 * other file's private_data is something else entirely. */
	sock = BPF_CORE_READ(file, private_data);
	if (!sock || BPF_CORE_READ(sock, file) != file)
		return NULL;
	if (BPF_CORE_READ(sock, type) != SPLIFF_SOCK_STREAM)
		return NULL;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_family) != SPLIFF_AF_UNIX)
		return NULL;
	*inode = BPF_CORE_READ(file, f_inode, i_ino);
	return sk;
}

/* Copies the bound address of `addr` into `path` (zeroed by the caller);
 * returns its length. */
static __always_inline __u32 spliff_unix_read_path(struct unix_address___spliff_unix *addr,
						   __u8 *path)
{
	int len;
	__u32 n;

	if (!addr)
		return 0;
	len = BPF_CORE_READ(addr, len);
	/* The address length counts sun_family (2 bytes) and, for a path name,
	 * its NUL. */
	if (len <= 2)
		return 0;
	n = len - 2;
	if (n > SPLIFF_UNIX_PATH_MAX)
		n = SPLIFF_UNIX_PATH_MAX;
	/* By offset: aya's CO-RE cannot relocate an index into the kernel's
	 * flexible name[] array; sun_path follows the 2-byte sun_family. */
	if (bpf_probe_read_kernel(
		    path, n,
		    (void *)addr + bpf_core_field_offset(struct unix_address___spliff_unix, name) + 2))
		return 0;
	/* A path name's length counts its NUL; report the name without it. */
	if (path[0] && n > 0 && path[n - 1] == 0)
		n--;
	return n;
}

static __always_inline bool spliff_unix_path_selected(__u8 *path)
{
	__u32 zero = 0;
	__u32 *any = bpf_map_lookup_elem(&spliff_unix_any, &zero);

	if (any && *any)
		return true;
	return bpf_map_lookup_elem(&spliff_unix_paths, path) != NULL;
}

/* SO_PEERCRED's pid in the initial namespace: numbers[0].nr of sk_peer_pid,
 * read by offset for the same reason as the path. */
static __always_inline __u32 spliff_unix_peer_pid(struct sock___spliff_unix *sk)
{
	struct pid___spliff_unix *pid = BPF_CORE_READ(sk, sk_peer_pid);
	int nr = 0;

	if (!pid)
		return 0;
	bpf_probe_read_kernel(&nr, sizeof(nr),
			      (void *)pid + bpf_core_field_offset(struct pid___spliff_unix, numbers) +
				      bpf_core_field_offset(struct upid___spliff_unix, nr));
	return nr > 0 ? nr : 0;
}

/* Path, peer and role of a socket seen for the first time; sends its
 * connection event when selected and returns whether it is. */
static __always_inline bool spliff_unix_first_sight(__u64 pid_tgid, __s32 fd,
						     struct sock___spliff_unix *sk, __u64 inode)
{
	struct unix_sock___spliff_unix *self = (void *)sk;
	struct unix_address___spliff_unix *addr = BPF_CORE_READ(self, addr);
	struct unix_sock___spliff_unix *peer = (void *)BPF_CORE_READ(self, peer);
	struct spliff_unix_conn_event *event;
	__u8 role = SPLIFF_ROLE_SERVER;

	/* The connecting end is unbound: its path is the peer's (the
	 * listener's address, which the accepted end shares). */
	if (!addr) {
		role = SPLIFF_ROLE_CLIENT;
		addr = peer ? BPF_CORE_READ(peer, addr) : NULL;
	}
	event = spliff_event_reserve(SPLIFF_EVENT_UNIX_CONN, sizeof(*event), pid_tgid);
	if (!event)
		return false;
	__builtin_memset((void *)event + sizeof(event->header), 0,
			 sizeof(*event) - sizeof(event->header));
	event->path_len = spliff_unix_read_path(addr, event->path);
	/* The map key is the zero-padded path; the event's path is zeroed
	 * beyond path_len, so it is the key as it stands. */
	if (!spliff_unix_path_selected(event->path)) {
		bpf_ringbuf_discard(event, BPF_RB_NO_WAKEUP);
		return false;
	}
	event->sk = (__u64)sk;
	event->inode = inode;
	event->fd = fd;
	event->role = role;
	event->peer_pid = spliff_unix_peer_pid(sk);
	if (peer)
		event->peer_inode =
			BPF_CORE_READ((struct sock___spliff_unix *)peer, sk_socket, file, f_inode,
				      i_ino);
	bpf_get_current_comm(event->comm, sizeof(event->comm));
	bpf_ringbuf_submit(event, spliff_wakeup_flags(event->header.size));
	return true;
}

/* The state of (process, sk), created (and the path checked) on first
 * sight; NULL when the socket is not selected or the map is full. */
static __always_inline struct spliff_unix_state *spliff_unix_state_of(__u64 pid_tgid, __s32 fd,
								      struct sock___spliff_unix *sk,
								      __u64 inode)
{
	struct spliff_unix_key key = { .tgid = pid_tgid >> 32, .sk = (__u64)sk };
	struct spliff_unix_state fresh = {};
	struct spliff_unix_state *state = bpf_map_lookup_elem(&spliff_unix_socks, &key);

	if (!state) {
		fresh.selected = spliff_unix_first_sight(pid_tgid, fd, sk, inode);
		bpf_map_update_elem(&spliff_unix_socks, &key, &fresh, BPF_NOEXIST);
		state = bpf_map_lookup_elem(&spliff_unix_socks, &key);
	}
	return state && state->selected ? state : NULL;
}

/* close(fd) of a recorded socket ends its connection in this process. */
static __always_inline void spliff_unix_close(__u64 pid_tgid, __s32 fd)
{
	struct spliff_unix_key key = { .tgid = pid_tgid >> 32 };
	struct spliff_tls_close_event *event;
	struct spliff_unix_state *state;
	__u64 inode;

	key.sk = (__u64)spliff_unix_sock_of_fd(fd, &inode);
	if (!key.sk)
		return;
	state = bpf_map_lookup_elem(&spliff_unix_socks, &key);
	if (!state)
		return;
	if (state->selected) {
		event = spliff_event_reserve(SPLIFF_EVENT_TLS_CLOSE, sizeof(*event), pid_tgid);
		if (event) {
			event->ssl = key.sk;
			event->end_offset_egress = state->pos[0];
			event->end_offset_ingress = state->pos[1];
			event->reason = SPLIFF_CLOSE_FREE;
			event->reserved32 = 0;
			bpf_ringbuf_submit(event, spliff_wakeup_flags(event->header.size));
		}
	}
	bpf_map_delete_elem(&spliff_unix_socks, &key);
}

/* x86_64 syscall numbers of the calls that move a unix socket's bytes. */
#define SPLIFF_NR_READ 0
#define SPLIFF_NR_WRITE 1
#define SPLIFF_NR_CLOSE 3
#define SPLIFF_NR_READV 19
#define SPLIFF_NR_WRITEV 20
#define SPLIFF_NR_SENDTO 44
#define SPLIFF_NR_RECVFROM 45
#define SPLIFF_NR_SENDMSG 46
#define SPLIFF_NR_RECVMSG 47

#define SPLIFF_MSG_PEEK 2

struct user_msghdr___spliff_unix {
	void *msg_iov;
	__kernel_size_t msg_iovlen;
} __attribute__((preserve_access_index));

SEC("raw_tracepoint/sys_enter")
int spliff_unix_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	/* Through a plain pointer: args[] is a flexible array in the kernel's
	 * BTF, and a CO-RE relocation of args[1] would be out of its bounds. */
	const __u64 *args = (const void *)ctx;
	struct pt_regs___spliff_unix *regs = (void *)args[0];
	long id = (long)args[1];
	struct spliff_unix_call call = {};
	struct sock___spliff_unix *sk;
	__u64 pid_tgid, inode = 0;
	__u32 tid;
	__s32 fd;

	if (!(id == SPLIFF_NR_READ || id == SPLIFF_NR_WRITE || id == SPLIFF_NR_CLOSE ||
	      id == SPLIFF_NR_READV || id == SPLIFF_NR_WRITEV ||
	      (id >= SPLIFF_NR_SENDTO && id <= SPLIFF_NR_RECVMSG)))
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	if (!spliff_process_wanted(pid_tgid))
		return 0;
	fd = (__s32)BPF_CORE_READ(regs, di);
	if (id == SPLIFF_NR_CLOSE) {
		spliff_unix_close(pid_tgid, fd);
		return 0;
	}
	sk = spliff_unix_sock_of_fd(fd, &inode);
	if (!sk || !spliff_unix_state_of(pid_tgid, fd, sk, inode))
		return 0;

	call.sk = (__u64)sk;
	call.entry_ns = bpf_ktime_get_boot_ns();
	call.buf = BPF_CORE_READ(regs, si);
	call.count = BPF_CORE_READ(regs, dx);
	call.direction = (id == SPLIFF_NR_WRITE || id == SPLIFF_NR_WRITEV ||
			  id == SPLIFF_NR_SENDTO || id == SPLIFF_NR_SENDMSG)
				 ? SPLIFF_DIR_EGRESS
				 : SPLIFF_DIR_INGRESS;
	/* A peek leaves the bytes queued: the read that consumes them records
	 * them, once. */
	if ((id == SPLIFF_NR_RECVFROM && (BPF_CORE_READ(regs, r10) & SPLIFF_MSG_PEEK)) ||
	    (id == SPLIFF_NR_RECVMSG && (call.count & SPLIFF_MSG_PEEK)))
		return 0;
	if (id == SPLIFF_NR_READV || id == SPLIFF_NR_WRITEV) {
		call.layout = SPLIFF_UNIX_IOVEC;
	} else if (id == SPLIFF_NR_SENDMSG || id == SPLIFF_NR_RECVMSG) {
		/* The iovec array is the process's; the kernel copies the
		 * msghdr but never changes where it points. */
		struct user_msghdr___spliff_unix *msg = (void *)call.buf;

		call.layout = SPLIFF_UNIX_IOVEC;
		call.buf = (__u64)BPF_CORE_READ_USER(msg, msg_iov);
		call.count = BPF_CORE_READ_USER(msg, msg_iovlen);
	}
	tid = (__u32)pid_tgid;
	if (!bpf_map_update_elem(&spliff_unix_calls, &tid, &call, BPF_ANY))
		spliff_unix_in_flight_add(1);
	return 0;
}

/* State of one bpf_loop over a call's bytes: which iovec, how far in it,
 * how much of the syscall's result is left, and the event being filled. */
struct spliff_unix_copy {
	__u64 pid_tgid;
	__u64 sk;
	__u64 iov;       /* iovec array; 0 for a flat buffer */
	__u64 iov_count;
	__u64 iov_next;  /* index of the next iovec to read */
	__u64 cur;       /* where the current piece continues */
	__u64 cur_left;  /* bytes left in the current piece */
	__u64 left;      /* bytes of the result not yet copied */
	__u64 pos;       /* stream offset of the next byte to copy */
	__u64 fill;      /* bytes in the scratch event */
	__u64 ts_ns;
	__u8 direction;
	__u8 reserved[7];
};

/* The loop state lives in a map value, not on the stack: the verifier
 * would otherwise follow the exact values of a stack-resident state through
 * every iteration and give up on the program's size. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct spliff_unix_copy);
} spliff_unix_copy_map SEC(".maps");

struct iovec___spliff_unix {
	void *iov_base;
	__kernel_size_t iov_len;
} __attribute__((preserve_access_index));

/* Sends the scratch event's `fill` bytes, which end at copy->pos. */
static __always_inline void spliff_unix_flush(struct spliff_unix_copy *copy,
					      struct spliff_unix_scratch *event)
{
	__u64 n = copy->fill;
	__u64 size;

	if (n == 0 || n > SPLIFF_UNIX_CHUNK)
		return;
	size = offsetof(struct spliff_unix_scratch, data) + n;
	event->header.kind = SPLIFF_EVENT_TLS_DATA;
	event->header.size = size;
	event->header.ts_ns = copy->ts_ns;
	event->header.pid = copy->pid_tgid >> 32;
	event->header.tid = (__u32)copy->pid_tgid;
	event->ssl = copy->sk;
	event->stream_offset = copy->pos - n;
	event->data_len = n;
	event->direction = copy->direction;
	event->reserved8 = 0;
	event->reserved16 = 0;
	copy->fill = 0;
	/* A full ring leaves a gap in stream offsets that user space turns into
	 * a loss record with the exact range. */
	if (bpf_ringbuf_output(&spliff_events, event, size,
			       spliff_wakeup_on_crossing(
				       bpf_ringbuf_query(&spliff_events, BPF_RB_AVAIL_DATA), size))) {
		spliff_stat_inc(SPLIFF_STAT_RINGBUF_FULL);
		spliff_stat_add(SPLIFF_STAT_RINGBUF_FULL_BYTES, n);
	}
}

/* One step: take the next iovec, or copy what fits of the current piece. */
static long spliff_unix_copy_step(__u32 index, void *unused)
{
	struct spliff_unix_copy *copy;
	struct spliff_unix_scratch *event;
	struct iovec___spliff_unix iov;
	__u32 zero = 0;
	__u64 n, fill;

	copy = bpf_map_lookup_elem(&spliff_unix_copy_map, &zero);
	event = bpf_map_lookup_elem(&spliff_unix_scratch_map, &zero);
	if (!copy || !event)
		return 1;
	if (copy->left == 0) {
		spliff_unix_flush(copy, event);
		return 1;
	}
	if (copy->cur_left == 0) {
		if (copy->iov_next >= copy->iov_count) {
			spliff_unix_flush(copy, event);
			return 1;
		}
		if (bpf_probe_read_user(&iov, sizeof(iov),
					(void *)(copy->iov + copy->iov_next * sizeof(iov)))) {
			spliff_unix_flush(copy, event);
			return 1;
		}
		copy->iov_next++;
		copy->cur = (__u64)iov.iov_base;
		copy->cur_left = iov.iov_len < copy->left ? iov.iov_len : copy->left;
		return 0;
	}
	fill = copy->fill;
	if (fill >= SPLIFF_UNIX_CHUNK)
		return 1;
	n = SPLIFF_UNIX_CHUNK - fill;
	if (n > copy->cur_left)
		n = copy->cur_left;
	if (n > SPLIFF_UNIX_CHUNK || n == 0)
		return 1;
	if (bpf_probe_read_user(event->data + fill, n, (void *)copy->cur)) {
		/* What is filled so far goes out; the unreadable piece is a loss. */
		spliff_unix_flush(copy, event);
		spliff_emit_loss(copy->pid_tgid, copy->sk, copy->pos, n, copy->direction,
				 SPLIFF_LOSS_READ_FAULT);
	} else {
		copy->fill = fill + n;
	}
	copy->pos += n;
	copy->cur += n;
	copy->cur_left -= n;
	copy->left -= n;
	if (copy->fill >= SPLIFF_UNIX_CHUNK)
		spliff_unix_flush(copy, event);
	return 0;
}

/* bpf_loop's own limit on iterations. */
#define SPLIFF_UNIX_MAX_STEPS (1U << 23)

SEC("raw_tracepoint/sys_exit")
int spliff_unix_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	const __u64 *args = (const void *)ctx;
	long ret = (long)args[1];
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct spliff_unix_key key = { .tgid = pid_tgid >> 32 };
	struct spliff_unix_call *saved, call;
	struct spliff_unix_state *state;
	struct spliff_unix_scratch *scratch;
	struct spliff_unix_copy *copy;
	__s64 *in_flight;
	__u32 zero = 0;
	__u64 steps, pos;

	/* Every syscall of the machine comes here: nothing to do unless some
	 * thread is inside a saved call, and then only for that thread. */
	in_flight = bpf_map_lookup_elem(&spliff_unix_in_flight, &zero);
	if (!in_flight || *in_flight <= 0)
		return 0;
	saved = bpf_map_lookup_elem(&spliff_unix_calls, &tid);
	if (!saved)
		return 0;
	call = *saved;
	if (!bpf_map_delete_elem(&spliff_unix_calls, &tid))
		spliff_unix_in_flight_add(-1);
	if (ret <= 0)
		return 0;
	key.sk = call.sk;
	state = bpf_map_lookup_elem(&spliff_unix_socks, &key);
	copy = bpf_map_lookup_elem(&spliff_unix_copy_map, &zero);
	scratch = bpf_map_lookup_elem(&spliff_unix_scratch_map, &zero);
	if (!state || !state->selected || !copy || !scratch)
		return 0;

	/* Reserved atomically: two threads on one socket get disjoint ranges. */
	if (call.direction == SPLIFF_DIR_EGRESS)
		pos = __sync_fetch_and_add(&state->pos[0], ret);
	else
		pos = __sync_fetch_and_add(&state->pos[1], ret);
	__builtin_memset(copy, 0, sizeof(*copy));
	copy->pid_tgid = pid_tgid;
	copy->sk = call.sk;
	copy->left = ret;
	copy->pos = pos;
	copy->direction = call.direction;
	/* Writes are stamped at entry, reads at return (trace format, kind 4). */
	copy->ts_ns =
		call.direction == SPLIFF_DIR_EGRESS ? call.entry_ns : bpf_ktime_get_boot_ns();
	if (call.layout == SPLIFF_UNIX_IOVEC) {
		copy->iov = call.buf;
		copy->iov_count = call.count;
	} else {
		copy->cur = call.buf;
		copy->cur_left = ret;
	}
	/* Each step reads one iovec or copies up to a chunk, and a chunk
	 * boundary can split a piece once more. */
	steps = 2 * (copy->iov_count + (ret / SPLIFF_UNIX_CHUNK)) + 4;
	if (steps > SPLIFF_UNIX_MAX_STEPS)
		steps = SPLIFF_UNIX_MAX_STEPS;
	bpf_loop(steps, spliff_unix_copy_step, NULL, 0);
	/* Out of steps (or iovecs) before the end: what is filled goes out,
	 * the rest is a loss. */
	spliff_unix_flush(copy, scratch);
	if (copy->left)
		spliff_emit_loss(pid_tgid, call.sk, copy->pos, copy->left, call.direction,
				 SPLIFF_LOSS_TRUNCATED);
	return 0;
}

#endif /* SPLIFF_BPF_UNIX_STREAM_H */
