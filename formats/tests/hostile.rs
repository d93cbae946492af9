//! Bad input: cut files, foreign and malformed blocks, random bytes. The reader must report
//! each problem with its byte offset and block kind, keep everything intact before it, and
//! never panic.

use proptest::prelude::*;
use spliff_formats::{
    BlockKind, CaptureId, Direction, Entry, ReadErrorKind, Record, RecordKind, SPLIFF_PEN,
    SectionInfo, TlsData, TraceFile, TraceReader, TraceWriter,
};

/// A trace with `n` TLS data records and the offsets at which each block starts.
fn trace(n: usize) -> (Vec<u8>, Vec<u64>) {
    let mut w =
        TraceWriter::new(Vec::new(), &SectionInfo::default(), CaptureId([1; 16])).expect("vec");
    let payloads: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 10 + i * 7]).collect();
    for (i, p) in payloads.iter().enumerate() {
        w.write(
            i as u64,
            &Record::TlsData(TlsData {
                conn_id: 1,
                pid: 2,
                tid: 3,
                direction: Direction::Egress,
                stream_offset: 0,
                payload: p,
            }),
        )
        .expect("write");
    }
    let bytes = w.finish().expect("finish");
    let offsets = block_offsets(&bytes);
    (bytes, offsets)
}

fn block_offsets(bytes: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i + 8 <= bytes.len() {
        out.push(i as u64);
        let len = u32::from_le_bytes(bytes[i + 4..i + 8].try_into().expect("4 bytes")) as usize;
        i += len;
    }
    out
}

/// Builds one little-endian custom block around `data` with `pen`.
fn custom_block(pen: u32, data: &[u8]) -> Vec<u8> {
    let mut body = pen.to_le_bytes().to_vec();
    body.extend_from_slice(data);
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let total = (body.len() + 12) as u32;
    let mut out = 0x0BADu32.to_le_bytes().to_vec();
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&total.to_le_bytes());
    out
}

/// A spliff record header (40 bytes) followed by `body`.
fn record(major: u16, minor: u16, kind: u16, body: &[u8]) -> Vec<u8> {
    let mut r = b"SPLF".to_vec();
    r.extend_from_slice(&major.to_le_bytes());
    r.extend_from_slice(&minor.to_le_bytes());
    r.extend_from_slice(&kind.to_le_bytes());
    r.extend_from_slice(&0u16.to_le_bytes());
    r.extend_from_slice(&(body.len() as u32).to_le_bytes());
    r.extend_from_slice(&[5; 16]);
    r.extend_from_slice(&77u64.to_le_bytes());
    r.extend_from_slice(body);
    r
}

/// A TLS data body: conn 1, offset 0, pid 2, tid 3, egress, payload.
fn tls_body(payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&2u32.to_le_bytes());
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&[1, 0, 0, 0]);
    b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend_from_slice(payload);
    b
}

/// The trace head (SHB + records interface) followed by the given blocks.
fn with_blocks(blocks: &[Vec<u8>]) -> Vec<u8> {
    let (mut bytes, offsets) = trace(0);
    bytes.truncate(offsets.get(2).map_or(bytes.len(), |o| *o as usize));
    for b in blocks {
        bytes.extend_from_slice(b);
    }
    bytes
}

fn entries(bytes: &[u8]) -> Vec<Result<Entry<'_>, spliff_formats::ReadError>> {
    TraceReader::new(bytes).collect()
}

#[test]
fn a_cut_at_every_byte_keeps_every_complete_block() {
    let (bytes, offsets) = trace(12);
    for cut in 0..=bytes.len() {
        let got = entries(&bytes[..cut]);
        let complete = offsets
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let end = offsets.get(i + 1).copied().unwrap_or(bytes.len() as u64);
                end as usize <= cut
            })
            .count();
        let ok = got.iter().filter(|e| e.is_ok()).count();
        assert_eq!(ok, complete, "cut at {cut}");
        let errors: Vec<_> = got.iter().filter_map(|e| e.as_ref().err()).collect();
        if cut == 0 {
            assert!(matches!(errors[0].kind, ReadErrorKind::NotPcapng(_)));
        } else if offsets.contains(&(cut as u64)) || cut == bytes.len() {
            assert!(
                errors.is_empty(),
                "cut at a block boundary {cut}: {errors:?}"
            );
        } else {
            assert_eq!(errors.len(), 1, "cut at {cut}");
            let torn = errors[0];
            assert!(
                matches!(torn.kind, ReadErrorKind::TornTail { .. }),
                "{torn}"
            );
            assert!(torn.is_fatal());
            // The error names the block the cut fell into.
            let start = offsets.iter().rev().find(|o| **o < cut as u64).copied();
            assert_eq!(Some(torn.offset), start, "cut at {cut}");
        }
    }
}

