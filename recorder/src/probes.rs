//! The OpenSSL probe table: which program goes on which library function.
//! One declarative list, so `--list-libs`, attaching and the capture info
//! record all say the same thing.

/// One uprobe: `program` on `symbol`.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// Exported function of libssl.
    pub symbol: &'static str,
    /// BPF program name (see `spliff_recorder_ebpf::names::OPENSSL_PROGRAMS`).
    pub program: &'static str,
    /// `uretprobe` rather than `uprobe`.
    pub is_return: bool,
    /// Without it the library is not usable (no plaintext at all).
    pub required: bool,
}

const fn probe(symbol: &'static str, program: &'static str, is_return: bool) -> Probe {
    Probe {
        symbol,
        program,
        is_return,
        required: false,
    }
}

const fn required(symbol: &'static str, program: &'static str, is_return: bool) -> Probe {
    Probe {
        symbol,
        program,
        is_return,
        required: true,
    }
}

/// Every OpenSSL probe. `_ex` functions exist from OpenSSL 1.1.1; the rest
/// from 1.1.0. One return program serves all four data functions: its entry
/// program saved which function it was.
pub const OPENSSL: &[Probe] = &[
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
];

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn every_program_exists_in_the_object() {
        for p in OPENSSL {
            let known = spliff_recorder_ebpf::names::OPENSSL_PROGRAMS
                .iter()
                .find(|(name, _)| *name == p.program);
            assert_eq!(known.map(|k| k.1), Some(p.is_return), "{}", p.program);
        }
    }
}
