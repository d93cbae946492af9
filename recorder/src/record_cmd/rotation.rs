//! Rotation of long captures, as tcpdump's `-C`, `-G` and `-W`: a new file when the current
//! one reaches a size or an age, keeping at most K files (a ring).
//!
//! Files are named after `-o FILE` with a sequence number of at least six digits before the
//! extension (`trace.pcapng` → `trace.000001.pcapng`, `trace.000002.pcapng`, ...), so a
//! glob lists them in order. Every file is a complete trace: the writer moves to the new file
//! between two blocks (no record is split, lost or written twice), which starts with its own
//! section header and every interface so far ([`TraceWriter::continue_in`]), then the
//! capture info record and the records of the connections still open
//! ([`Converter::repeat_open_records`]).
//!
//! [`TraceWriter::continue_in`]: spliff_formats::TraceWriter::continue_in

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::capture_info::CaptureHeader;
use super::convert::Converter;
use crate::cli::RecordArgs;

/// Creates one trace file. Every file a rotation writes is created through it.
pub type OpenFile<'a> = dyn FnMut(&Path) -> anyhow::Result<File> + 'a;

/// When to move to a new file, and how many to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Rotate once the file has this many bytes.
    pub max_bytes: Option<u64>,
    /// Rotate once the file is this old.
    pub max_age: Option<Duration>,
    /// Keep at most this many files, deleting the oldest.
    pub keep: Option<usize>,
}

impl Policy {
    /// The policy `-C`, `-G` and `-W` ask for; `None` without rotation.
    pub fn from_args(args: &RecordArgs) -> anyhow::Result<Option<Policy>> {
        if args.file_size.is_none() && args.rotate_seconds.is_none() {
            if args.file_count.is_some() {
                bail!("-W (a ring of files) needs -C MB or -G SECONDS to say when to rotate");
            }
            return Ok(None);
        }
        Ok(Some(Policy {
            max_bytes: args.file_size,
            max_age: args.rotate_seconds.map(Duration::from_secs),
            keep: args
                .file_count
                .map(|k| usize::try_from(k).unwrap_or(usize::MAX)),
        }))
    }

    /// Whether a file of `bytes`, of which `preamble` were written when it was started, and of
    /// age `age` is due for rotation. A file is never rotated by size before it holds
    /// something besides its preamble: with a size below the preamble's, every record would
    /// otherwise start a new file.
    pub fn due(&self, bytes: u64, preamble: u64, age: Duration) -> bool {
        let by_size = self
            .max_bytes
            .is_some_and(|max| bytes >= max && bytes > preamble);
        let by_age = self.max_age.is_some_and(|max| age >= max);
        by_size || by_age
    }
}

/// Name of the `seq`th file (from 1) of a capture written to `base`: the number, zero-padded to
/// six digits, before the extension, or at the end when there is none.
pub fn file_name(base: &Path, seq: u64) -> PathBuf {
    let stem = base.file_stem().unwrap_or(base.as_os_str());
    let mut name = stem.to_os_string();
    name.push(format!(".{seq:06}"));
    if let Some(ext) = base.extension() {
        name.push(".");
        name.push(ext);
    }
    base.with_file_name(name)
}

/// The files of this capture still on disk, oldest first.
#[derive(Debug, Default)]
struct Ring {
    keep: Option<usize>,
    files: VecDeque<PathBuf>,
}

impl Ring {
    /// Adds the newest file; returns the files beyond the ring's size, to delete. Only files
    /// added here ever come out, so nothing this capture did not create is deleted.
    fn push(&mut self, path: PathBuf) -> Vec<PathBuf> {
        self.files.push_back(path);
        let excess = self
            .keep
            .map_or(0, |keep| self.files.len().saturating_sub(keep.max(1)));
        self.files.drain(..excess).collect()
    }
}

/// A capture written to a sequence of files.
pub struct Rotation<'a> {
    policy: Policy,
    base: PathBuf,
    seq: u64,
    ring: Ring,
    opened: Instant,
    preamble: u64,
    open: Box<OpenFile<'a>>,
    /// Files written, deleted ones included.
    files_written: u64,
}

