//! Checks that `spliff_recorder_ebpf::abi` lays out every ABI struct exactly as
//! the C compiler lays out `include/spliff_abi.h`.
//!
//! The table below is the single list of what is checked: it yields the
//! expected lines from Rust (`size_of`, `offset_of!`) and generates the C
//! program that prints the same lines from `sizeof`/`offsetof`, so the two
//! sides cannot drift apart silently. gcc is assumed (`cc`, or `$CC`): it is on
//! every machine that builds spliff, unlike clang.
#![cfg(unix)]

use std::{
    fmt::Write as _,
    mem::{align_of, offset_of, size_of},
    path::{Path, PathBuf},
    process::Command,
};

use spliff_recorder_ebpf::abi::*;

struct Field {
    name: &'static str,
    offset: usize,
    size: usize,
}

struct Struct {
    c_name: &'static str,
    size: usize,
    align: usize,
    fields: Vec<Field>,
}

fn field_size<S, F>(_: impl Fn(&S) -> &F) -> usize {
    size_of::<F>()
}

/// Fields are listed by hand on purpose: the size check in
/// `layouts_have_no_holes` fails if one is forgotten.
macro_rules! layout {
    ($c_name:literal, $ty:ty { $($field:ident),+ $(,)? }) => {
        Struct {
            c_name: $c_name,
            size: size_of::<$ty>(),
            align: align_of::<$ty>(),
            fields: vec![$(Field {
                name: stringify!($field),
                offset: offset_of!($ty, $field),
                size: field_size(|s: &$ty| &s.$field),
            }),+],
        }
    };
}

fn structs() -> Vec<Struct> {
    vec![
        layout!(
            "struct spliff_event_header",
            EventHeader {
                kind,
                size,
                ts_ns,
                pid,
                tid
            }
        ),
        layout!(
            "struct spliff_process_exec_event",
            ProcessExecEvent {
                header,
                ppid,
                uid,
                filename_len,
                flags,
                comm,
                filename
            }
        ),
        layout!(
            "struct spliff_tls_data_event",
            TlsDataEvent {
                header,
                ssl,
                stream_offset,
                data_len,
                direction,
                reserved8,
                reserved16,
                data
            }
        ),
        layout!(
            "struct spliff_tls_loss_event",
            TlsLossEvent {
                header,
                ssl,
                stream_offset,
                length,
                direction,
                cause,
                reserved16,
                reserved32
            }
        ),
        layout!(
            "struct spliff_tls_conn_event",
            TlsConnEvent {
                header,
                ssl,
                socket_cookie,
                fd,
                family,
                protocol,
                local_port,
                remote_port,
                role,
                flags,
                library,
                reserved8,
                local_addr,
                remote_addr,
                comm
            }
        ),
        layout!(
            "struct spliff_tls_handshake_event",
            TlsHandshakeEvent {
                header,
                ssl,
                start_ns,
                ret,
                reserved32
            }
        ),
        layout!(
            "struct spliff_tls_close_event",
            TlsCloseEvent {
                header,
                ssl,
                end_offset_egress,
                end_offset_ingress,
                reason,
                reserved32
            }
        ),
        layout!(
            "struct spliff_tls_string_event",
            TlsStringEvent {
                header,
                ssl,
                kind,
                len,
                value
            }
        ),
        layout!(
            "struct spliff_unix_conn_event",
            UnixConnEvent {
                header,
                sk,
                inode,
                peer_inode,
                peer_pid,
                fd,
                role,
                reserved8,
                path_len,
                reserved32,
                path,
                comm,
                reserved_tail
            }
        ),
        layout!(
            "struct spliff_packet_event",
            PacketEvent {
                header,
                socket_cookie,
                ifindex,
                wire_len,
                captured_len,
                direction,
                hook,
                protocol,
                reserved16,
                data
            }
        ),
        layout!(
            "struct spliff_packet_iface",
            PacketIface {
                snaplen,
                flags,
                seen,
                written,
                ring_full,
                bytes
            }
        ),
        layout!(
            "struct spliff_socket_event",
            SocketEvent {
                header,
                cookie,
                op,
                old_state,
                new_state,
                flags,
                family,
                protocol,
                local_port,
                remote_port,
                reserved32,
                local_addr,
                remote_addr,
                comm
            }
        ),
        layout!(
            "struct spliff_stop_key",
            StopKey {
                pid,
                reserved32,
                ts_ns
            }
        ),
    ]
}

