//! Finding the next plausible HTTP/1 message start after garbage or a capture
//! that began mid-message.
//!
//! The tests are deliberately stricter than httparse: a resync point is a guess,
//! and a guess inside a body is worse than skipping a few more bytes.

/// What kind of start line to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartLine {
    Request,
    Status,
}

/// Whether bytes at some position begin a start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plausible {
    Yes,
    No,
    /// Consistent so far, but the buffer ends before the line does.
    Incomplete,
}

const MAX_METHOD: usize = 24;
const MAX_TARGET: usize = 16 * 1024;
const MAX_REASON: usize = 1024;

fn version_at(buf: &[u8]) -> Plausible {
    const V: &[u8] = b"HTTP/1.";
    let n = buf.len().min(V.len() + 1);
    if buf[..n.min(V.len())] != V[..n.min(V.len())] {
        return Plausible::No;
    }
    match buf.get(V.len()) {
        None => Plausible::Incomplete,
        Some(b'0' | b'1') => Plausible::Yes,
        Some(_) => Plausible::No,
    }
}

fn line_end_at(buf: &[u8]) -> Plausible {
    match buf {
        [] | [b'\r'] => Plausible::Incomplete,
        [b'\n', ..] | [b'\r', b'\n', ..] => Plausible::Yes,
        _ => Plausible::No,
    }
}

/// `METHOD SP target SP HTTP/1.x CRLF`, with an upper-case method.
pub(crate) fn request_line(buf: &[u8]) -> Plausible {
    let method = buf
        .iter()
        .take(MAX_METHOD + 1)
        .take_while(|b| b.is_ascii_uppercase() || **b == b'-' || **b == b'_')
        .count();
    if method == 0 || method > MAX_METHOD {
        return Plausible::No;
    }
    let rest = &buf[method..];
    match rest.first() {
        None => return Plausible::Incomplete,
        Some(b' ') => {}
        Some(_) => return Plausible::No,
    }
    let rest = &rest[1..];
    let target = rest
        .iter()
        .take(MAX_TARGET + 1)
        .take_while(|b| b.is_ascii_graphic())
        .count();
    if target > MAX_TARGET {
        return Plausible::No;
    }
    match rest.get(target) {
        None => return Plausible::Incomplete,
        Some(b' ') if target > 0 => {}
        Some(_) => return Plausible::No,
    }
    let rest = &rest[target + 1..];
    match version_at(rest) {
        Plausible::Yes => line_end_at(&rest[8..]),
        other => other,
    }
}

/// `HTTP/1.x SP 3DIGIT [SP reason] CRLF`.
pub(crate) fn status_line(buf: &[u8]) -> Plausible {
    match version_at(buf) {
        Plausible::Yes => {}
        other => return other,
    }
    let rest = &buf[8..];
    match rest.first() {
        None => return Plausible::Incomplete,
        Some(b' ') => {}
        Some(_) => return Plausible::No,
    }
    let rest = &rest[1..];
    for i in 0..3 {
        match rest.get(i) {
            None => return Plausible::Incomplete,
            Some(b) if b.is_ascii_digit() => {}
            Some(_) => return Plausible::No,
        }
    }
    if rest[0] == b'0' {
        return Plausible::No;
    }
    let rest = &rest[3..];
    match rest.first() {
        None => Plausible::Incomplete,
        Some(b' ') => {
            let reason = rest[1..]
                .iter()
                .take(MAX_REASON + 1)
                .take_while(|&&b| b == b'\t' || b >= 0x20 && b != 0x7f)
                .count();
            if reason > MAX_REASON {
                return Plausible::No;
            }
            line_end_at(&rest[1 + reason..])
        }
        Some(_) => line_end_at(rest),
    }
}

/// Whether `buf` begins with a plausible start line of `kind`.
pub(crate) fn starts_message(buf: &[u8], kind: StartLine) -> Plausible {
    match kind {
        StartLine::Request => request_line(buf),
        StartLine::Status => status_line(buf),
    }
}

/// First position at or after `from` in `buf` where a start line of `kind`
/// plausibly begins. A line cut by the end of `buf` counts only when
/// `accept_incomplete` (the capture ends there, so it is the last message).
pub(crate) fn find_message_start(
    buf: &[u8],
    from: usize,
    kind: StartLine,
    accept_incomplete: bool,
) -> Option<usize> {
    // Both start lines begin with an upper-case letter; skipping everything else
    // keeps the scan linear in practice.
    (from..buf.len())
        .filter(|&i| buf[i].is_ascii_uppercase())
        .find(|&i| match starts_message(&buf[i..], kind) {
            Plausible::Yes => true,
            // A cut line must still show enough to be more than a coincidence.
            Plausible::Incomplete => accept_incomplete && buf.len() - i >= 8,
            Plausible::No => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(request_line(b"GET / HTTP/1.1\r\n"), Plausible::Yes);
        assert_eq!(request_line(b"M-SEARCH * HTTP/1.1\n"), Plausible::Yes);
        assert_eq!(request_line(b"GET / HTTP/1.1"), Plausible::Incomplete);
        assert_eq!(request_line(b"GET /"), Plausible::Incomplete);
        assert_eq!(request_line(b"get / HTTP/1.1\r\n"), Plausible::No);
        assert_eq!(request_line(b"GET  HTTP/1.1\r\n"), Plausible::No);
        assert_eq!(request_line(b"GET / HTTP/2.0\r\n"), Plausible::No);
        assert_eq!(request_line(b"GET / HTTP/1.1 \r\n"), Plausible::No);
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_line(b"HTTP/1.1 200 OK\r\n"), Plausible::Yes);
        assert_eq!(status_line(b"HTTP/1.0 204\r\n"), Plausible::Yes);
        assert_eq!(status_line(b"HTTP/1.1 20"), Plausible::Incomplete);
        assert_eq!(status_line(b"HTTP/1.1 2000\r\n"), Plausible::No);
        assert_eq!(status_line(b"HTTP/1.1 099 X\r\n"), Plausible::No);
        assert_eq!(status_line(b"HTTP/1.1 200 O\x01K\r\n"), Plausible::No);
    }

    #[test]
    fn finds_next_start_after_garbage() {
        let buf = b"ld\"}\r\n\r\nxx}GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            find_message_start(buf, 0, StartLine::Request, false),
            Some(11)
        );
        let buf = b"tail of body HTTP/1.1 200 OK\r\n";
        assert_eq!(
            find_message_start(buf, 0, StartLine::Status, false),
            Some(13)
        );
        assert_eq!(
            find_message_start(b"zzz GET / HT", 0, StartLine::Request, true),
            Some(4)
        );
        assert_eq!(
            find_message_start(b"zzz GET / HT", 0, StartLine::Request, false),
            None
        );
    }
}
