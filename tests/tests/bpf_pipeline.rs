//! The kernel-program pipeline end to end: load the BPF object, attach the
//! exec tracepoint, run real processes, and check the events that come back.
//!
//! Runs twice: with the object this build embedded (clang-compiled when clang
//! was available) and with the committed prebuilt object, which is what a
//! machine without clang ships. Needs root; see `spliff_tests::require_bpf`.
#![cfg(target_os = "linux")]

use std::{
    num::NonZeroU32,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use spliff_recorder::bpf::{BpfPipeline, Event, PipelineOptions, ProcessExec, Stop};
use spliff_recorder_ebpf::{BPF_OBJECT, OBJECT_ORIGIN, abi::FILENAME_MAX};

/// `error` and all its causes, as the CLI would print them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(&format!("\n  caused by: {error}"));
        cause = error.source();
    }
    text
}

fn run(program: &str, args: &[&str]) -> u32 {
    let mut child = Command::new(program)
        .args(args)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let pid = child.id();
    let status = child.wait().unwrap();
    assert!(status.success(), "{program} {args:?} failed: {status}");
    pid
}

fn load(object: &[u8], label: &str) -> BpfPipeline {
    let options = PipelineOptions {
        object,
        target_tgid: NonZeroU32::new(std::process::id()),
        ..PipelineOptions::default()
    };
    BpfPipeline::load(&options).unwrap_or_else(|e| panic!("{label}: {}", chain(&e)))
}

/// Reads exec events until every pid in `pids` has one and the ring is
/// drained. The children have exited by now, so all their events are already
/// in the ring.
fn collect_execs(pipeline: &mut BpfPipeline, pids: &[u32], label: &str) -> Vec<ProcessExec> {
    let mut execs: Vec<ProcessExec> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let handed = pipeline
            .read_events(Duration::from_millis(200), |record| match record {
                Ok(Event::ProcessExec(exec)) => execs.push(exec),
                Ok(other) => panic!("{label}: unexpected event {other:?}"),
                Err(e) => panic!("{label}: malformed kernel record: {e}"),
            })
            .unwrap_or_else(|e| panic!("{label}: {}", chain(&e)));
        let have_all = pids.iter().all(|pid| execs.iter().any(|e| e.pid == *pid));
        if handed == 0 && have_all {
            break;
        }
    }
    execs
}

/// Loads `object` filtered on this process, runs children, and checks their
/// exec events.
fn exec_events_arrive(object: &[u8], label: &str) {
    if !spliff_tests::require_bpf() {
        return;
    }
    let me = std::process::id();
    let mut pipeline = load(object, label);

    let true_pid = run("/bin/true", &["spliff-bpf-pipeline-test"]);
    // sh forks for /bin/true (a command follows it), so that grandchild's
    // exec has ppid = sh: the target filter must drop it.
    let sh_pid = run("/bin/sh", &["-c", "/bin/true spliff-grandchild; exit 0"]);
    let execs = collect_execs(&mut pipeline, &[true_pid, sh_pid], label);

    for exec in &execs {
        assert!(
            exec.pid == me || exec.ppid == me,
            "{label}: the target filter (tgid {me}) let through {exec:?}"
        );
    }
    let find = |pid: u32| {
        execs
            .iter()
            .find(|e| e.pid == pid)
            .unwrap_or_else(|| panic!("{label}: no exec event for pid {pid}; got {execs:?}"))
    };

    let child = find(true_pid);
    // SAFETY: getuid() has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    assert_eq!(child.tid, true_pid, "{label}: {child:?}");
    assert_eq!(
        child.ppid, me,
        "{label}: ppid must be the test process, {child:?}"
    );
    assert_eq!(child.uid, uid, "{label}: {child:?}");
    assert_eq!(child.comm, "true", "{label}: {child:?}");
    assert_eq!(child.filename, Path::new("/bin/true"), "{label}: {child:?}");
    assert!(
        !child.filename_truncated && !child.filename_unreadable,
        "{label}: {child:?}"
    );
    assert!(child.ts_boot_ns > 0, "{label}: {child:?}");

    let sh = find(sh_pid);
    assert_eq!((sh.ppid, sh.comm.as_str()), (me, "sh"), "{label}: {sh:?}");

    assert_eq!(
        pipeline.lost_events().unwrap(),
        0,
        "{label}: events were lost"
    );
    eprintln!(
        "{label}: {} exec events, child {true_pid} ppid {} comm {:?} filename {:?}",
        execs.len(),
        child.ppid,
        child.comm,
        child.filename
    );
}

#[test]
fn exec_events_with_embedded_object() {
    exec_events_arrive(BPF_OBJECT, &format!("embedded object ({OBJECT_ORIGIN:?})"));
}

