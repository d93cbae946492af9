//! Rotation of long captures (`spliff record -C/-G/-W`) on real programs: curl (HTTP/1.1 on one
//! kept-alive connection, and HTTP/2) against a Python `ssl` server and nghttpd.
//!
//! Three recorders watch the same workload at once:
//! - the rotating one (`-C`, `-- sh workload.sh`), whose files are the subject;
//! - a plain one (`--ppid` of this test) writing a single file;
//! - a ring (`--ppid`, `-C`, `-W`).
//!
//! "Rotated files replay to the same HAR as one file" is checked two ways. Against the
//! servers' own logs, which is the ground truth and independent of spliff: the HAR of all the
//! rotated files together must equal, exchange by exchange, what the servers say they
//! exchanged. And against the single file the plain recorder wrote of the same workload in
//! the same run: the two HARs must be equal once what differs between two recorders is set
//! aside (each recorder's kernel programs stamp their own events, so times differ by
//! nanoseconds). `mergecap -a` of the parts (one file, several sections) must replay to
//! exactly the bytes of the parts given separately, so pcapng tools can join them too.
#![cfg(target_os = "linux")]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{BufRead as _, BufReader},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use serde_json::Value;
use spliff_formats::{Entry, Record, TraceFile};
use spliff_tests::{
    exchange_log::{
        assert_har_matches, exchange_server, nghttpd_logged, read_exchange_server_log,
        read_nghttpd_log,
    },
    har::assert_valid_har,
    require_bpf,
    spliff::{spliff, spliff_bin},
    tls_workload::self_signed_cert,
    tools::{TempDir, run},
};

/// Rotation size: 0.1 MB (100 000 bytes), so the workload's ~1.5 MB make well over 5 files.
const FILE_MB: &str = "0.1";
/// Files the ring keeps.
const RING: usize = 3;

/// Deterministic bytes that do not compress.
fn content(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A recorder without a command, stopped with SIGINT; killed on drop if still running.
struct Background(Child);

impl Background {
    /// Starts `spliff record ARGS` and waits until it records (its "recording" line).
    fn start(args: &[&str]) -> Background {
        let mut child = Command::new(spliff_bin())
            .arg("record")
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start spliff record");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = stderr
                .read_line(&mut line)
                .expect("read the recorder's stderr");
            assert!(n > 0, "the recorder ended before recording:\n{seen}");
            seen.push_str(&line);
            if line.starts_with("spliff: recording") {
                break;
            }
        }
        // Keep draining stderr so the recorder never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Background(child)
    }

    /// Stops it as Ctrl-C would and waits for it to finish its files.
    fn stop(mut self) {
        let pid = i32::try_from(self.0.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let status = self.0.wait().expect("wait for the recorder");
        assert!(status.success(), "recorder exited with {status}");
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The files of a rotated capture written to `base`, in name (= capture) order.
fn parts(base: &Path) -> Vec<PathBuf> {
    let stem = base.file_stem().and_then(|s| s.to_str()).expect("stem");
    let dir = base.parent().expect("dir");
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{stem}.")) && n.ends_with(".pcapng"))
        })
        .collect();
    files.sort();
    files
}

/// Replays `traces` to HAR (`spliff replay T... -o out.har`), checks it is valid, parses it.
fn har(traces: &[PathBuf], out: &Path) -> Value {
    let mut args: Vec<&str> = vec!["replay"];
    args.extend(traces.iter().map(|t| t.to_str().expect("utf-8")));
    args.extend(["-o", out.to_str().expect("utf-8")]);
    let result = spliff(&args);
    assert!(
        result.status.success(),
        "spliff {args:?} failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_valid_har(out);
    serde_json::from_slice(&fs::read(out).expect("HAR written")).expect("HAR is JSON")
}

/// What two recorders of the same traffic legitimately disagree on: times (each recorder's
/// kernel programs stamp their own events), the capture id (random per capture) and the
/// connection numbers (each recorder numbers in the order it saw connections first).
const PER_RECORDER: [&str; 6] = [
    "startedDateTime",
    "time",
    "timings",
    "_captureId",
    "_connectionId",
    "connection",
];

/// A HAR's entries without [`PER_RECORDER`], in a fixed order (the order of the entries also
/// follows from the times).
fn without_times(har: &Value) -> Vec<Value> {
    let mut entries: Vec<Value> = har["log"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let mut e = e.clone();
            let object = e.as_object_mut().expect("entry object");
            object.retain(|k, _| !PER_RECORDER.contains(&k.as_str()));
            e
        })
        .collect();
    entries.sort_by_key(|e| e.to_string());
    entries
}

/// Asserts two HARs equal but for [`PER_RECORDER`]; on failure names the entry and fields
/// that differ (the entries hold bodies of hundreds of kilobytes).
fn assert_same_exchanges(rotated: &Value, single: &Value) {
    let (a, b) = (without_times(rotated), without_times(single));
    assert_eq!(a.len(), b.len(), "entries");
    for (x, y) in a.iter().zip(&b) {
        if x != y {
            let differ: Vec<String> = x
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| y.get(k.as_str()) != Some(v))
                .map(|(k, v)| {
                    let show = |v: &Value| v.to_string().chars().take(200).collect::<String>();
                    format!("{k}: {} vs {}", show(v), show(&y[k.as_str()]))
                })
                .collect();
            panic!(
                "{} {}: rotated and single-file HARs differ in {differ:?}",
                x["request"]["method"], x["request"]["url"]
            );
        }
    }
}

