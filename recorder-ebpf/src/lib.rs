//! spliff's kernel programs, embedded as one BPF object, and the Rust mirror of
//! the types they share with user space.
//!
//! The programs are C with CO-RE (`bpf/`, `include/`); `build.rs` compiles
//! them with clang when it can and otherwise embeds the committed
//! `prebuilt/spliff.bpf.o`. This crate is only bytes and plain structs, so it
//! builds on every OS; loading happens in `spliff-recorder` (Linux only).

#![warn(missing_docs)]

pub mod abi;

/// The names user space uses to find things in [`BPF_OBJECT`]. They are the C
/// symbol names in `bpf/`; a unit test checks they are present in the object.
pub mod names {
    /// `BPF_MAP_TYPE_RINGBUF` carrying every event (see [`crate::abi`]).
    pub const EVENTS_MAP: &str = "spliff_events";
    /// `BPF_MAP_TYPE_PERCPU_ARRAY` of `u64` counters indexed by
    /// [`crate::abi::Stat`].
    pub const STATS_MAP: &str = "spliff_stats";
    /// `.rodata` `u32`: record only this process (and, for exec events, its
    /// direct children); 0 records everything.
    pub const TARGET_TGID_GLOBAL: &str = "spliff_target_tgid";
    /// Raw tracepoint program emitting [`crate::abi::ProcessExecEvent`].
    pub const PROCESS_EXEC_PROGRAM: &str = "spliff_process_exec";
    /// Tracepoint that [`PROCESS_EXEC_PROGRAM`] attaches to, raw (by name,
    /// so tracefs need not be mounted).
    pub const PROCESS_EXEC_RAW_TRACEPOINT: &str = "sched_process_exec";
    /// Raw tracepoint program adding children of tracked processes to
    /// [`TRACKED_TGIDS_MAP`].
    pub const PROCESS_FORK_PROGRAM: &str = "spliff_process_fork";
    /// Tracepoint of [`PROCESS_FORK_PROGRAM`].
    pub const PROCESS_FORK_RAW_TRACEPOINT: &str = "sched_process_fork";
    /// Raw tracepoint program removing exited processes from
    /// [`TRACKED_TGIDS_MAP`].
    pub const PROCESS_EXIT_PROGRAM: &str = "spliff_process_exit";
    /// Tracepoint of [`PROCESS_EXIT_PROGRAM`].
    pub const PROCESS_EXIT_RAW_TRACEPOINT: &str = "sched_process_exit";
    /// Raw tracepoint program learning the fd of connections whose
    /// `SSL_set_fd` the capture did not see.
    pub const SYS_ENTER_PROGRAM: &str = "spliff_sys_enter";
    /// Tracepoint of [`SYS_ENTER_PROGRAM`].
    pub const SYS_ENTER_RAW_TRACEPOINT: &str = "sys_enter";
    /// Raw tracepoint of every syscall's return.
    pub const SYS_EXIT_RAW_TRACEPOINT: &str = "sys_exit";
    /// `--unix`: saves reads and writes of selected unix stream sockets.
    pub const UNIX_SYS_ENTER_PROGRAM: &str = "spliff_unix_sys_enter";
    /// `--unix`: copies what a saved call moved.
    pub const UNIX_SYS_EXIT_PROGRAM: &str = "spliff_unix_sys_exit";
    /// `--unix PATH`: the selected paths (`UnixPathKey` -> u8).
    pub const UNIX_PATHS_MAP: &str = "spliff_unix_paths";
    /// `--unix any`: entry 0 nonzero selects every unix stream socket.
    pub const UNIX_ANY_MAP: &str = "spliff_unix_any";
    /// `.rodata` `u32`: 1 restricts TLS probes to tracked processes and
    /// filtered comms.
    pub const FILTER_ENABLED_GLOBAL: &str = "spliff_filter_enabled";
    /// `.rodata` `u32`: 1 stops processes that exec into a filtered comm
    /// (and reports forks of selected processes), for per-process uprobes.
    pub const STOP_ON_EXEC_COMM_GLOBAL: &str = "spliff_stop_on_exec_comm";
    /// `.rodata` `u32`: 1 keeps only packets of TCP connections of selected processes
    /// (bpf/net/packet_scope.h).
    pub const PACKETS_SCOPED_GLOBAL: &str = "spliff_packets_scoped";
    /// `BPF_MAP_TYPE_HASH` [`crate::abi::StopKey`] -> u8: stops the exec
    /// program sent and the recorder has not continued yet.
    pub const STOPPED_MAP: &str = "spliff_stopped";
    /// `BPF_MAP_TYPE_ARRAY` of one `u32`: nonzero while a stop watchdog
    /// stands ready; the exec program stops nothing otherwise.
    pub const STOP_ARMED_MAP: &str = "spliff_stop_armed";
    /// `BPF_MAP_TYPE_HASH` tgid -> `TRACK_*`.
    pub const TRACKED_TGIDS_MAP: &str = "spliff_tracked_tgids";
    /// `BPF_MAP_TYPE_HASH` comm (16 bytes, NUL padded) -> u8.
    pub const COMM_FILTER_MAP: &str = "spliff_comm_filter";
    /// `BPF_MAP_TYPE_RINGBUF` carrying [`crate::abi::PacketEvent`]s only.
    pub const PACKETS_MAP: &str = "spliff_packets";
    /// `BPF_MAP_TYPE_PERCPU_HASH` ifindex -> [`crate::abi::PacketIface`]: the
    /// interfaces being captured, their settings and counters.
    pub const PACKET_IFACES_MAP: &str = "spliff_packet_ifaces";
    /// XDP program (ingress).
    pub const XDP_PROGRAM: &str = "spliff_xdp_ingress";
    /// TC classifier for ingress.
    pub const TC_INGRESS_PROGRAM: &str = "spliff_tc_ingress";
    /// TC classifier for egress.
    pub const TC_EGRESS_PROGRAM: &str = "spliff_tc_egress";
    /// sock_ops program emitting [`crate::abi::SocketEvent`], attached at the
    /// root of a cgroup v2 hierarchy.
    pub const SOCK_OPS_PROGRAM: &str = "spliff_sock_ops";
    /// No-op uprobe, for the benchmark floor (never attached by `record`).
    pub const NOOP_ENTRY_PROGRAM: &str = "spliff_noop_entry";
    /// No-op uretprobe, for the benchmark floor.
    pub const NOOP_RETURN_PROGRAM: &str = "spliff_noop_return";
    /// Every TLS uprobe program, of every library: (program, is a return
    /// probe). The return, shutdown and free programs (`spliff_ssl_*`) are
    /// shared by all libraries.
    pub const TLS_PROGRAMS: &[(&str, bool)] = &[
        ("spliff_ssl_write_entry", false),
        ("spliff_ssl_write_ex_entry", false),
        ("spliff_ssl_read_entry", false),
        ("spliff_ssl_read_ex_entry", false),
        ("spliff_ssl_data_return", true),
        ("spliff_ssl_set_fd", false),
        ("spliff_ssl_set_connect_state", false),
        ("spliff_ssl_set_accept_state", false),
        ("spliff_ssl_do_handshake_entry", false),
        ("spliff_ssl_connect_entry", false),
        ("spliff_ssl_accept_entry", false),
        ("spliff_ssl_handshake_return", true),
        ("spliff_ssl_ctrl_entry", false),
        ("spliff_ssl_alpn_entry", false),
        ("spliff_ssl_alpn_return", true),
        ("spliff_ssl_shutdown_entry", false),
        ("spliff_ssl_free_entry", false),
        ("spliff_ssl_bio_write_entry", false),
        ("spliff_ssl_bio_read_entry", false),
        ("spliff_boringssl_write_entry", false),
        ("spliff_boringssl_read_entry", false),
        ("spliff_boringssl_do_handshake_entry", false),
        ("spliff_boringssl_new_return", true),
        ("spliff_gnutls_send_entry", false),
        ("spliff_gnutls_recv_entry", false),
        ("spliff_gnutls_init_entry", false),
        ("spliff_gnutls_init_return", true),
        ("spliff_gnutls_set_int2", false),
        ("spliff_gnutls_set_ptr", false),
        ("spliff_gnutls_set_ptr2", false),
        ("spliff_gnutls_handshake_entry", false),
        ("spliff_gnutls_server_name_set_entry", false),
        ("spliff_gnutls_alpn_entry", false),
        ("spliff_wolfssl_write_entry", false),
        ("spliff_wolfssl_read_entry", false),
        ("spliff_wolfssl_set_fd", false),
        ("spliff_wolfssl_connect_entry", false),
        ("spliff_wolfssl_accept_entry", false),
        ("spliff_wolfssl_use_sni_entry", false),
        ("spliff_wolfssl_alpn_entry", false),
        ("spliff_nss_import_fd_return", true),
        ("spliff_nss_write_entry", false),
        ("spliff_nss_read_entry", false),
        ("spliff_nss_recv_entry", false),
        ("spliff_nss_writev_entry", false),
        ("spliff_nss_writev_return", true),
        ("spliff_nss_reset_handshake_entry", false),
        ("spliff_nss_option_set_entry", false),
        ("spliff_nss_force_handshake_entry", false),
        ("spliff_nss_set_url_entry", false),
        ("spliff_nss_set_url_return", true),
        ("spliff_nss_alpn_entry", false),
        ("spliff_nss_alpn_return", true),
    ];
    /// Go `crypto/tls` uprobe programs. None is a uretprobe: the "return"
    /// ones go on each RET instruction of their function (see
    /// `bpf/tls/gotls.h`).
    pub const GO_PROGRAMS: &[&str] = &[
        "spliff_go_write_entry",
        "spliff_go_read_entry",
        "spliff_go_data_return",
        "spliff_go_client_hs_entry",
        "spliff_go_server_hs_entry",
        "spliff_go_hs_return",
        "spliff_go_alpn_return",
        "spliff_go_state_entry",
        "spliff_go_state_return",
        "spliff_go_close_entry",
    ];
}

