//! Why loading or running the kernel programs failed, phrased for the person
//! who has to fix it.
//!
//! Messages say what failed and what to do; the underlying error is the
//! `source()`, not repeated in the message, so chain printers (anyhow's
//! `{:#}`) show each cause once.

use std::{error::Error as StdError, io};

/// A boxed underlying error, kept as the `source()` of [`BpfError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Failures of [`super::BpfPipeline`]. Each message says what failed and what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// The kernel refused a BPF operation for lack of privilege.
    #[error("permission denied while {step}: {}", .privileges.advice())]
    PermissionDenied {
        /// What was being done, e.g. "loading the BPF object".
        step: &'static str,
        /// What the process held at the time, which decides the advice.
        privileges: Privileges,
        /// The refused operation's error.
        #[source]
        source: BoxError,
    },

    /// `/sys/kernel/btf/vmlinux` could not be read or parsed; without it the
    /// programs' field offsets (CO-RE) cannot be fitted to this kernel.
    #[error(
        "cannot use the kernel's BTF type information at /sys/kernel/btf/vmlinux; spliff needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Linux 5.8 or later, the \
         default on current distribution kernels)"
    )]
    KernelBtf {
        /// The read or parse error.
        #[source]
        source: aya::BtfError,
    },

    /// The embedded BPF object could not be parsed, relocated or its maps
    /// created.
    #[error(
        "cannot load spliff's BPF object; if the kernel is older than 5.8 it lacks \
         BPF ring buffers, otherwise this is a spliff bug, please report it with this message"
    )]
    Load {
        /// aya's error.
        #[source]
        source: aya::EbpfError,
    },

    /// The verifier (or the kernel) rejected a program.
    #[error(
        "the kernel rejected BPF program `{program}`; this is a spliff bug or an \
         unsupported kernel, please report it with this message"
    )]
    ProgramLoad {
        /// Program name in the object.
        program: &'static str,
        /// aya's error, including the verifier log.
        #[source]
        source: aya::programs::ProgramError,
    },

    /// A program loaded but could not be attached.
    #[error(
        "cannot attach BPF program `{program}` to {target}; the kernel may lack this \
         attach point (raw tracepoints need Linux 4.17 or later)"
    )]
    Attach {
        /// Program name in the object.
        program: &'static str,
        /// Where it was being attached, e.g. "raw tracepoint sched_process_exec".
        target: String,
        /// aya's error.
        #[source]
        source: aya::programs::ProgramError,
    },

    /// A program or map user space expects is not in the object: the object
    /// and this code were built from different sources.
    #[error(
        "the BPF object has no {kind} `{name}`: it does not match this build of spliff; \
         rebuild, and if recorder-ebpf/prebuilt/spliff.bpf.o was used, refresh it with \
         scripts/check-bpf-object.sh --update"
    )]
    MissingFromObject {
        /// "program" or "map".
        kind: &'static str,
        /// The missing name.
        name: &'static str,
    },

    /// A map exists but could not be opened as the expected type.
    #[error("cannot use BPF map `{map}`")]
    Map {
        /// Map name in the object.
        map: &'static str,
        /// aya's error.
        #[source]
        source: aya::maps::MapError,
    },

    /// A map's descriptor could not be duplicated (descriptor limit).
    #[error("cannot duplicate the descriptor of BPF map `{map}`")]
    MapFd {
        /// Map name in the object.
        map: &'static str,
        /// dup(2)'s error.
        #[source]
        source: io::Error,
    },

    /// [`super::PipelineOptions::ring_buffer_bytes`] is not usable by the kernel.
    #[error(
        "ring buffer size {bytes} is invalid: it must be a power of two and a multiple of the \
         page size ({page_size} bytes)"
    )]
    RingBufferSize {
        /// The requested size.
        bytes: u32,
        /// This machine's page size.
        page_size: usize,
    },

    /// Waiting for events failed.
    #[error("waiting for kernel events failed")]
    Poll {
        /// poll(2)'s error.
        #[source]
        source: io::Error,
    },
}

/// The privileges relevant to BPF that the process held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Privileges {
    /// Effective uid 0.
    pub root: bool,
    /// Which of CAP_BPF and CAP_PERFMON were not effective (CAP_SYS_ADMIN
    /// counts for both); `None` if /proc/self/status could not be read.
    pub missing_capabilities: Option<Vec<&'static str>>,
}

