//! Writes a HAR entry as JSON, byte for byte what `serde_json::to_vec` makes of the
//! [`model`](super::model) structs, but faster: bodies are most of a HAR file, and serde_json
//! escapes strings a byte at a time, which made it the largest cost of a replay. Here clean
//! runs are found eight bytes at a time and copied whole. A test holds the two writers equal.

use super::model::{Content, Entry, NameValue, PostData, Request, Response, Timings};

/// `0x01` in every byte.
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
/// `0x80` in every byte.
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// A mask with the high bit set in the bytes of `w` (little-endian order) that need escaping
/// in a JSON string (a control character, `"` or `\`). The lowest set bit is always a real
/// match; bits above it may not be (borrows), so only the first match is taken from it.
#[inline]
fn escape_mask(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    control | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')))
}

#[inline]
fn escape_of(b: u8) -> Option<u8> {
    match b {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        0x08 => Some(b'b'),
        0x09 => Some(b't'),
        0x0a => Some(b'n'),
        0x0c => Some(b'f'),
        0x0d => Some(b'r'),
        0..=0x1f => Some(b'u'),
        _ => None,
    }
}

fn push_escape(out: &mut Vec<u8>, b: u8, e: u8) {
    if e == b'u' {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', e]);
    }
}

/// Appends `s` as a JSON string literal, escaped as serde_json escapes it (`\"`, `\\`, the
/// short escapes for \b \t \n \f \r, `\u00xx` for other controls; nothing else).
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    escaped(out, s.as_bytes());
    out.push(b'"');
}

/// Appends the inside of a JSON string literal for `bytes` (UTF-8, possibly cut anywhere:
/// only ASCII bytes are ever escaped, so a character cut in two is escaped as it is whole).
pub(crate) fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len());
    let mut run_start = 0;
    let mut i = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let m = escape_mask(u64::from_le_bytes(word));
        if m == 0 {
            i += 8;
            continue;
        }
        let at = i + (m.trailing_zeros() / 8) as usize;
        let b = bytes[at];
        if let Some(e) = escape_of(b) {
            out.extend_from_slice(&bytes[run_start..at]);
            push_escape(out, b, e);
            run_start = at + 1;
        }
        i = at + 1;
    }
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(e) = escape_of(b) {
            out.extend_from_slice(&bytes[run_start..i]);
            push_escape(out, b, e);
            run_start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[run_start..]);
}

fn int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn float(out: &mut Vec<u8>, v: f64) {
    // Rare and short: serde_json itself keeps the formatting identical.
    let _ = serde_json::to_writer(&mut *out, &v);
}