impl std::fmt::Debug for Rotation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("policy", &self.policy)
            .field("base", &self.base)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl<'a> Rotation<'a> {
    /// The name of the first file, which the caller creates (it is removed again if
    /// recording never starts, unlike the later ones).
    pub fn first_file(base: &Path) -> PathBuf {
        file_name(base, 1)
    }

    /// A rotation whose first file ([`Rotation::first_file`]) is open; `open` creates every
    /// later one.
    pub fn start(policy: Policy, base: &Path, open: Box<OpenFile<'a>>) -> Self {
        let mut ring = Ring {
            keep: policy.keep,
            files: VecDeque::new(),
        };
        ring.push(Self::first_file(base));
        Rotation {
            policy,
            base: base.to_path_buf(),
            seq: 1,
            ring,
            opened: Instant::now(),
            preamble: 0,
            open,
            files_written: 1,
        }
    }

    /// Marks the start of recording proper: the file's preamble ends here and its age starts.
    pub fn started(&mut self, converter: &mut Converter<File>) {
        self.preamble = converter.writer().bytes_written();
        self.opened = Instant::now();
    }

    /// Moves to a new file if the current one is due.
    pub fn maybe_rotate(
        &mut self,
        converter: &mut Converter<File>,
        header: &CaptureHeader,
    ) -> anyhow::Result<()> {
        let bytes = converter.writer().bytes_written();
        if self.policy.due(bytes, self.preamble, self.opened.elapsed()) {
            self.rotate(converter, header)?;
        }
        Ok(())
    }

    fn rotate(
        &mut self,
        converter: &mut Converter<File>,
        header: &CaptureHeader,
    ) -> anyhow::Result<()> {
        let previous = file_name(&self.base, self.seq);
        self.seq += 1;
        let path = file_name(&self.base, self.seq);
        let file = (self.open)(&path)?;
        let what = |p: &Path| format!("cannot write the trace file {}", p.display());
        converter
            .writer()
            .continue_in(file)
            .with_context(|| what(&previous))?;
        header.write(converter).with_context(|| what(&path))?;
        converter
            .repeat_open_records()
            .with_context(|| what(&path))?;
        self.preamble = converter.writer().bytes_written();
        self.opened = Instant::now();
        self.files_written += 1;
        for old in self.ring.push(path) {
            if let Err(error) = std::fs::remove_file(&old) {
                eprintln!(
                    "spliff: warning: cannot delete {} (-W): {error}",
                    old.display()
                );
            }
        }
        Ok(())
    }

    /// The files of the capture on disk, oldest first.
    pub fn files(&self) -> impl DoubleEndedIterator<Item = &Path> {
        self.ring.files.iter().map(PathBuf::as_path)
    }

    /// The files written, for the summary line.
    pub fn describe(&self) -> String {
        let kept = self.ring.files.len() as u64;
        let first = self.files().next().map(|p| p.display().to_string());
        let last = self.files().next_back().map(|p| p.display().to_string());
        let range = match (first, last) {
            (Some(first), Some(last)) if kept > 1 => format!("{first} .. {last}"),
            (Some(only), _) => only,
            _ => String::new(),
        };
        match self.files_written - kept {
            0 => format!("{kept} files ({range})"),
            deleted => format!("{kept} files ({range}; {deleted} older ones deleted by -W)"),
        }
    }
}

/// [`Rotation::maybe_rotate`] for the recording loop: nothing without rotation or after a
/// write error (the loop stops on it); a failure becomes the write error.
pub fn rotate_if_due(
    rotation: &mut Option<Rotation<'_>>,
    converter: &mut Converter<File>,
    header: &CaptureHeader,
    write_error: &mut Option<anyhow::Error>,
) {
    if write_error.is_none()
        && let Some(rotation) = rotation
        && let Err(error) = rotation.maybe_rotate(converter, header)
    {
        *write_error = Some(error);
    }
}

#[cfg(test)]
mod tests {
    use spliff_formats::{CaptureId, Direction, Entry, SectionInfo, TraceFile, TraceWriter};
    use spliff_recorder::bpf::{Event, TlsData, TlsDirection};
    use spliff_replay::trace_input::TraceIndex;

    use super::*;

    const MB: u64 = 1_000_000;

    fn data(ts_ns: u64, stream_offset: u64, payload: &[u8]) -> Event {
        Event::TlsData(TlsData {
            ts_ns,
            pid: 4_000_000,
            tid: 4_000_000,
            ssl: 0xabc,
            direction: TlsDirection::Egress,
            stream_offset,
            payload: payload.to_vec(),
        })
    }

    /// Records one connection's stream in pieces through a rotation by size; returns the files
    /// and how many times the creating function was called.
    fn rotated_capture(dir: &Path, stream: &[u8], keep: Option<usize>) -> (Vec<PathBuf>, usize) {
        let created = std::cell::Cell::new(0);
        let open = |path: &Path| -> anyhow::Result<File> {
            created.set(created.get() + 1);
            Ok(File::create(path)?)
        };
        let policy = Policy {
            max_bytes: Some(2000),
            max_age: None,
            keep,
        };
        let base = dir.join("t.pcapng");
        let file = open(&Rotation::first_file(&base)).unwrap();
        let mut rotation = Rotation::start(policy, &base, Box::new(open));
        let writer = TraceWriter::new(file, &SectionInfo::default(), CaptureId([5; 16])).unwrap();
        let header = CaptureHeader {
            ts_ns: 1,
            wall_ns: 1_000,
            hostname: "host".into(),
            kernel: "6.1".into(),
            attached: vec!["uprobe SSL_write libssl.so.3".into()],
        };
        let mut converter = Converter::new(
            writer,
            vec![(
                b"/lib/libssl.so.3".to_vec(),
                &spliff_recorder::probes::OPENSSL,
            )],
        );
        converter.keep_for_rotation();
        header.write(&mut converter).unwrap();
        rotation.started(&mut converter);
        for (i, piece) in stream.chunks(700).enumerate() {
            let event = data(10 + i as u64, (i * 700) as u64, piece);
            converter.event(event).unwrap();
            rotation.maybe_rotate(&mut converter, &header).unwrap();
        }
        converter.into_writer().finish().unwrap();
        let files = rotation.files().map(Path::to_path_buf).collect();
        drop(rotation);
        (files, created.get())
    }

