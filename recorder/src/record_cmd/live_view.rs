//! The live view of `spliff record` (no `-o`, or `--live`): the trace's bytes, as the
//! recorder writes them, are read back by a reader thread (from a pipe that stands in for the
//! trace file, or from the trace file as it grows) and rendered on standard output by a
//! second thread through the replay's live text view (spliff_replay::live).
//!
//! Capture is never slowed by the view: the reader only cuts the bytes into blocks and hands
//! them over through a bounded channel without waiting. When the renderer falls behind (a slow
//! terminal) and the channel is full, TLS data records are dropped from the view (never from
//! the trace) and the view says how many; the other records (connections, processes) are kept
//! for the next hand-over so that what is shown stays attributed.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use spliff_formats::RecordKind;
use spliff_replay::live::{BlockClass, BlockSplitter, LiveOptions, LiveView, classify};

/// Batches in flight between the reader and the renderer.
const CHANNEL_BATCHES: usize = 64;
/// A batch is handed over at this size, or when the reader has nothing more to read.
const BATCH_BYTES: usize = 256 << 10;
/// Records other than TLS data kept for the renderer while it is behind, at most.
const MAX_KEPT_BYTES: usize = 64 << 20;
/// How often the renderer prints what became ready.
const TICK: Duration = Duration::from_millis(10);
/// How often the reader looks for more bytes in a trace file that has none yet.
const TAIL_POLL: Duration = Duration::from_millis(5);
/// Pipe capacity asked for: room for bursts while the reader is descheduled.
const PIPE_BYTES: libc::c_int = 1 << 20;

enum Message {
    Blocks(Vec<u8>),
    Skipped(u64),
}

/// The running view.
pub struct LiveViewer {
    stop: Arc<AtomicBool>,
    reader: JoinHandle<()>,
    renderer: JoinHandle<io::Result<()>>,
}

/// A pipe for a capture without a trace file: the write end takes the trace's place, the read
/// end feeds the view.
pub fn pipe() -> anyhow::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own; close-on-exec keeps them out of CMD.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error()).context("cannot create a pipe for the live view");
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Best effort: a small pipe only makes the reader wake more often.
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, PIPE_BYTES) };
    Ok((File::from(read), File::from(write)))
}

impl LiveViewer {
    /// Starts the view reading `source`: a pipe (ends at end of file) or, with `tail`, a trace
    /// file still being written (ends once [`LiveViewer::finish`] was called and all is read).
    pub fn start(
        source: File,
        tail: bool,
        options: LiveOptions,
        now_ns: fn() -> u64,
    ) -> anyhow::Result<LiveViewer> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel(CHANNEL_BATCHES);
        let reader_stop = Arc::clone(&stop);
        let reader = std::thread::Builder::new()
            .name("live-reader".into())
            .spawn(move || read(source, tail, &reader_stop, &tx))
            .context("cannot start the live view's reader thread")?;
        let renderer = std::thread::Builder::new()
            .name("live-view".into())
            .spawn(move || render(&rx, options, now_ns))
            .context("cannot start the live view's thread")?;
        Ok(LiveViewer {
            stop,
            reader,
            renderer,
        })
    }

    /// Shows the rest once the trace is complete (its writer flushed, a pipe's write end
    /// closed), and waits for it.
    pub fn finish(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.reader.join();
        match self.renderer.join() {
            Ok(Ok(())) => Ok(()),
            // The reader of the view went away (`spliff record | head`): not a failure.
            Ok(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Ok(Err(e)) => Err(e).context("cannot write the live view"),
            Err(_) => anyhow::bail!("the live view's thread failed"),
        }
    }
}

/// Blocks read but not handed over yet, TLS data apart: that is what is dropped when the view
/// is behind.
#[derive(Default)]
struct Batch {
    kept: Vec<u8>,
    data: Vec<u8>,
    data_records: u64,
    skipped: u64,
}

impl Batch {
    fn add(&mut self, block: &[u8]) {
        match classify(block) {
            BlockClass::Record(Some(RecordKind::TlsData)) => {
                self.data.extend_from_slice(block);
                self.data_records += 1;
            }
            BlockClass::Section | BlockClass::Record(_) => self.kept.extend_from_slice(block),
            BlockClass::Other => {}
        }
    }

    fn len(&self) -> usize {
        self.kept.len() + self.data.len()
    }

