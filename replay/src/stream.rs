//! One direction of a connection's plaintext, reassembled from trace pieces.
//!
//! The recorder cuts plaintext wherever `SSL_read`/`SSL_write` returned, so a
//! piece boundary says nothing about message boundaries. Parsers therefore never
//! see pieces: they see maximal contiguous runs of bytes, the holes between them,
//! and can ask which timestamp carried any byte position.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Which direction of a connection some bytes travelled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// Client to server: requests.
    Request,
    /// Server to client: responses.
    Response,
}

impl Side {
    /// The other direction.
    pub fn opposite(self) -> Side {
        match self {
            Side::Request => Side::Response,
            Side::Response => Side::Request,
        }
    }

    /// Lower-case name used in human-readable reasons ("request", "response").
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Request => "request",
            Side::Response => "response",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record of a direction's plaintext, as the trace layer hands it over. Data borrows from
/// the trace (usually a memory map), so indexing a trace copies no plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes that were read or written at `ts_ns`.
    Data {
        /// Byte offset of `bytes[0]` within this direction's plaintext stream.
        offset: u64,
        /// Kernel monotonic time of the read/write that produced these bytes.
        ts_ns: u64,
        /// The plaintext; borrowed from the trace when it can be.
        bytes: Cow<'a, [u8]>,
    },
    /// Bytes the recorder knows it lost (a loss record).
    Gap {
        /// Byte offset of the first lost byte.
        offset: u64,
        /// Number of lost bytes.
        len: u64,
        /// When the loss was noticed.
        ts_ns: u64,
        /// Why the bytes were lost, as the recorder explains it.
        reason: String,
    },
}

/// A range of a direction's stream whose bytes are not in the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hole {
    /// Offset of the first missing byte.
    pub offset: u64,
    /// Number of missing bytes.
    pub len: u64,
    /// Timestamp of the loss record that covers the hole, if any.
    pub ts_ns: Option<u64>,
    /// The loss record's reason, or a note that no loss record explains the hole.
    pub reason: String,
    /// Whether a loss record (a [`Piece::Gap`]) covers at least part of the hole.
    pub recorded: bool,
}

impl Hole {
    /// Offset one past the last missing byte.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }
}

/// Bytes of a run: borrowed when one piece carried them all, copied only to join pieces.
/// A windowed stream keeps only `offset` and `len` here (`data` empty): its bytes are in
/// [`Window`].
#[derive(Debug, Clone)]
struct Run<'a> {
    offset: u64,
    len: u64,
    data: Cow<'a, [u8]>,
}

impl Run<'_> {
    fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// The bytes a windowed stream shows: the parts of its runs inside one offset range.
///
/// A large connection joined into runs would hold a copy of all its plaintext. A windowed
/// stream keeps the trace's pieces (borrowed) and joins only the range its reader works on
/// ([`DirectionStream::set_window`]). Readers are the unchanged parsers, which take the end of
/// [`DirectionStream::contiguous`] as the end of a run; so the stream notes every question
/// whose answer the window could have changed ([`DirectionStream::take_missed`]): bytes of a
/// run outside the window, or why bytes stop at the window's end. The caller then widens the
/// window and asks again; an answer given without a miss is the one the whole stream gives.
#[derive(Debug, Default)]
struct Window<'a> {
    /// The data pieces without overlaps, in offset order: what the runs are made of.
    pieces: Vec<(u64, Cow<'a, [u8]>)>,
    /// `[from, to)`: the range asked for.
    from: u64,
    to: u64,
    /// The captured bytes inside `[from, to)`, one segment per run, as `(offset, bytes)`.
    segments: Vec<(u64, Cow<'a, [u8]>)>,
    missed: std::sync::atomic::AtomicBool,
    /// `[from, to)` of the last body left in the trace ([`DirectionStream::skip_body`]);
    /// `from == to` when none since the last [`DirectionStream::take_skip`].
    skip_from: AtomicU64,
    skip_to: AtomicU64,
}

impl Clone for Window<'_> {
    fn clone(&self) -> Self {
        Window {
            pieces: self.pieces.clone(),
            from: self.from,
            to: self.to,
            segments: self.segments.clone(),
            missed: self.missed.load(Ordering::Relaxed).into(),
            skip_from: self.skip_from.load(Ordering::Relaxed).into(),
            skip_to: self.skip_to.load(Ordering::Relaxed).into(),
        }
    }
}

