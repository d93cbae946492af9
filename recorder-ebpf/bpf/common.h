/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/* State shared by every spliff program: settings, the event ring, counters. */
#ifndef SPLIFF_BPF_COMMON_H
#define SPLIFF_BPF_COMMON_H

/*
 * Minimal CO-RE views of kernel structs, used instead of vmlinux.h's full
 * definitions when walking pointers. The loader matches "foo___spliff" to the
 * kernel's "foo" and relocates each named field, so this is still CO-RE.
 * Why not vmlinux.h's task_struct: clang 19 emits BTF forward declarations
 * for the structs such a type points to in heap-address order, which made
 * the object depend on the length of the checkout path (not reproducible).
 * scripts/check-bpf-object.sh builds at two path lengths to catch a relapse.
 */
struct files_struct___spliff;

struct task_struct___spliff {
	struct task_struct___spliff *real_parent;
	__s32 pid;  /* pid_t: the thread id */
	__s32 tgid; /* pid_t */
	struct files_struct___spliff *files;
	struct task_struct___spliff *group_leader;
	char comm[16]; /* TASK_COMM_LEN */
} __attribute__((preserve_access_index));

/*
 * Settings, fixed by user space before load (aya override_global). They live
 * in .rodata so the verifier sees them as constants and prunes dead branches;
 * volatile stops clang from folding the compile-time default into the code.
 */

/* Process whose activity is recorded (exec events: also its direct
 * children); 0 records every process. */
const volatile __u32 spliff_target_tgid = 0;

/*
 * 1: record only processes in spliff_tracked_tgids (value
 * SPLIFF_TRACK_RECORD) or whose comm is in spliff_comm_filter. 0: record
 * every process. Checked at the first probe of every call, before any copy.
 */
const volatile __u32 spliff_filter_enabled = 0;

/*
 * 1: --comm attaches uprobes per process (so unselected processes never take
 * the trap); a process exec'ing into a filtered comm is stopped with SIGSTOP
 * until user space has attached to it, and forks of selected processes are
 * reported. 0: neither.
 */
const volatile __u32 spliff_stop_on_exec_comm = 0;

/*
 * Every stop the exec program sent and the recorder has not continued yet
 * (value unused). The stop watchdog, a process outliving the recorder,
 * continues whatever is left in it once the recorder is gone.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SPLIFF_STOPPED_MAX);
	__type(key, struct spliff_stop_key);
	__type(value, __u8);
} spliff_stopped SEC(".maps");

/* Entry 0 is nonzero while a stop watchdog stands ready: the exec program
 * stops nothing otherwise. Zero at load; the watchdog sets it once running
 * and clears it when the recorder is gone. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} spliff_stop_armed SEC(".maps");

/* Processes in scope. User space seeds it (--pid, --ppid, the recorder itself
 * as the parent of `-- CMD`); the fork program adds children of tracked
 * processes in the kernel, so a child is in scope before its first
 * instruction runs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);   /* tgid */
	__type(value, __u32); /* SPLIFF_TRACK_* */
} spliff_tracked_tgids SEC(".maps");

/* --comm names, NUL padded to TASK_COMM_LEN as bpf_get_current_comm writes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u8[SPLIFF_COMM_LEN]);
	__type(value, __u8);
} spliff_comm_filter SEC(".maps");

/* Every event goes through this single ring so user space sees one total
 * order across CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SPLIFF_RINGBUF_DEFAULT_BYTES);
} spliff_events SEC(".maps");

/* Per-CPU so counting a lost event never contends or needs atomics. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SPLIFF_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} spliff_stats SEC(".maps");

static __always_inline void spliff_stat_inc(__u32 stat)
{
	__u64 *value = bpf_map_lookup_elem(&spliff_stats, &stat);

	if (value)
		*value += 1;
}

/* Reserves a record in the ring and fills its header. A full ring is counted,
 * never silent: a recorder that loses data must be able to say so. */
static __always_inline void *spliff_event_reserve(__u32 kind, __u32 size, __u64 pid_tgid)
{
	struct spliff_event_header *header = bpf_ringbuf_reserve(&spliff_events, size, 0);

	if (!header) {
		spliff_stat_inc(SPLIFF_STAT_RINGBUF_FULL);
		return NULL;
	}
	header->kind = kind;
	header->size = size;
	header->ts_ns = bpf_ktime_get_boot_ns();
	header->pid = pid_tgid >> 32;
	header->tid = (__u32)pid_tgid;
	return header;
}

/*
 * Wakeup policy of both rings (TLS events here, packets in net/packet.h): the
 * reader is not woken per record (at tens of thousands of records per second
 * the wakeups cost more than the copies on a busy machine); it drains on a
 * short timer and is woken early only when the unread data crosses
 * SPLIFF_WAKEUP_BYTES. Once per crossing, not per record above it: each
 * forced wakeup is an irq_work (a self-IPI in a VM, over a microsecond), and
 * forcing one for every record while the reader was already catching up made
 * a flood of small records cost ten times the hook itself. A crossing missed
 * by two CPUs writing at once leaves the reader to its timer.
 */
#define SPLIFF_WAKEUP_BYTES (1U << 20)

/* Flags for a record of `size` bytes written when `before` bytes are unread;
 * the ring also counts each record's 8-byte header and pads it to 8. */
static __always_inline __u64 spliff_wakeup_on_crossing(__u64 before, __u64 size)
{
	__u64 after = before + 8 + ((size + 7) & ~7ULL);

	return before < SPLIFF_WAKEUP_BYTES && after >= SPLIFF_WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP
									      : BPF_RB_NO_WAKEUP;
}

/* For a record of `size` bytes reserved in spliff_events and about to be
 * submitted: its reservation already counts as unread. */
static __always_inline __u64 spliff_wakeup_flags(__u64 size)
{
	__u64 unread = bpf_ringbuf_query(&spliff_events, BPF_RB_AVAIL_DATA);
	__u64 space = 8 + ((size + 7) & ~7ULL);

	return spliff_wakeup_on_crossing(unread > space ? unread - space : 0, size);
}

static __always_inline void spliff_stat_add(__u32 stat, __u64 n)
{
	__u64 *value = bpf_map_lookup_elem(&spliff_stats, &stat);

	if (value)
		*value += n;
}

/* Whether the current thread's comm or its process's (the main thread's) is
 * one of the --comm names. --comm names processes, and threads rename
 * themselves: Firefox does all its TLS on its "Socket Thread". */
static __always_inline bool spliff_comm_selected(void)
{
	struct task_struct___spliff *task = (void *)bpf_get_current_task();
	__u8 comm[SPLIFF_COMM_LEN] = {};

	bpf_get_current_comm(comm, sizeof(comm));
	if (bpf_map_lookup_elem(&spliff_comm_filter, comm))
		return true;
	/* The kernel pads comm with NULs, as the filter's keys are. */
	if (BPF_CORE_READ_INTO(&comm, task, group_leader, comm))
		return false;
	return bpf_map_lookup_elem(&spliff_comm_filter, comm) != NULL;
}

/* Whether the current process is in the capture's scope. */
static __always_inline bool spliff_process_wanted(__u64 pid_tgid)
{
	__u32 tgid = pid_tgid >> 32;
	__u32 *track;

	if (!spliff_filter_enabled)
		return true;
	track = bpf_map_lookup_elem(&spliff_tracked_tgids, &tgid);
	if (track && (*track == SPLIFF_TRACK_RECORD || *track == SPLIFF_TRACK_ONLY))
		return true;
	return spliff_comm_selected();
}

#endif /* SPLIFF_BPF_COMMON_H */
