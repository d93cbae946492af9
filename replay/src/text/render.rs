//! Formatting pieces of the text view: colours, clock times, durations, headers, bodies.

use std::io::{self, Write};

use crate::body::{DecodeOptions, decode_body};
use crate::exchange::Header;
use crate::trace_input::ConnectionInfo;

use super::TextOptions;

pub(super) struct Style {
    pub(super) on: bool,
}

impl Style {
    pub(super) fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub(super) fn status(&self, status: Option<u16>) -> String {
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

pub(super) fn text(b: &[u8]) -> String {
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

pub(super) fn duration(ns: u64) -> String {
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

pub(super) fn write_headers(out: &mut dyn Write, headers: &[Header]) -> io::Result<()> {
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

pub(super) fn write_body(
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