fn constants() -> Vec<(&'static str, u64)> {
    vec![
        ("SPLIFF_EVENT_INVALID", u64::from(EVENT_KIND_INVALID)),
        ("SPLIFF_EVENT_PROCESS_EXEC", EventKind::ProcessExec as u64),
        ("SPLIFF_EVENT_TLS_DATA", EventKind::TlsData as u64),
        ("SPLIFF_EVENT_TLS_LOSS", EventKind::TlsLoss as u64),
        ("SPLIFF_EVENT_TLS_CONN", EventKind::TlsConn as u64),
        ("SPLIFF_EVENT_TLS_HANDSHAKE", EventKind::TlsHandshake as u64),
        ("SPLIFF_EVENT_TLS_CLOSE", EventKind::TlsClose as u64),
        ("SPLIFF_EVENT_TLS_STRING", EventKind::TlsString as u64),
        ("SPLIFF_EVENT_PACKET", EventKind::Packet as u64),
        ("SPLIFF_LIB_GO", u64::from(LIB_GO)),
        ("SPLIFF_PACKET_SNAPLEN_MAX", PACKET_SNAPLEN_MAX as u64),
        ("SPLIFF_HOOK_XDP", u64::from(HOOK_XDP)),
        ("SPLIFF_HOOK_TC", u64::from(HOOK_TC)),
        ("SPLIFF_IFACE_HEADERS_ONLY", u64::from(IFACE_HEADERS_ONLY)),
        (
            "SPLIFF_IFACE_NO_LINK_HEADER",
            u64::from(IFACE_NO_LINK_HEADER),
        ),
        (
            "SPLIFF_PACKET_RINGBUF_DEFAULT_BYTES",
            u64::from(PACKET_RINGBUF_DEFAULT_BYTES),
        ),
        ("SPLIFF_EVENT_SOCKET", EventKind::Socket as u64),
        ("SPLIFF_EVENT_UNIX_CONN", EventKind::UnixConn as u64),
        ("SPLIFF_UNIX_PATH_MAX", UNIX_PATH_MAX as u64),
        ("SPLIFF_SOCKET_CONNECT", u64::from(SOCKET_CONNECT)),
        (
            "SPLIFF_SOCKET_ACTIVE_ESTABLISHED",
            u64::from(SOCKET_ACTIVE_ESTABLISHED),
        ),
        (
            "SPLIFF_SOCKET_PASSIVE_ESTABLISHED",
            u64::from(SOCKET_PASSIVE_ESTABLISHED),
        ),
        ("SPLIFF_SOCKET_STATE", u64::from(SOCKET_STATE)),
        ("SPLIFF_SOCKET_HAS_OWNER", u64::from(SOCKET_HAS_OWNER)),
        ("SPLIFF_TCP_ESTABLISHED", u64::from(TCP_ESTABLISHED)),
        ("SPLIFF_TCP_CLOSE", u64::from(TCP_CLOSE)),
        ("SPLIFF_STAT_RINGBUF_FULL", Stat::RingbufFull as u64),
        (
            "SPLIFF_STAT_RINGBUF_FULL_BYTES",
            Stat::RingbufFullBytes as u64,
        ),
        ("SPLIFF_DATA_CHUNK", DATA_CHUNK as u64),
        ("SPLIFF_MAX_CHUNKS_PER_CALL", u64::from(MAX_CHUNKS_PER_CALL)),
        ("SPLIFF_DIR_EGRESS", u64::from(DIR_EGRESS)),
        ("SPLIFF_DIR_INGRESS", u64::from(DIR_INGRESS)),
        ("SPLIFF_LOSS_TRUNCATED", u64::from(LOSS_TRUNCATED)),
        ("SPLIFF_LOSS_RINGBUF", u64::from(LOSS_RINGBUF)),
        ("SPLIFF_LOSS_READ_FAULT", u64::from(LOSS_READ_FAULT)),
        ("SPLIFF_CONN_HAS_SOCKET", u64::from(CONN_HAS_SOCKET)),
        ("SPLIFF_CONN_HAS_ROLE", u64::from(CONN_HAS_ROLE)),
        ("SPLIFF_CONN_HAS_FD", u64::from(CONN_HAS_FD)),
        ("SPLIFF_ROLE_CLIENT", u64::from(ROLE_CLIENT)),
        ("SPLIFF_ROLE_SERVER", u64::from(ROLE_SERVER)),
        ("SPLIFF_LIB_OPENSSL", u64::from(LIB_OPENSSL)),
        ("SPLIFF_LIB_GNUTLS", u64::from(LIB_GNUTLS)),
        ("SPLIFF_LIB_NSS", u64::from(LIB_NSS)),
        ("SPLIFF_LIB_WOLFSSL", u64::from(LIB_WOLFSSL)),
        ("SPLIFF_CLOSE_SHUTDOWN", u64::from(CLOSE_SHUTDOWN)),
        ("SPLIFF_CLOSE_FREE", u64::from(CLOSE_FREE)),
        ("SPLIFF_STRING_MAX", STRING_MAX as u64),
        ("SPLIFF_STRING_SNI", u64::from(STRING_SNI)),
        ("SPLIFF_STRING_ALPN", u64::from(STRING_ALPN)),
        ("SPLIFF_TRACK_RECORD", u64::from(TRACK_RECORD)),
        ("SPLIFF_TRACK_FOLLOW", u64::from(TRACK_FOLLOW)),
        ("SPLIFF_TRACK_ONLY", u64::from(TRACK_ONLY)),
        ("SPLIFF_STAT_COUNT", u64::from(STAT_COUNT)),
        ("SPLIFF_COMM_LEN", COMM_LEN as u64),
        ("SPLIFF_FILENAME_MAX", FILENAME_MAX as u64),
        (
            "SPLIFF_RINGBUF_DEFAULT_BYTES",
            u64::from(RINGBUF_DEFAULT_BYTES),
        ),
        (
            "SPLIFF_EXEC_FILENAME_TRUNCATED",
            u64::from(EXEC_FILENAME_TRUNCATED),
        ),
        (
            "SPLIFF_EXEC_FILENAME_UNREADABLE",
            u64::from(EXEC_FILENAME_UNREADABLE),
        ),
        ("SPLIFF_EXEC_STOPPED", u64::from(EXEC_STOPPED)),
        ("SPLIFF_EXEC_FORKED", u64::from(EXEC_FORKED)),
        ("SPLIFF_STOPPED_MAX", u64::from(STOPPED_MAX)),
    ]
}

