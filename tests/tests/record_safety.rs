//! The recorder runs as root and holds other processes' secrets: each test here is an attack
//! or a fault that someone on the same host could arrange (issue 13), and checks the safe
//! outcome. The shared directory is a fresh world-writable sticky one, like /tmp.
#![cfg(target_os = "linux")]

use std::{
    fs,
    io::{BufRead as _, BufReader},
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use spliff_tests::{
    require_bpf,
    spliff::spliff_bin,
    tls_workload::{python_server, read_trace, self_signed_cert},
    tools::{KillOnDrop, TempDir},
};

const NOBODY: u32 = 65534;

/// A world-writable sticky directory (like /tmp) inside a fresh temp dir.
fn shared_dir(tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let shared = dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    (dir, shared)
}

/// `spliff record ARGS` run to completion, without packets of real interfaces.
fn record(args: &[&str]) -> Output {
    Command::new(spliff_bin())
        .arg("record")
        .args(args)
        .output()
        .expect("run spliff record")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn as_nobody(path: &Path, content: &[u8], mode: u32) {
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn an_existing_world_readable_file_becomes_a_new_0600_trace() {
    if !require_bpf() {
        return;
    }
    let (_dir, shared) = shared_dir("safety-0644");
    let trace = shared.join("t.pcapng");
    fs::write(&trace, b"old").unwrap();
    fs::set_permissions(&trace, fs::Permissions::from_mode(0o644)).unwrap();
    let old_inode = fs::metadata(&trace).unwrap().ino();
    // Opened while it was world-readable: must never see the plaintext.
    let mut early_reader = fs::File::open(&trace).unwrap();

    let out = record(&["--no-packets", "-o", trace.to_str().unwrap(), "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&trace), 0o600);
    assert_ne!(fs::metadata(&trace).unwrap().ino(), old_inode);
    let mut seen = Vec::new();
    std::io::Read::read_to_end(&mut early_reader, &mut seen).unwrap();
    assert_eq!(seen, b"old");
    assert!(read_trace(&trace).errors.is_empty());
    assert_eq!(
        fs::read_dir(&shared).unwrap().count(),
        1,
        "no staging file left"
    );
}

#[test]
fn a_symlink_in_a_shared_directory_is_refused_and_its_target_untouched() {
    if !require_bpf() {
        return;
    }
    let (dir, shared) = shared_dir("safety-link");
    let victim = dir.path().join("victim");
    fs::write(&victim, b"root's precious file").unwrap();
    let link = shared.join("t.pcapng");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();

    let out = record(&["--no-packets", "-o", link.to_str().unwrap(), "--", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(fs::read(&victim).unwrap(), b"root's precious file");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_dir(&shared).unwrap().count(), 1);
}

#[test]
fn a_file_precreated_by_another_user_receives_nothing() {
    if !require_bpf() {
        return;
    }
    let (_dir, shared) = shared_dir("safety-trap");
    let trap = shared.join("t.pcapng");
    as_nobody(&trap, b"", 0o666);

    let out = record(&["--no-packets", "-o", trap.to_str().unwrap(), "--", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("belongs to uid 65534"),
        "{}",
        stderr(&out)
    );
    let meta = fs::metadata(&trap).unwrap();
    assert_eq!((meta.len(), meta.uid(), mode(&trap)), (0, NOBODY, 0o666));
}

#[test]
fn a_failure_before_recording_touches_nothing_it_did_not_create() {
    if !require_bpf() {
        return;
    }
    let (dir, shared) = shared_dir("safety-early");
    // Bad --pid with an existing trace of our own: kept as it was, same inode.
    let own = shared.join("own.pcapng");
    fs::write(&own, b"yesterday's capture").unwrap();
    let inode = fs::metadata(&own).unwrap().ino();
    let bad_pid = ["--pid", "999999999"];
    let out = record(&[&["--no-packets", "-o", own.to_str().unwrap()][..], &bad_pid].concat());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("999999999"), "{}", stderr(&out));
    assert_eq!(fs::read(&own).unwrap(), b"yesterday's capture");
    assert_eq!(fs::metadata(&own).unwrap().ino(), inode);

    // A path that did not exist: nothing left behind.
    let new = shared.join("new.pcapng");
    let out = record(&[&["--no-packets", "-o", new.to_str().unwrap()][..], &bad_pid].concat());
    assert!(!out.status.success());
    assert!(!new.exists());
    assert_eq!(
        fs::read_dir(&shared).unwrap().count(),
        1,
        "no staging file left"
    );

    // A device (a copy of /dev/full's node, never the real one): refused, still there.
    let device = dir.path().join("full");
    let c_path = std::ffi::CString::new(device.to_str().unwrap()).unwrap();
    // SAFETY: mknod with a valid C string; creates a character device node 1:7.
    let made = unsafe { libc::mknod(c_path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 7)) };
    assert_eq!(made, 0, "mknod: {}", std::io::Error::last_os_error());
    for extra in [&[][..], &bad_pid[..]] {
        let args = [&["--no-packets", "-o", device.to_str().unwrap()][..], extra].concat();
        let out = record(&[&args[..], &["--", "true"][..extra.is_empty() as usize * 2]].concat());
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("character device") || stderr(&out).contains("999999999"),
            "{}",
            stderr(&out)
        );
        use std::os::unix::fs::FileTypeExt as _;
        assert!(
            fs::symlink_metadata(&device)
                .unwrap()
                .file_type()
                .is_char_device()
        );
    }
}

/// Runs the spliff binary at `bin` as nobody with `args`.
fn as_nobody_run(bin: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin)
        .args(args)
        .output()
        .expect("setpriv (util-linux)")
}

#[test]
fn an_unprivileged_user_is_told_what_to_do_and_keeps_their_file() {
    // Root is needed to play the unprivileged user.
    if !require_bpf() {
        return;
    }
    let (_dir, shared) = shared_dir("safety-unpriv");
    let own = shared.join("mine.pcapng");
    as_nobody(&own, b"my own notes", 0o644);
    let out = as_nobody_run(
        &spliff_bin(),
        &["record", "-o", own.to_str().unwrap(), "--", "true"],
    );
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(message.contains("sudo spliff record"), "{message}");
    assert!(message.contains("setcap"), "{message}");
    assert_eq!(fs::read(&own).unwrap(), b"my own notes");
    assert_eq!(mode(&own), 0o644);
}

/// The setcap line the refusal suggests, followed to the letter, lets a plain user record
/// a real TLS client.
#[test]
fn the_suggested_capabilities_are_enough_to_record() {
    if !require_bpf() {
        return;
    }
    let (dir, shared) = shared_dir("safety-setcap");
    let out = as_nobody_run(
        &spliff_bin(),
        &["record", "-o", "/nonexistent", "--", "true"],
    );
    let message = stderr(&out);
    let grant = message
        .split("setcap ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no setcap hint in: {message}"));
    let bin = dir.path().join("spliff");
    fs::copy(spliff_bin(), &bin).unwrap();
    let setcap = Command::new("setcap").arg(grant).arg(&bin).output();
    let setcap = setcap.expect("setcap (apt-get install libcap2-bin)");
    assert!(setcap.status.success(), "{}", stderr(&setcap));

    let (cert, key) = self_signed_cert(dir.path());
    let logdir = dir.path().join("log");
    let server = python_server(dir.path(), &cert, &key, &logdir);
    let url = format!("https://127.0.0.1:{}/get", server.port);
    let trace = shared.join("t.pcapng");
    let out = as_nobody_run(
        &bin,
        &[
            "record",
            "--no-packets",
            "-o",
            trace.to_str().unwrap(),
            "--",
            "curl",
            "-sk",
            "--fail",
            "-o",
            "/dev/null",
            &url,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = fs::metadata(&trace).unwrap();
    assert_eq!((meta.uid(), mode(&trace)), (NOBODY, 0o600));
    let summary = read_trace(&trace);
    assert_eq!(summary.conns.len(), 1, "{}", stderr(&out));
}

#[test]
fn under_sudo_the_command_runs_as_the_invoking_user_who_owns_the_trace() {
    if !require_bpf() {
        return;
    }
    let (_dir, shared) = shared_dir("safety-sudo");
    let trace = shared.join("t.pcapng");
    let who = shared.join("who");
    let script = format!("id -u > {0}; id -g >> {0}", who.display());
    // What sudo sets for the user who ran it.
    let out = Command::new(spliff_bin())
        .args(["record", "--no-packets", "-o", trace.to_str().unwrap()])
        .args(["--", "sh", "-c", &script])
        .env("SUDO_UID", NOBODY.to_string())
        .env("SUDO_GID", NOBODY.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&who).unwrap(), "65534\n65534\n");
    let meta = fs::metadata(&trace).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), mode(&trace)),
        (NOBODY, NOBODY, 0o600)
    );

    // -Z root keeps root, for the command and the file.
    fs::remove_file(&who).unwrap();
    let out = Command::new(spliff_bin())
        .args(["record", "--no-packets", "-Z", "root", "-o"])
        .arg(shared.join("root.pcapng"))
        .args(["--", "sh", "-c", &script])
        .env("SUDO_UID", NOBODY.to_string())
        .env("SUDO_GID", NOBODY.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&who).unwrap(), "0\n0\n");
    assert_eq!(fs::metadata(shared.join("root.pcapng")).unwrap().uid(), 0);
}

