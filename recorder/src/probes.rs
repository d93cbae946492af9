//! The probe table: every TLS library `spliff record` hooks, how its files
//! are recognised, and which program goes on which of its functions. One
//! declarative list, so discovery, `--list-libs`, attaching, the capture
//! info record and each connection's `tls_library` all say the same thing.
//! Adding a library is one row here plus its programs in
//! `recorder-ebpf/bpf/tls/`.

use spliff_formats::{HandshakeResult, TlsLibrary};

/// One uprobe: `program` on `symbol`.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// Exported function of the library.
    pub symbol: &'static str,
    /// BPF program name (see `spliff_recorder_ebpf::names::TLS_PROGRAMS`).
    pub program: &'static str,
    /// `uretprobe` rather than `uprobe`.
    pub is_return: bool,
    /// Without it the library is not usable (no plaintext at all).
    pub required: bool,
    /// For a library of several files (NSS's libssl3.so over NSPR's
    /// libnspr4.so): the file name pattern of the one this probe goes on;
    /// `None`: every file of the library.
    pub file: Option<&'static str>,
    /// Not `symbol` itself but the function in a slot of the method table
    /// `symbol` returns (OpenSSL's SSL BIO methods, static functions).
    pub table_slot: Option<TableSlot>,
}

/// A function found through a method table: the one whose address is at
/// byte `slot` of the table the exported getter returns, checked by the
/// table's leading 32-bit type field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSlot {
    /// The type field's value.
    pub table_type: u32,
    /// Byte offset of the function pointer in the table.
    pub slot: u64,
}

impl Probe {
    /// Where it goes, for people: `SSL_read`, or `BIO_f_ssl()+32` for a
    /// method table's slot.
    pub fn target_text(&self) -> String {
        match self.table_slot {
            Some(at) => format!("{}()+{}", self.symbol, at.slot),
            None => self.symbol.to_string(),
        }
    }

    /// Whether this probe goes on the library file named `name`.
    pub fn applies_to(&self, name: &str) -> bool {
        self.file.is_none_or(|pattern| name_matches(pattern, name))
    }
}

/// `pattern` with an optional `*` at the end matching any rest.
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// One TLS library: a row of the table.
#[derive(Clone, Copy, Debug)]
pub struct LibrarySpec {
    /// What connection records say (`tls_library`).
    pub kind: TlsLibrary,
    /// Name for people: "OpenSSL".
    pub display: &'static str,
    /// Its value in kernel events (`SPLIFF_LIB_*`, equal to the trace
    /// format's `tls_library`).
    pub kernel_id: u8,
    /// File names of the library: `*` at the end matches any rest
    /// (`libssl.so*` is `libssl.so`, `libssl.so.3`, not NSS's `libssl3.so`).
    pub file_names: &'static [&'static str],
    /// Functions that a file must all export (defined, in `.dynsym`) to be
    /// taken for this library when its name says nothing: the library
    /// compiled into a program (node carries OpenSSL). More than the data
    /// functions, so that a compatibility layer exporting the same names
    /// over another library (GnuTLS's `libgnutls-openssl`) is not taken.
    pub exports: &'static [&'static str],
    /// Debian package that provides it, for messages.
    pub package: &'static str,
    /// Every probe, entry before return.
    pub probes: &'static [Probe],
    /// What a handshake call's return value means: `None` for "not done yet"
    /// (a non-blocking handshake returns again).
    pub handshake_result: fn(i32) -> Option<HandshakeResult>,
}

impl LibrarySpec {
    /// Whether `name` (a file name, no directory) is one of this library's.
    pub fn matches_file_name(&self, name: &str) -> bool {
        self.file_names
            .iter()
            .any(|pattern| name_matches(pattern, name))
    }

    /// Its patterns for messages: "libssl.so*".
    pub fn file_names_text(&self) -> String {
        self.file_names.join(", ")
    }
}

/// Every library, in `--list-libs` order.
pub const LIBRARIES: &[LibrarySpec] = &[OPENSSL, GNUTLS, WOLFSSL, NSS];

/// TLS libraries spliff does not hook (yet), by file name, so that a
/// process using one can be named when nothing of it was recorded.
pub const UNHOOKED_TLS_FILES: &[(&str, &str)] = &[
    ("mbed TLS", "libmbedtls.so*"),
    ("BoringSSL", "libboringssl.so*"),
    ("s2n", "libs2n.so*"),
    // Java's TLS (JSSE) is Java code run by the JVM: no library to hook.
    ("Java (JSSE)", "libjvm.so"),
];