impl Window<'_> {
    fn miss(&self) {
        self.missed.store(true, Ordering::Relaxed);
    }

    /// The bytes of the piece holding `pos` from `pos` on (empty when none does).
    fn piece(&self, pos: u64) -> &[u8] {
        let k = self
            .pieces
            .partition_point(|p| p.0 + p.1.len() as u64 <= pos);
        match self.pieces.get(k) {
            Some((off, bytes)) if *off <= pos => &bytes[(pos - off) as usize..],
            _ => &[],
        }
    }

    /// The segment holding `pos`.
    fn segment(&self, pos: u64) -> Option<&[u8]> {
        let i = self
            .segments
            .partition_point(|s| s.0 <= pos)
            .checked_sub(1)?;
        let (off, bytes) = &self.segments[i];
        let rel = (pos - off) as usize;
        (rel < bytes.len()).then(|| &bytes[rel..])
    }
}

/// Where a piece began; every byte up to the next stamp carries its timestamp.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    offset: u64,
    ts_ns: u64,
}

/// A direction's plaintext as contiguous runs, holes between them, and per-byte
/// timestamps.
///
/// Bytes before the first piece are simply absent (the capture started
/// mid-connection), not a hole: [`DirectionStream::start`] tells where the view
/// begins. A hole is only reported between the first and last captured offset.
#[derive(Debug, Clone, Default)]
pub struct DirectionStream<'a> {
    runs: Vec<Run<'a>>,
    stamps: Vec<Stamp>,
    holes: Vec<Hole>,
    start: u64,
    end: u64,
    overlapped_bytes: u64,
    /// Set for a windowed stream ([`DirectionStream::windowed`]).
    window: Option<Box<Window<'a>>>,
}

impl<'a> DirectionStream<'a> {
    /// Assembles pieces into a stream.
    ///
    /// Pieces may come in any order. Where data pieces overlap, the piece with the
    /// lower offset (then the earlier one in the input) wins and the overlap is
    /// counted in [`DirectionStream::overlapped_bytes`]; data always wins over a
    /// loss record covering the same bytes.
    pub fn from_pieces<I: IntoIterator<Item = Piece<'a>>>(pieces: I) -> DirectionStream<'a> {
        Self::assemble(pieces, false)
    }

    /// Like [`DirectionStream::from_pieces`], but no bytes are joined: the stream shows the
    /// bytes of a window only ([`DirectionStream::set_window`]; at first 64 KiB), and
    /// notes when a reader needed more ([`DirectionStream::take_missed`]). For connections too
    /// large to copy whole.
    pub fn windowed<I: IntoIterator<Item = Piece<'a>>>(pieces: I) -> DirectionStream<'a> {
        let mut s = Self::assemble(pieces, true);
        // Enough for the protocol detection on the first bytes (`detect::START_LOOKAHEAD`).
        s.set_window(s.start, 64 << 10);
        s
    }