#[test]
fn exec_events_with_committed_prebuilt_object() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recorder-ebpf/prebuilt/spliff.bpf.o");
    let object = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    exec_events_arrive(&object, "committed prebuilt object");
}

/// Creates `<dir>/t -> /bin/true` where the whole path is `len` bytes.
fn symlink_of_len(base: &Path, len: usize) -> PathBuf {
    let mut dir = base.to_path_buf();
    loop {
        // Bytes still to add before "/t"; each directory costs 1 + its name.
        let left = len - dir.as_os_str().len() - "/t".len();
        if left == 0 {
            break;
        }
        let mut name = (left - 1).min(200);
        if left - (name + 1) == 1 {
            name -= 1;
        }
        dir.push("d".repeat(name));
    }
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("t");
    std::os::unix::fs::symlink("/bin/true", &link).unwrap();
    assert_eq!(link.as_os_str().len(), len);
    link
}

#[test]
fn long_exec_paths_are_cut_and_flagged() {
    if !spliff_tests::require_bpf() {
        return;
    }
    let label = "long paths";
    let base = std::env::temp_dir().join(format!("spliff-bpf-long-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    // FILENAME_MAX - 1 bytes fit exactly (the NUL takes the last byte).
    let fits = symlink_of_len(&base, FILENAME_MAX - 1);
    let cut = symlink_of_len(&base, FILENAME_MAX + 44);

    let mut pipeline = load(BPF_OBJECT, label);
    let fits_pid = run(fits.to_str().unwrap(), &[]);
    let cut_pid = run(cut.to_str().unwrap(), &[]);
    let execs = collect_execs(&mut pipeline, &[fits_pid, cut_pid], label);
    std::fs::remove_dir_all(&base).unwrap();

    let exec = |pid| execs.iter().find(|e| e.pid == pid).unwrap();
    let (fits_exec, cut_exec) = (exec(fits_pid), exec(cut_pid));
    assert_eq!(fits_exec.filename, fits, "{fits_exec:?}");
    assert!(!fits_exec.filename_truncated, "{fits_exec:?}");
    let cut_prefix = &cut.as_os_str().as_bytes()[..FILENAME_MAX - 1];
    assert_eq!(cut_exec.filename.as_os_str().as_bytes(), cut_prefix);
    assert!(cut_exec.filename_truncated, "{cut_exec:?}");
    assert_eq!(cut_exec.comm, "t");
}

/// `--comm` per process: the exec program stops a process exec'ing into a
/// selected comm only while the stop ledger is armed (by the recorder's
/// watchdog), and records each stop under the exec event's timestamp, which
/// is how the recorder forgets exactly the stop it continued.
#[test]
fn comm_exec_stops_only_while_armed_and_each_stop_is_recorded() {
    if !spliff_tests::require_bpf() {
        return;
    }
    let dir = spliff_tests::tools::TempDir::new("bpf-stop-ledger");
    let comm = format!("sl{}", std::process::id() % 100_000);
    let copy = dir.path().join(&comm);
    std::fs::copy("/bin/true", &copy).unwrap();
    let options = PipelineOptions {
        target_tgid: NonZeroU32::new(std::process::id()),
        filter_enabled: true,
        stop_on_exec_comm: true,
        ..PipelineOptions::default()
    };
    let mut pipeline = BpfPipeline::load(&options).unwrap_or_else(|e| panic!("{}", chain(&e)));
    pipeline.filter_comm(&comm).unwrap();
    let mut ledger = pipeline.stop_maps().unwrap();
    assert!(
        !ledger.armed().unwrap(),
        "armed before anyone could continue"
    );

    let pid = run(copy.to_str().unwrap(), &[]);
    let execs = collect_execs(&mut pipeline, &[pid], "disarmed");
    assert!(execs.iter().all(|e| !e.stopped), "{execs:?}");
    assert_eq!(ledger.pending(), []);

    ledger.set_armed(true).unwrap();
    let mut child = Command::new(&copy).spawn().unwrap();
    let pid = child.id();
    let execs = collect_execs(&mut pipeline, &[pid], "armed");
    let exec = execs.iter().find(|e| e.pid == pid).expect("exec event");
    let stop = Stop {
        pid,
        ts_boot_ns: exec.ts_boot_ns,
    };
    let pending = ledger.pending();
    // SAFETY: kill(2) on our own child; continued before any assertion so a
    // failure does not leave it stopped.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    assert!(exec.stopped, "{exec:?}");
    assert_eq!(pending, [stop]);
    ledger.forget(stop).unwrap();
    assert_eq!(ledger.pending(), []);
    assert!(child.wait().unwrap().success());
}
