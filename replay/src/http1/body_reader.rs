//! Reading HTTP/1 bodies of known length, or until close, across lost bytes.
//!
//! A hole inside a body whose length is known does not break message framing:
//! the next message still starts where the length says. So holes here only
//! record loss; only the chunked decoder can lose sync.

use crate::exchange::Header;
use crate::stream::DirectionStream;

/// Bodies are read into memory; never trust a declared length for the initial
/// allocation, only for how far to read.
pub(crate) const MAX_PREALLOC: u64 = 64 * 1024;

/// Why a body is not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyProblem {
    /// The captured stream ended first.
    Truncated { got: u64, expected: Option<u64> },
    /// Chunked framing broke (bad size line, or lost bytes inside framing);
    /// the caller must resync from [`BodyRead::end`].
    Framing(String),
}

/// A body as read from one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BodyRead {
    pub body: Vec<u8>,
    /// On a windowed stream, the body's captured ranges instead of bytes in `body`
    /// (see [`crate::exchange::InTrace`]).
    pub in_trace: Option<Vec<(u64, u64)>>,
    /// Offset just past the body on the wire (next message, or resync point).
    pub end: u64,
    /// Offset of the last captured byte belonging to the body.
    pub last_byte: Option<u64>,
    pub trailers: Vec<Header>,
    /// Lost ranges inside the body, as `(offset, len)`.
    pub losses: Vec<(u64, u64)>,
    pub problem: Option<BodyProblem>,
}

impl BodyRead {
    pub(crate) fn empty(at: u64) -> BodyRead {
        BodyRead {
            end: at,
            ..BodyRead::default()
        }
    }

    /// Body bytes read so far, wherever they are held.
    pub(crate) fn len(&self) -> u64 {
        match &self.in_trace {
            Some(ranges) => ranges.iter().fold(0, |n, r| n.saturating_add(r.1)),
            None => self.body.len() as u64,
        }
    }

    /// The body as the exchange keeps it: bytes, or ranges of the trace.
    pub(crate) fn take(&mut self) -> (Vec<u8>, Option<crate::exchange::InTrace>) {
        let ranges = self.in_trace.take();
        (
            std::mem::take(&mut self.body),
            ranges.map(|ranges| crate::exchange::InTrace { ranges }),
        )
    }

    pub(crate) fn with_capacity(at: u64, declared: u64) -> BodyRead {
        BodyRead {
            body: Vec::with_capacity(declared.min(MAX_PREALLOC) as usize),
            end: at,
            ..BodyRead::default()
        }
    }
}

/// Appends `[at, at + len)` to `out.body`, stepping over holes (recorded as loss).
/// Returns the offset reached; less than `at + len` only when the stream ended.
///
/// On a windowed stream the bytes are not read: their ranges go to `out.in_trace`, so that a
/// body of any size neither widens the window nor is copied (sinks read it from the trace).
pub(crate) fn read_span(stream: &DirectionStream, at: u64, len: u64, out: &mut BodyRead) -> u64 {
    if stream.is_windowed() {
        return skip_span(stream, at, len, out);
    }
    let target = at.saturating_add(len);
    let mut at = at;
    while at < target {
        let bytes = stream.contiguous(at);
        if !bytes.is_empty() {
            let take = (bytes.len() as u64).min(target - at);
            out.body.extend_from_slice(&bytes[..take as usize]);
            at += take;
            out.last_byte = Some(at - 1);
            continue;
        }
        match stream.hole_at(at) {
            Some(hole) => {
                let to = hole.end().min(target);
                out.losses.push((at, to - at));
                at = to;
            }
            None => break,
        }
    }
    at
}

/// [`read_span`] on a windowed stream: the captured ranges of `[at, at + len)` from the runs'
/// extents, the holes between them as loss, and no byte read.
fn skip_span(stream: &DirectionStream, at: u64, len: u64, out: &mut BodyRead) -> u64 {
    let target = at.saturating_add(len);
    let ranges = out.in_trace.get_or_insert_with(Vec::new);
    let mut reached = at;
    for (offset, n) in stream.captured_ranges(at, target) {
        if offset > reached {
            // Between two captured ranges (or before the first): lost, as `read_span` sees it.
            out.losses.push((reached, offset - reached));
        }
        match ranges.last_mut() {
            Some(last) if last.0.saturating_add(last.1) == offset => {
                last.1 = last.1.saturating_add(n);
            }
            _ => ranges.push((offset, n)),
        }
        reached = offset.saturating_add(n);
        if n > 0 {
            out.last_byte = Some(reached - 1);
        }
    }
    // A hole after the last captured range, up to where the stream's known bytes end.
    let known_end = stream.end().min(target);
    if known_end > reached {
        out.losses.push((reached, known_end - reached));
        reached = known_end;
    }
    stream.skip_body(at, reached);
    reached
}

/// A body of exactly `len` bytes starting at `at`.
pub(crate) fn read_fixed(stream: &DirectionStream, at: u64, len: u64) -> BodyRead {
    let mut out = BodyRead::with_capacity(at, len);
    let reached = read_span(stream, at, len, &mut out);
    out.end = reached;
    if reached - at < len {
        out.problem = Some(BodyProblem::Truncated {
            got: reached - at,
            expected: Some(len),
        });
    }
    out
}

/// A body that runs to the end of the captured stream.
pub(crate) fn read_until_close(stream: &DirectionStream, at: u64) -> BodyRead {
    let len = stream.end().saturating_sub(at);
    let mut out = BodyRead::with_capacity(at, len);
    out.end = read_span(stream, at, len, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Piece;

    fn stream(pieces: Vec<Piece<'static>>) -> DirectionStream<'static> {
        DirectionStream::from_pieces(pieces)
    }

    #[test]
    fn fixed_body_spans_a_hole_and_keeps_framing() {
        let s = stream(vec![
            Piece::Data {
                offset: 0,
                ts_ns: 1,
                bytes: b"0123"[..].into(),
            },
            Piece::Gap {
                offset: 4,
                len: 3,
                ts_ns: 2,
                reason: "lost".into(),
            },
            Piece::Data {
                offset: 7,
                ts_ns: 3,
                bytes: b"789NEXT"[..].into(),
            },
        ]);
        let b = read_fixed(&s, 0, 10);
        assert_eq!(b.body, b"0123789");
        assert_eq!(b.end, 10);
        assert_eq!(b.losses, vec![(4, 3)]);
        assert_eq!(b.problem, None);
        assert_eq!(b.last_byte, Some(9));
    }

    #[test]
    fn fixed_body_truncated_at_capture_end() {
        let s = stream(vec![Piece::Data {
            offset: 0,
            ts_ns: 1,
            bytes: b"abc"[..].into(),
        }]);
        let b = read_fixed(&s, 1, u64::MAX);
        assert_eq!(b.body, b"bc");
        assert_eq!(
            b.problem,
            Some(BodyProblem::Truncated {
                got: 2,
                expected: Some(u64::MAX)
            })
        );
        assert!(b.body.capacity() <= MAX_PREALLOC as usize);
    }
}
