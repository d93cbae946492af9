//! `spliff record --comm NAME` stops a process that execs into NAME until its
//! uprobes are attached. A recorder killed with SIGKILL at any moment around
//! such an exec must never leave that process stopped: the recorder is killed
//! 0, 1, 2, ... 50 ms after the exec, 20 times each, and every target must
//! finish by itself. The recorders run without packets and sockets and
//! several at once (each with its own comm), which keeps the 1020 trials to
//! a few minutes.
#![cfg(target_os = "linux")]

use std::{
    collections::VecDeque,
    fs,
    io::{BufRead as _, BufReader, Read as _},
    path::Path,
    process::{Child, ChildStderr, Command, Stdio},
    time::{Duration, Instant},
};

use spliff_tests::{require_bpf, spliff::spliff_bin, tools::TempDir};

const MAX_DELAY_MS: u64 = 50;
const TRIALS_PER_DELAY: u64 = 20;
/// Recorders killed at once, each with its own comm (so none stops or
/// continues another lane's target). Kills stay timed per trial, from the
/// target's own spawn.
const LANES: u64 = 6;
/// A continued target sleeps this long, then exits.
const TARGET_SLEEP: &str = "0.2";
/// Liveness bound only: a target nobody continues never finishes, one that
/// is continued finishes 0.2 s later; this is many times that.
const FINISH_DEADLINE: Duration = Duration::from_secs(5);
/// Killed recorders per lane still being torn down by the kernel.
const MAX_DYING: usize = 4;

/// What one trial saw.
#[derive(Debug)]
struct Trial {
    delay_ms: u64,
    /// `None`: the target finished by itself. Otherwise its /proc/PID/stat
    /// state when given up on (`T`: stopped).
    left_state: Option<char>,
    /// The watchdog said it continued a process (the kill landed between
    /// the stop and the recorder's SIGCONT).
    rescued: bool,
}

#[test]
fn sigkilled_comm_recorder_never_leaves_a_process_stopped() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-stop-watchdog");
    let started = Instant::now();
    let trials: Vec<Trial> = std::thread::scope(|scope| {
        let lanes: Vec<_> = (0..LANES)
            .map(|lane| {
                let dir = dir.path();
                scope.spawn(move || run_lane(dir, lane))
            })
            .collect();
        lanes
            .into_iter()
            .flat_map(|lane| lane.join().expect("lane panicked"))
            .collect()
    });
    let left: Vec<&Trial> = trials.iter().filter(|t| t.left_state.is_some()).collect();
    eprintln!(
        "{} trials in {:.1} s; {} continued by the watchdog; {} targets left behind ({} stopped)",
        trials.len(),
        started.elapsed().as_secs_f64(),
        trials.iter().filter(|t| t.rescued).count(),
        left.len(),
        left.iter().filter(|t| t.left_state == Some('T')).count()
    );
    let mut by_delay = std::collections::BTreeMap::<u64, u32>::new();
    for t in &left {
        *by_delay.entry(t.delay_ms).or_default() += 1;
    }
    assert!(
        left.is_empty(),
        "targets left behind (delay ms -> count): {by_delay:?}; states: {:?}",
        left.iter().filter_map(|t| t.left_state).collect::<String>()
    );
}

