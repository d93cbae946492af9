//! Bodies left in the trace ([`InTrace`]), read in pieces while they are written.
//!
//! A sink that writes such a body makes two passes over it, each holding one piece at a time:
//! [`scan`] learns what the whole-body code learns from the bytes in memory (the decoded
//! length, whether it is UTF-8, whether decoding fails), then [`write`] writes it, decoded
//! again on the way, as base64 or as a JSON string's contents. Both read the trace's pages
//! through the memory map, so anonymous memory stays a few buffers whatever the body's size.

use std::io::{self, Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::body::{BodyError, ContentCoding, copy_capped, decoder};
use crate::exchange::InTrace;

/// How a body is written: its bytes as they are, as base64, or as the contents of a JSON
/// string (escaped as [`crate::har`] escapes strings, without the quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyForm {
    /// The bytes as they are.
    Raw,
    /// Standard base64 with padding.
    Base64,
    /// Escaped for the inside of a JSON string (the body is UTF-8).
    JsonText,
}

/// A body an output item writes from the trace when the item is written (see
/// [`crate::pipeline::Item::deferred`]): which bytes, undoing which coding, in which form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredBody {
    /// The direction of the connection's plaintext the ranges are in.
    pub side: crate::Side,
    /// The body's ranges.
    pub body: InTrace,
    /// The content-coding to undo on the way (`Identity`: none).
    pub coding: ContentCoding,
    /// The cap on the decoded bytes ([`crate::DecodeOptions::max_decoded_len`]).
    pub limit: u64,
    /// How the (decoded) bytes are written.
    pub form: BodyForm,
    /// Bytes written after the body.
    pub after: Vec<u8>,
}

/// The pieces of a body as one [`Read`], without joining them.
struct Pieces<'p, I: Iterator<Item = &'p [u8]>> {
    rest: I,
    current: &'p [u8],
}

impl<'p, I: Iterator<Item = &'p [u8]>> Read for Pieces<'p, I> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rest.next() {
                Some(next) => self.current = next,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = &self.current[n..];
        Ok(n)
    }
}

/// The first two bytes of a body (fewer when it is shorter): what [`decoder`] checks.
fn head<'p>(pieces: impl Iterator<Item = &'p [u8]>) -> Vec<u8> {
    pieces.flatten().take(2).copied().collect()
}

/// Runs the (decoded) bytes of a body through `sink`, a piece at a time.
fn each<'p, I>(
    pieces: impl Fn() -> I,
    coding: &ContentCoding,
    limit: u64,
    sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<io::Result<u64>, BodyError>
where
    I: Iterator<Item = &'p [u8]>,
{
    let mut sink = sink;
    if *coding == ContentCoding::Identity {
        // Nothing to undo: the trace's pieces go to the sink as they are, uncopied.
        let mut total = 0u64;
        for piece in pieces() {
            total = total.saturating_add(piece.len() as u64);
            if let Err(e) = sink(piece) {
                return Ok(Err(e));
            }
        }
        return Ok(Ok(total));
    }
    let reader = Pieces {
        rest: pieces(),
        current: &[],
    };
    copy_capped(
        decoder(coding, reader, &head(pieces()))?,
        limit,
        coding,
        sink,
    )
}

/// What [`scan`] learns of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Decoded bytes.
    pub len: u64,
    /// Whether they are UTF-8.
    pub utf8: bool,
}

/// Whether the bytes of a body are UTF-8 (stops at the first invalid byte).
pub fn is_utf8<'p>(pieces: impl Iterator<Item = &'p [u8]>) -> bool {
    let mut utf8 = Utf8::default();
    for piece in pieces {
        utf8.feed(piece);
        if utf8.invalid {
            return false;
        }
    }
    utf8.finish()
}

/// Decodes a body (undoing `coding`, capped at `limit`) without keeping it: its length and
/// whether it is UTF-8, or why it could not be decoded.
pub fn scan<'p, I>(
    pieces: impl Fn() -> I,
    coding: &ContentCoding,
    limit: u64,
) -> Result<Scanned, BodyError>
where
    I: Iterator<Item = &'p [u8]>,
{
    let mut utf8 = Utf8::default();
    let len = each(pieces, coding, limit, |b| {
        utf8.feed(b);
        Ok(())
    })?
    .unwrap_or(0);
    Ok(Scanned {
        len,
        utf8: utf8.finish(),
    })
}

/// Writes a body (undoing `coding`) to `out` in `form`. A decoding failure is an error here:
/// [`scan`] said beforehand whether the body decodes.
pub fn write<'p, I>(
    pieces: impl Fn() -> I,
    coding: &ContentCoding,
    limit: u64,
    form: BodyForm,
    out: &mut dyn Write,
) -> io::Result<()>
where
    I: Iterator<Item = &'p [u8]>,
{
    let mut encoder = Encoder {
        form,
        carry: Vec::new(),
        buf: Vec::with_capacity(ENCODED_PIECE),
    };
    each(pieces, coding, limit, |b| encoder.feed(b, out)).map_err(io::Error::other)??;
    encoder.finish(out)
}

/// Room for one piece of output (64 KiB of input as base64 or escaped JSON, usually).
const ENCODED_PIECE: usize = 96 << 10;

/// Turns bytes into their written form, a piece at a time.
struct Encoder {
    form: BodyForm,
    /// Base64: the bytes of an unfinished 3-byte group.
    carry: Vec<u8>,
    buf: Vec<u8>,
}

