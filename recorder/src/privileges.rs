//! The privileges `spliff record` needs: checked before anything is touched, and cut down to
//! what the capture still uses once everything is attached.
//!
//! Measured on Linux 6.1 as an unprivileged user given ambient capabilities: CAP_BPF and
//! CAP_PERFMON load the programs but the kernel refuses the uprobes' `perf_event_open`
//! (EACCES) without CAP_SYS_ADMIN; CAP_SYS_ADMIN alone records (it also stands in for
//! CAP_BPF, CAP_PERFMON and, for BPF network hooks, CAP_NET_ADMIN).

use caps::{CapSet, Capability};

/// Capabilities to grant a non-root `spliff` binary that then records like root: the one the
/// kernel needs for uprobes, and those that reach other users' processes (`--pid`, `--comm`)
/// and run `-- CMD` as another user (`-Z`).
pub const GRANT: &str = "cap_sys_admin,cap_bpf,cap_perfmon,cap_net_admin,cap_kill,\
                         cap_sys_ptrace,cap_dac_read_search,cap_dac_override,cap_chown,\
                         cap_fowner,cap_setuid,cap_setgid,cap_setpcap+ep";

/// What a recording still uses after attaching, and why; everything else is dropped.
const KEPT: [(Capability, &str); 10] = [
    (
        Capability::CAP_SYS_ADMIN,
        "uprobes for processes and libraries that appear during the capture",
    ),
    (Capability::CAP_BPF, "the same, on kernels that accept it"),
    (
        Capability::CAP_PERFMON,
        "the same, on kernels that accept it",
    ),
    (
        Capability::CAP_NET_ADMIN,
        "packet hooks on interfaces created during the capture",
    ),
    (
        Capability::CAP_KILL,
        "continuing processes held at exec (--comm) and signalling a -Z child",
    ),
    (
        Capability::CAP_SYS_PTRACE,
        "reading other users' /proc/PID/maps and exe",
    ),
    (
        Capability::CAP_DAC_READ_SEARCH,
        "reading other users' /proc entries and library files",
    ),
    (
        Capability::CAP_DAC_OVERRIDE,
        "creating rotated trace files in a directory of another user",
    ),
    (
        Capability::CAP_CHOWN,
        "giving rotated trace files to the -Z user",
    ),
    (
        Capability::CAP_FOWNER,
        "setting mode 0600 on rotated trace files owned by the -Z user",
    ),
];

/// Why recording cannot start with the current privileges.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// Neither CAP_SYS_ADMIN nor CAP_BPF with CAP_PERFMON is effective.
    #[error(
        "spliff record needs root: it loads eBPF programs and attaches uprobes, and this \
         process (uid {uid}) has neither CAP_SYS_ADMIN nor CAP_BPF with CAP_PERFMON. Run it as \
         root (sudo spliff record ...), or grant the binary what it needs once: \
         sudo setcap {GRANT} <path to spliff>. Nothing was written."
    )]
    NotPrivileged {
        /// The effective uid.
        uid: u32,
    },
    /// The capability sets could not be read or changed.
    #[error("cannot {action} this process's capabilities")]
    Caps {
        /// What was attempted.
        action: &'static str,
        /// The caps crate's error.
        #[source]
        source: caps::errors::CapsError,
    },
}

fn effective(cap: Capability) -> Result<bool, PrivilegeError> {
    caps::has_cap(None, CapSet::Effective, cap).map_err(|source| PrivilegeError::Caps {
        action: "read",
        source,
    })
}

/// Fails unless the process may load and attach spliff's programs. Called first, so that a
/// user without privileges has nothing of theirs touched.
pub fn check_recording() -> Result<(), PrivilegeError> {
    let enough = effective(Capability::CAP_SYS_ADMIN)?
        || (effective(Capability::CAP_BPF)? && effective(Capability::CAP_PERFMON)?);
    if enough {
        return Ok(());
    }
    // SAFETY: geteuid() has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    Err(PrivilegeError::NotPrivileged { uid })
}

/// Drops every capability but [`KEPT`] from the effective, permitted, inheritable, ambient and
/// bounding sets, so that a bug in the recorder (which parses kernel events and /proc) cannot
/// be turned into more than reading memory and attaching probes. Returns how many were
/// dropped. Call it once everything at start is attached and `-- CMD` is running.
pub fn drop_unneeded() -> Result<usize, PrivilegeError> {
    let kept: caps::CapsHashSet = KEPT.iter().map(|(cap, _)| *cap).collect();
    let permitted = caps::read(None, CapSet::Permitted).map_err(|source| PrivilegeError::Caps {
        action: "read",
        source,
    })?;
    let dropping = permitted.difference(&kept).count();
    let set = |action, result: Result<(), caps::errors::CapsError>| {
        result.map_err(|source| PrivilegeError::Caps { action, source })
    };
    // The bounding set first: changing it needs CAP_SETPCAP, which goes with the rest. A
    // process without CAP_SETPCAP (a setcap'd binary) keeps its bounding set: it cannot
    // regain what leaves the permitted set anyway.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        for cap in caps::all().difference(&kept) {
            set(
                "drop from the bounding set",
                caps::drop(None, CapSet::Bounding, *cap),
            )?;
        }
    }
    set(
        "clear the ambient set of",
        caps::clear(None, CapSet::Ambient),
    )?;
    set(
        "clear the inheritable set of",
        caps::clear(None, CapSet::Inheritable),
    )?;
    let keep: caps::CapsHashSet = permitted.intersection(&kept).copied().collect();
    set(
        "reduce the effective set of",
        caps::set(None, CapSet::Effective, &keep),
    )?;
    set(
        "reduce the permitted set of",
        caps::set(None, CapSet::Permitted, &keep),
    )?;
    Ok(dropping)
}

/// The capabilities kept while recording, with the reason for each (for docs and `--help`).
pub fn kept() -> impl Iterator<Item = (String, &'static str)> {
    KEPT.iter().map(|(cap, why)| (cap.to_string(), *why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_capabilities_are_distinct_and_explained() {
        let names: std::collections::BTreeSet<String> = kept().map(|(name, _)| name).collect();
        assert_eq!(names.len(), KEPT.len());
        assert!(kept().all(|(_, why)| !why.is_empty()));
        // What would make a drop pointless must never be kept.
        for never in [
            Capability::CAP_SETUID,
            Capability::CAP_SETPCAP,
            Capability::CAP_SYS_MODULE,
        ] {
            assert!(!KEPT.iter().any(|(cap, _)| *cap == never), "{never}");
        }
    }

    #[test]
    fn the_hint_grants_what_the_kernel_checks() {
        for cap in ["cap_sys_admin", "cap_bpf", "cap_perfmon", "cap_setuid"] {
            assert!(GRANT.contains(cap), "{cap}");
        }
        let message = PrivilegeError::NotPrivileged { uid: 1000 }.to_string();
        assert!(message.contains("sudo spliff record"), "{message}");
        assert!(message.contains("uid 1000"), "{message}");
    }
}
