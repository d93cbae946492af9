//! Helpers shared by spliff's end-to-end tests.

pub mod exchange_log;
pub mod h2gen;
pub mod har;
#[cfg(target_os = "linux")]
pub mod netns;
pub mod sample;
pub mod spliff;
pub mod tls_workload;
pub mod tools;

/// Whether this process may load spliff's kernel programs; call it first in
/// every test that needs BPF and return early on `false`.
///
/// Without root, without kernel BTF (`/sys/kernel/btf/vmlinux`) or when the
/// kernel refuses to load BPF, it prints `skipping test - <reason>` to stderr
/// and returns `false`; with `SPLIFF_REQUIRE_BPF=1` (CI as root) it panics
/// with the reason instead, so a skipped BPF test can never pass silently.
pub fn require_bpf() -> bool {
    static UNAVAILABLE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let Some(reason) = UNAVAILABLE.get_or_init(bpf_unavailable) else {
        return true;
    };
    if std::env::var_os("SPLIFF_REQUIRE_BPF").is_some_and(|value| value == "1") {
        panic!("SPLIFF_REQUIRE_BPF=1 but BPF tests cannot run: {reason}");
    }
    eprintln!("skipping test - {reason}");
    false
}

#[cfg(target_os = "linux")]
fn bpf_unavailable() -> Option<String> {
    use spliff_recorder::bpf::{BpfError, BpfPipeline, PipelineOptions};

    // SAFETY: geteuid() has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (BPF tests load kernel programs)".to_owned());
    }
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("no kernel BTF at /sys/kernel/btf/vmlinux".to_owned());
    }
    // A real load is the only reliable probe (containers, lockdown). Only a
    // refusal skips: any other failure is a bug the calling test must show.
    let probe = PipelineOptions {
        target_tgid: std::num::NonZeroU32::new(std::process::id()),
        ..PipelineOptions::default()
    };
    match BpfPipeline::load(&probe) {
        Err(error @ BpfError::PermissionDenied { .. }) => {
            Some(format!("BPF load not permitted: {error}"))
        }
        _ => None,
    }
}

#[cfg(not(target_os = "linux"))]
fn bpf_unavailable() -> Option<String> {
    Some("BPF needs Linux".to_owned())
}