    fn assemble<I: IntoIterator<Item = Piece<'a>>>(
        pieces: I,
        windowed: bool,
    ) -> DirectionStream<'a> {
        let mut data: Vec<(u64, u64, Cow<'a, [u8]>)> = Vec::new();
        let mut gaps: Vec<(u64, u64, u64, String)> = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Data {
                    offset,
                    ts_ns,
                    mut bytes,
                } => {
                    // A piece running past u64::MAX cannot be addressed; keep what fits.
                    let room = u64::MAX - offset;
                    if (bytes.len() as u64) > room {
                        bytes = match bytes {
                            Cow::Borrowed(b) => Cow::Borrowed(&b[..room as usize]),
                            Cow::Owned(mut v) => {
                                v.truncate(room as usize);
                                Cow::Owned(v)
                            }
                        };
                    }
                    if !bytes.is_empty() {
                        data.push((offset, ts_ns, bytes));
                    }
                }
                Piece::Gap {
                    offset,
                    len,
                    ts_ns,
                    reason,
                } => {
                    let len = len.min(u64::MAX - offset);
                    if len > 0 {
                        gaps.push((offset, len, ts_ns, reason));
                    }
                }
            }
        }
        // Stable sorts keep the input order among equal offsets, so the result is
        // a pure function of the input.
        data.sort_by_key(|d| d.0);
        gaps.sort_by_key(|g| g.0);

        // Where the run each piece joins will end, so that a run joined from many records is
        // copied once into a buffer of its final size rather than regrown record by record.
        let mut run_end = vec![0u64; data.len()];
        let mut group = 0;
        let mut covered = 0u64;
        for (i, d) in data.iter().enumerate() {
            if i > 0 && d.0 > covered {
                run_end[group..i].fill(covered);
                group = i;
            }
            let end = d.0 + d.2.len() as u64;
            covered = if i == group { end } else { covered.max(end) };
        }
        run_end[group..].fill(covered);

        let mut stream = DirectionStream::default();
        if windowed {
            stream.window = Some(Box::default());
        }
        for ((offset, ts_ns, bytes), run_end) in data.into_iter().zip(run_end) {
            stream.place_data(offset, ts_ns, bytes, run_end);
        }

        let data_start = stream.runs.first().map(|r| r.offset);
        let data_end = stream.runs.last().map(|r| r.end());
        let gap_start = gaps.first().map(|g| g.0);
        let gap_end = gaps.iter().map(|g| g.0 + g.1).max();
        stream.start = match (data_start, gap_start) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(0),
        };
        stream.end = match (data_end, gap_end) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b).unwrap_or(0),
        };
        stream.holes = compute_holes(&stream.runs, &gaps, stream.start, stream.end);
        stream
    }

    fn place_data(&mut self, mut offset: u64, ts_ns: u64, bytes: Cow<'a, [u8]>, run_end: u64) {
        let mut skip = 0usize;
        if let Some(last) = self.runs.last() {
            let covered_to = last.end();
            if offset < covered_to {
                let overlap = (covered_to - offset).min(bytes.len() as u64);
                self.overlapped_bytes += overlap;
                skip = overlap as usize;
                offset += overlap;
                if skip == bytes.len() {
                    return;
                }
            }
        }
        if let Some(w) = self.window.as_mut() {
            let data = match bytes {
                Cow::Borrowed(b) => Cow::Borrowed(&b[skip..]),
                Cow::Owned(mut v) => {
                    v.drain(..skip);
                    Cow::Owned(v)
                }
            };
            let len = data.len() as u64;
            w.pieces.push((offset, data));
            match self.runs.last_mut() {
                Some(run) if run.end() == offset => run.len += len,
                _ => self.runs.push(Run {
                    offset,
                    len,
                    data: Cow::Borrowed(&[]),
                }),
            }
        } else {
            self.place_joined(offset, skip, bytes, run_end);
        }
        // Consecutive pieces of one write share a timestamp; one stamp suffices.
        if self.stamps.last().map(|s| s.ts_ns) != Some(ts_ns) || self.starts_run(offset) {
            self.stamps.push(Stamp { offset, ts_ns });
        }
    }

    fn place_joined(&mut self, offset: u64, skip: usize, bytes: Cow<'a, [u8]>, run_end: u64) {
        match self.runs.last_mut() {
            Some(run) if run.end() == offset => {
                run.len += (bytes.len() - skip) as u64;
                if let Cow::Borrowed(first) = run.data {
                    let mut joined = Vec::with_capacity((run_end - run.offset) as usize);
                    joined.extend_from_slice(first);
                    run.data = Cow::Owned(joined);
                }
                run.data.to_mut().extend_from_slice(&bytes[skip..]);
            }
            _ => {
                let data = match bytes {
                    Cow::Borrowed(b) => Cow::Borrowed(&b[skip..]),
                    Cow::Owned(mut v) => {
                        v.drain(..skip);
                        Cow::Owned(v)
                    }
                };
                self.runs.push(Run {
                    offset,
                    len: data.len() as u64,
                    data,
                });
            }
        }
    }

    /// Whether the stream is windowed ([`DirectionStream::windowed`]).
    pub fn is_windowed(&self) -> bool {
        self.window.is_some()
    }

    /// Shows the captured bytes of `[pos, pos + len)` (a windowed stream; no effect on
    /// another). Bytes of a piece that lies wholly inside are borrowed, others copied.
    pub fn set_window(&mut self, pos: u64, len: u64) {
        let Some(w) = self.window.as_mut() else {
            return;
        };
        let to = pos.saturating_add(len);
        if w.from <= pos && to <= w.to && !w.segments.is_empty() {
            return;
        }
        w.from = pos;
        w.to = to;
        w.segments.clear();
        let first = self.runs.partition_point(|r| r.end() <= pos);
        for run in self.runs[first..].iter().take_while(|r| r.offset < to) {
            let a = run.offset.max(pos);
            let b = run.end().min(to);
            let mut k = w.pieces.partition_point(|p| p.0 + p.1.len() as u64 <= a);
            let (p0, b0) = &w.pieces[k];
            let seg: Cow<'a, [u8]> = if p0 + b0.len() as u64 >= b {
                match b0 {
                    Cow::Borrowed(x) => Cow::Borrowed(&x[(a - p0) as usize..(b - p0) as usize]),
                    Cow::Owned(x) => Cow::Owned(x[(a - p0) as usize..(b - p0) as usize].to_vec()),
                }
            } else {
                let mut v = Vec::with_capacity((b - a) as usize);
                while let Some((po, pb)) = w.pieces.get(k).filter(|p| p.0 < b) {
                    let from = a.max(*po) - po;
                    let until = b.min(po + pb.len() as u64) - po;
                    v.extend_from_slice(&pb[from as usize..until as usize]);
                    k += 1;
                }
                Cow::Owned(v)
            };
            w.segments.push((a, seg));
        }
    }

    /// Whether a reader asked, since the last call, for something the window could have
    /// changed the answer to (see [`Window`]); clears the note.
    pub fn take_missed(&self) -> bool {
        self.window
            .as_ref()
            .is_some_and(|w| w.missed.swap(false, Ordering::Relaxed))
    }

    /// Where the window cuts a run short: the end of its bytes when a run goes on beyond it.
    pub fn window_cut(&self) -> Option<u64> {
        let w = self.window.as_ref()?;
        let i = self.run_index(w.to.checked_sub(1)?)?;
        (self.runs[i].end() > w.to).then_some(w.to)
    }

    /// The range the window was last set to, `[from, to)`.
    pub fn window_range(&self) -> Option<(u64, u64)> {
        self.window.as_ref().map(|w| (w.from, w.to))
    }

    /// Bytes held by the window (what a windowed stream copies or borrows at the moment).
    pub fn window_len(&self) -> u64 {
        self.window
            .as_ref()
            .map_or(0, |w| w.segments.iter().map(|s| s.1.len() as u64).sum())
    }

    /// The contiguous runs as `(offset, len)`, in offset order: like
    /// [`DirectionStream::runs`] without the bytes.
    pub fn spans(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs.iter().map(|r| (r.offset, r.len))
    }

    fn starts_run(&self, offset: u64) -> bool {
        self.runs.last().is_some_and(|r| r.offset == offset)
    }

    /// Offset of the first byte the trace knows anything about (data or loss).
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Offset one past the last byte the trace knows anything about.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Whether the trace has no data at all for this direction.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Number of captured bytes (holes excluded).
    pub fn data_len(&self) -> u64 {
        self.runs.iter().map(|r| r.len).sum()
    }

    /// Bytes that arrived twice (overlapping pieces) and were dropped.
    pub fn overlapped_bytes(&self) -> u64 {
        self.overlapped_bytes
    }

    /// The contiguous runs of captured bytes, in offset order, as `(offset, bytes)`.
    ///
    /// A windowed stream gives what its window holds of each run (a miss when that is not
    /// the whole run).
    pub fn runs(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.runs.iter().map(|r| match &self.window {
            None => (r.offset, &r.data[..]),
            Some(w) => {
                let bytes = w.segment(r.offset).unwrap_or(&[]);
                if (bytes.len() as u64) < r.len {
                    w.miss();
                }
                (r.offset, &bytes[..bytes.len().min(r.len as usize)])
            }
        })
    }

    /// Every hole between [`DirectionStream::start`] and [`DirectionStream::end`],
    /// in offset order.
    pub fn holes(&self) -> &[Hole] {
        &self.holes
    }

    /// Holes that overlap `[from, to)`.
    pub fn holes_between(&self, from: u64, to: u64) -> impl Iterator<Item = &Hole> + '_ {
        self.holes
            .iter()
            .filter(move |h| h.offset < to && h.end() > from)
    }

    /// The hole containing `pos`, if `pos` is missing.
    pub fn hole_at(&self, pos: u64) -> Option<&Hole> {
        // Asked inside a run outside the window: the caller met the window's edge.
        if let Some(w) = &self.window
            && self.run_index(pos).is_some()
            && w.segment(pos).is_none()
        {
            w.miss();
        }
        let i = self.holes.partition_point(|h| h.offset <= pos);
        let h = self.holes.get(i.checked_sub(1)?)?;
        (pos < h.end()).then_some(h)
    }

    fn run_index(&self, pos: u64) -> Option<usize> {
        let i = self
            .runs
            .partition_point(|r| r.offset <= pos)
            .checked_sub(1)?;
        (pos < self.runs[i].end()).then_some(i)
    }

    /// The captured bytes from `pos` up to the next hole or the end; empty when
    /// `pos` is not captured.
    pub fn contiguous(&self, pos: u64) -> &[u8] {
        match self.run_index(pos) {
            Some(i) => match &self.window {
                None => {
                    let run = &self.runs[i];
                    &run.data[(pos - run.offset) as usize..]
                }
                // Outside the window: the bytes of the piece at `pos`, so that a reader
                // still makes progress, and a miss, so that its result is not used.
                Some(w) => w.segment(pos).unwrap_or_else(|| {
                    w.miss();
                    w.piece(pos)
                }),
            },
            None => &[],
        }
    }

    /// Captured bytes `[from, to)` if they are all present, else `None`. (A windowed stream
    /// answers `None` for bytes beyond its window, and notes a miss.)
    pub fn slice(&self, from: u64, to: u64) -> Option<&[u8]> {
        let bytes = self.contiguous(from);
        let len = to.checked_sub(from)?;
        if (bytes.len() as u64) < len {
            return None;
        }
        Some(&bytes[..len as usize])
    }

    /// The captured parts of `[from, to)` as `(offset, len)`, in order, read from the runs'
    /// extents only: a windowed stream neither shows these bytes nor notes a miss for them.
    pub fn captured_ranges(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let first = self.runs.partition_point(|r| r.end() <= from);
        self.runs[first..]
            .iter()
            .take_while(move |r| r.offset < to)
            .map(move |r| {
                let a = r.offset.max(from);
                (a, r.end().min(to).saturating_sub(a))
            })
    }

    /// The bytes of `[offset, offset + len)` as the trace holds them (one slice per piece of a
    /// windowed stream, one per run otherwise), without joining or copying them; stops at the
    /// first byte that was not captured.
    pub fn chunks(&self, offset: u64, len: u64) -> impl Iterator<Item = &[u8]> + '_ {
        let end = offset.saturating_add(len);
        let mut pos = offset;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let bytes = match &self.window {
                Some(w) => w.piece(pos),
                None => match self.run_index(pos) {
                    Some(i) => {
                        let run = &self.runs[i];
                        run.data.get((pos - run.offset) as usize..).unwrap_or(&[])
                    }
                    None => &[],
                },
            };
            let take = bytes
                .len()
                .min(usize::try_from(end - pos).unwrap_or(usize::MAX));
            if take == 0 {
                return None;
            }
            pos += take as u64;
            Some(&bytes[..take])
        })
    }

    /// Notes that a reader stepped over `[from, to)` by its length without reading it (a body
    /// left in the trace), so that where it stopped reading is `from`, not `to`.
    pub fn skip_body(&self, from: u64, to: u64) {
        if let Some(w) = &self.window {
            w.skip_from.store(from, Ordering::Relaxed);
            w.skip_to.store(to, Ordering::Relaxed);
        }
    }

    /// The last range noted by [`DirectionStream::skip_body`] since the previous call.
    pub fn take_skip(&self) -> Option<(u64, u64)> {
        let w = self.window.as_ref()?;
        let from = w.skip_from.swap(0, Ordering::Relaxed);
        let to = w.skip_to.swap(0, Ordering::Relaxed);
        (from < to).then_some((from, to))
    }

    /// The first captured offset at or after `pos`.
    pub fn next_data(&self, pos: u64) -> Option<u64> {
        if self.run_index(pos).is_some() {
            return Some(pos);
        }
        let i = self.runs.partition_point(|r| r.offset <= pos);
        self.runs.get(i).map(|r| r.offset)
    }

    /// Where each timestamp starts, as `(offset, ts)` in offset order: every captured byte
    /// from one offset up to the next carries its timestamp.
    pub fn stamps(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.stamps.iter().map(|s| (s.offset, s.ts_ns))
    }

    /// Timestamp of the piece that carried the byte at `pos`; `None` when the byte
    /// was not captured.
    pub fn ts_at(&self, pos: u64) -> Option<u64> {
        self.run_index(pos)?;
        let i = self.stamps.partition_point(|s| s.offset <= pos);
        self.stamps.get(i.checked_sub(1)?).map(|s| s.ts_ns)
    }

    /// Timestamp of the first captured byte at or after `pos`, if any.
    pub fn ts_at_or_after(&self, pos: u64) -> Option<u64> {
        self.ts_at(self.next_data(pos)?)
    }

    /// Timestamp of the last captured byte before `pos`, if any.
    pub fn ts_before(&self, pos: u64) -> Option<u64> {
        let pos = pos.checked_sub(1)?;
        if let Some(ts) = self.ts_at(pos) {
            return Some(ts);
        }
        let i = self.runs.partition_point(|r| r.end() <= pos);
        let run = self.runs.get(i.checked_sub(1)?)?;
        self.ts_at(run.end() - 1)
    }
}