/// A JSON object being written: keys are written with their separators.
struct Object<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Object<'o> {
    fn new(out: &'o mut Vec<u8>) -> Object<'o> {
        out.push(b'{');
        Object { out, first: true }
    }

    /// Starts member `name` (a plain ASCII key) and returns the buffer for its value.
    fn key(&mut self, name: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn str(&mut self, name: &str, v: &str) {
        string(self.key(name), v);
    }

    fn int(&mut self, name: &str, v: impl itoa::Integer) {
        int(self.key(name), v);
    }

    fn float(&mut self, name: &str, v: f64) {
        float(self.key(name), v);
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

fn array<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

fn pairs(out: &mut Vec<u8>, items: &[NameValue]) {
    array(out, items, |out, nv| {
        let mut o = Object::new(out);
        o.str("name", &nv.name);
        o.str("value", &nv.value);
        o.end();
    });
}

/// Writes string `text` as member `name`; when `deferred`, an empty one whose inside
/// (between the quotes) is noted in `marks` (see [`entry`]).
fn text(o: &mut Object<'_>, name: &str, text: &str, deferred: bool, marks: &mut Vec<usize>) {
    if deferred {
        let out = o.key(name);
        out.push(b'"');
        marks.push(out.len());
        out.push(b'"');
    } else {
        o.str(name, text);
    }
}

fn post_data(out: &mut Vec<u8>, p: &PostData<'_>, marks: &mut Vec<usize>) {
    let mut o = Object::new(out);
    o.str("mimeType", &p.mime_type);
    text(&mut o, "text", &p.text, p.deferred, marks);
    if let Some(e) = p.encoding {
        o.str("_encoding", e);
    }
    o.end();
}

fn request(out: &mut Vec<u8>, r: &Request<'_>, marks: &mut Vec<usize>) {
    let mut o = Object::new(out);
    o.str("method", &r.method);
    o.str("url", &r.url);
    o.str("httpVersion", &r.http_version);
    pairs(o.key("cookies"), &r.cookies);
    pairs(o.key("headers"), &r.headers);
    pairs(o.key("queryString"), &r.query_string);
    if let Some(p) = &r.post_data {
        post_data(o.key("postData"), p, marks);
    }
    o.int("headersSize", r.headers_size);
    o.int("bodySize", r.body_size);
    if !r.trailers.is_empty() {
        pairs(o.key("_trailers"), &r.trailers);
    }
    if let Some(c) = r.comment {
        o.str("comment", c);
    }
    o.end();
}

fn content(out: &mut Vec<u8>, c: &Content<'_>, marks: &mut Vec<usize>) {
    let mut o = Object::new(out);
    o.int("size", c.size);
    if let Some(v) = c.compression {
        o.int("compression", v);
    }
    o.str("mimeType", &c.mime_type);
    if let Some(t) = &c.text {
        text(&mut o, "text", t, c.deferred, marks);
    }
    if let Some(e) = c.encoding {
        o.str("encoding", e);
    }
    o.end();
}

fn response(out: &mut Vec<u8>, r: &Response<'_>, marks: &mut Vec<usize>) {
    let mut o = Object::new(out);
    o.int("status", r.status);
    o.str("statusText", &r.status_text);
    o.str("httpVersion", &r.http_version);
    pairs(o.key("cookies"), &r.cookies);
    pairs(o.key("headers"), &r.headers);
    content(o.key("content"), &r.content, marks);
    o.str("redirectURL", &r.redirect_url);
    o.int("headersSize", r.headers_size);
    o.int("bodySize", r.body_size);
    if !r.informational.is_empty() {
        array(o.key("_informational"), &r.informational, |out, i| {
            let mut o = Object::new(out);
            o.int("status", i.status);
            pairs(o.key("headers"), &i.headers);
            o.end();
        });
    }
    if !r.trailers.is_empty() {
        pairs(o.key("_trailers"), &r.trailers);
    }
    o.end();
}

fn timings(out: &mut Vec<u8>, t: &Timings) {
    let mut o = Object::new(out);
    o.float("blocked", t.blocked);
    o.float("dns", t.dns);
    o.float("connect", t.connect);
    o.float("send", t.send);
    o.float("wait", t.wait);
    o.float("receive", t.receive);
    o.float("ssl", t.ssl);
    o.end();
}

/// Roughly the JSON size of `e`: its bodies and headers plus room for the rest, so that the
/// buffer is allocated once.
pub(crate) fn size_hint(e: &Entry<'_>) -> usize {
    let pairs =
        |v: &[NameValue]| -> usize { v.iter().map(|p| p.name.len() + p.value.len() + 24).sum() };
    let req = &e.request;
    let resp = &e.response;
    let informational: usize = resp
        .informational
        .iter()
        .map(|i| pairs(&i.headers) + 64)
        .sum();
    2048 + informational
        + req.url.len() * 2
        + pairs(&req.headers)
        + pairs(&req.trailers)
        + pairs(&resp.trailers)
        + pairs(&req.cookies)
        + pairs(&req.query_string)
        + req.post_data.as_ref().map_or(0, |p| p.text.len())
        + pairs(&resp.headers)
        + pairs(&resp.cookies)
        + resp.content.text.as_ref().map_or(0, |t| t.len())
        + e.websocket_messages
            .iter()
            .map(|m| m.data.len() + 64)
            .sum::<usize>()
}

/// Appends `e` as compact JSON. Returns where the bodies left in the trace go (`deferred`
/// texts, request before response): offsets in `out` between the quotes of their placeholders.
pub(crate) fn entry(out: &mut Vec<u8>, e: &Entry<'_>) -> Vec<usize> {
    let mut marks = Vec::new();
    let mut o = Object::new(out);
    o.str("startedDateTime", &e.started_date_time);
    o.float("time", e.time);
    request(o.key("request"), &e.request, &mut marks);
    response(o.key("response"), &e.response, &mut marks);
    {
        let out = o.key("cache");
        if e.cache.is_empty() {
            out.extend_from_slice(b"{}");
        } else {
            let _ = serde_json::to_writer(&mut *out, &e.cache);
        }
    }
    timings(o.key("timings"), &e.timings);
    if let Some(ip) = &e.server_ip_address {
        o.str("serverIPAddress", ip);
    }
    o.str("connection", &e.connection);
    o.int("_pid", e.pid);
    if let Some(v) = &e.comm {
        o.str("_comm", v);
    }
    if let Some(v) = &e.exe {
        o.str("_exe", v);
    }
    o.str("_tlsLibrary", e.tls_library);
    if let Some(v) = &e.unix_socket {
        o.str("_unixSocket", v);
    }
    if let Some(v) = &e.alpn {
        o.str("_alpn", v);
    }
    if let Some(v) = &e.sni {
        o.str("_sni", v);
    }
    o.int("_connectionId", e.connection_id);
    o.str("_captureId", &e.capture_id);
    if let Some(v) = e.stream_id {
        o.int("_streamId", v);
    }
    if e.request_missing {
        o.key("_requestMissing").extend_from_slice(b"true");
    }
    if !e.incomplete.is_empty() {
        array(o.key("_incomplete"), &e.incomplete, |out, s| string(out, s));
    }
    if !e.loss.is_empty() {
        array(o.key("_loss"), &e.loss, |out, l| {
            let mut o = Object::new(out);
            o.str("side", l.side);
            o.int("offset", l.offset);
            o.int("length", l.length);
            o.end();
        });
    }
    if !e.websocket_messages.is_empty() {
        array(
            o.key("_webSocketMessages"),
            &e.websocket_messages,
            |out, m| {
                let mut o = Object::new(out);
                o.str("type", m.kind);
                o.float("time", m.time);
                o.int("opcode", m.opcode);
                o.str("data", &m.data);
                o.end();
            },
        );
    }
    o.end();
    marks
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        string(&mut out, s);
        out
    }

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "",
            "plain",
            "quote \" backslash \\ slash / del \u{7f}",
            "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} é ✓ 😀",
            "exactly8",
            "0123456\"",
            "\"0123456",
        ] {
            assert_eq!(ours(s), serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn any_string_escapes_like_serde_json(s in ".{0,80}", raw in proptest::collection::vec(0u8..0x80, 0..80)) {
            prop_assert_eq!(ours(&s), serde_json::to_vec(&s).unwrap());
            let ascii = String::from_utf8(raw).unwrap();
            prop_assert_eq!(ours(&ascii), serde_json::to_vec(&ascii).unwrap());
        }
    }
}
