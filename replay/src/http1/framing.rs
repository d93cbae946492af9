//! How long an HTTP/1 message body is (RFC 9112 §6.3), decided from the head.

use crate::exchange::{Header, find_headers};

/// How the body following a head is delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body at all.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the connection closes.
    UntilClose,
    /// The head makes the length undecidable; the string says why.
    Invalid(String),
}

/// Whether the transfer codings end with `chunked`, ignoring case and spaces.
fn te_is_chunked(headers: &[Header]) -> Option<bool> {
    let mut last: Option<Vec<u8>> = None;
    for value in find_headers(headers, "transfer-encoding") {
        for token in value.split(|&b| b == b',') {
            let token = token.trim_ascii();
            if !token.is_empty() {
                last = Some(token.to_ascii_lowercase());
            }
        }
    }
    last.map(|t| t == b"chunked")
}

/// The Content-Length, accepting repeated identical values ("10, 10") as RFC 9110
/// §8.6 allows; `Err` when values disagree or are not digits.
fn content_length(headers: &[Header]) -> Option<Result<u64, String>> {
    let mut found: Option<u64> = None;
    for value in find_headers(headers, "content-length") {
        for part in value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            let parsed = std::str::from_utf8(part)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok());
            let Some(n) = parsed else {
                return Some(Err(format!(
                    "invalid Content-Length {:?}",
                    String::from_utf8_lossy(value)
                )));
            };
            match found {
                Some(prev) if prev != n => {
                    return Some(Err(format!("conflicting Content-Length {prev} and {n}")));
                }
                _ => found = Some(n),
            }
        }
    }
    found.map(Ok)
}

/// Body framing of a request.
pub(crate) fn request_framing(headers: &[Header]) -> BodyFraming {
    match te_is_chunked(headers) {
        Some(true) => return BodyFraming::Chunked,
        // A server cannot find the end of such a request either (RFC 9112 §6.3 p4).
        Some(false) => {
            return BodyFraming::Invalid("request Transfer-Encoding is not chunked".into());
        }
        None => {}
    }
    match content_length(headers) {
        Some(Ok(0)) | None => BodyFraming::None,
        Some(Ok(n)) => BodyFraming::Length(n),
        Some(Err(e)) => BodyFraming::Invalid(e),
    }
}

/// Body framing of a response to a request with `request_method` (unknown when
/// the request was not captured).
pub(crate) fn response_framing(
    request_method: Option<&[u8]>,
    status: u16,
    headers: &[Header],
) -> BodyFraming {
    if request_method == Some(b"HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return BodyFraming::None;
    }
    match te_is_chunked(headers) {
        Some(true) => return BodyFraming::Chunked,
        Some(false) => return BodyFraming::UntilClose,
        None => {}
    }
    match content_length(headers) {
        Some(Ok(0)) => BodyFraming::None,
        Some(Ok(n)) => BodyFraming::Length(n),
        // A client recovers by reading until close; so do we.
        Some(Err(_)) | None => BodyFraming::UntilClose,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<Header> {
        pairs.iter().map(|(n, v)| Header::new(*n, *v)).collect()
    }

    #[test]
    fn request_rules() {
        assert_eq!(request_framing(&h(&[])), BodyFraming::None);
        assert_eq!(
            request_framing(&h(&[("Content-Length", "12")])),
            BodyFraming::Length(12)
        );
        assert_eq!(
            request_framing(&h(&[("Content-Length", "12, 12")])),
            BodyFraming::Length(12)
        );
        assert!(matches!(
            request_framing(&h(&[("Content-Length", "12"), ("content-length", "13")])),
            BodyFraming::Invalid(_)
        ));
        assert!(matches!(
            request_framing(&h(&[("Content-Length", "-1")])),
            BodyFraming::Invalid(_)
        ));
        // Transfer-Encoding wins over Content-Length.
        assert_eq!(
            request_framing(&h(&[
                ("Content-Length", "5"),
                ("Transfer-Encoding", "gzip, Chunked")
            ])),
            BodyFraming::Chunked
        );
    }

    #[test]
    fn response_rules() {
        let cl = h(&[("content-length", "10")]);
        assert_eq!(response_framing(Some(b"HEAD"), 200, &cl), BodyFraming::None);
        assert_eq!(response_framing(Some(b"GET"), 304, &cl), BodyFraming::None);
        assert_eq!(response_framing(Some(b"GET"), 204, &cl), BodyFraming::None);
        assert_eq!(response_framing(Some(b"GET"), 100, &cl), BodyFraming::None);
        assert_eq!(response_framing(None, 200, &cl), BodyFraming::Length(10));
        assert_eq!(response_framing(None, 200, &[]), BodyFraming::UntilClose);
        assert_eq!(
            response_framing(None, 200, &h(&[("transfer-encoding", "gzip")])),
            BodyFraming::UntilClose
        );
    }
}
