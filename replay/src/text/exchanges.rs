//! The text view of exchanges, in the spirit of the original spliff: one block per exchange
//! (request line, headers, response line, headers, optionally the body), or one line each with
//! `compact`. Times are UTC so that the same trace prints the same bytes on every machine.

use std::io::{self, Write};

use crate::Protocol;
use crate::body::{DecodeOptions, decode_body};
use crate::exchange::{Exchange, Header, find_header};
use crate::filter::Filter;
use crate::lazy::LazyConnection;
use crate::pipeline::{
    Item, Replayed, ReplayedConnection, Sink, exchange_items, exchange_method, exchange_start_ns,
    exchange_url, next_exchange_item,
};
use crate::trace_input::ConnectionInfo;

/// How the text view looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// Print decoded bodies (`-b`).
    pub bodies: bool,
    /// Print bodies as a hex dump with the detected file type (`-x`).
    pub hexdump: bool,
    /// One line per exchange (`-c`).
    pub compact: bool,
    /// ANSI colours (the binary decides from `--color` and the terminal).
    pub color: bool,
}

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn status(&self, status: Option<u16>) -> String {
        let s = status.map_or_else(|| "---".to_string(), |s| s.to_string());
        let code = match status {
            Some(200..=299) => "32",
            Some(300..=399) => "36",
            Some(400..=599) => "31",
            _ => "33",
        };
        self.paint(code, &s)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `HH:MM:SS.uuuuuu` of a wall-clock instant (UTC).
pub(super) fn clock(unix_ns: u64) -> String {
    let day_ns = unix_ns % 86_400_000_000_000;
    let s = day_ns / 1_000_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        day_ns % 1_000_000_000 / 1000
    )
}

fn duration(ns: u64) -> String {
    match ns {
        0..=999_999 => format!("{:.1}us", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.3}s", ns as f64 / 1e9),
    }
}

pub(super) fn process(info: &ConnectionInfo) -> String {
    match &info.process {
        Some(p) => format!("{} ({})", p.comm, p.pid),
        None => format!("pid {}", info.pid),
    }
}