    /// Hands the batch over without waiting; when the channel is full, drops its TLS data
    /// (counted) and keeps the rest for the next try. `false`: the view is gone.
    fn send(&mut self, tx: &SyncSender<Message>) -> bool {
        if self.skipped > 0 {
            match tx.try_send(Message::Skipped(self.skipped)) {
                Ok(()) => self.skipped = 0,
                Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        let mut bytes = std::mem::take(&mut self.kept);
        bytes.append(&mut self.data);
        match tx.try_send(Message::Blocks(bytes)) {
            Ok(()) => self.data_records = 0,
            Err(TrySendError::Full(Message::Blocks(mut bytes))) => {
                self.skipped += self.data_records;
                self.data_records = 0;
                if bytes.len() <= MAX_KEPT_BYTES {
                    // Only the records other than data: re-filed from the joined bytes.
                    let mut again = Batch::default();
                    let mut splitter = BlockSplitter::default();
                    let _ = splitter.push(&bytes, |b| again.add(b));
                    bytes = again.kept;
                    self.kept = bytes;
                }
            }
            Err(_) => return false,
        }
        true
    }
}

/// The reader thread: bytes to blocks to the channel, never waiting on the renderer.
fn read(mut source: File, tail: bool, stop: &AtomicBool, tx: &SyncSender<Message>) {
    let mut splitter = BlockSplitter::default();
    let mut batch = Batch::default();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        // Looked at before reading: once the recorder stopped, a read that finds nothing is the end.
        let stopping = stop.load(Ordering::SeqCst);
        let n = match source.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        if n > 0 {
            if splitter.push(&buf[..n], |b| batch.add(b)).is_err() {
                return;
            }
            // A short read: nothing more is waiting (the next read of a pipe would block).
            if n == buf.len() && batch.len() < BATCH_BYTES {
                continue;
            }
        }
        if batch.len() > 0 && !batch.send(tx) {
            return;
        }
        if n == 0 {
            // A pipe at end of file is done; a file may still grow until the recorder stops.
            if !tail || stopping {
                break;
            }
            std::thread::sleep(TAIL_POLL);
        }
    }
    while batch.len() > 0 || batch.skipped > 0 {
        if !batch.send(tx) {
            return;
        }
        std::thread::sleep(TAIL_POLL);
    }
}

/// The renderer thread.
fn render(rx: &Receiver<Message>, options: LiveOptions, now_ns: fn() -> u64) -> io::Result<()> {
    let mut view = LiveView::new(options);
    // Benchmarks (scripts/bench-live.sh): how late each part was printed, one line each (ns).
    let latency_log = std::env::var_os("SPLIFF_LIVE_LATENCY_LOG");
    if latency_log.is_some() {
        view.measure_latency();
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut last_tick = Instant::now();
    loop {
        match rx.recv_timeout(TICK) {
            Ok(Message::Blocks(bytes)) => {
                if let Err(e) = view.push(&bytes) {
                    eprintln!("spliff: warning: live view stopped: {e}");
                    return Ok(());
                }
            }
            Ok(Message::Skipped(n)) => writeln!(
                out,
                "! live view fell behind: {n} TLS data records not shown (a trace file, if any, \
                 has them)\n"
            )?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= TICK {
            view.tick(now_ns(), &mut out)?;
            last_tick = Instant::now();
            for w in view.take_warnings() {
                eprintln!("spliff: warning: {w}");
            }
        }
    }
    let latencies = view.take_latencies();
    view.finish(&mut out)?;
    if let Some(path) = latency_log {
        let text: String = latencies.iter().map(|l| format!("{l}\n")).collect();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("spliff: warning: cannot write SPLIFF_LIVE_LATENCY_LOG: {e}");
        }
    }
    out.flush()
}

/// A second reader of the trace file being written, from its start.
pub fn reopen(file: &File) -> anyhow::Result<File> {
    use std::os::fd::AsRawFd as _;
    File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .context("cannot open the trace file again for the live view (--live)")
}

/// The view's options from `record`'s flags.
pub fn options(args: &crate::cli::RecordArgs) -> LiveOptions {
    use std::io::IsTerminal as _;
    LiveOptions {
        text: args.view.text_options(io::stdout().is_terminal()),
        ..LiveOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A custom block holding a spliff record header of `kind` (enough for `classify`).
    fn record_block(kind: RecordKind) -> Vec<u8> {
        let len = 12 + 40 + 4;
        let mut b = Vec::new();
        b.extend_from_slice(&spliff_formats::CUSTOM_BLOCK_COPYABLE.to_le_bytes());
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(&32473u32.to_le_bytes());
        b.extend_from_slice(b"SPLF");
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&(kind as u16).to_le_bytes());
        b.resize(len - 4, 0);
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b
    }

    #[test]
    fn a_full_channel_drops_data_records_and_keeps_the_others() {
        let (tx, rx) = sync_channel(1);
        tx.send(Message::Skipped(0)).unwrap();
        let mut batch = Batch::default();
        let connection = record_block(RecordKind::Connection);
        batch.add(&connection);
        batch.add(&record_block(RecordKind::TlsData));
        batch.add(&record_block(RecordKind::TlsData));
        assert!(batch.send(&tx), "the view is still there");
        assert_eq!(batch.skipped, 2);
        assert_eq!(batch.kept, connection);
        assert!(batch.data.is_empty());
        // Room again: the count goes first, then the kept records.
        let _ = rx.recv().unwrap();
        let (tx2, rx2) = sync_channel(4);
        assert!(batch.send(&tx2));
        assert!(matches!(rx2.recv().unwrap(), Message::Skipped(2)));
        assert!(matches!(rx2.recv().unwrap(), Message::Blocks(b) if b == connection));
        assert_eq!(batch.skipped, 0);
    }
}