impl Encoder {
    fn feed(&mut self, mut bytes: &[u8], out: &mut dyn Write) -> io::Result<()> {
        match self.form {
            BodyForm::Raw => out.write_all(bytes),
            BodyForm::JsonText => {
                self.buf.clear();
                crate::har::escape_json(&mut self.buf, bytes);
                out.write_all(&self.buf)
            }
            BodyForm::Base64 => {
                // Whole 3-byte groups only, so that no padding appears before the end.
                while !self.carry.is_empty() && self.carry.len() < 3 && !bytes.is_empty() {
                    self.carry.push(bytes[0]);
                    bytes = &bytes[1..];
                }
                if self.carry.len() == 3 {
                    self.base64(&self.carry.clone(), out)?;
                    self.carry.clear();
                }
                let whole = bytes.len() - bytes.len() % 3;
                self.base64(&bytes[..whole], out)?;
                self.carry.extend_from_slice(&bytes[whole..]);
                Ok(())
            }
        }
    }

    fn base64(&mut self, bytes: &[u8], out: &mut dyn Write) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.buf.resize(bytes.len().div_ceil(3) * 4, 0);
        let n = BASE64
            .encode_slice(bytes, &mut self.buf)
            .map_err(io::Error::other)?;
        out.write_all(&self.buf[..n])
    }

    fn finish(self, out: &mut dyn Write) -> io::Result<()> {
        if self.form == BodyForm::Base64 && !self.carry.is_empty() {
            out.write_all(BASE64.encode(&self.carry).as_bytes())?;
        }
        Ok(())
    }
}

/// UTF-8 validation of bytes that come in pieces (a character may be cut between two).
#[derive(Debug, Default)]
struct Utf8 {
    /// The start of a character cut at the end of the last piece.
    carry: Vec<u8>,
    invalid: bool,
}

impl Utf8 {
    fn feed(&mut self, mut bytes: &[u8]) {
        if self.invalid {
            return;
        }
        while !self.carry.is_empty() {
            let Some((&b, rest)) = bytes.split_first() else {
                return;
            };
            self.carry.push(b);
            bytes = rest;
            match std::str::from_utf8(&self.carry) {
                Ok(_) => self.carry.clear(),
                Err(e) if e.error_len().is_none() && self.carry.len() < 4 => {}
                Err(_) => {
                    self.invalid = true;
                    return;
                }
            }
        }
        if let Err(e) = std::str::from_utf8(bytes) {
            match e.error_len() {
                Some(_) => self.invalid = true,
                None => self.carry.extend_from_slice(&bytes[e.valid_up_to()..]),
            }
        }
    }

    fn finish(&self) -> bool {
        !self.invalid && self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces_of(data: &[u8], cut: usize) -> Vec<&[u8]> {
        data.chunks(cut.max(1)).collect()
    }

    #[test]
    fn utf8_is_checked_across_piece_boundaries() {
        let text = "héllo wörld — ✓ 𝄞".repeat(50);
        for cut in 1..9 {
            let mut u = Utf8::default();
            pieces_of(text.as_bytes(), cut)
                .iter()
                .for_each(|p| u.feed(p));
            assert!(u.finish(), "cut {cut}");
            let mut bad = text.as_bytes().to_vec();
            bad.truncate(bad.len() - 1);
            let mut u = Utf8::default();
            pieces_of(&bad, cut).iter().for_each(|p| u.feed(p));
            assert!(!u.finish(), "cut {cut}, cut short");
            let mut bad = text.as_bytes().to_vec();
            bad[7] = 0xff;
            let mut u = Utf8::default();
            pieces_of(&bad, cut).iter().for_each(|p| u.feed(p));
            assert!(!u.finish(), "cut {cut}, invalid byte");
        }
    }

    #[test]
    fn written_in_pieces_as_written_whole() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
        for cut in [1, 2, 3, 4, 5, 7, 64, 999, 1000] {
            let p = pieces_of(&data, cut);
            let mut out = Vec::new();
            write(
                || p.iter().copied(),
                &ContentCoding::Identity,
                0,
                BodyForm::Base64,
                &mut out,
            )
            .unwrap();
            assert_eq!(out, BASE64.encode(&data).as_bytes(), "cut {cut}");
            let s = scan(|| p.iter().copied(), &ContentCoding::Identity, 0).unwrap();
            assert_eq!(
                s,
                Scanned {
                    len: 1000,
                    utf8: false
                }
            );
        }
    }

    #[test]
    fn decoding_is_streamed_with_the_cap() {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&vec![b'a'; 300_000]).unwrap();
        let gz = e.finish().unwrap();
        let p = pieces_of(&gz, 100);
        let s = scan(|| p.iter().copied(), &ContentCoding::Gzip, 1 << 20).unwrap();
        assert_eq!(
            s,
            Scanned {
                len: 300_000,
                utf8: true
            }
        );
        assert!(matches!(
            scan(|| p.iter().copied(), &ContentCoding::Gzip, 1000),
            Err(BodyError::CapExceeded { limit: 1000, .. })
        ));
        let mut out = Vec::new();
        write(
            || p.iter().copied(),
            &ContentCoding::Gzip,
            1 << 20,
            BodyForm::JsonText,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, vec![b'a'; 300_000]);
    }
}
