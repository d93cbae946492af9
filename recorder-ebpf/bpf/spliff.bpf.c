// SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only
/*
 * spliff's single BPF object. Every program lives in a header per concern and
 * is pulled in here, so there is one ELF to build, embed, load and verify, and
 * all programs share one ring buffer and one set of .rodata settings.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "spliff_abi.h"
#include "common.h"
#include "process/exec.h"
#include "process/fork.h"
#include "net/socket.h"
#include "net/packet.h"
#include "net/packet_scope.h"
#include "net/xdp.h"
#include "net/tc.h"
#include "net/sockops.h"
#include "tls/conn.h"
#include "tls/openssl.h"
#include "tls/openssl_bio.h"
#include "tls/boringssl.h"
#include "tls/gnutls.h"
#include "tls/wolfssl.h"
#include "tls/nss.h"
#include "tls/gotls.h"
#include "tls/noop.h"
#include "unix/unix_stream.h"

/*
 * The kernel refuses GPL-only helpers (bpf_probe_read_kernel,
 * bpf_get_current_task) to programs without a GPL-compatible license string;
 * "Dual MIT/GPL" is one the kernel accepts and matches the SPDX line above.
 */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