#[test]
fn a_file_cut_on_disk_reads_back_up_to_the_cut() {
    let (bytes, offsets) = trace(5);
    let dir = std::env::temp_dir().join(format!("spliff-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("cut.pcapng");
    let cut = offsets[4] as usize + 9;
    std::fs::write(&path, &bytes[..cut]).expect("write");
    let file = TraceFile::open(&path).expect("open");
    let got: Vec<_> = file.reader().collect();
    let records = got
        .iter()
        .filter(|e| matches!(e, Ok(Entry::Record(_))))
        .count();
    assert_eq!(records, 2, "records in blocks 2 and 3 are complete");
    let err = got
        .last()
        .expect("an error")
        .as_ref()
        .expect_err("torn tail");
    assert_eq!(err.offset, offsets[4]);
    assert!(
        err.to_string()
            .contains(&format!("byte offset {}", offsets[4])),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn empty_and_non_pcapng_files_say_so() {
    for bytes in [
        &b""[..],
        b"not a pcapng file at all, just text",
        &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0],
    ] {
        let got = entries(bytes);
        assert_eq!(got.len(), 1);
        let err = got[0].as_ref().expect_err("error");
        assert!(matches!(err.kind, ReadErrorKind::NotPcapng(_)), "{err}");
        assert_eq!(err.offset, 0);
    }
}

/// Regression: a 3-byte text file was reported as a trace cut short.
#[test]
fn short_files_are_torn_only_when_they_start_like_a_section_header() {
    let err = |bytes: &[u8]| {
        let got = entries(bytes);
        assert_eq!(got.len(), 1);
        got.into_iter()
            .next()
            .expect("one")
            .expect_err("error")
            .kind
    };
    assert!(matches!(err(b"vm\n"), ReadErrorKind::NotPcapng(_)));
    assert!(matches!(err(b"x"), ReadErrorKind::NotPcapng(_)));
    let (bytes, _) = trace(0);
    for cut in [1, 3, 4, 11, 20] {
        assert!(
            matches!(err(&bytes[..cut]), ReadErrorKind::TornTail { .. }),
            "cut at {cut}"
        );
    }
}

#[test]
fn unsupported_major_version_is_named_and_skipped() {
    let good = custom_block(SPLIFF_PEN, &record(1, 0, 4, &tls_body(b"ok")));
    let future = custom_block(SPLIFF_PEN, &record(2, 0, 4, &tls_body(b"v2")));
    let bytes = with_blocks(&[future, good]);
    let got = entries(&bytes);
    let err = got
        .iter()
        .find_map(|e| e.as_ref().err())
        .expect("version error");
    assert!(
        matches!(
            err.kind,
            ReadErrorKind::UnsupportedVersion { major: 2, minor: 0 }
        ),
        "{err}"
    );
    assert!(!err.is_fatal());
    assert!(err.to_string().contains("upgrade spliff"), "{err}");
    // The record after it is still read.
    assert!(matches!(got.last(), Some(Ok(Entry::Record(_)))));
}

#[test]
fn newer_minor_versions_and_unknown_kinds_are_read_forward_compatibly() {
    let mut body = tls_body(b"payload");
    body.extend_from_slice(b"fields a later minor version appended");
    let newer = custom_block(SPLIFF_PEN, &record(1, 9, 4, &body));
    let unknown = custom_block(SPLIFF_PEN, &record(1, 3, 999, b"whatever"));
    let bytes = with_blocks(&[newer, unknown]);
    let got = entries(&bytes);
    let recs: Vec<_> = got
        .iter()
        .filter_map(|e| match e {
            Ok(Entry::Record(r)) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].minor_version, 9);
    assert_eq!(recs[0].ts_ns, 77);
    assert_eq!(recs[0].capture_id, CaptureId([5; 16]));
    match &recs[0].record {
        Record::TlsData(d) => assert_eq!(d.payload, b"payload"),
        other => panic!("expected tls data, got {other:?}"),
    }
    assert!(
        got.iter()
            .any(|e| matches!(e, Ok(Entry::UnknownRecord { kind: 999, .. })))
    );
    assert!(got.iter().all(Result::is_ok));
}

#[test]
fn truncated_fields_and_bad_values_name_the_field_offset_and_kind() {
    // Payload length claims 1000 bytes, body has 2.
    let mut body = tls_body(b"ab");
    let len_at = body.len() - 2 - 4;
    body[len_at..len_at + 4].copy_from_slice(&1000u32.to_le_bytes());
    let short = custom_block(SPLIFF_PEN, &record(1, 0, 4, &body));
    let mut bad_dir = tls_body(b"x");
    bad_dir[24] = 9;
    let bad = custom_block(SPLIFF_PEN, &record(1, 0, 4, &bad_dir));
    // A process whose cmdline claims 2^32-1 elements: must not reserve memory for them.
    let mut proc_body = vec![0u8; 24];
    for _ in 0..3 {
        proc_body.extend_from_slice(&0u32.to_le_bytes());
    }
    proc_body.truncate(24 + 8);
    proc_body.extend_from_slice(&u32::MAX.to_le_bytes());
    let huge = custom_block(SPLIFF_PEN, &record(1, 0, 2, &proc_body));
    let bytes = with_blocks(&[short, bad, huge]);
    let offsets = block_offsets(&bytes);
    let errs: Vec<_> = entries(&bytes)
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert_eq!(errs.len(), 3, "{errs:?}");
    match &errs[0].kind {
        ReadErrorKind::Truncated { field, at, .. } => {
            assert_eq!(*field, "payload");
            assert_eq!(*at, 40 + 28);
        }
        k => panic!("{k}"),
    }
    assert_eq!(errs[0].block, BlockKind::SpliffRecord(RecordKind::TlsData));
    assert_eq!(errs[0].offset, offsets[2]);
    assert!(matches!(
        errs[1].kind,
        ReadErrorKind::BadValue {
            field: "direction",
            value: 9
        }
    ));
    assert!(
        matches!(
            errs[2].kind,
            ReadErrorKind::Truncated {
                field: "cmdline",
                ..
            }
        ),
        "{}",
        errs[2]
    );
    assert!(errs.iter().all(|e| !e.is_fatal()));
}

#[test]
fn foreign_custom_blocks_are_kept_as_other_entries() {
    let foreign = custom_block(10949, b"somebody else's data");
    let lookalike = custom_block(SPLIFF_PEN, b"documentation example, not SPLF");
    let bytes = with_blocks(&[foreign, lookalike]);
    let got = entries(&bytes);
    assert_eq!(
        got.iter()
            .filter(|e| matches!(
                e,
                Ok(Entry::Other {
                    block_type: 0x0BAD,
                    ..
                })
            ))
            .count(),
        2
    );
    assert!(got.iter().all(Result::is_ok));
}

#[test]
fn broken_framing_stops_after_everything_before_it() {
    let (mut bytes, offsets) = trace(4);
    // Corrupt the trailing length of the third block.
    let third_end = offsets[3] as usize;
    bytes[third_end - 4] ^= 0xff;
    let got = entries(&bytes);
    let ok = got.iter().filter(|e| e.is_ok()).count();
    assert_eq!(ok, 2, "SHB and interface");
    let err = got.last().expect("error").as_ref().expect_err("framing");
    assert!(matches!(err.kind, ReadErrorKind::Framing(_)), "{err}");
    assert_eq!(err.offset, offsets[2]);
}

#[test]
fn fuzz_corpus_and_crash_reproducers_read_without_panic() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fuzz/trace_reader");
    let mut n = 0;
    for sub in ["corpus", "crashes"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for f in rd {
            let bytes = std::fs::read(f.expect("entry").path()).expect("read");
            for e in TraceReader::new(&bytes) {
                if let Err(e) = e {
                    let _ = e.to_string();
                }
            }
            let _ = TraceReader::new(&bytes).records_by_time();
            n += 1;
        }
    }
    assert!(n > 0, "no fuzz corpus found under {}", dir.display());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut prefixed = trace(0).0;
        prefixed.extend_from_slice(&bytes);
        for input in [&bytes[..], &prefixed[..]] {
            for e in TraceReader::new(input) {
                if let Err(e) = e { let _ = e.to_string(); }
            }
        }
    }

    #[test]
    fn mutated_traces_never_panic_and_keep_the_blocks_before_the_damage(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let (mut bytes, offsets) = trace(6);
        let mut first = bytes.len();
        for (idx, val) in &flips {
            let i = idx.index(bytes.len());
            first = first.min(i);
            bytes[i] = *val;
        }
        let got = entries(&bytes);
        // Every block that ends before the first damaged byte is read as written.
        let intact = offsets.iter().enumerate().filter(|(i, _)| {
            let end = offsets.get(i + 1).copied().unwrap_or(bytes.len() as u64);
            end as usize <= first
        }).count();
        let leading_ok = got.iter().take_while(|e| e.is_ok()).count();
        prop_assert!(leading_ok >= intact, "{} < {} (first damage at {})", leading_ok, intact, first);
    }
}

/// FORMAT.md section 8: a file of 1–11 bytes is a torn first block when it starts like an SHB,
/// else not pcapng; a custom block too short for a PEN is another vendor's block, skipped.
#[test]
fn tiny_files_and_pen_less_custom_blocks_are_reported_as_documented() {
    let (bytes, _) = trace(0);
    for n in 1..12 {
        let got = entries(&bytes[..n]);
        assert!(
            matches!(&got[..], [Err(e)] if e.offset == 0 && matches!(e.kind, ReadErrorKind::TornTail { .. })),
            "{n} bytes: {got:?}"
        );
    }
    let got = entries(b"hello");
    assert!(
        matches!(&got[..], [Err(e)] if matches!(e.kind, ReadErrorKind::NotPcapng(_))),
        "{got:?}"
    );
    // A custom block with an empty body (12 bytes: type, length, length).
    let mut short = 0x0BADu32.to_le_bytes().to_vec();
    short.extend_from_slice(&12u32.to_le_bytes());
    short.extend_from_slice(&12u32.to_le_bytes());
    let file = with_blocks(&[short]);
    let got = entries(&file);
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    assert!(
        matches!(got.last(), Some(Ok(Entry::Other { .. }))),
        "{got:?}"
    );
}

#[test]
fn a_connection_cut_inside_its_unix_fields_or_claiming_a_long_path_names_the_field() {
    // A 1.2 connection body (FORMAT.md kind 3) with empty alpn, sni and library_path: the
    // fixed part (84 bytes), three empty `bytes` (12), the counters (32), then 1.2's fields.
    let mut body = vec![0u8; 84 + 12 + 32];
    body.push(1); // transport: unix stream
    body.extend_from_slice(&[0; 3]);
    body.extend_from_slice(&7u32.to_le_bytes()); // peer_pid
    body.extend_from_slice(&5u64.to_le_bytes()); // socket_inode
    body.extend_from_slice(&6u64.to_le_bytes()); // peer_inode
    body.extend_from_slice(&11u32.to_le_bytes());
    body.extend_from_slice(b"/run/a.sock");
    let whole = custom_block(SPLIFF_PEN, &record(1, 2, 3, &body));
    // Cut 4 bytes into peer_inode.
    let cut = custom_block(SPLIFF_PEN, &record(1, 2, 3, &body[..128 + 8 + 8 + 4]));
    // socket_path claims more bytes than remain.
    let mut long = body.clone();
    long[152..156].copy_from_slice(&1000u32.to_le_bytes());
    let long = custom_block(SPLIFF_PEN, &record(1, 2, 3, &long));
    let bytes = with_blocks(&[whole, cut, long]);
    let all = entries(&bytes);
    let read = all.iter().find_map(|e| match e {
        Ok(Entry::Record(r)) => match &r.record {
            Record::Connection(c) => Some(c.clone()),
            _ => None,
        },
        _ => None,
    });
    let read = read.expect("the whole record reads");
    assert_eq!(read.unix.path, b"/run/a.sock");
    assert_eq!(
        (read.unix.peer_pid, read.unix.inode, read.unix.peer_inode),
        (7, 5, 6)
    );
    let fields: Vec<&str> = all
        .iter()
        .filter_map(|e| e.as_ref().err())
        .map(|e| match &e.kind {
            ReadErrorKind::Truncated { field, .. } => *field,
            k => panic!("{k}"),
        })
        .collect();
    assert_eq!(fields, ["peer_inode", "socket_path"]);
}