    #[test]
    fn every_file_stands_alone_and_together_they_give_the_whole_stream() {
        let dir = std::env::temp_dir().join(format!("spliff-rotation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stream: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (files, created) = rotated_capture(&dir, &stream, None);
        assert!(files.len() >= 5, "{files:?}");
        assert_eq!(
            created,
            files.len(),
            "every file comes from the creating function"
        );
        let traces: Vec<TraceFile> = files.iter().map(|f| TraceFile::open(f).unwrap()).collect();
        for trace in &traces {
            let kinds: Vec<&'static str> = trace
                .reader()
                .filter_map(|e| match e.unwrap() {
                    Entry::Record(r) => Some(r.record.kind().name()),
                    _ => None,
                })
                .take(3)
                .collect();
            // The data of every file refers to a connection and process the file describes.
            assert_eq!(kinds[0], "capture-info");
            assert!(kinds[1..].contains(&"connection"), "{kinds:?}");
            assert!(kinds[1..].contains(&"process"), "{kinds:?}");
        }
        let bytes: Vec<&[u8]> = traces.iter().map(TraceFile::bytes).collect();
        let mut index = TraceIndex::read_many(&bytes);
        assert!(index.errors.is_empty());
        let pending = std::mem::take(&mut index.connections);
        assert_eq!(pending.len(), 1, "one connection across all files");
        let conn = index.assemble(pending.into_iter().next().unwrap());
        assert_eq!(conn.info.request_direction, Direction::Egress);
        assert_eq!(conn.streams.request.contiguous(0), stream.as_slice());
        assert_eq!(conn.streams.request.overlapped_bytes(), 0, "no byte twice");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_ring_keeps_only_the_newest_files_on_disk() {
        let dir = std::env::temp_dir().join(format!("spliff-ring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Not this capture's: never deleted, though its name is the ring's first.
        std::fs::write(dir.join("t.000001.pcapng.keep"), b"mine").unwrap();
        let stream = vec![b'x'; 20_000];
        let (files, created) = rotated_capture(&dir, &stream, Some(2));
        assert!(created > 2);
        assert_eq!(
            files,
            [
                dir.join(format!("t.{:06}.pcapng", created - 1)),
                dir.join(format!("t.{created:06}.pcapng"))
            ]
        );
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(left.contains(&"t.000001.pcapng.keep".to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn size_and_age_each_make_a_file_due() {
        let size = Policy {
            max_bytes: Some(MB),
            max_age: None,
            keep: None,
        };
        assert!(!size.due(MB - 1, 100, Duration::from_secs(1 << 20)));
        assert!(size.due(MB, 100, Duration::ZERO));
        let age = Policy {
            max_bytes: None,
            max_age: Some(Duration::from_secs(60)),
            keep: None,
        };
        assert!(!age.due(u64::MAX, 0, Duration::from_secs(59)));
        assert!(age.due(0, 0, Duration::from_secs(60)));
        let both = Policy {
            max_age: Some(Duration::from_secs(60)),
            ..size
        };
        assert!(both.due(MB, 0, Duration::ZERO));
        assert!(both.due(0, 0, Duration::from_secs(61)));
        assert!(!both.due(10, 0, Duration::from_secs(1)));
    }

    #[test]
    fn a_file_holding_only_its_preamble_is_not_rotated_by_size() {
        let tiny = Policy {
            max_bytes: Some(10),
            max_age: None,
            keep: None,
        };
        assert!(!tiny.due(500, 500, Duration::ZERO));
        assert!(tiny.due(501, 500, Duration::ZERO));
    }

    #[test]
    fn names_sort_in_capture_order_and_keep_the_extension() {
        assert_eq!(
            file_name(Path::new("/tmp/x/trace.pcapng"), 1),
            Path::new("/tmp/x/trace.000001.pcapng")
        );
        assert_eq!(file_name(Path::new("trace"), 42), Path::new("trace.000042"));
        assert_eq!(
            file_name(Path::new("a.b.pcapng"), 7),
            Path::new("a.b.000007.pcapng")
        );
        let names: Vec<PathBuf> = (1..=1200)
            .map(|i| file_name(Path::new("t.pcapng"), i))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn the_ring_deletes_the_oldest_of_its_own_files() {
        let mut ring = Ring {
            keep: Some(3),
            files: VecDeque::new(),
        };
        let mut deleted = Vec::new();
        for i in 1..=5 {
            deleted.extend(ring.push(PathBuf::from(format!("f{i}"))));
        }
        assert_eq!(deleted, [PathBuf::from("f1"), PathBuf::from("f2")]);
        assert_eq!(
            ring.files.iter().collect::<Vec<_>>(),
            [Path::new("f3"), Path::new("f4"), Path::new("f5")]
        );
        let mut unbounded = Ring::default();
        for i in 1..=5 {
            assert!(unbounded.push(PathBuf::from(format!("f{i}"))).is_empty());
        }
    }
}