fn write_headers(out: &mut dyn Write, headers: &[Header]) -> io::Result<()> {
    for h in headers {
        // Borrowed unless a replacement character is needed: header blocks can be large.
        let name = String::from_utf8_lossy(&h.name);
        let value = String::from_utf8_lossy(&h.value);
        out.write_all(b"  ")?;
        out.write_all(name.as_bytes())?;
        out.write_all(b": ")?;
        out.write_all(value.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Writes one hex dump line per 16 bytes: offset, hex, ASCII.
pub(super) fn hexdump(out: &mut dyn Write, body: &[u8]) -> io::Result<()> {
    for (i, chunk) in body.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = chunk
            .iter()
            .map(|b| {
                if b.is_ascii_graphic() || *b == b' ' {
                    *b as char
                } else {
                    '.'
                }
            })
            .collect();
        writeln!(out, "{:08x}  {:<47}  {ascii}", i * 16, hex.join(" "))?;
    }
    Ok(())
}

fn write_body(
    out: &mut dyn Write,
    headers: &[Header],
    raw: &[u8],
    options: &TextOptions,
    decode: &DecodeOptions,
) -> io::Result<()> {
    if raw.is_empty() || !(options.bodies || options.hexdump) {
        return Ok(());
    }
    let (body, note) = match decode_body(headers, raw, decode) {
        Ok(b) => (b, String::new()),
        Err(e) => (raw.to_vec(), format!(", not decoded: {e}")),
    };
    let kind = infer::get(&body).map(|t| t.mime_type());
    match kind {
        Some(k) => writeln!(out, "─── Body ({} bytes, {k}{note}) ───", body.len())?,
        None => writeln!(out, "─── Body ({} bytes{note}) ───", body.len())?,
    }
    match std::str::from_utf8(&body) {
        Ok(s) if !options.hexdump => {
            out.write_all(s.as_bytes())?;
            if !s.ends_with('\n') {
                writeln!(out)?;
            }
        }
        _ => hexdump(out, &body)?,
    }
    writeln!(out, "────────────")
}

/// Writes the text view of `replayed`.
pub fn write_exchanges(
    replayed: &Replayed<'_>,
    options: &TextOptions,
    decode: &DecodeOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    for (info, ex, _) in replayed.exchanges() {
        write_exchange(info, ex, options, decode, out)?;
    }
    Ok(())
}

/// Writes the text view of one exchange.
fn write_exchange(
    info: &ConnectionInfo,
    ex: &Exchange,
    options: &TextOptions,
    decode: &DecodeOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    let style = Style { on: options.color };
    let wall = |ns: Option<u64>| {
        let ns = ns.unwrap_or_else(|| exchange_start_ns(ex, info));
        clock(info.clock.map_or(ns, |c| c.wall(ns)))
    };
    let method = exchange_method(ex);
    let url = exchange_url(ex, info);
    let alpn = info
        .alpn
        .as_deref()
        .map(|a| format!(" ALPN:{}", text(a)))
        .unwrap_or_default()
        + &info
            .unix_path
            .as_deref()
            .map(|p| format!(" unix:{p}"))
            .unwrap_or_default();
    let stream = ex
        .stream_id
        .map(|s| format!(" [stream {s}]"))
        .unwrap_or_default();
    let who = process(info);
    let t = &ex.timings;
    let latency = match (t.request_last_byte_ns, t.response_first_byte_ns) {
        (Some(a), Some(b)) if b >= a => format!(" [{}]", duration(b - a)),
        _ => String::new(),
    };
    let resp = ex.response.as_ref();
    let ctype = resp
        .and_then(|r| find_header(&r.headers, "content-type"))
        .map(|c| format!(" {}", text(c)))
        .unwrap_or_default();
    let size = resp.map_or(0, |r| r.body.len());
    let status = resp.and_then(|r| r.status);
    if options.compact {
        writeln!(
            out,
            "{} {} {url} {}{ctype} ({size} bytes){alpn} {who}{latency}{stream}",
            wall(t.request_first_byte_ns),
            style.paint("1", &method),
            style.status(status),
        )?;
    } else {
        writeln!(
            out,
            "{} {} {} {url}{alpn} {who}{stream}",
            wall(t.request_first_byte_ns),
            style.paint("34", "→"),
            style.paint("1", &method),
        )?;
        if ex.request.head_missing() {
            writeln!(
                out,
                "  (request not captured: sent before the capture or in lost bytes)"
            )?;
        }
        write_headers(out, &ex.request.headers)?;
        write_body(out, &ex.request.headers, &ex.request.body, options, decode)?;
        if !ex.request.trailers.is_empty() {
            writeln!(out, "  trailers:")?;
            write_headers(out, &ex.request.trailers)?;
        }
        writeln!(out)?;
        if let Some(r) = resp {
            writeln!(
                out,
                "{} {} {} {url}{alpn}{ctype} ({size} bytes) {who}{latency}{stream}",
                wall(t.response_first_byte_ns),
                style.paint("35", "←"),
                style.status(status),
            )?;
            write_headers(out, &r.headers)?;
            write_body(out, &r.headers, &r.body, options, decode)?;
            if !r.trailers.is_empty() {
                writeln!(out, "  trailers:")?;
                write_headers(out, &r.trailers)?;
            }
        }
    }
    for reason in &ex.incomplete {
        writeln!(out, "  {} {reason}", style.paint("33", "! incomplete:"))?;
    }
    for l in &ex.loss {
        writeln!(
            out,
            "  {} {} bytes of the {} at offset {}",
            style.paint("31", "! lost:"),
            l.len,
            l.side,
            l.offset
        )?;
    }
    if !options.compact {
        writeln!(out)?;
    }
    Ok(())
}

/// The text view as a streaming [`Sink`]: the same bytes as [`write_exchanges`] after
/// [`Filter::apply`].
#[derive(Debug, Default)]
pub struct TextSink {
    /// Exchanges to write.
    pub filter: Filter,
    /// How the view looks.
    pub options: TextOptions,
    /// Body decoding limits.
    pub decode: DecodeOptions,
}

impl TextSink {
    /// The text of one exchange, unless filtered out.
    fn exchange_item(&self, info: &ConnectionInfo, ex: &Exchange) -> io::Result<Option<Item>> {
        if !self.filter.keeps(info, ex) {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        write_exchange(info, ex, &self.options, &self.decode, &mut bytes)?;
        Ok(Some(Item {
            ts_ns: exchange_start_ns(ex, info),
            bytes,
        }))
    }
}

impl Sink for TextSink {
    type Context = ();
    type Cursor = ();

    fn context(&self, _index: usize, _info: &ConnectionInfo, _http: bool) {}

    fn render(
        &self,
        _index: usize,
        conn: &ReplayedConnection<'_>,
        _context: (),
    ) -> io::Result<Vec<Item>> {
        // A unix socket that is not HTTP is shown as data (filters select exchanges, so a
        // filtered view leaves it out).
        if conn.info.unix_path.is_some()
            && conn.result.detection.protocol == Protocol::Unknown
            && self.filter.is_empty()
        {
            return super::data_chunks::data_items(conn, &self.options);
        }
        exchange_items(conn, |info, _, ex| self.exchange_item(info, ex))
    }

    fn start(&self, _index: usize, _conn: &LazyConnection<'_>, _context: ()) {}

    fn next_item(&self, conn: &mut LazyConnection<'_>, _: &mut ()) -> Option<io::Result<Item>> {
        next_exchange_item(conn, |info, _, ex| self.exchange_item(info, ex))
    }

    fn floor(&self, conn: &LazyConnection<'_>, _: &()) -> u64 {
        conn.floor()
    }

    fn begin(&self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }

    fn end(&self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}