/// A recorder running until Ctrl-C, started once its "recording" line is out.
fn start_recorder(trace: &Path, comm: &str) -> (KillOnDrop, BufReader<std::process::ChildStderr>) {
    let mut recorder = KillOnDrop::new(
        Command::new(spliff_bin())
            .args(["record", "--no-packets", "--comm", comm, "-o"])
            .arg(trace)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(recorder.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.contains("recording"), "{first}");
    (recorder, stderr)
}

#[test]
fn a_second_recorder_with_the_same_output_is_refused() {
    if !require_bpf() {
        return;
    }
    let (_dir, shared) = shared_dir("safety-lock");
    let trace = shared.join("t.pcapng");
    let (mut first, mut first_err) = start_recorder(&trace, "spliff-no-such");
    let second = record(&["--no-packets", "-o", trace.to_str().unwrap(), "--", "true"]);
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("being written by another process"),
        "{}",
        stderr(&second)
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(first.id() as i32, libc::SIGINT) };
    let status = first.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut first_err, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    let summary = read_trace(&trace);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert!(summary.boottime_info);
}

/// A small tmpfs mounted for the test, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf, size: &str) -> Self {
        fs::create_dir_all(&at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "spliff-test",
            ])
            .arg(&at)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount tmpfs: {}", stderr(&out));
        SmallDisk(at)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[test]