/// The library whose files are named like `name`.
pub fn library_of_file(name: &str) -> Option<&'static LibrarySpec> {
    LIBRARIES.iter().find(|l| l.matches_file_name(name))
}

/// The library whose every `exports` a file defines; `defines` says
/// whether it defines a function.
pub fn library_of_exports(defines: impl Fn(&str) -> bool) -> Option<&'static LibrarySpec> {
    LIBRARIES
        .iter()
        .find(|l| !l.exports.is_empty() && l.exports.iter().all(|name| defines(name)))
}

/// Every name some row's `exports` lists.
pub fn export_names() -> impl Iterator<Item = &'static str> {
    LIBRARIES.iter().flat_map(|l| l.exports.iter().copied())
}

/// The library of a kernel event's `SPLIFF_LIB_*` value.
pub fn library_of_kernel_id(id: u8) -> Option<&'static LibrarySpec> {
    LIBRARIES
        .iter()
        .chain([&GO, &BORINGSSL])
        .find(|l| l.kernel_id == id)
}

/// The row of `kind`.
pub fn library(kind: TlsLibrary) -> Option<&'static LibrarySpec> {
    LIBRARIES.iter().find(|l| l.kind == kind)
}

const fn probe(symbol: &'static str, program: &'static str, is_return: bool) -> Probe {
    Probe {
        symbol,
        program,
        is_return,
        required: false,
        file: None,
        table_slot: None,
    }
}

const fn required(symbol: &'static str, program: &'static str, is_return: bool) -> Probe {
    Probe {
        symbol,
        program,
        is_return,
        required: true,
        file: None,
        table_slot: None,
    }
}

/// `probe` on the function in `slot` of the method table that `probe`'s
/// symbol returns.
const fn in_table(table_type: u32, slot: u64, probe: Probe) -> Probe {
    Probe {
        table_slot: Some(TableSlot { table_type, slot }),
        ..probe
    }
}

/// OpenSSL's `BIO_TYPE_SSL` (7 | `BIO_TYPE_FILTER`).
const BIO_TYPE_SSL: u32 = 0x207;
/// Slots of OpenSSL's `struct bio_method_st` (type, name, bwrite,
/// bwrite_old, bread, ...): the `_ex`-style write and read.
const BIO_METHOD_WRITE: u64 = 16;
const BIO_METHOD_READ: u64 = 32;

/// `probe` on the library's file named `file` only.
const fn on(file: &'static str, probe: Probe) -> Probe {
    Probe {
        file: Some(file),
        ..probe
    }
}

