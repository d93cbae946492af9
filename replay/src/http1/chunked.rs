//! Chunked transfer coding (RFC 9112 §7.1).
//!
//! Hand-written rather than httparse's `parse_chunk_size`, because a replay has
//! to step over lost bytes inside chunk data (the size is known, so framing
//! survives) and must tell "framing broken here" apart from "capture ended".

use super::body_reader::{BodyProblem, BodyRead, read_span};
use crate::exchange::Header;
use crate::stream::DirectionStream;

/// Longest chunk-size line accepted (size, extensions, CRLF). Real extensions
/// are tiny; a longer "line" means we are not looking at chunk framing.
const MAX_SIZE_LINE: usize = 4096;

/// Most hex digits in a chunk size that still fit in a u64.
const MAX_SIZE_DIGITS: usize = 16;

enum Line<'a> {
    /// The line without its terminator, and the offset after the terminator.
    Complete(&'a [u8], u64),
    /// The captured run ended first: at a hole, or at the end of the capture.
    Cut,
    TooLong,
}

fn read_line<'s>(stream: &'s DirectionStream<'_>, at: u64) -> Line<'s> {
    let bytes = stream.contiguous(at);
    let window = &bytes[..bytes.len().min(MAX_SIZE_LINE)];
    match window.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let line = &window[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            Line::Complete(line, at + nl as u64 + 1)
        }
        None if window.len() == MAX_SIZE_LINE => Line::TooLong,
        None => Line::Cut,
    }
}

fn parse_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > MAX_SIZE_DIGITS {
        return None;
    }
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest.starts_with(b";")) {
        return None;
    }
    let text = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// The hole that cuts the run at `at` short, as `(offset, end)`; `None` when
/// the capture simply ends.
fn cut_by_hole(stream: &DirectionStream, at: u64) -> Option<(u64, u64)> {
    let run_end = at + stream.contiguous(at).len() as u64;
    stream.hole_at(run_end).map(|h| (run_end, h.end()))
}

/// Framing is lost in the hole `(offset, end)`: the hole is this body's loss,
/// and the caller resyncs after it.
fn lost_in_hole(out: &mut BodyRead, (offset, end): (u64, u64), what: &str) {
    out.losses.push((offset, end - offset));
    out.problem = Some(BodyProblem::Framing(format!(
        "{what} lost in missing bytes at offset {offset}"
    )));
    out.end = end;
}

/// Decodes a chunked body starting at `at`.
pub(crate) fn read_chunked(stream: &DirectionStream, start: u64) -> BodyRead {
    let mut out = BodyRead::with_capacity(start, 0);
    let mut at = start;
    let truncated = |out: &mut BodyRead, at: u64| {
        out.problem = Some(BodyProblem::Truncated {
            got: out.len(),
            expected: None,
        });
        out.end = stream.end().max(at);
    };
    loop {
        let (line, after_line) = match read_line(stream, at) {
            Line::Complete(line, next) => (line, next),
            Line::TooLong => {
                out.problem = Some(BodyProblem::Framing(format!(
                    "chunk-size line longer than {MAX_SIZE_LINE} bytes at offset {at}"
                )));
                out.end = at;
                return out;
            }
            Line::Cut => {
                match cut_by_hole(stream, at) {
                    Some(hole) => lost_in_hole(&mut out, hole, "chunk framing"),
                    None => truncated(&mut out, at),
                }
                return out;
            }
        };
        let Some(size) = parse_size(line) else {
            out.problem = Some(BodyProblem::Framing(format!(
                "invalid chunk-size line at offset {at}"
            )));
            out.end = at;
            return out;
        };
        out.last_byte = Some(after_line - 1);
        at = after_line;
        if size == 0 {
            return read_trailers(stream, at, out);
        }
        let reached = read_span(stream, at, size, &mut out);
        if reached < at.saturating_add(size) {
            truncated(&mut out, reached);
            return out;
        }
        at = reached;
        match read_line(stream, at) {
            Line::Complete([], next) => {
                out.last_byte = Some(next - 1);
                at = next;
            }
            Line::Complete(..) | Line::TooLong => {
                out.problem = Some(BodyProblem::Framing(format!(
                    "chunk data not followed by CRLF at offset {at}"
                )));
                out.end = at;
                return out;
            }
            Line::Cut => {
                match cut_by_hole(stream, at) {
                    Some(hole) => lost_in_hole(&mut out, hole, "chunk framing"),
                    None => truncated(&mut out, at),
                }
                return out;
            }
        }
    }
}