/// The watchdog must hold nothing that keeps a probe attached (program or
/// link descriptors) and must not share the recorder's session (a Ctrl-C to
/// the terminal's process group would end it first); a recorder that ends
/// normally leaves no watchdog behind.
#[test]
fn comm_recorder_watchdog_holds_only_the_stop_maps() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-stop-watchdog-fds");
    let comm = format!("swf{}", std::process::id() % 100_000);
    let (mut recorder, _stderr) = start_recorder(&comm, &dir.path().join("t.pcapng"));
    let recorder_pid = recorder.id();
    let watchdog = children_of(recorder_pid)
        .into_iter()
        .find(|&pid| comm_of(pid).as_deref() == Some("spliff-watchdog"))
        .expect("the recorder has a spliff-watchdog child");
    // Beyond stdio: not even descriptors the recorder inherited (from this
    // test harness, say) may reach the watchdog.
    let mut held: Vec<String> = fs::read_dir(format!("/proc/{watchdog}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                > Some(2)
        })
        .filter_map(|entry| fs::read_link(entry.path()).ok())
        .map(|target| target.display().to_string())
        .collect();
    held.sort();
    assert_eq!(held.len(), 3, "{held:?}");
    assert_eq!(
        held[..2],
        ["anon_inode:bpf-map", "anon_inode:bpf-map"],
        "the two stop maps and no program, link or event: {held:?}"
    );
    assert!(held[2].starts_with("pipe:"), "{held:?}");
    assert_ne!(session_of(watchdog), session_of(recorder_pid));

    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(recorder_pid as i32, libc::SIGINT) };
    assert!(recorder.wait().unwrap().success());
    assert!(
        !Path::new(&format!("/proc/{watchdog}")).exists() || process_state(watchdog) == Some('Z'),
        "the watchdog outlived a recorder that ended normally"
    );
}

/// Processes whose parent is `ppid`.
fn children_of(ppid: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_field(pid, 4) == Some(u64::from(ppid)))
        .collect()
}

fn comm_of(pid: u32) -> Option<String> {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim_end().to_owned())
}

fn session_of(pid: u32) -> Option<u64> {
    stat_field(pid, 6)
}

/// Numeric field `n` (1-based, as in proc(5)) of /proc/PID/stat, from field 4 on.
fn stat_field(pid: u32, n: usize) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(n - 3)?.parse().ok()
}

/// The trials of one lane: every LANES-th trial, so each lane sees every
/// delay.
fn run_lane(dir: &Path, lane: u64) -> Vec<Trial> {
    // Unique per test run and lane; at most 15 bytes, as the kernel keeps.
    let comm = format!("swd{}x{lane}", std::process::id() % 100_000);
    let target = dir.join(&comm);
    fs::copy("/bin/sleep", &target).expect("copy /bin/sleep");
    let trials = (MAX_DELAY_MS + 1) * TRIALS_PER_DELAY;
    let mut dying = VecDeque::new();
    let results = (0..trials)
        .filter(|trial| trial % LANES == lane)
        .map(|trial| {
            // A trace of its own: a killed recorder holds its trace's lock until the kernel
            // has torn it down, and a second recorder on that path is refused meanwhile.
            let trace = dir.join(format!("{comm}-{trial}.pcapng"));
            let (result, recorder) = run_trial(&comm, &target, &trace, trial % (MAX_DELAY_MS + 1));
            let _ = fs::remove_file(&trace);
            reap(&mut dying, recorder, MAX_DYING);
            result
        })
        .collect();
    while let Some(mut recorder) = dying.pop_front() {
        recorder.wait().unwrap();
    }
    results
}

/// Killed recorders may take seconds to be torn down (detaching uprobes
/// waits for the kernel), which needs no CPU: reaped later, at most
/// `max` at a time per lane so their memory stays bounded.
fn reap(dying: &mut VecDeque<Child>, recorder: Child, max: usize) {
    dying.push_back(recorder);
    dying.retain_mut(|r| matches!(r.try_wait(), Ok(None)));
    while dying.len() > max {
        if let Some(mut oldest) = dying.pop_front() {
            oldest.wait().unwrap();
        }
    }
}