/// OpenSSL 1.1 and 3.x. `_ex` functions exist from OpenSSL 1.1.1; the rest
/// from 1.1.0. One return program serves every data function: its entry
/// program saved which function it was.
pub const OPENSSL: LibrarySpec = LibrarySpec {
    kind: TlsLibrary::OpenSsl,
    display: "OpenSSL",
    kernel_id: 1,
    file_names: &["libssl.so*"],
    // OPENSSL_init_ssl (1.1.0 on, also in BoringSSL) is what GnuTLS's
    // OpenSSL compatibility library lacks.
    exports: &["SSL_read", "SSL_write", "SSL_CTX_new", "OPENSSL_init_ssl"],
    package: "libssl3",
    probes: &[
        required("SSL_write", "spliff_ssl_write_entry", false),
        required("SSL_write", "spliff_ssl_data_return", true),
        required("SSL_read", "spliff_ssl_read_entry", false),
        required("SSL_read", "spliff_ssl_data_return", true),
        probe("SSL_write_ex", "spliff_ssl_write_ex_entry", false),
        probe("SSL_write_ex", "spliff_ssl_data_return", true),
        probe("SSL_read_ex", "spliff_ssl_read_ex_entry", false),
        probe("SSL_read_ex", "spliff_ssl_data_return", true),
        probe("SSL_set_fd", "spliff_ssl_set_fd", false),
        probe("SSL_set_rfd", "spliff_ssl_set_fd", false),
        probe("SSL_set_wfd", "spliff_ssl_set_fd", false),
        probe(
            "SSL_set_connect_state",
            "spliff_ssl_set_connect_state",
            false,
        ),
        probe("SSL_set_accept_state", "spliff_ssl_set_accept_state", false),
        probe("SSL_do_handshake", "spliff_ssl_do_handshake_entry", false),
        probe("SSL_do_handshake", "spliff_ssl_handshake_return", true),
        probe("SSL_connect", "spliff_ssl_connect_entry", false),
        probe("SSL_connect", "spliff_ssl_handshake_return", true),
        probe("SSL_accept", "spliff_ssl_accept_entry", false),
        probe("SSL_accept", "spliff_ssl_handshake_return", true),
        probe("SSL_ctrl", "spliff_ssl_ctrl_entry", false),
        probe("SSL_get0_alpn_selected", "spliff_ssl_alpn_entry", false),
        probe("SSL_get0_alpn_selected", "spliff_ssl_alpn_return", true),
        probe("SSL_shutdown", "spliff_ssl_shutdown_entry", false),
        probe("SSL_free", "spliff_ssl_free_entry", false),
        // An SSL BIO (BIO_f_ssl) reads and writes through static functions
        // that call OpenSSL's internals, never SSL_read/SSL_write: `openssl
        // s_server -WWW`, servers reading lines through a buffer BIO.
        in_table(
            BIO_TYPE_SSL,
            BIO_METHOD_WRITE,
            probe("BIO_f_ssl", "spliff_ssl_bio_write_entry", false),
        ),
        in_table(
            BIO_TYPE_SSL,
            BIO_METHOD_WRITE,
            probe("BIO_f_ssl", "spliff_ssl_data_return", true),
        ),
        in_table(
            BIO_TYPE_SSL,
            BIO_METHOD_READ,
            probe("BIO_f_ssl", "spliff_ssl_bio_read_entry", false),
        ),
        in_table(
            BIO_TYPE_SSL,
            BIO_METHOD_READ,
            probe("BIO_f_ssl", "spliff_ssl_data_return", true),
        ),
    ],
    handshake_result: openssl_handshake,
};

/// GnuTLS 3.x. `gnutls_record_send` tail-calls `gnutls_record_send2`; the
/// kernel keeps one saved call for both (see `bpf/tls/gnutls.h`).
/// `gnutls_transport_set_int` is a macro for `set_int2`.
pub const GNUTLS: LibrarySpec = LibrarySpec {
    kind: TlsLibrary::GnuTls,
    display: "GnuTLS",
    kernel_id: 3,
    file_names: &["libgnutls.so*"],
    exports: &["gnutls_record_send", "gnutls_record_recv", "gnutls_init"],
    package: "libgnutls30",
    probes: &[
        required("gnutls_record_send", "spliff_gnutls_send_entry", false),
        required("gnutls_record_send", "spliff_ssl_data_return", true),
        required("gnutls_record_recv", "spliff_gnutls_recv_entry", false),
        required("gnutls_record_recv", "spliff_ssl_data_return", true),
        probe("gnutls_record_send2", "spliff_gnutls_send_entry", false),
        probe("gnutls_record_send2", "spliff_ssl_data_return", true),
        probe("gnutls_record_recv_seq", "spliff_gnutls_recv_entry", false),
        probe("gnutls_record_recv_seq", "spliff_ssl_data_return", true),
        probe("gnutls_init", "spliff_gnutls_init_entry", false),
        probe("gnutls_init", "spliff_gnutls_init_return", true),
        probe("gnutls_transport_set_int2", "spliff_gnutls_set_int2", false),
        probe("gnutls_transport_set_ptr", "spliff_gnutls_set_ptr", false),
        probe("gnutls_transport_set_ptr2", "spliff_gnutls_set_ptr2", false),
        probe("gnutls_handshake", "spliff_gnutls_handshake_entry", false),
        probe("gnutls_handshake", "spliff_ssl_handshake_return", true),
        probe(
            "gnutls_server_name_set",
            "spliff_gnutls_server_name_set_entry",
            false,
        ),
        probe(
            "gnutls_alpn_get_selected_protocol",
            "spliff_gnutls_alpn_entry",
            false,
        ),
        probe(
            "gnutls_alpn_get_selected_protocol",
            "spliff_ssl_alpn_return",
            true,
        ),
        probe("gnutls_bye", "spliff_ssl_shutdown_entry", false),
        probe("gnutls_deinit", "spliff_ssl_free_entry", false),
    ],
    handshake_result: gnutls_handshake,
};

