//! What /proc says about processes: the trace's process records, the converter's other
//! lookups ([`ProcessSource`]), and the set-up's lists of processes.

use std::{fs, path::Path};

/// The converter's lookups of processes: /proc on a live system ([`Procfs`]); tests supply
/// their own.
pub trait ProcessSource {
    /// A snapshot of the process; `None` when it is gone (or a zombie).
    fn info(&self, pid: u32) -> Option<ProcInfo>;
    /// Its memory maps, as /proc/PID/maps lists them; empty when unknown.
    fn maps(&self, pid: u32) -> String;
    /// The file it executes; `None` when unknown.
    fn exe(&self, pid: u32) -> Option<Vec<u8>>;
    /// Whether no process has the pid any more.
    fn is_gone(&self, pid: u32) -> bool;
}

/// The running system's /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct Procfs;

impl ProcessSource for Procfs {
    fn info(&self, pid: u32) -> Option<ProcInfo> {
        read(pid)
    }

    fn maps(&self, pid: u32) -> String {
        fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default()
    }

    fn exe(&self, pid: u32) -> Option<Vec<u8>> {
        fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|p| p.into_os_string().into_encoded_bytes())
    }

    fn is_gone(&self, pid: u32) -> bool {
        !Path::new(&format!("/proc/{pid}")).exists()
    }
}

/// A snapshot of /proc/PID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcInfo {
    /// Process id.
    pub pid: u32,
    /// Parent's pid; 0 unknown.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Start time on CLOCK_BOOTTIME in ns; 0 unknown.
    pub start_ns: u64,
    /// Kernel comm.
    pub comm: Vec<u8>,
    /// Executable path.
    pub exe: Vec<u8>,
    /// argv.
    pub cmdline: Vec<Vec<u8>>,
    /// /proc/PID/cgroup, lines joined with ';'.
    pub cgroup: Vec<u8>,
    /// Container id found in the cgroup path; empty when none.
    pub container_id: Vec<u8>,
}

impl ProcInfo {
    /// Fills what a live read came back without from `snapshot`, taken at the same process's
    /// exec: a process in the middle of exiting has released its memory, so its exe and
    /// cmdline are gone from /proc before it turns zombie. A snapshot of another process that
    /// had the pid before (another start time) is ignored; one made from the exec event alone
    /// has no start time (0) and is taken.
    pub fn fill_from_snapshot(&mut self, snapshot: ProcInfo) {
        if snapshot.start_ns != 0 && snapshot.start_ns != self.start_ns {
            return;
        }
        if self.exe.is_empty() {
            self.exe = snapshot.exe;
        }
        if self.cmdline.is_empty() {
            self.cmdline = snapshot.cmdline;
        }
    }
}

/// Reads /proc/PID; `None` when the process is gone (or a zombie).
pub fn read(pid: u32) -> Option<ProcInfo> {
    use std::os::unix::ffi::OsStrExt as _;
    let stat = fs::read(format!("/proc/{pid}/stat")).ok()?;
    let mut info = ProcInfo {
        pid,
        ..ProcInfo::default()
    };
    // comm is in parentheses and may itself contain ") ", so split at the
    // last one.
    let close = stat.iter().rposition(|&b| b == b')')?;
    let open = stat.iter().position(|&b| b == b'(')?;
    info.comm = stat.get(open + 1..close)?.to_vec();
    let rest = String::from_utf8_lossy(stat.get(close + 2..)?).into_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // A zombie has lost exe, cmdline and maps: no better than nothing, and
    // the caller may hold a snapshot taken while it was alive.
    if matches!(fields.first(), Some(&"Z" | &"X")) {
        return None;
    }
    // After comm: state(3) ppid(4) ... starttime(22); index = field - 3.
    info.ppid = fields.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    if let Some(ticks) = fields.get(19).and_then(|s| s.parse::<u64>().ok()) {
        // starttime counts boot-time clock ticks since Linux 5.3
        // (start_boottime), i.e. the capture clock.
        // SAFETY: sysconf has no preconditions.
        let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
            .ok()
            .filter(|&hz| hz > 0)
            .unwrap_or(100);
        info.start_ns = ticks.saturating_mul(1_000_000_000 / hz);
    }
    if let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) {
        for line in status.lines() {
            let first = |l: &str| l.split_whitespace().next().and_then(|v| v.parse().ok());
            if let Some(v) = line.strip_prefix("Uid:") {
                info.uid = first(v).unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("Gid:") {
                info.gid = first(v).unwrap_or(0);
            }
        }
    }
    if let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) {
        info.exe = exe.as_os_str().as_bytes().to_vec();
    }
    if let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) {
        info.cmdline = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
    }
    if let Ok(cgroup) = fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        info.container_id = container_id(&cgroup).into_bytes();
        info.cgroup = cgroup.trim().replace('\n', ";").into_bytes();
    }
    Some(info)
}

/// A 64-hex-digit container id (docker, containerd, podman) in a cgroup path.
fn container_id(cgroup: &str) -> String {
    cgroup
        .split(['/', '-', '.', ':', '\n'])
        .find(|part| part.len() == 64 && part.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or("")
        .to_owned()
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// When `pid` started (clock ticks since boot, /proc/PID/stat field 22);
/// `None` if it is gone.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm (field 2) may hold spaces and parentheses: count from the
    // last ')'. Field 3 is the first after it.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Running processes (other than the recorder) whose comm is one of
/// `names`, compared on the first 15 bytes as the kernel stores comms.
pub fn processes_named(names: &[String]) -> Vec<u32> {
    let truncate = |name: &[u8]| name[..name.len().min(15)].to_vec();
    let wanted: std::collections::HashSet<Vec<u8>> =
        names.iter().map(|n| truncate(n.as_bytes())).collect();
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|comm| {
                let comm = comm.strip_suffix(b"\n").unwrap_or(&comm);
                wanted.contains(&truncate(comm))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_self() {
        let me = read(std::process::id()).expect("own /proc entry");
        assert_eq!(me.pid, std::process::id());
        assert!(!me.comm.is_empty());
        assert!(me.start_ns > 0);
    }

    #[test]
    fn an_exiting_process_keeps_what_its_exec_snapshot_saw() {
        let snapshot = ProcInfo {
            start_ns: 7,
            exe: b"/usr/bin/curl".to_vec(),
            cmdline: vec![b"curl".to_vec()],
            ..ProcInfo::default()
        };
        let exiting = ProcInfo {
            start_ns: 7,
            comm: b"curl".to_vec(),
            ..ProcInfo::default()
        };
        let mut live = exiting.clone();
        live.fill_from_snapshot(snapshot.clone());
        assert_eq!(
            (live.exe, live.cmdline),
            (snapshot.exe.clone(), snapshot.cmdline.clone())
        );
        // A pid reused by another process: its snapshot says nothing about this one.
        let mut other = ProcInfo {
            start_ns: 8,
            ..exiting
        };
        other.fill_from_snapshot(snapshot);
        assert!(other.exe.is_empty());
    }

    #[test]
    fn finds_container_ids() {
        let id = "a".repeat(64);
        assert_eq!(container_id(&format!("0::/docker/{id}\n")), id);
        assert_eq!(
            container_id(&format!("0::/system.slice/docker-{id}.scope\n")),
            id
        );
        assert_eq!(container_id("0::/user.slice\n"), "");
    }
}