/// What both sides must print, one fact per line.
fn rust_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for s in structs() {
        lines.push(format!("sizeof {} = {}", s.c_name, s.size));
        lines.push(format!("alignof {} = {}", s.c_name, s.align));
        for f in &s.fields {
            lines.push(format!("offsetof {}.{} = {}", s.c_name, f.name, f.offset));
            lines.push(format!("sizeof {}.{} = {}", s.c_name, f.name, f.size));
        }
    }
    for (name, value) in constants() {
        lines.push(format!("{name} = {value}"));
    }
    lines
}

fn c_program() -> String {
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"spliff_abi.h\"\n\
         #define P(text, value) printf(\"%s = %llu\\n\", text, (unsigned long long)(value))\n\
         int main(void) {\n",
    );
    for s in structs() {
        let t = s.c_name;
        writeln!(c, "P(\"sizeof {t}\", sizeof({t}));").unwrap();
        writeln!(c, "P(\"alignof {t}\", _Alignof({t}));").unwrap();
        for f in &s.fields {
            let n = f.name;
            writeln!(c, "P(\"offsetof {t}.{n}\", offsetof({t}, {n}));").unwrap();
            writeln!(c, "P(\"sizeof {t}.{n}\", sizeof(((({t} *)0)->{n})));").unwrap();
        }
    }
    for (name, _) in constants() {
        writeln!(c, "P(\"{name}\", {name});").unwrap();
    }
    c.push_str("return 0;\n}\n");
    c
}

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// Compiles and runs the generated program; `extra` selects header branches.
fn c_lines(tag: &str, extra: &[&str]) -> Vec<String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("abi_layout");
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join(format!("layout-{tag}.c"));
    let binary = dir.join(format!("layout-{tag}"));
    std::fs::write(&source, c_program()).unwrap();

    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    // -Wpadded makes the compiler itself reject any implicit padding.
    let output = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Wpadded", "-Werror", "-I"])
        .arg(include_dir())
        .args(extra)
        .arg(&source)
        .arg("-o")
        .arg(&binary)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` (install gcc): {e}"));
    assert!(
        output.status.success(),
        "{cc} rejected {} (spliff_abi.h):\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );

    let output = Command::new(&binary).output().unwrap();
    assert!(output.status.success(), "{} failed", binary.display());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Reports only the facts that differ, named, rather than two long lists.
fn assert_same(rust: &[String], c: &[String]) {
    let mismatches: Vec<String> = rust
        .iter()
        .zip(c)
        .filter(|(r, c)| r != c)
        .map(|(r, c)| format!("  Rust: {r}\n     C: {c}"))
        .collect();
    assert!(
        mismatches.is_empty() && rust.len() == c.len(),
        "src/abi.rs disagrees with include/spliff_abi.h ({} vs {} facts):\n{}",
        rust.len(),
        c.len(),
        mismatches.join("\n")
    );
}

#[test]
fn rust_mirror_matches_c_layout() {
    assert_same(&rust_lines(), &c_lines("native", &[]));
}

#[cfg(target_os = "linux")]
#[test]
fn fallback_typedefs_match_linux_types() {
    // The non-Linux branch of the header (stdint typedefs) must give the same
    // layout as <linux/types.h>; this is the only place it gets compiled here.
    assert_same(&rust_lines(), &c_lines("stdint", &["-U__linux__"]));
}

#[test]
fn layouts_have_no_holes() {
    for s in structs() {
        let covered: usize = s.fields.iter().map(|f| f.size).sum();
        assert_eq!(
            covered, s.size,
            "{}: fields do not cover the struct",
            s.c_name
        );
        assert_eq!(
            s.size % 8,
            0,
            "{}: size must keep ring records 8-aligned",
            s.c_name
        );
        let mut end = 0;
        for f in &s.fields {
            assert_eq!(
                f.offset, end,
                "{}.{}: hole before the field",
                s.c_name, f.name
            );
            end = f.offset + f.size;
        }
    }
}
