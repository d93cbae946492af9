//! Socket identity for a capture: sock_ops at the cgroup v2 root, and the warm-up from the
//! kernel's socket table.

use anyhow::Context as _;
use spliff_recorder::{
    bpf::BpfPipeline,
    net::{cgroup::Cgroup2Root, sock_diag, socket_table::SocketTable},
};

/// Attaches sock_ops at the root of the cgroup v2 hierarchy (mounting one privately and
/// unmounting it again right after attaching when the host has none mounted). Returns the
/// line for the capture info's list of attachments.
pub fn attach(pipeline: &mut BpfPipeline) -> anyhow::Result<String> {
    let root = Cgroup2Root::open().context("no cgroup v2 hierarchy to attach sock_ops to")?;
    let fd = root
        .fd()
        .context("the cgroup2 root directory is not open")?;
    pipeline
        .attach_sock_ops(fd, root.path())
        .context("cannot attach sock_ops")?;
    let line = if root.is_private() {
        format!(
            "sock_ops spliff_sock_ops cgroup2 root (private mount at {}, unmounted after attach)",
            root.path().display()
        )
    } else {
        format!("sock_ops spliff_sock_ops cgroup2 {}", root.path().display())
    };
    let path = root.path().to_path_buf();
    // The attachment holds the cgroup, not the mount.
    root.release().with_context(|| {
        format!(
            "cannot unmount the private cgroup2 mount at {}; unmount it with `umount {}`",
            path.display(),
            path.display()
        )
    })?;
    Ok(line)
}

/// Fills `table` with the TCP sockets that exist now, and says what it found.
pub fn warm_up(table: &mut SocketTable) -> String {
    let report = sock_diag::warm_up(table);
    for problem in &report.problems {
        eprintln!("spliff: warning: socket warm-up: {problem}");
    }
    format!(
        "{} TCP sockets in {} network namespace{} ({} with their process)",
        report.sockets,
        report.namespaces,
        if report.namespaces == 1 { "" } else { "s" },
        report.owned
    )
}
