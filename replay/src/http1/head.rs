//! Request and status lines plus header fields, parsed with httparse.

use crate::exchange::{Header, HttpVersion};

/// httparse needs a caller-sized header array; start small and grow only when a
/// message really has more fields, up to a limit no sane peer reaches.
const HEADER_CAPACITIES: [usize; 3] = [64, 512, 4096];

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub method: Vec<u8>,
    pub target: Vec<u8>,
    pub version: HttpVersion,
    pub headers: Vec<Header>,
    /// Bytes from the start of the buffer through the empty line.
    pub len: usize,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub version: HttpVersion,
    pub status: u16,
    pub reason: Vec<u8>,
    pub headers: Vec<Header>,
    pub len: usize,
}

/// Outcome of parsing a head from the bytes available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadParse<T> {
    Complete(T),
    /// Valid so far, but the empty line that ends the head is not in the buffer.
    Partial,
    /// Not a valid head; the string says why.
    Invalid(String),
}

fn config() -> httparse::ParserConfig {
    // Browsers accept these deviations in responses, and so must a replay of what
    // a browser saw; none of them loses or invents bytes.
    let mut c = httparse::ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true);
    c
}

/// Any token is a valid method to httparse, but every real method is upper
/// case; accepting `^GET` or `xGET` would glue garbage onto the next request.
fn plausible_method(method: &str) -> bool {
    method
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_uppercase)
        && method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn version(minor: Option<u8>) -> HttpVersion {
    match minor {
        Some(0) => HttpVersion::Http10,
        _ => HttpVersion::Http11,
    }
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<Header> {
    headers
        .iter()
        .map(|h| Header::new(h.name.as_bytes(), h.value))
        .collect()
}

/// Parses a request head at the start of `buf`.
pub(crate) fn parse_request_head(buf: &[u8]) -> HeadParse<RequestHead> {
    let cfg = config();
    for (i, &cap) in HEADER_CAPACITIES.iter().enumerate() {
        let mut storage = vec![httparse::EMPTY_HEADER; cap];
        let mut req = httparse::Request::new(&mut storage);
        match cfg.parse_request(&mut req, buf) {
            Ok(httparse::Status::Complete(_))
                if !plausible_method(req.method.unwrap_or_default()) =>
            {
                return HeadParse::Invalid("implausible method".into());
            }
            Ok(httparse::Status::Complete(len)) => {
                return HeadParse::Complete(RequestHead {
                    method: req.method.unwrap_or_default().as_bytes().to_vec(),
                    target: req.path.unwrap_or_default().as_bytes().to_vec(),
                    version: version(req.version),
                    headers: owned_headers(req.headers),
                    len,
                });
            }
            Ok(httparse::Status::Partial) => return HeadParse::Partial,
            Err(httparse::Error::TooManyHeaders) if i + 1 < HEADER_CAPACITIES.len() => continue,
            Err(e) => return HeadParse::Invalid(e.to_string()),
        }
    }
    HeadParse::Invalid("too many headers".into())
}

/// Parses a response head at the start of `buf`.
pub(crate) fn parse_response_head(buf: &[u8]) -> HeadParse<ResponseHead> {
    let cfg = config();
    for (i, &cap) in HEADER_CAPACITIES.iter().enumerate() {
        let mut storage = vec![httparse::EMPTY_HEADER; cap];
        let mut resp = httparse::Response::new(&mut storage);
        match cfg.parse_response(&mut resp, buf) {
            Ok(httparse::Status::Complete(len)) => {
                return HeadParse::Complete(ResponseHead {
                    version: version(resp.version),
                    status: resp.code.unwrap_or_default(),
                    reason: raw_reason(buf),
                    headers: owned_headers(resp.headers),
                    len,
                });
            }
            Ok(httparse::Status::Partial) => return HeadParse::Partial,
            Err(httparse::Error::TooManyHeaders) if i + 1 < HEADER_CAPACITIES.len() => continue,
            Err(e) => return HeadParse::Invalid(e.to_string()),
        }
    }
    HeadParse::Invalid("too many headers".into())
}

/// The reason phrase as sent. httparse blanks phrases with obs-text, but those
/// bytes are what the server said, so they are taken from the status line itself.
fn raw_reason(buf: &[u8]) -> Vec<u8> {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let line = &buf[start..];
    let line_end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let mut line = &line[..line_end];
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    // "HTTP/1.1" SP+ "200" SP+ reason
    let mut parts = line.splitn(2, |&b| b == b' ');
    parts.next();
    let rest = trim_spaces(parts.next().unwrap_or_default());
    let after_code = rest.get(3..).unwrap_or_default();
    trim_spaces(after_code).to_vec()
}

fn trim_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_keeps_wire_order_and_length() {
        let buf = b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nhost: dup\r\n\r\nBODY";
        let HeadParse::Complete(h) = parse_request_head(buf) else {
            panic!("not complete")
        };
        assert_eq!(h.method, b"GET");
        assert_eq!(h.target, b"/a?b=c");
        assert_eq!(h.version, HttpVersion::Http11);
        assert_eq!(h.len, buf.len() - 4);
        let names: Vec<_> = h.headers.iter().map(|h| h.name.clone()).collect();
        assert_eq!(
            names,
            vec![b"Host".to_vec(), b"Accept".to_vec(), b"host".to_vec()]
        );
    }

    #[test]
    fn partial_and_invalid_are_distinguished() {
        assert_eq!(
            parse_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            HeadParse::Partial
        );
        assert!(matches!(
            parse_request_head(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
            HeadParse::Invalid(_)
        ));
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 2x0 OK\r\n\r\n"),
            HeadParse::Invalid(_)
        ));
    }

    #[test]
    fn response_reason_is_raw_and_many_headers_fit() {
        let mut buf = b"HTTP/1.0 404  Nicht gefunden \xe4\r\n".to_vec();
        for i in 0..300 {
            buf.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        let HeadParse::Complete(h) = parse_response_head(&buf) else {
            panic!("not complete")
        };
        assert_eq!(h.status, 404);
        assert_eq!(h.version, HttpVersion::Http10);
        assert_eq!(h.reason, b"Nicht gefunden \xe4");
        assert_eq!(h.headers.len(), 300);
    }

    #[test]
    fn status_line_without_reason() {
        let HeadParse::Complete(h) = parse_response_head(b"HTTP/1.1 204\r\n\r\n") else {
            panic!("not complete")
        };
        assert_eq!(h.status, 204);
        assert!(h.reason.is_empty());
    }
}