/// (a) and (b) of each file alone: capinfos reads it, spliff's reader lists it without error,
/// it replays alone, and it is readable by its owner only.
fn check_alone(file: &Path, work: &Path) {
    let name = file.to_str().expect("utf-8");
    run("capinfos", &[name]);
    let records = spliff(&["replay", "--format", "records", name]);
    assert!(
        records.status.success() && records.stderr.is_empty(),
        "spliff's reader on {name}: {}",
        String::from_utf8_lossy(&records.stderr)
    );
    let out = work.join("alone.har");
    let alone = spliff(&["replay", name, "-o", out.to_str().expect("utf-8")]);
    assert!(
        alone.status.success(),
        "{name} does not replay alone: {}",
        String::from_utf8_lossy(&alone.stderr)
    );
    let mode = fs::metadata(file).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
}

/// Where a TLS data record is: connection, direction, stream offset.
type DataAt = (u64, u8, u64);

/// What the files hold, per file: the connections with TLS data in it, and every TLS data
/// record's (connection, direction, stream offset) over all files.
fn data_records(files: &[PathBuf]) -> (Vec<BTreeSet<u64>>, Vec<DataAt>) {
    let mut per_file = Vec::new();
    let mut all = Vec::new();
    let mut capture = None;
    for file in files {
        let trace = TraceFile::open(file).expect("open");
        let mut conns = BTreeSet::new();
        let mut infos = 0;
        for entry in trace.reader() {
            let Ok(Entry::Record(r)) = entry else {
                continue;
            };
            assert_eq!(*capture.get_or_insert(r.capture_id), r.capture_id);
            match r.record {
                Record::CaptureInfo(_) => infos += 1,
                Record::TlsData(d) => {
                    conns.insert(d.conn_id);
                    all.push((d.conn_id, d.direction as u8, d.stream_offset));
                }
                _ => {}
            }
        }
        assert_eq!(infos, 1, "{}: one capture info record", file.display());
        per_file.push(conns);
    }
    (per_file, all)
}

