//! Content-Encoding decoding of reconstructed bodies, with a bomb cap.
//!
//! Exchanges keep bodies exactly as received (still content-encoded) so that
//! sizes and hashes stay faithful; sinks call into this module when they want
//! the representation a browser would show.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read};

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

use crate::exchange::{Header, Request, Response, find_headers};

/// Default cap on a decoded body: 256 MiB.
pub const DEFAULT_MAX_DECODED_LEN: u64 = 256 * 1024 * 1024;

/// zstd window limit (log2): RFC 8878 §3.1.1.1.2 lets HTTP decoders refuse
/// windows above 8 MiB, which keeps a hostile frame header from making the
/// decoder allocate 2 GiB.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Limits for [`decode_content`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Largest output any decoding stage may produce before giving up with
    /// [`BodyError::CapExceeded`].
    pub max_decoded_len: u64,
}

impl Default for DecodeOptions {
    fn default() -> DecodeOptions {
        DecodeOptions {
            max_decoded_len: DEFAULT_MAX_DECODED_LEN,
        }
    }
}

/// One content-coding token from a `Content-Encoding` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentCoding {
    /// `identity`: no transformation.
    Identity,
    /// `gzip` or `x-gzip`.
    Gzip,
    /// `deflate`: zlib by the spec, raw deflate in practice from some servers.
    Deflate,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
    /// Anything else, lower-cased as received.
    Other(String),
}

impl ContentCoding {
    /// Parses one token, case-insensitively, ignoring surrounding whitespace.
    pub fn parse(token: &[u8]) -> ContentCoding {
        let token = String::from_utf8_lossy(token).trim().to_ascii_lowercase();
        match token.as_str() {
            "" | "identity" => ContentCoding::Identity,
            "gzip" | "x-gzip" => ContentCoding::Gzip,
            "deflate" => ContentCoding::Deflate,
            "br" => ContentCoding::Brotli,
            "zstd" => ContentCoding::Zstd,
            _ => ContentCoding::Other(token),
        }
    }
}

impl fmt::Display for ContentCoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentCoding::Identity => f.write_str("identity"),
            ContentCoding::Gzip => f.write_str("gzip"),
            ContentCoding::Deflate => f.write_str("deflate"),
            ContentCoding::Brotli => f.write_str("br"),
            ContentCoding::Zstd => f.write_str("zstd"),
            ContentCoding::Other(s) => f.write_str(s),
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Decoding would produce more than the configured cap (a likely bomb).
    #[error("decoded body exceeds the cap of {limit} bytes while undoing {coding}")]
    CapExceeded {
        /// The cap that was hit.
        limit: u64,
        /// The stage that hit it.
        coding: ContentCoding,
    },
    /// A coding this crate does not implement (e.g. `compress`).
    #[error("unsupported content-coding {0}")]
    Unsupported(ContentCoding),
    /// The compressed data is malformed or truncated.
    #[error("corrupt or truncated {coding} data: {source}")]
    Corrupt {
        /// The stage that failed.
        coding: ContentCoding,
        /// The decompressor's error.
        #[source]
        source: io::Error,
    },
}

/// The content-codings listed by all `Content-Encoding` fields, in the order
/// they were applied by the sender; `identity` entries are dropped.
pub fn content_codings(headers: &[Header]) -> Vec<ContentCoding> {
    find_headers(headers, "content-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(ContentCoding::parse)
        .filter(|c| *c != ContentCoding::Identity)
        .collect()
}

/// Undoes `codings` (listed in the order the sender applied them) on `body`.
///
/// An empty body decodes to an empty body whatever the codings: HEAD and 304
/// responses carry the header without the data.
pub fn decode_content(
    codings: &[ContentCoding],
    body: &[u8],
    options: &DecodeOptions,
) -> Result<Vec<u8>, BodyError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let mut current: Option<Vec<u8>> = None;
    // The last coding listed was applied last, so it is undone first.
    for coding in codings.iter().rev() {
        let input = current.as_deref().unwrap_or(body);
        let decoded = decode_one(coding, input, options.max_decoded_len)?;
        current = Some(decoded);
    }
    Ok(current.unwrap_or_else(|| body.to_vec()))
}