/// Where the embedded object came from, decided by `build.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectOrigin {
    /// Compiled from `bpf/` by clang during this build.
    Compiled,
    /// The committed `prebuilt/spliff.bpf.o` (no usable clang, a non-Linux
    /// target, or `SPLIFF_BPF_USE_PREBUILT=1`).
    Prebuilt,
}

/// Where [`BPF_OBJECT`] came from; useful in version and bug reports.
#[cfg(not(spliff_bpf_prebuilt))]
pub const OBJECT_ORIGIN: ObjectOrigin = ObjectOrigin::Compiled;
/// Where [`BPF_OBJECT`] came from; useful in version and bug reports.
#[cfg(spliff_bpf_prebuilt)]
pub const OBJECT_ORIGIN: ObjectOrigin = ObjectOrigin::Prebuilt;

// ELF64 headers and BPF instructions are 8-byte units; the ELF parser reads
// them in place, so the bytes must not sit at an arbitrary address.
#[repr(C, align(8))]
struct Aligned<Bytes: ?Sized>(Bytes);

const ALIGNED_OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/spliff.bpf.o")));

/// The BPF ELF object holding every spliff kernel program, 8-byte aligned so
/// it can be handed to a loader as is.
pub static BPF_OBJECT: &[u8] = &ALIGNED_OBJECT.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_is_aligned_bpf_elf() {
        assert_eq!(BPF_OBJECT.as_ptr().align_offset(8), 0);
        assert_eq!(BPF_OBJECT.get(..4), Some(&b"\x7fELF"[..]));
        const EM_BPF: u16 = 247;
        let machine = BPF_OBJECT
            .get(18..20)
            .map(|b| u16::from_le_bytes([b[0], b[1]]));
        assert_eq!(machine, Some(EM_BPF));
    }

    #[test]
    fn object_defines_the_names_user_space_looks_up() {
        let section = format!("raw_tracepoint/{}", names::PROCESS_EXEC_RAW_TRACEPOINT);
        for symbol in [
            names::EVENTS_MAP,
            names::STATS_MAP,
            names::TARGET_TGID_GLOBAL,
            names::PROCESS_EXEC_PROGRAM,
            names::PROCESS_FORK_PROGRAM,
            names::PROCESS_EXIT_PROGRAM,
            names::SYS_ENTER_PROGRAM,
            names::FILTER_ENABLED_GLOBAL,
            names::STOP_ON_EXEC_COMM_GLOBAL,
            names::TRACKED_TGIDS_MAP,
            names::COMM_FILTER_MAP,
            names::STOPPED_MAP,
            names::STOP_ARMED_MAP,
            names::SOCK_OPS_PROGRAM,
            section.as_str(),
            names::NOOP_ENTRY_PROGRAM,
            names::NOOP_RETURN_PROGRAM,
            names::PACKETS_MAP,
            names::PACKET_IFACES_MAP,
            names::XDP_PROGRAM,
            names::TC_INGRESS_PROGRAM,
            names::TC_EGRESS_PROGRAM,
            names::UNIX_SYS_ENTER_PROGRAM,
            names::UNIX_SYS_EXIT_PROGRAM,
            names::UNIX_PATHS_MAP,
            names::UNIX_ANY_MAP,
        ]
        .into_iter()
        .chain(names::TLS_PROGRAMS.iter().map(|(name, _)| *name))
        .chain(names::GO_PROGRAMS.iter().copied())
        {
            // NUL-terminated, as in the ELF string table, so a longer name
            // sharing the prefix does not count.
            let needle = [symbol.as_bytes(), b"\0"].concat();
            assert!(
                BPF_OBJECT.windows(needle.len()).any(|w| w == needle),
                "`{symbol}` not found in the BPF object"
            );
        }
    }
}