impl Privileges {
    /// The current process's privileges.
    pub fn current() -> Self {
        Self {
            // SAFETY: geteuid() has no preconditions and cannot fail.
            root: unsafe { libc::geteuid() } == 0,
            missing_capabilities: std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|status| missing_capabilities(&status)),
        }
    }

    fn advice(&self) -> String {
        // CAP_BPF and CAP_PERFMON alone are not enough for uprobes on every kernel (see
        // crate::privileges): the hint grants what was measured to work.
        let grant = format!(
            "run spliff with sudo, or grant what it needs with \
             `sudo setcap {} <path to spliff>`",
            crate::privileges::GRANT
        );
        match (&self.missing_capabilities, self.root) {
            (Some(missing), true) if !missing.is_empty() => format!(
                "spliff runs as root but without {}, so a container or the capability \
                 bounding set removed them; grant them (e.g. docker run --cap-add BPF \
                 --cap-add PERFMON, or --privileged)",
                missing.join(" and ")
            ),
            (Some(missing), false) if !missing.is_empty() => format!(
                "recording needs root or CAP_BPF and CAP_PERFMON, and {} missing; {grant}",
                missing.join(" and ")
            ),
            (None, false) => format!("recording needs root or CAP_BPF and CAP_PERFMON; {grant}"),
            _ => "spliff holds CAP_BPF and CAP_PERFMON, so the kernel itself refused: check \
                  kernel lockdown (/sys/kernel/security/lockdown must not be \
                  \"confidentiality\") and, in a container, its seccomp profile"
                .to_owned(),
        }
    }
}

/// Reads the `CapEff:` line of /proc/self/status.
fn missing_capabilities(status: &str) -> Option<Vec<&'static str>> {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))?
        .trim();
    let effective = u64::from_str_radix(hex, 16).ok()?;
    let has = |cap: u32| effective & (1 << cap) != 0 || effective & (1 << CAP_SYS_ADMIN) != 0;
    Some(
        [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
            .into_iter()
            .filter(|&(cap, _)| !has(cap))
            .map(|(_, name)| name)
            .collect(),
    )
}

/// Whether `error` or any of its sources is the kernel saying EPERM. EACCES
/// is left out on purpose: the verifier uses it to reject programs.
pub(crate) fn is_permission_error(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::EPERM))
        {
            return true;
        }
        current = error.source();
    }
    false
}

/// Turns `error` into [`BpfError::PermissionDenied`] when it is one, or into
/// `otherwise(error)`.
pub(crate) fn classify<E>(
    error: E,
    step: &'static str,
    otherwise: impl FnOnce(E) -> BpfError,
) -> BpfError
where
    E: StdError + Send + Sync + 'static,
{
    if is_permission_error(&error) {
        BpfError::PermissionDenied {
            step,
            privileges: Privileges::current(),
            source: Box::new(error),
        }
    } else {
        otherwise(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] io::Error);

    #[test]
    fn eperm_is_found_through_the_source_chain() {
        let nested = Outer(io::Error::from_raw_os_error(libc::EPERM));
        assert!(is_permission_error(&nested));
        let verifier = Outer(io::Error::from_raw_os_error(libc::EACCES));
        assert!(!is_permission_error(&verifier));
    }

    #[test]
    fn permission_message_says_what_to_do() {
        let error = classify(
            Outer(io::Error::from_raw_os_error(libc::EPERM)),
            "loading the BPF object",
            |_| unreachable!("EPERM must be classified as a permission error"),
        );
        let message = error.to_string();
        assert!(message.starts_with("permission denied while loading the BPF object: "));
        assert!(
            message.contains("CAP_BPF") || message.contains("lockdown"),
            "{message}"
        );
    }

    #[test]
    fn advice_fits_the_privileges() {
        let status = |eff: &str| format!("Name:\tx\nCapEff:\t{eff}\nCapBnd:\t0\n");
        let both = Some(vec!["CAP_BPF", "CAP_PERFMON"]);
        assert_eq!(missing_capabilities(&status("0000000000000000")), both);
        assert_eq!(
            missing_capabilities(&status("000000c000000000")),
            Some(vec![])
        );
        assert_eq!(
            missing_capabilities(&status("0000000000200000")),
            Some(vec![])
        );
        assert_eq!(
            // CAP_PERFMON (bit 38) alone.
            missing_capabilities(&status("0000004000000000")),
            Some(vec!["CAP_BPF"])
        );
        assert_eq!(missing_capabilities("garbage"), None);

        let advice = |root, missing_capabilities| {
            Privileges {
                root,
                missing_capabilities,
            }
            .advice()
        };
        assert!(advice(false, Some(vec!["CAP_BPF"])).contains("sudo"));
        assert!(advice(false, None).contains("sudo"));
        assert!(advice(true, both.clone()).contains("--cap-add BPF"));
        assert!(advice(true, Some(vec![])).contains("lockdown"));
        assert!(advice(false, Some(vec![])).contains("lockdown"));
    }
}