/// wolfSSL (its OpenSSL-like API, `wolfSSL_*`).
pub const WOLFSSL: LibrarySpec = LibrarySpec {
    kind: TlsLibrary::WolfSsl,
    display: "wolfSSL",
    kernel_id: 5,
    file_names: &["libwolfssl.so*"],
    exports: &["wolfSSL_write", "wolfSSL_read", "wolfSSL_CTX_new"],
    package: "libwolfssl35",
    probes: &[
        required("wolfSSL_write", "spliff_wolfssl_write_entry", false),
        required("wolfSSL_write", "spliff_ssl_data_return", true),
        required("wolfSSL_read", "spliff_wolfssl_read_entry", false),
        required("wolfSSL_read", "spliff_ssl_data_return", true),
        probe("wolfSSL_set_fd", "spliff_wolfssl_set_fd", false),
        probe("wolfSSL_connect", "spliff_wolfssl_connect_entry", false),
        probe("wolfSSL_connect", "spliff_ssl_handshake_return", true),
        probe("wolfSSL_accept", "spliff_wolfssl_accept_entry", false),
        probe("wolfSSL_accept", "spliff_ssl_handshake_return", true),
        probe("wolfSSL_UseSNI", "spliff_wolfssl_use_sni_entry", false),
        probe(
            "wolfSSL_ALPN_GetProtocol",
            "spliff_wolfssl_alpn_entry",
            false,
        ),
        probe("wolfSSL_ALPN_GetProtocol", "spliff_ssl_alpn_return", true),
        probe("wolfSSL_shutdown", "spliff_ssl_shutdown_entry", false),
        probe("wolfSSL_free", "spliff_ssl_free_entry", false),
    ],
    handshake_result: wolfssl_handshake,
};

/// NSS: the plaintext goes through NSPR's generic I/O (libnspr4.so), which
/// also carries files and plain sockets; libssl3.so's `SSL_ImportFD` says
/// which descriptors are TLS, and the kernel keeps only those (see
/// `bpf/tls/nss.h`). The connection object is the `PRFileDesc *`.
pub const NSS: LibrarySpec = LibrarySpec {
    kind: TlsLibrary::Nss,
    display: "NSS",
    kernel_id: 4,
    file_names: &[NSS_SSL, NSPR],
    // Not recognised inside other files: NSS and NSPR are shared libraries
    // wherever they are used (Firefox bundles its own libssl3.so, by name).
    exports: &[],
    package: "libnss3, libnspr4",
    probes: &[
        on(NSPR, required("PR_Write", "spliff_nss_write_entry", false)),
        on(NSPR, required("PR_Write", "spliff_ssl_data_return", true)),
        on(NSPR, required("PR_Read", "spliff_nss_read_entry", false)),
        on(NSPR, required("PR_Read", "spliff_ssl_data_return", true)),
        on(NSPR, probe("PR_Send", "spliff_nss_write_entry", false)),
        on(NSPR, probe("PR_Send", "spliff_ssl_data_return", true)),
        on(NSPR, probe("PR_Recv", "spliff_nss_recv_entry", false)),
        on(NSPR, probe("PR_Recv", "spliff_ssl_data_return", true)),
        on(NSPR, probe("PR_Writev", "spliff_nss_writev_entry", false)),
        on(NSPR, probe("PR_Writev", "spliff_nss_writev_return", true)),
        on(
            NSPR,
            probe("PR_Shutdown", "spliff_ssl_shutdown_entry", false),
        ),
        on(NSPR, probe("PR_Close", "spliff_ssl_free_entry", false)),
        on(
            NSS_SSL,
            required("SSL_ImportFD", "spliff_nss_import_fd_return", true),
        ),
        on(
            NSS_SSL,
            probe(
                "SSL_ResetHandshake",
                "spliff_nss_reset_handshake_entry",
                false,
            ),
        ),
        on(
            NSS_SSL,
            probe("SSL_OptionSet", "spliff_nss_option_set_entry", false),
        ),
        on(
            NSS_SSL,
            probe(
                "SSL_ForceHandshake",
                "spliff_nss_force_handshake_entry",
                false,
            ),
        ),
        on(
            NSS_SSL,
            probe("SSL_ForceHandshake", "spliff_ssl_handshake_return", true),
        ),
        on(
            NSS_SSL,
            probe("SSL_SetURL", "spliff_nss_set_url_entry", false),
        ),
        on(
            NSS_SSL,
            probe("SSL_SetURL", "spliff_nss_set_url_return", true),
        ),
        on(
            NSS_SSL,
            probe("SSL_GetNextProto", "spliff_nss_alpn_entry", false),
        ),
        on(
            NSS_SSL,
            probe("SSL_GetNextProto", "spliff_nss_alpn_return", true),
        ),
    ],
    handshake_result: nss_handshake,
};

