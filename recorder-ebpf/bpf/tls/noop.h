/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/* Benchmark floor: uprobes that do nothing. Attached to the same functions
 * as the OpenSSL programs (recorder/examples/noop_probes.rs), they measure
 * the trap cost alone, which the recorder's own work is compared with
 * (docs/BENCHMARKS.md). Never attached by `spliff record`. */
#ifndef SPLIFF_BPF_TLS_NOOP_H
#define SPLIFF_BPF_TLS_NOOP_H

SEC("uprobe")
int spliff_noop_entry(struct pt_regs *ctx)
{
	return 0;
}

SEC("uretprobe")
int spliff_noop_return(struct pt_regs *ctx)
{
	return 0;
}

#endif /* SPLIFF_BPF_TLS_NOOP_H */
