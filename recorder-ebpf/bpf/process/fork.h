/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/* Process lifecycle: fork. Keeps --ppid and `-- CMD` scopes complete: a child
 * of a tracked process is tracked in the kernel before it runs, so even a
 * process that lives for a millisecond is recorded. */
#ifndef SPLIFF_BPF_PROCESS_FORK_H
#define SPLIFF_BPF_PROCESS_FORK_H

/*
 * --comm with per-process uprobes: tells user space that a selected process
 * forked a process (same comm) without exec, so it attaches to the child too.
 * The child cannot be stopped from here (bpf_send_signal targets the current
 * task, the parent) and already runs: its TLS calls before the attachment
 * are not seen. The record reuses the exec event, flagged FORKED.
 */
static __always_inline void spliff_report_fork(__u32 parent_tgid, __u32 child_tgid,
					       __u32 child_pid)
{
	__u64 child = ((__u64)child_tgid << 32) | child_pid;
	struct spliff_process_exec_event *event;

	event = spliff_event_reserve(SPLIFF_EVENT_PROCESS_EXEC, sizeof(*event), child);
	if (!event)
		return;
	event->ppid = parent_tgid;
	event->uid = (__u32)bpf_get_current_uid_gid();
	event->filename_len = 0;
	event->flags = SPLIFF_EXEC_FORKED;
	/* The child's comm is a copy of the forking thread's. */
	bpf_get_current_comm(event->comm, sizeof(event->comm));
	__builtin_memset(event->filename, 0, sizeof(event->filename));
	bpf_ringbuf_submit(event, 0);
}

/*
 * sched_process_fork, attached raw (no tracefs needed). TP_PROTO:
 *   (struct task_struct *parent, struct task_struct *child)
 * Runs after copy_process(), so child->tgid is final.
 */
SEC("raw_tracepoint/sched_process_fork")
int spliff_process_fork(struct bpf_raw_tracepoint_args *ctx)
{
	/* Plain u64 array: see spliff_process_exec. */
	const __u64 *args = (const void *)ctx;
	struct task_struct___spliff *parent = (void *)args[0];
	struct task_struct___spliff *child = (void *)args[1];
	__u32 record = SPLIFF_TRACK_RECORD;
	__u32 parent_tgid, child_tgid, *track;

	if (!spliff_filter_enabled)
		return 0;
	parent_tgid = BPF_CORE_READ(parent, tgid);
	child_tgid = BPF_CORE_READ(child, tgid);
	/* A new thread shares its process's entry already. */
	if (parent_tgid == child_tgid)
		return 0;
	/* Runs in the parent: the current comm is the forking thread's. */
	if (spliff_stop_on_exec_comm && spliff_comm_selected())
		spliff_report_fork(parent_tgid, child_tgid, BPF_CORE_READ(child, pid));
	track = bpf_map_lookup_elem(&spliff_tracked_tgids, &parent_tgid);
	if (!track || *track == SPLIFF_TRACK_ONLY)
		return 0;
	/* A full map cannot be helped here; the child is then out of scope. */
	bpf_map_update_elem(&spliff_tracked_tgids, &child_tgid, &record, BPF_ANY);
	return 0;
}

/*
 * sched_process_exit, raw: TP_PROTO (struct task_struct *p[, bool
 * group_dead]). When a process's main thread exits, its tgid leaves the
 * tracked set: a long capture of a busy tree (a build under `-- CMD`) must
 * not fill the map, and a reused pid must not inherit the scope.
 */
SEC("raw_tracepoint/sched_process_exit")
int spliff_process_exit(struct bpf_raw_tracepoint_args *ctx)
{
	const __u64 *args = (const void *)ctx;
	struct task_struct___spliff *task = (void *)args[0];
	__u32 tgid;

	if (!spliff_filter_enabled)
		return 0;
	tgid = BPF_CORE_READ(task, tgid);
	if (BPF_CORE_READ(task, pid) != (__s32)tgid)
		return 0;
	bpf_map_delete_elem(&spliff_tracked_tgids, &tgid);
	return 0;
}

#endif /* SPLIFF_BPF_PROCESS_FORK_H */