/// [`decode_content`], borrowing `body` when there is nothing to undo (no coding, or only
/// `identity`): the common case, and bodies are the bulk of a replay.
pub fn decode_content_cow<'b>(
    codings: &[ContentCoding],
    body: &'b [u8],
    options: &DecodeOptions,
) -> Result<Cow<'b, [u8]>, BodyError> {
    if codings.iter().all(|c| *c == ContentCoding::Identity) {
        return Ok(Cow::Borrowed(body));
    }
    decode_content(codings, body, options).map(Cow::Owned)
}

/// [`decode_body`], borrowing `body` when there is nothing to undo.
pub fn decode_body_cow<'b>(
    headers: &[Header],
    body: &'b [u8],
    options: &DecodeOptions,
) -> Result<Cow<'b, [u8]>, BodyError> {
    decode_content_cow(&content_codings(headers), body, options)
}

/// Decodes `body` according to the `Content-Encoding` fields in `headers`.
pub fn decode_body(
    headers: &[Header],
    body: &[u8],
    options: &DecodeOptions,
) -> Result<Vec<u8>, BodyError> {
    decode_content(&content_codings(headers), body, options)
}

impl Request {
    /// The body with its `Content-Encoding` undone.
    pub fn decoded_body(&self, options: &DecodeOptions) -> Result<Vec<u8>, BodyError> {
        decode_body(&self.headers, &self.body, options)
    }
}

impl Response {
    /// The body with its `Content-Encoding` undone.
    pub fn decoded_body(&self, options: &DecodeOptions) -> Result<Vec<u8>, BodyError> {
        decode_body(&self.headers, &self.body, options)
    }
}

fn decode_one(coding: &ContentCoding, input: &[u8], limit: u64) -> Result<Vec<u8>, BodyError> {
    if *coding == ContentCoding::Identity {
        return Ok(input.to_vec());
    }
    let head = &input[..input.len().min(2)];
    read_capped(decoder(coding, input, head)?, limit, coding)
}

/// A reader undoing `coding` on `input`, whose first bytes (two at least, when it has them)
/// are `head`: the zlib and brotli checks look at them. `identity` reads `input` as it is.
pub(crate) fn decoder<'r>(
    coding: &ContentCoding,
    input: impl Read + 'r,
    head: &[u8],
) -> Result<Box<dyn Read + 'r>, BodyError> {
    let corrupt = |source| BodyError::Corrupt {
        coding: coding.clone(),
        source,
    };
    Ok(match coding {
        ContentCoding::Identity => Box::new(input),
        ContentCoding::Gzip => Box::new(MultiGzDecoder::new(input)),
        ContentCoding::Deflate if looks_like_zlib(head) => Box::new(ZlibDecoder::new(input)),
        ContentCoding::Deflate => Box::new(DeflateDecoder::new(input)),
        // RFC 7932 (HTTP's `br`) has windows of at most 16 MiB. The decoder also accepts the
        // non-standard "large window" variant (up to 1 GiB), whose ring buffer it allocates
        // up front: six hostile bytes made it reserve 256 MiB (fuzz finding, kept in
        // fixtures/fuzz/body/crashes). Its marker is the first byte's low 7 bits = 0x11.
        ContentCoding::Brotli if head.first().is_some_and(|b| b & 0x7f == 0x11) => {
            return Err(BodyError::Corrupt {
                coding: coding.clone(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "large-window brotli is not HTTP `br` (RFC 7932)",
                ),
            });
        }
        ContentCoding::Brotli => Box::new(brotli::Decompressor::new(input, 4096)),
        ContentCoding::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(input).map_err(corrupt)?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(corrupt)?;
            Box::new(decoder)
        }
        ContentCoding::Other(_) => return Err(BodyError::Unsupported(coding.clone())),
    })
}