fn a_full_disk_says_what_became_of_the_command() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("safety-full");
    let (cert, key) = self_signed_cert(dir.path());
    let logdir = dir.path().join("log");
    let server = python_server(dir.path(), &cert, &key, &logdir);
    let url = format!("https://127.0.0.1:{}/big", server.port);
    // The command outlives the failure by far, even on a loaded machine where the recorder
    // lags; it is killed at the end of each round.
    let script = format!("curl -sk -o /dev/null {url}; curl -sk -o /dev/null {url}; sleep 900");
    for (policy, expected_state, said) in [
        ("stop", 'T', "was stopped"),
        ("continue", 'S', "still running"),
    ] {
        let disk = SmallDisk::mount(dir.path().join(format!("disk-{policy}")), "512k");
        let trace = disk.0.join("t.pcapng");
        let started = Instant::now();
        // The command outlives the recorder: it must not hold the pipes the test reads.
        let log = dir.path().join(format!("stderr-{policy}"));
        let status = Command::new(spliff_bin())
            .args(["record", "--no-packets", "--on-failure", policy, "-o"])
            .arg(&trace)
            .args(["--", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .status()
            .unwrap();
        let message = fs::read_to_string(&log).unwrap();
        assert_eq!(status.code(), Some(1), "{message}");
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "waited for the command: {message}"
        );
        assert!(message.contains(said), "{message}");
        assert!(message.contains("No space left"), "{message}");
        let pid: u32 = message
            .split("(pid ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("no pid in: {message}"));
        assert_eq!(process_state(pid), Some(expected_state), "{message}");
        // SAFETY: kill(2) on the orphaned command, which this test started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        // What was captured before the disk filled is still there and readable.
        let summary = read_trace(&trace);
        assert!(summary.boottime_info, "{:?}", summary.errors);
        assert_eq!(summary.conns.len(), 1);
    }
}
