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
#endif

/* Event kinds (spliff_event_header.kind). 0 is never emitted, so a zeroed or
 * uninitialised record can never pass as a real event. */
enum spliff_event_kind {
	SPLIFF_EVENT_INVALID = 0,
	SPLIFF_EVENT_PROCESS_EXEC = 1,
	/* 2.. reserved for TLS data events (later issues); append only. */
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

/* Indices of the per-CPU counters in the spliff_stats map. Append only. */
enum spliff_stat {
	SPLIFF_STAT_RINGBUF_FULL = 0, /* events lost: ring buffer had no room */
	SPLIFF_STAT_COUNT,            /* number of counters, not a counter */
};

/* Default size of the spliff_events ring buffer; user space may override it
 * (power of two, multiple of the page size). */
#define SPLIFF_RINGBUF_DEFAULT_BYTES (4U * 1024 * 1024)

#endif /* SPLIFF_ABI_H */