/// RFC 1950 header check: CM=8, window ≤ 32K, and the FCHECK bits.
fn looks_like_zlib(input: &[u8]) -> bool {
    match input {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && ((u16::from(*cmf) << 8) | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Reads `reader` through `sink` in pieces of at most 64 KiB, failing as [`read_capped`] does
/// (a corrupt stream, or more than `limit` bytes) but holding only one piece; returns the
/// number of bytes read. `sink` errors (the output's) are returned as they are.
pub(crate) fn copy_capped(
    mut reader: impl Read,
    limit: u64,
    coding: &ContentCoding,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<io::Result<u64>, BodyError> {
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(Ok(total)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(BodyError::Corrupt {
                    coding: coding.clone(),
                    source,
                });
            }
        };
        total = total.saturating_add(n as u64);
        if total > limit {
            return Err(BodyError::CapExceeded {
                limit,
                coding: coding.clone(),
            });
        }
        if let Err(e) = sink(&buf[..n]) {
            return Ok(Err(e));
        }
    }
}

fn read_capped(
    reader: impl Read,
    limit: u64,
    coding: &ContentCoding,
) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|source| BodyError::Corrupt {
            coding: coding.clone(),
            source,
        })?;
    if out.len() as u64 > limit {
        return Err(BodyError::CapExceeded {
            limit,
            coding: coding.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn br(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).unwrap();
        }
        out
    }

    const TEXT: &[u8] = b"The quick brown fox jumps over the lazy dog. The quick brown fox.";

    fn opts() -> DecodeOptions {
        DecodeOptions::default()
    }

    #[test]
    fn each_coding_round_trips() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("gzip", gzip(TEXT)),
            ("x-gzip", gzip(TEXT)),
            ("deflate", zlib(TEXT)),
            ("deflate", raw_deflate(TEXT)),
            ("br", br(TEXT)),
            ("zstd", zstd::encode_all(TEXT, 3).unwrap()),
            ("identity", TEXT.to_vec()),
        ];
        for (name, encoded) in cases {
            let headers = vec![Header::new("Content-Encoding", name)];
            let decoded = decode_body(&headers, &encoded, &opts()).unwrap();
            assert_eq!(decoded, TEXT, "coding {name}");
        }
    }

    #[test]
    fn stacked_codings_are_undone_last_first() {
        // "gzip, br" means gzip was applied first, then br.
        let encoded = br(&gzip(TEXT));
        let headers = vec![Header::new("content-encoding", "gzip, br")];
        assert_eq!(
            content_codings(&headers),
            vec![ContentCoding::Gzip, ContentCoding::Brotli]
        );
        assert_eq!(decode_body(&headers, &encoded, &opts()).unwrap(), TEXT);
        // Split over two fields, same meaning.
        let headers = vec![
            Header::new("content-encoding", "gzip"),
            Header::new("Content-Encoding", "BR"),
        ];
        assert_eq!(decode_body(&headers, &encoded, &opts()).unwrap(), TEXT);
    }

    #[test]
    fn bomb_hits_the_cap_instead_of_allocating() {
        let bomb = gzip(&vec![0u8; 4 * 1024 * 1024]);
        assert!(bomb.len() < 10_000);
        let small = DecodeOptions {
            max_decoded_len: 1024 * 1024,
        };
        match decode_content(&[ContentCoding::Gzip], &bomb, &small) {
            Err(BodyError::CapExceeded { limit, coding }) => {
                assert_eq!(limit, 1024 * 1024);
                assert_eq!(coding, ContentCoding::Gzip);
            }
            other => panic!("expected cap hit, got {other:?}"),
        }
        // Exactly at the cap is still fine.
        let exact = DecodeOptions {
            max_decoded_len: 4 * 1024 * 1024,
        };
        assert_eq!(
            decode_content(&[ContentCoding::Gzip], &bomb, &exact)
                .unwrap()
                .len(),
            4 * 1024 * 1024
        );
    }

    #[test]
    fn corrupt_truncated_and_unknown_are_typed_errors() {
        let g = gzip(TEXT);
        let truncated = &g[..g.len() / 2];
        assert!(matches!(
            decode_content(&[ContentCoding::Gzip], truncated, &opts()),
            Err(BodyError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_content(&[ContentCoding::Brotli], b"\xff\xff\xff garbage", &opts()),
            Err(BodyError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_content(&[ContentCoding::Zstd], b"not zstd at all", &opts()),
            Err(BodyError::Corrupt { .. })
        ));
        let compress = ContentCoding::parse(b" Compress ");
        assert_eq!(compress, ContentCoding::Other("compress".into()));
        assert!(matches!(
            decode_content(&[compress], b"xx", &opts()),
            Err(BodyError::Unsupported(_))
        ));
    }

    #[test]
    fn response_helper_uses_its_own_headers() {
        let r = Response {
            headers: vec![Header::new("Content-Encoding", "gzip")],
            body: gzip(TEXT),
            ..Response::default()
        };
        assert_eq!(r.decoded_body(&opts()).unwrap(), TEXT);
    }

    #[test]
    fn empty_body_decodes_to_empty_even_with_codings() {
        assert_eq!(
            decode_content(&[ContentCoding::Gzip, ContentCoding::Zstd], b"", &opts()).unwrap(),
            b""
        );
    }
}
