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
	 * default wakeup below wakes the reader at once for it.
	 */
	if (spliff_stop_on_exec_comm && spliff_comm_selected() &&
	    bpf_send_signal(SPLIFF_SIGSTOP) == 0)
		event->flags |= SPLIFF_EXEC_STOPPED;

	bpf_ringbuf_submit(event, 0);
	return 0;
}

#endif /* SPLIFF_BPF_PROCESS_EXEC_H */
