//! Real Wireshark tools on traces written by `spliff-formats`: they must read them without a
//! warning, and rewriting tools must keep every spliff record.

use std::collections::BTreeMap;

use spliff_formats::{CaptureId, Entry, Record, TraceFile, TraceReader};
use spliff_tests::sample::sample_trace;
use spliff_tests::tools::{TempDir, run};

/// Everything but tshark's warning about running as root, which says nothing about the file.
fn complaints(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("Running as user \"root\""))
        .collect()
}

/// Records of a trace as comparable strings keyed by (capture id, ts, record), with a count, so
/// that block order (which mergecap changes) does not matter.
fn record_multiset(bytes: &[u8]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in TraceReader::new(bytes) {
        match e.expect("no read errors") {
            Entry::Record(r) => {
                *out.entry(format!("{} {} {:?}", r.capture_id, r.ts_ns, r.record))
                    .or_insert(0) += 1
            }
            _ => continue,
        }
    }
    out
}

#[test]
fn tshark_and_capinfos_read_a_trace_cleanly() {
    let dir = TempDir::new("tools");
    let path = dir.path().join("t.pcapng");
    std::fs::write(&path, sample_trace([1; 16])).expect("write");
    let p = path.to_str().expect("utf-8 path");

    let out = run("tshark", &["-r", p]);
    assert!(
        complaints(&out.stderr).is_empty(),
        "tshark complained: {}",
        out.stderr
    );
    let custom = out
        .stdout
        .lines()
        .filter(|l| l.contains("Custom Block"))
        .count();
    let records = record_multiset(&std::fs::read(&path).expect("read"))
        .values()
        .sum::<usize>();
    // The 150 000-byte write is split into three records.
    assert_eq!(custom, records, "{}", out.stdout);
    assert_eq!(records, 12);
    assert!(
        out.stdout.contains("40000 → 443") || out.stdout.contains("40000 \u{2192} 443"),
        "{}",
        out.stdout
    );

    // Process comments and directions on packets.
    let out = run(
        "tshark",
        &[
            "-r",
            p,
            "-Y",
            "tcp",
            "-T",
            "fields",
            "-e",
            "frame.comment",
            "-e",
            "frame.interface_name",
            "-e",
            "frame.packet_flags_direction",
        ],
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    // epb_flags direction: outbound (2) then inbound (1), as written.
    for (line, dir) in lines.iter().zip(["0x00000002", "0x00000001"]) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f, ["pid=4242 comm=curl", "veth0", dir], "{line}");
    }

    let out = run("capinfos", &[p]);
    assert!(
        complaints(&out.stderr).is_empty(),
        "capinfos complained: {}",
        out.stderr
    );
    assert!(
        out.stdout.contains("Number of packets:   2"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Number of interfaces in file: 2"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Name = spliff"), "{}", out.stdout);
    assert!(out.stdout.contains("Name = veth0"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("Capture application: spliff 0.1.0 (sample)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("nanoseconds (9)"), "{}", out.stdout);
}

#[test]
fn editcap_keeps_every_record_identical() {
    let dir = TempDir::new("editcap");
    let a = dir.path().join("a.pcapng");
    let b = dir.path().join("b.pcapng");
    let original = sample_trace([2; 16]);
    std::fs::write(&a, &original).expect("write");
    let out = run(
        "editcap",
        &[a.to_str().expect("utf-8"), b.to_str().expect("utf-8")],
    );
    assert!(complaints(&out.stderr).is_empty(), "{}", out.stderr);
    let rewritten = TraceFile::open(&b).expect("open");
    assert_eq!(
        record_multiset(rewritten.bytes()),
        record_multiset(&original)
    );
    // Packets survive too, with their comments.
    let packets: Vec<String> = rewritten
        .reader()
        .filter_map(|e| match e.expect("read") {
            Entry::Packet { packet, .. } => {
                Some(format!("{:?} {:?}", packet.direction, packet.comment))
            }
            _ => None,
        })
        .collect();
    assert_eq!(packets.len(), 2);
    assert!(
        packets.iter().all(|p| p.contains("comm=curl")),
        "{packets:?}"
    );
}

#[test]
fn mergecap_of_two_captures_is_the_union_of_their_records() {
    let dir = TempDir::new("mergecap");
    let a = dir.path().join("a.pcapng");
    let b = dir.path().join("b.pcapng");
    let m = dir.path().join("m.pcapng");
    // Both captures number their connections from 1: only the capture id tells them apart.
    let ta = sample_trace([0xA; 16]);
    let tb = sample_trace([0xB; 16]);
    std::fs::write(&a, &ta).expect("write");
    std::fs::write(&b, &tb).expect("write");
    let out = run(
        "mergecap",
        &[
            "-w",
            m.to_str().expect("utf-8"),
            a.to_str().expect("utf-8"),
            b.to_str().expect("utf-8"),
        ],
    );
    assert!(complaints(&out.stderr).is_empty(), "{}", out.stderr);
    let merged = std::fs::read(&m).expect("read");
    let mut want = record_multiset(&ta);
    for (k, v) in record_multiset(&tb) {
        *want.entry(k).or_insert(0) += v;
    }
    assert_eq!(record_multiset(&merged), want);
    // Connection 1 exists once per capture, distinct by capture id.
    let conn1: std::collections::BTreeSet<CaptureId> = TraceReader::new(&merged)
        .filter_map(|e| match e.expect("read") {
            Entry::Record(r) => match r.record {
                Record::Connection(c) if c.conn_id == 1 => Some(r.capture_id),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(conn1.len(), 2);
}