/// NSS's TLS library (not OpenSSL's `libssl.so*`).
const NSS_SSL: &str = "libssl3.so";
/// NSPR, whose I/O functions carry NSS's plaintext.
const NSPR: &str = "libnspr4.so";

/// Go's `crypto/tls`: not a library file but part of each Go program, so
/// not in [`LIBRARIES`] (found and hooked by `crate::golang`, which places
/// its probes by offset); this row names its connections.
pub const GO: LibrarySpec = LibrarySpec {
    kind: TlsLibrary::GoCryptoTls,
    display: "Go crypto/tls",
    kernel_id: 6,
    file_names: &[],
    package: "golang-go",
    // Go programs are recognised by their build info, not by exported functions.
    exports: &[],
    probes: &[],
    // bpf/tls/gotls.h reports a handshake the OpenSSL way.
    handshake_result: openssl_handshake,
};

/// BoringSSL compiled into a stripped program (Chromium): not in
/// [`LIBRARIES`], as no file name or export says where it is; found by
/// `crate::boringssl` (looked for whenever OpenSSL is), which gives each
/// `symbol` here an offset. Its functions take OpenSSL's arguments.
pub const BORINGSSL: LibrarySpec = LibrarySpec {
    kind: TlsLibrary::BoringSsl,
    display: "BoringSSL",
    kernel_id: 2,
    file_names: &[],
    exports: &[],
    package: "chromium",
    probes: &[
        required("SSL_write", "spliff_boringssl_write_entry", false),
        required("SSL_write", "spliff_ssl_data_return", true),
        required("SSL_read", "spliff_boringssl_read_entry", false),
        required("SSL_read", "spliff_ssl_data_return", true),
        required(
            "SSL_do_handshake",
            "spliff_boringssl_do_handshake_entry",
            false,
        ),
        required("SSL_do_handshake", "spliff_ssl_handshake_return", true),
        probe("SSL_new", "spliff_boringssl_new_return", true),
    ],
    handshake_result: openssl_handshake,
};

/// Non-blocking handshakes return -1 (want read/write) until they end with
/// 1 (done) or 0 (failed).
fn openssl_handshake(ret: i32) -> Option<HandshakeResult> {
    match ret {
        1 => Some(HandshakeResult::Ok),
        0 => Some(HandshakeResult::Failed),
        _ => None,
    }
}

/// 0 when done; GNUTLS_E_AGAIN (-28), GNUTLS_E_INTERRUPTED (-52) and
/// GNUTLS_E_WARNING_ALERT_RECEIVED (-16) let the caller go on; any other
/// negative value is fatal.
fn gnutls_handshake(ret: i32) -> Option<HandshakeResult> {
    match ret {
        0 => Some(HandshakeResult::Ok),
        -28 | -52 | -16 => None,
        r if r < 0 => Some(HandshakeResult::Failed),
        _ => None,
    }
}

/// SECSuccess (0) when done; SECFailure (-1) both when the handshake would
/// block and when it failed (PR_GetError tells them apart), so -1 says
/// nothing.
fn nss_handshake(ret: i32) -> Option<HandshakeResult> {
    (ret == 0).then_some(HandshakeResult::Ok)
}

