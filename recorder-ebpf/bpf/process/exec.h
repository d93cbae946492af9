/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/* Process lifecycle: exec. Tells user space which binary a pid now runs, which
 * later decides where TLS uprobes go. */
#ifndef SPLIFF_BPF_PROCESS_EXEC_H
#define SPLIFF_BPF_PROCESS_EXEC_H

/* CO-RE view of the kernel's struct linux_binprm (see common.h). */
struct linux_binprm___spliff {
	const char *filename;
} __attribute__((preserve_access_index));

/* SIGSTOP's number on every Linux architecture (vmlinux.h has no macros). */
#define SPLIFF_SIGSTOP 19

/*
 * Stops the current process (SIGSTOP), recorded in spliff_stopped under
 * (tgid, ts_ns) first so that someone can always undo it; false if it was
 * not stopped.
 *
 * Why no stop can be left behind once the recorder dies: the watchdog, on
 * the recorder's death, (1) clears spliff_stop_armed, (2) waits for an RCU
 * grace period (membarrier(MEMBARRIER_CMD_GLOBAL) is synchronize_rcu()),
 * (3) continues and deletes every entry of spliff_stopped. This program runs
 * inside an RCU read-side critical section (the kernel runs raw tracepoint
 * programs under rcu_read_lock()). So a run either ended before the grace
 * period did, and then its insert and its signal (bpf_send_signal queues it
 * before returning: interrupts are on at exec) are visible to (3), which
 * continues the process (SIGCONT also discards a SIGSTOP still pending); or
 * it began after the grace period did, so after (1), and then it reads armed
 * as 0 and stops nothing. The insert comes before the flag is read so that a run which saw
 * the flag set is in the map by then, whatever happens after. Should
 * membarrier be refused (nohz_full kernels), a sleep stands in for the grace
 * period: a run cannot sleep and lasts microseconds. The watchdog sweeps a
 * second time after a short pause either way.
 */
static __always_inline bool spliff_stop_current(__u32 tgid, __u64 ts_ns)
{
	struct spliff_stop_key key = { .pid = tgid, .ts_ns = ts_ns };
	__u32 zero = 0;
	__u8 one = 1;
	__u32 *armed;

	/* Full map (or a duplicate key): no stop, since nobody could undo it. */
	if (bpf_map_update_elem(&spliff_stopped, &key, &one, BPF_NOEXIST))
		return false;
	armed = bpf_map_lookup_elem(&spliff_stop_armed, &zero);
	if (armed && *(volatile __u32 *)armed && bpf_send_signal(SPLIFF_SIGSTOP) == 0)
		return true;
	bpf_map_delete_elem(&spliff_stopped, &key);
	return false;
}

/*
 * With a target set, report its own execs (its image, and so its uprobes, are
 * replaced) and those of its direct children (candidates to follow).
 */
static __always_inline bool spliff_exec_wanted(__u32 tgid, __u32 ppid)
{
	__u32 target = spliff_target_tgid;

	return target == 0 || tgid == target || ppid == target;
}

/*
 * The sched_process_exec tracepoint, attached raw: a classic tracepoint needs
 * tracefs mounted to look up its id, which many machines (and minimal VMs) do
 * not have; raw attachment goes by name through bpf() alone. Raw arguments
 * are the tracepoint's TP_PROTO:
 *   (struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
 */
SEC("raw_tracepoint/sched_process_exec")
int spliff_process_exec(struct bpf_raw_tracepoint_args *ctx)
{
	/* The context is a plain u64 array (fixed ABI). Indexed through
	 * vmlinux.h's struct, clang would emit a CO-RE relocation on its
	 * zero-length args[] that aya rejects as out of bounds. */
	const __u64 *args = (const void *)ctx;
	struct task_struct___spliff *task = (void *)args[0];
	struct linux_binprm___spliff *bprm = (void *)args[2];
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct spliff_process_exec_event *event;
	const char *filename;
	__u32 ppid;
	long copied;

	/* real_parent, not parent: ptrace (strace, gdb) reparents to the tracer.
	 * CO-RE fits these offsets to the running kernel. */
	ppid = BPF_CORE_READ(task, real_parent, tgid);
	if (!spliff_exec_wanted(pid_tgid >> 32, ppid))
		return 0;
	/* Out of the capture's scope: user space has nothing to rescan. */
	if (!spliff_process_wanted(pid_tgid))
		return 0;

	event = spliff_event_reserve(SPLIFF_EVENT_PROCESS_EXEC, sizeof(*event), pid_tgid);
	if (!event)
		return 0;

	event->ppid = ppid;
	event->uid = (__u32)bpf_get_current_uid_gid();
	event->flags = 0;
	/* comm was already switched to the new binary's name; the helper pads
	 * with NULs, so no stale ring bytes reach user space. */
	bpf_get_current_comm(event->comm, sizeof(event->comm));

	/* Ring memory is recycled and read_str stops at the NUL: clear the tail
	 * so records are deterministic. */
	__builtin_memset(event->filename, 0, sizeof(event->filename));
	filename = BPF_CORE_READ(bprm, filename);
	copied = bpf_probe_read_kernel_str(event->filename, sizeof(event->filename), filename);
	if (copied > 0) {
		event->filename_len = copied - 1;
		/* A full buffer is an exact fit or a cut; the source byte the NUL
		 * took tells which. */
		if (copied == sizeof(event->filename)) {
			char next = 1;

			bpf_probe_read_kernel(&next, 1, filename + sizeof(event->filename) - 1);
			if (next)
				event->flags |= SPLIFF_EXEC_FILENAME_TRUNCATED;
		}
	} else {
		event->filename_len = 0;
		event->flags |= SPLIFF_EXEC_FILENAME_UNREADABLE;
	}

	/*
	 * --comm with per-process uprobes: hold the process before its first
	 * user-space instruction (the signal is delivered on the return from
	 * execve, and SIGSTOP cannot be caught or ignored) until user space has
	 * attached its uprobes and sends SIGCONT. Only once the record is
	 * reserved: a stop nobody hears about would never be continued. The
	 * default wakeup below wakes the reader at once for it. Should the
	 * recorder die first, the watchdog continues it (spliff_stop_current).
	 */
	if (spliff_stop_on_exec_comm && spliff_comm_selected() &&
	    spliff_stop_current(pid_tgid >> 32, event->header.ts_ns))
		event->flags |= SPLIFF_EXEC_STOPPED;

	bpf_ringbuf_submit(event, 0);
	return 0;
}

#endif /* SPLIFF_BPF_PROCESS_EXEC_H */