/// Starts a recorder, execs the target under the selected comm, SIGKILLs the
/// recorder `delay_ms` after the spawn, and waits for the target to finish.
/// Returns the killed recorder, not yet reaped.
fn run_trial(comm: &str, target: &Path, trace: &Path, delay_ms: u64) -> (Trial, Child) {
    let (mut recorder, mut stderr) = start_recorder(comm, trace);
    let spawned = Instant::now();
    let mut victim = Command::new(target).arg(TARGET_SLEEP).spawn().unwrap();
    if let Some(wait) =
        (spawned + Duration::from_millis(delay_ms)).checked_duration_since(Instant::now())
    {
        std::thread::sleep(wait);
    }
    recorder.kill().unwrap();
    // Until the recorder's descriptors are closed and the watchdog, which
    // shares its stderr, has exited.
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).ok();
    let rescued = rest.contains("continued them");
    let deadline = Instant::now() + FINISH_DEADLINE;
    let left_state = loop {
        if victim.try_wait().unwrap().is_some() {
            break None;
        }
        if Instant::now() > deadline {
            break Some(give_up(&mut victim));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let trial = Trial {
        delay_ms,
        left_state,
        rescued,
    };
    (trial, recorder)
}

/// The state of a target that did not finish, which is then killed
/// (SIGKILL ends a stopped process too), so a failure leaks nothing.
fn give_up(victim: &mut Child) -> char {
    let state = process_state(victim.id()).unwrap_or('?');
    victim.kill().ok();
    victim.wait().ok();
    state
}

/// Field 3 of /proc/PID/stat, read after the comm's last ')'.
fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// A recorder selecting `comm`, returned once it says it is recording, with
/// its stderr (kept open: a closed pipe would make its next message fail).
/// Packets and sockets off: neither matters here, and they only slow the
/// start.
fn start_recorder(comm: &str, trace: &Path) -> (Child, BufReader<ChildStderr>) {
    let mut recorder = Command::new(spliff_bin())
        .args([
            "record",
            "--no-packets",
            "--no-sockets",
            "--comm",
            comm,
            "-o",
        ])
        .arg(trace)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(recorder.stderr.take().unwrap());
    let mut lines = String::new();
    while stderr.read_line(&mut lines).unwrap_or(0) > 0 {
        if lines
            .lines()
            .last()
            .is_some_and(|l| l.contains("recording"))
        {
            return (recorder, stderr);
        }
    }
    let status = recorder.wait();
    panic!("recorder ended before recording ({status:?}): {lines}");
}

/// A process that execs a large program not searched yet (stripped
/// BoringSSL: chromium) is held by the recorder itself until searched and
/// attached; a recorder SIGKILLed during that hold must not leave it
/// stopped either: the same watchdog continues it.
#[test]
fn a_process_held_for_the_boringssl_search_survives_a_sigkilled_recorder() {
    if !require_bpf() {
        return;
    }
    let chromium = Path::new("/usr/lib/chromium/chromium");
    assert!(
        chromium.exists(),
        "{} is missing: apt-get install chromium (scripts/test.sh does)",
        chromium.display()
    );
    let dir = TempDir::new("record-exec-hold-watchdog");
    // The shell waits for a line, then execs chromium under its own pid:
    // a process the --ppid scope already follows when it execs.
    let mut victim = Command::new("sh")
        .args([
            "-c",
            "read go; exec \"$0\" --version >/dev/null",
            chromium.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut recorder = Command::new(spliff_bin())
        .args(["record", "--no-packets", "--no-sockets", "--ppid"])
        .arg(victim.id().to_string())
        .arg("-o")
        .arg(dir.path().join("t.pcapng"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(recorder.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("recording") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "recorder ended early"
        );
    }
    use std::io::Write as _;
    victim.stdin.take().unwrap().write_all(b"go\n").unwrap();
    // The search of chromium's code takes a good part of a second: the hold
    // is seen well within this bound, or the recorder never held it.
    let held = wait_for(Duration::from_secs(20), || {
        process_state(victim.id()) == Some('T') || victim.try_wait().unwrap().is_some()
    });
    let was_stopped = process_state(victim.id()) == Some('T');
    recorder.kill().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).ok();
    let finished = wait_for(FINISH_DEADLINE, || victim.try_wait().unwrap().is_some());
    let left = (!finished).then(|| give_up(&mut victim));
    recorder.wait().unwrap();
    assert!(
        held && was_stopped,
        "the recorder never held chromium at exec"
    );
    assert_eq!(
        left, None,
        "chromium left behind after the recorder's SIGKILL; stderr: {rest}"
    );
}

/// Polls `done` every millisecond until it holds or `bound` passes.
fn wait_for(bound: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    done()
}
