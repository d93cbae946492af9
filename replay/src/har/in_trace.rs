//! HAR bodies left in the trace ([`InTrace`]): what the entry says of them (size, encoding)
//! from a first pass over the trace, and what to write in place of their text.
//!
//! The entry is then written with an empty placeholder text, and the body is written into it
//! from the trace when the entry is written ([`crate::pipeline::Item::deferred`]): the same
//! bytes as a body held in memory gives, with none of it held.

use std::borrow::Cow;

use crate::body::{DecodeOptions, content_codings, decode_content};
use crate::body_stream::{BodyForm, DeferredBody, is_utf8, scan};
use crate::exchange::{Header, InTrace};
use crate::lazy::LazyConnection;
use crate::stream::Side;

/// A body's `text` for the entry: its size, the text (a placeholder when `deferred` is set,
/// else the text itself), its encoding, and the bytes it holds on the wire.
pub(crate) struct BodyText<'a> {
    /// Decoded size.
    pub size: i64,
    /// Bytes as received (still content-encoded).
    pub wire: i64,
    /// The text, `None` when the decoded body is empty.
    pub text: Option<Cow<'a, str>>,
    /// `base64` when the text is base64.
    pub encoding: Option<&'static str>,
    /// What to write in place of `text` (`after` left empty for the caller).
    pub deferred: Option<DeferredBody>,
}

impl BodyText<'_> {
    fn empty(wire: u64) -> BodyText<'static> {
        BodyText {
            size: 0,
            wire: i64::try_from(wire).unwrap_or(i64::MAX),
            text: None,
            encoding: None,
            deferred: None,
        }
    }
}

/// A request body: written as it is, text when UTF-8, else base64.
pub(crate) fn request(conn: &LazyConnection<'_>, body: &InTrace) -> BodyText<'static> {
    raw(conn, Side::Request, body, 0)
}

/// The body as received: its length, and text when UTF-8, else base64.
fn raw(conn: &LazyConnection<'_>, side: Side, body: &InTrace, limit: u64) -> BodyText<'static> {
    let utf8 = is_utf8(conn.body_chunks(side, body));
    let coding = crate::ContentCoding::Identity;
    placeholder(side, body, coding, limit, body.len(), utf8, body.len())
}

fn placeholder(
    side: Side,
    body: &InTrace,
    coding: crate::ContentCoding,
    limit: u64,
    size: u64,
    utf8: bool,
    wire: u64,
) -> BodyText<'static> {
    if size == 0 {
        return BodyText::empty(wire);
    }
    let (form, encoding) = if utf8 {
        (BodyForm::JsonText, None)
    } else {
        (BodyForm::Base64, Some("base64"))
    };
    BodyText {
        size: i64::try_from(size).unwrap_or(i64::MAX),
        wire: i64::try_from(wire).unwrap_or(i64::MAX),
        text: Some(Cow::Borrowed("")),
        encoding,
        deferred: Some(DeferredBody {
            side,
            body: body.clone(),
            coding,
            limit,
            form,
            after: Vec::new(),
        }),
    }
}

/// A response body with its `Content-Encoding` undone (as [`crate::body::decode_body`] does);
/// when that fails, `incomplete` says why and the body is given as received.
pub(crate) fn response(
    conn: &LazyConnection<'_>,
    body: &InTrace,
    headers: &[Header],
    decode: &DecodeOptions,
    incomplete: &mut Vec<String>,
) -> BodyText<'static> {
    let wire = body.len();
    // An empty body decodes to an empty body whatever the codings (`decode_content`).
    if body.is_empty() {
        return BodyText::empty(wire);
    }
    let codings = content_codings(headers);
    let limit = decode.max_decoded_len;
    let result = match codings.as_slice() {
        [] => return raw(conn, Side::Response, body, limit),
        [coding] => scan(|| conn.body_chunks(Side::Response, body), coding, limit)
            .map(|s| (coding.clone(), s)),
        // Stacked codings are rare and small: undone in memory, stage by stage.
        _ => return stacked(conn, body, &codings, decode, incomplete),
    };
    match result {
        Ok((coding, s)) => placeholder(Side::Response, body, coding, limit, s.len, s.utf8, wire),
        Err(e) => {
            incomplete.push(not_decoded(&e));
            raw(conn, Side::Response, body, limit)
        }
    }
}

fn not_decoded(e: &crate::BodyError) -> String {
    format!("response body could not be decoded ({e}); content holds it as received")
}

/// Several codings: the body is copied out of the trace and decoded whole, as before.
fn stacked(
    conn: &LazyConnection<'_>,
    body: &InTrace,
    codings: &[crate::ContentCoding],
    decode: &DecodeOptions,
    incomplete: &mut Vec<String>,
) -> BodyText<'static> {
    let mut bytes = Vec::new();
    for piece in conn.body_chunks(Side::Response, body) {
        bytes.extend_from_slice(piece);
    }
    let wire = bytes.len() as u64;
    let decoded = match decode_content(codings, &bytes, decode) {
        Ok(d) => d,
        Err(e) => {
            incomplete.push(not_decoded(&e));
            bytes
        }
    };
    let size = i64::try_from(decoded.len()).unwrap_or(i64::MAX);
    if decoded.is_empty() {
        return BodyText::empty(wire);
    }
    let (text, encoding) = super::entry::owned_body_text(decoded);
    BodyText {
        size,
        wire: i64::try_from(wire).unwrap_or(i64::MAX),
        text: Some(text),
        encoding,
        deferred: None,
    }
}