#[test]
fn a_rotated_capture_replays_like_one_file_and_the_ring_keeps_the_newest() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-rotation");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let h1_log = d.join("h1.jsonl");
    let h1 = exchange_server(&cert, &key, &h1_log);
    let docroot = d.join("www");
    fs::create_dir_all(&docroot).expect("docroot");
    fs::write(docroot.join("big.bin"), content(300_000, 1)).expect("write file");
    let h2_log = d.join("nghttpd.log");
    let h2 = nghttpd_logged(&docroot, &cert, &key, &h2_log);
    fs::write(d.join("up1.bin"), content(400_000, 2)).expect("write upload");
    fs::write(d.join("up2.bin"), content(350_000, 3)).expect("write upload");

    // One curl, one kept-alive HTTP/1.1 connection for every request (`--next` keeps it): its
    // bytes run through several files. Then HTTP/2 on a connection of its own.
    let b1 = format!("https://127.0.0.1:{}", h1.port);
    let b2 = format!("https://127.0.0.1:{}", h2.port);
    let c = "-sk --http1.1 -o /dev/null";
    let workload = format!(
        "set -e\n\
         curl {c} {b1}/text?n=1 \
           --next {c} -H 'Content-Type: application/octet-stream' --data-binary @{up1} {b1}/json?n=2 \
           --next {c} {b1}/binary?n=3 \
           --next {c} -H 'Content-Type: application/octet-stream' --data-binary @{up2} {b1}/json?n=4 \
           --next {c} {b1}/chunked?n=5 \
           --next {c} {b1}/binary?n=6\n\
         curl -sk --http2 -o /dev/null {b2}/big.bin\n",
        up1 = d.join("up1.bin").display(),
        up2 = d.join("up2.bin").display(),
    );
    fs::write(d.join("workload.sh"), workload).expect("write workload");

    let test_pid = std::process::id().to_string();
    let single = d.join("single.pcapng");
    let ring_dir = d.join("ring");
    fs::create_dir_all(&ring_dir).expect("ring dir");
    let ring = ring_dir.join("ring.pcapng");
    let plain = Background::start(&[
        "--no-packets",
        "--ppid",
        &test_pid,
        "-o",
        single.to_str().expect("utf-8"),
    ]);
    let ringed = Background::start(&[
        "--no-packets",
        "--ppid",
        &test_pid,
        "-C",
        FILE_MB,
        "-W",
        &RING.to_string(),
        "-o",
        ring.to_str().expect("utf-8"),
    ]);
    let rotated_dir = d.join("rotated");
    fs::create_dir_all(&rotated_dir).expect("rotated dir");
    let rotated = rotated_dir.join("t.pcapng");
    let out = Command::new(spliff_bin())
        // Packets of lo only: never hook the machine's real interfaces. With packets, every
        // file must repeat the interface blocks for its packets' interface ids.
        .args(["record", "-i", "lo", "-C", FILE_MB, "-o"])
        .arg(&rotated)
        .args(["--", "sh"])
        .arg(d.join("workload.sh"))
        .output()
        .expect("run spliff record");
    assert!(
        out.status.success(),
        "spliff record failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    plain.stop();
    ringed.stop();
    let h2_port = h2.port;
    drop(h2);
    let mut expected = read_exchange_server_log(&h1_log, h1.port);
    expected.extend(read_nghttpd_log(&h2_log, h2_port, &docroot));
    assert_eq!(expected.len(), 7, "the servers logged every request");

    let files = parts(&rotated);
    assert!(files.len() >= 5, "only {} files: {files:?}", files.len());
    assert!(
        !rotated.exists(),
        "-o names the files, it is not written itself"
    );
    for (i, file) in files.iter().enumerate() {
        let want = format!("t.{:06}.pcapng", i + 1);
        assert_eq!(file.file_name().and_then(|n| n.to_str()), Some(&*want));
        check_alone(file, d);
    }

    // No TLS data record is lost or repeated at a boundary, and a connection spans files.
    let (per_file, all) = data_records(&files);
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a TLS data record is in two files");
    let mut files_of: BTreeMap<u64, usize> = BTreeMap::new();
    for conns in &per_file {
        for conn in conns {
            *files_of.entry(*conn).or_default() += 1;
        }
    }
    assert!(
        files_of.values().any(|&n| n >= 3),
        "no connection's data spans three files: {files_of:?}"
    );

    // (a) Same HAR as one file: the ground truth, the single file of the same run, mergecap.
    let together = har(&files, &d.join("rotated.har"));
    assert_har_matches(&together, &expected);
    let one = har(std::slice::from_ref(&single), &d.join("single.har"));
    assert_har_matches(&one, &expected);
    assert_same_exchanges(&together, &one);
    let merged = d.join("merged.pcapng");
    let mut mergecap = vec!["-a", "-w", merged.to_str().expect("utf-8")];
    mergecap.extend(files.iter().map(|f| f.to_str().expect("utf-8")));
    run("mergecap", &mergecap);
    let via_mergecap = har(std::slice::from_ref(&merged), &d.join("merged.har"));
    assert!(
        via_mergecap == together,
        "mergecap -a of the parts replays differently from the parts"
    );

    // (c) The ring: K files left, the newest of more than K, each complete.
    let kept = parts(&ring);
    assert_eq!(kept.len(), RING, "ring files: {kept:?}");
    let last: usize = kept[RING - 1]
        .to_str()
        .and_then(|n| n.rsplit('.').nth(1))
        .and_then(|n| n.parse().ok())
        .expect("numbered file");
    assert!(last > RING, "the ring never wrapped (last file {last})");
    for (i, file) in kept.iter().enumerate() {
        let want = format!("ring.{:06}.pcapng", last - (RING - 1) + i);
        assert_eq!(file.file_name().and_then(|n| n.to_str()), Some(&*want));
        check_alone(file, d);
    }
    assert_eq!(
        fs::metadata(&single).expect("single").permissions().mode() & 0o777,
        0o600
    );
}