fn compute_holes(
    runs: &[Run<'_>],
    gaps: &[(u64, u64, u64, String)],
    start: u64,
    end: u64,
) -> Vec<Hole> {
    let mut uncovered: Vec<(u64, u64)> = Vec::new();
    let mut cursor = start;
    for run in runs {
        if run.offset > cursor {
            uncovered.push((cursor, run.offset));
        }
        cursor = cursor.max(run.end());
    }
    if end > cursor {
        uncovered.push((cursor, end));
    }
    uncovered
        .into_iter()
        .map(|(from, to)| {
            let record = gaps.iter().find(|g| g.0 < to && g.0 + g.1 > from);
            Hole {
                offset: from,
                len: to - from,
                ts_ns: record.map(|g| g.2),
                reason: record
                    .map(|g| g.3.clone())
                    .unwrap_or_else(|| "bytes missing without a loss record".to_string()),
                recorded: record.is_some(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(offset: u64, ts_ns: u64, bytes: &[u8]) -> Piece<'_> {
        Piece::Data {
            offset,
            ts_ns,
            bytes: bytes.into(),
        }
    }

    #[test]
    fn adjacent_pieces_form_one_run_with_per_piece_timestamps() {
        let s = DirectionStream::from_pieces([data(0, 10, b"abc"), data(3, 20, b"def")]);
        assert_eq!(s.runs().count(), 1);
        assert_eq!(s.contiguous(0), b"abcdef");
        assert_eq!(s.contiguous(4), b"ef");
        assert_eq!(s.ts_at(2), Some(10));
        assert_eq!(s.ts_at(3), Some(20));
        assert_eq!(s.ts_at(6), None);
        assert!(s.holes().is_empty());
    }

    #[test]
    fn gap_record_becomes_a_hole_with_its_reason() {
        let s = DirectionStream::from_pieces([
            data(0, 1, b"ab"),
            Piece::Gap {
                offset: 2,
                len: 3,
                ts_ns: 5,
                reason: "ring buffer full".into(),
            },
            data(5, 9, b"xyz"),
        ]);
        assert_eq!(s.holes().len(), 1);
        let h = &s.holes()[0];
        assert_eq!((h.offset, h.len, h.ts_ns), (2, 3, Some(5)));
        assert!(h.recorded);
        assert_eq!(h.reason, "ring buffer full");
        assert_eq!(s.contiguous(1), b"b");
        assert_eq!(s.next_data(2), Some(5));
        assert_eq!(s.hole_at(4).map(|h| h.offset), Some(2));
        assert_eq!(s.ts_before(5), Some(1));
        assert_eq!(s.slice(5, 8), Some(&b"xyz"[..]));
        assert_eq!(s.slice(0, 3), None);
    }

    #[test]
    fn unexplained_jump_is_an_unrecorded_hole_and_late_start_is_not() {
        let s = DirectionStream::from_pieces([data(100, 1, b"ab"), data(110, 2, b"cd")]);
        assert_eq!(s.start(), 100);
        assert_eq!(s.end(), 112);
        assert_eq!(s.holes().len(), 1);
        assert!(!s.holes()[0].recorded);
        assert_eq!((s.holes()[0].offset, s.holes()[0].len), (102, 8));
    }

    #[test]
    fn overlaps_and_disorder_are_resolved_deterministically() {
        let s = DirectionStream::from_pieces([
            data(4, 3, b"efgh"),
            data(0, 1, b"abcdef"),
            data(2, 2, b"XY"),
        ]);
        assert_eq!(s.contiguous(0), b"abcdefgh");
        assert_eq!(s.overlapped_bytes(), 4);
        assert_eq!(s.ts_at(5), Some(1));
        assert_eq!(s.ts_at(6), Some(3));
    }

    #[test]
    fn trailing_loss_extends_the_end() {
        let s = DirectionStream::from_pieces([
            data(0, 1, b"ab"),
            Piece::Gap {
                offset: 2,
                len: 10,
                ts_ns: 7,
                reason: "lost".into(),
            },
        ]);
        assert_eq!(s.end(), 12);
        assert_eq!(s.holes()[0].end(), 12);
    }

    #[test]
    fn extreme_offsets_do_not_overflow() {
        let s = DirectionStream::from_pieces([
            data(u64::MAX - 1, 1, b"abcdef"),
            Piece::Gap {
                offset: u64::MAX - 10,
                len: u64::MAX,
                ts_ns: 0,
                reason: String::new(),
            },
        ]);
        assert_eq!(s.contiguous(u64::MAX - 1), b"a");
        assert_eq!(s.end(), u64::MAX);
    }
}