/// 1 (WOLFSSL_SUCCESS) when done; -1 both for "would block" and for a
/// failure (only wolfSSL_get_error tells them apart), so -1 says nothing.
fn wolfssl_handshake(ret: i32) -> Option<HandshakeResult> {
    (ret == 1).then_some(HandshakeResult::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let kind = |name| library_of_file(name).map(|l| l.kind);
        assert_eq!(kind("libssl.so.3"), Some(TlsLibrary::OpenSsl));
        assert_eq!(kind("libssl.so.1.1"), Some(TlsLibrary::OpenSsl));
        assert_eq!(kind("libssl.so"), Some(TlsLibrary::OpenSsl));
        // NSS's, not OpenSSL's.
        assert_eq!(kind("libssl3.so"), Some(TlsLibrary::Nss));
        assert_eq!(kind("libssl.a"), None);
        assert_eq!(kind("libgnutls.so.30"), Some(TlsLibrary::GnuTls));
        assert_eq!(kind("libgnutls-openssl.so.27"), None);
        assert_eq!(kind("libwolfssl.so.35"), Some(TlsLibrary::WolfSsl));
        assert_eq!(kind("libnspr4.so"), Some(TlsLibrary::Nss));
    }

    #[test]
    fn nss_probes_go_on_their_own_file() {
        let on = |name: &str| -> Vec<&str> {
            NSS.probes
                .iter()
                .filter(|p| p.applies_to(name))
                .map(|p| p.symbol)
                .collect()
        };
        assert!(on("libnspr4.so").iter().all(|s| s.starts_with("PR_")));
        assert!(on("libssl3.so").iter().all(|s| s.starts_with("SSL_")));
        assert!(on("libnspr4.so").contains(&"PR_Write"));
        assert!(on("libssl3.so").contains(&"SSL_ImportFD"));
        assert_eq!(
            on("libnspr4.so").len() + on("libssl3.so").len(),
            NSS.probes.len()
        );
        // Probes without a file go on every file of their library.
        assert!(OPENSSL.probes.iter().all(|p| p.applies_to("libssl.so.3")));
    }

    #[test]
    fn exports() {
        let defines = |names: &'static [&'static str]| move |name: &str| names.contains(&name);
        let kind = |names| library_of_exports(defines(names)).map(|l| l.kind);
        assert_eq!(kind(OPENSSL.exports), Some(TlsLibrary::OpenSsl));
        assert_eq!(kind(GNUTLS.exports), Some(TlsLibrary::GnuTls));
        assert_eq!(kind(WOLFSSL.exports), Some(TlsLibrary::WolfSsl));
        // libgnutls-openssl.so.27: OpenSSL's names over GnuTLS.
        let compat = &["SSL_read", "SSL_write", "SSL_CTX_new", "SSL_set_fd"];
        assert_eq!(kind(compat), None);
        assert_eq!(kind(&["SSL_read"]), None);
    }

    #[test]
    fn exports_include_the_required_probes() {
        // A library without exports is only recognised by its file names.
        for lib in LIBRARIES.iter().filter(|l| !l.exports.is_empty()) {
            for probe in lib.probes.iter().filter(|p| p.required) {
                assert!(lib.exports.contains(&probe.symbol), "{}", probe.symbol);
            }
        }
    }

    #[test]
    fn every_library_has_required_data_probes_and_a_unique_id() {
        for (i, lib) in LIBRARIES.iter().enumerate() {
            assert!(lib.probes.iter().any(|p| p.required), "{}", lib.display);
            assert_eq!(
                library_of_kernel_id(lib.kernel_id).map(|l| l.kind),
                Some(lib.kind)
            );
            assert!(LIBRARIES[i + 1..].iter().all(|o| o.kind != lib.kind));
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn every_program_exists_in_the_object() {
        for p in LIBRARIES.iter().chain([&BORINGSSL]).flat_map(|l| l.probes) {
            let known = spliff_recorder_ebpf::names::TLS_PROGRAMS
                .iter()
                .find(|(name, _)| *name == p.program);
            assert_eq!(known.map(|k| k.1), Some(p.is_return), "{}", p.program);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn kernel_ids_are_the_abi_values() {
        use spliff_recorder_ebpf::abi;
        assert_eq!(OPENSSL.kernel_id, abi::LIB_OPENSSL);
        assert_eq!(GNUTLS.kernel_id, abi::LIB_GNUTLS);
        assert_eq!(BORINGSSL.kernel_id, abi::LIB_BORINGSSL);
        assert_eq!(WOLFSSL.kernel_id, abi::LIB_WOLFSSL);
        assert_eq!(NSS.kernel_id, abi::LIB_NSS);
    }
}