fn read_trailers(stream: &DirectionStream, at: u64, mut out: BodyRead) -> BodyRead {
    let bytes = stream.contiguous(at);
    // Most messages end with a bare CRLF: skip httparse for them.
    if bytes.starts_with(b"\r\n") || bytes.starts_with(b"\n") {
        let len = if bytes[0] == b'\r' { 2 } else { 1 };
        out.end = at + len;
        out.last_byte = Some(out.end - 1);
        return out;
    }
    let mut storage = vec![httparse::EMPTY_HEADER; 64];
    match httparse::parse_headers(bytes, &mut storage) {
        Ok(httparse::Status::Complete((len, headers))) => {
            out.trailers = headers
                .iter()
                .map(|h| Header::new(h.name.as_bytes(), h.value))
                .collect();
            out.end = at + len as u64;
            out.last_byte = Some(out.end - 1);
        }
        Ok(httparse::Status::Partial) => match cut_by_hole(stream, at) {
            Some(hole) => lost_in_hole(&mut out, hole, "chunked trailers"),
            None => {
                out.problem = Some(BodyProblem::Truncated {
                    got: out.len(),
                    expected: None,
                });
                out.end = stream.end().max(at);
            }
        },
        Err(e) => {
            out.problem = Some(BodyProblem::Framing(format!(
                "invalid chunked trailers at offset {at}: {e}"
            )));
            out.end = at;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Piece;

    fn one(bytes: &[u8]) -> DirectionStream<'_> {
        DirectionStream::from_pieces([Piece::Data {
            offset: 0,
            ts_ns: 0,
            bytes: bytes.into(),
        }])
    }

    #[test]
    fn chunks_extensions_and_trailers() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nGrpc-Status: 0\r\nX: y\r\n\r\nNEXT";
        let b = read_chunked(&one(wire), 0);
        assert_eq!(b.body, b"hello world");
        assert_eq!(b.problem, None);
        assert_eq!(b.end as usize, wire.len() - 4);
        assert_eq!(b.trailers.len(), 2);
        assert_eq!(b.trailers[0].value, b"0");
        assert_eq!(b.last_byte, Some(b.end - 1));
    }

    #[test]
    fn bare_lf_line_endings_are_tolerated() {
        let b = read_chunked(&one(b"3\nabc\n0\n\n"), 0);
        assert_eq!(b.body, b"abc");
        assert_eq!(b.problem, None);
        assert_eq!(b.end, 9);
    }

    #[test]
    fn bad_size_is_a_framing_error_at_that_line() {
        let b = read_chunked(&one(b"3\r\nabc\r\nzz\r\n"), 0);
        assert_eq!(b.body, b"abc");
        assert!(matches!(b.problem, Some(BodyProblem::Framing(_))));
        assert_eq!(b.end, 8);
        let b = read_chunked(&one(b"3\r\nabcX\r\n0\r\n\r\n"), 0);
        assert!(matches!(b.problem, Some(BodyProblem::Framing(_))));
    }

    #[test]
    fn truncation_and_huge_sizes() {
        let b = read_chunked(&one(b"ffffffffffffffff\r\nabc"), 0);
        assert_eq!(b.body, b"abc");
        assert!(matches!(b.problem, Some(BodyProblem::Truncated { .. })));
        let b = read_chunked(&one(b"1ffffffffffffffff\r\nabc"), 0);
        assert!(matches!(b.problem, Some(BodyProblem::Framing(_))));
        let b = read_chunked(&one(b"4\r\nab"), 0);
        assert!(matches!(b.problem, Some(BodyProblem::Truncated { .. })));
    }

    #[test]
    fn hole_in_chunk_data_is_loss_but_hole_in_size_line_breaks_framing() {
        let s = DirectionStream::from_pieces([
            Piece::Data {
                offset: 0,
                ts_ns: 0,
                bytes: b"8\r\nab"[..].into(),
            },
            Piece::Gap {
                offset: 5,
                len: 4,
                ts_ns: 1,
                reason: "lost".into(),
            },
            Piece::Data {
                offset: 9,
                ts_ns: 2,
                bytes: b"gh\r\n0\r\n\r\n"[..].into(),
            },
        ]);
        let b = read_chunked(&s, 0);
        assert_eq!(b.body, b"abgh");
        assert_eq!(b.losses, vec![(5, 4)]);
        assert_eq!(b.problem, None);

        let s = DirectionStream::from_pieces([
            Piece::Data {
                offset: 0,
                ts_ns: 0,
                bytes: b"2\r\nab\r\n1"[..].into(),
            },
            Piece::Gap {
                offset: 8,
                len: 4,
                ts_ns: 1,
                reason: "lost".into(),
            },
            Piece::Data {
                offset: 12,
                ts_ns: 2,
                bytes: b"GET / HTTP/1.1\r\n\r\n"[..].into(),
            },
        ]);
        let b = read_chunked(&s, 0);
        assert!(matches!(b.problem, Some(BodyProblem::Framing(_))));
        assert_eq!(b.end, 12);
    }
}
