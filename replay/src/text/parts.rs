//! The text view cut into parts, each ordered by a kernel time: a request (at its first
//! byte), its response (at the response's first byte, the URL repeated), what the capture could
//! not prove about an exchange (when its connection ended), a TLS handshake (`-H`, at its end),
//! or with `compact` one line per exchange (at its start).
//!
//! `replay` prints every part of a trace in time order; the live view prints the same parts as
//! the records that complete them arrive. So both show the same text for the same records.

use std::io::{self, Write};

use crate::body::DecodeOptions;
use crate::exchange::{Exchange, find_header};
use crate::pipeline::{exchange_method, exchange_start_ns, exchange_url};
use crate::trace_input::ConnectionInfo;

use super::TextOptions;
use super::render::{Style, clock, duration, process, text, write_body, write_headers};

/// What a part shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PartKind {
    /// A TLS handshake (`-H`).
    Handshake,
    /// A request head (and body with `-b`/`-x`).
    Request,
    /// A response head (and body with `-b`/`-x`).
    Response,
    /// One line for the whole exchange (`-c`).
    Compact,
    /// Incomplete or lost parts of an exchange, known once its connection ended.
    Notes,
}

/// One piece of the text view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Kernel time that orders it.
    pub ts_ns: u64,
    /// Order among the parts of its connection with the same time.
    pub seq: u64,
    /// The text.
    pub bytes: Vec<u8>,
}

/// Order of a part among its connection's parts of the same time: the handshake first, then
/// by exchange, request before response before notes.
pub fn part_seq(index: usize, kind: PartKind) -> u64 {
    let within = match kind {
        PartKind::Handshake => return 0,
        PartKind::Request | PartKind::Compact => 0,
        PartKind::Response => 1,
        PartKind::Notes => 2,
    };
    (index as u64 + 1) * 4 + within
}

fn wall(info: &ConnectionInfo, ns: u64) -> String {
    clock(info.clock.map_or(ns, |c| c.wall(ns)))
}

fn alpn(info: &ConnectionInfo) -> String {
    info.alpn
        .as_deref()
        .map(|a| format!(" ALPN:{}", text(a)))
        .unwrap_or_default()
        + &info
            .unix_path
            .as_deref()
            .map(|p| format!(" unix:{p}"))
            .unwrap_or_default()
}

fn stream(ex: &Exchange) -> String {
    ex.stream_id
        .map(|s| format!(" [stream {s}]"))
        .unwrap_or_default()
}

fn latency(ex: &Exchange) -> String {
    match (
        ex.timings.request_last_byte_ns,
        ex.timings.response_first_byte_ns,
    ) {
        (Some(a), Some(b)) if b >= a => format!(" [{}]", duration(b - a)),
        _ => String::new(),
    }
}

fn content_type(ex: &Exchange) -> String {
    ex.response
        .as_ref()
        .and_then(|r| find_header(&r.headers, "content-type"))
        .map(|c| format!(" {}", text(c)))
        .unwrap_or_default()
}

/// The handshake of a connection, when it was recorded and `-H` asks for it.
pub fn handshake_part(info: &ConnectionInfo, options: &TextOptions) -> Option<Part> {
    let (start, end) = info.handshake_ns.filter(|_| options.handshakes)?;
    let style = Style { on: options.color };
    let server = info
        .sni
        .clone()
        .or_else(|| info.client_server().1.map(|a| a.to_string()))
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    let mut bytes = format!(
        "{} {} TLS handshake complete [{}]{server} {}\n",
        wall(info, end),
        style.paint("32", "🔒"),
        duration(end.saturating_sub(start)),
        process(info),
    )
    .into_bytes();
    if !options.compact {
        bytes.push(b'\n');
    }
    Some(Part {
        // Never before the connection's first record, which orders it in a replay.
        ts_ns: end.max(info.first_ts_ns),
        seq: part_seq(0, PartKind::Handshake),
        bytes,
    })
}

/// The request of exchange `index`.
pub fn request_part(
    info: &ConnectionInfo,
    index: usize,
    ex: &Exchange,
    options: &TextOptions,
    decode: &DecodeOptions,
) -> io::Result<Part> {
    let style = Style { on: options.color };
    let ts_ns = exchange_start_ns(ex, info);
    let mut out = Vec::new();
    writeln!(
        out,
        "{} {} {} {}{} {}{}",
        wall(info, ts_ns),
        style.paint("34", "→"),
        style.paint("1", &exchange_method(ex)),
        exchange_url(ex, info),
        alpn(info),
        process(info),
        stream(ex),
    )?;
    if ex.request.head_missing() {
        writeln!(
            out,
            "  (request not captured: sent before the capture or in lost bytes)"
        )?;
    }
    write_headers(&mut out, &ex.request.headers)?;
    write_body(
        &mut out,
        &ex.request.headers,
        &ex.request.body,
        options,
        decode,
    )?;
    if !ex.request.trailers.is_empty() {
        writeln!(out, "  trailers:")?;
        write_headers(&mut out, &ex.request.trailers)?;
    }
    writeln!(out)?;
    Ok(Part {
        ts_ns,
        seq: part_seq(index, PartKind::Request),
        bytes: out,
    })
}

/// The response of exchange `index`, with the request's URL again; `None` without one.
pub fn response_part(
    info: &ConnectionInfo,
    index: usize,
    ex: &Exchange,
    options: &TextOptions,
    decode: &DecodeOptions,
) -> io::Result<Option<Part>> {
    let Some(r) = ex.response.as_ref() else {
        return Ok(None);
    };
    let style = Style { on: options.color };
    let ts_ns = ex
        .timings
        .response_first_byte_ns
        .unwrap_or_else(|| exchange_start_ns(ex, info));
    let mut out = Vec::new();
    writeln!(
        out,
        "{} {} {} {}{}{} {}{}{}",
        wall(info, ts_ns),
        style.paint("35", "←"),
        style.status(r.status),
        exchange_url(ex, info),
        alpn(info),
        content_type(ex),
        process(info),
        latency(ex),
        stream(ex),
    )?;
    write_headers(&mut out, &r.headers)?;
    write_body(&mut out, &r.headers, &r.body, options, decode)?;
    if !r.trailers.is_empty() {
        writeln!(out, "  trailers:")?;
        write_headers(&mut out, &r.trailers)?;
    }
    writeln!(out)?;
    Ok(Some(Part {
        ts_ns,
        seq: part_seq(index, PartKind::Response),
        bytes: out,
    }))
}

fn write_notes(out: &mut Vec<u8>, ex: &Exchange, style: &Style) -> io::Result<()> {
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
    Ok(())
}

/// One line for exchange `index` (`-c`), its notes under it.
pub fn compact_part(
    info: &ConnectionInfo,
    index: usize,
    ex: &Exchange,
    options: &TextOptions,
) -> io::Result<Part> {
    let style = Style { on: options.color };
    let ts_ns = exchange_start_ns(ex, info);
    let resp = ex.response.as_ref();
    let mut out = Vec::new();
    writeln!(
        out,
        "{} {} {} {}{} ({} bytes){} {}{}{}",
        wall(info, ts_ns),
        style.paint("1", &exchange_method(ex)),
        exchange_url(ex, info),
        style.status(resp.and_then(|r| r.status)),
        content_type(ex),
        resp.map_or(0, |r| r.body_len()),
        alpn(info),
        process(info),
        latency(ex),
        stream(ex),
    )?;
    write_notes(&mut out, ex, &style)?;
    Ok(Part {
        ts_ns,
        seq: part_seq(index, PartKind::Compact),
        bytes: out,
    })
}

/// What the capture could not prove about exchange `index`, shown at `end_ns` (when its
/// connection ended); `None` when there is nothing to say.
pub fn notes_part(
    info: &ConnectionInfo,
    index: usize,
    ex: &Exchange,
    options: &TextOptions,
    end_ns: u64,
) -> io::Result<Option<Part>> {
    if ex.incomplete.is_empty() && ex.loss.is_empty() {
        return Ok(None);
    }
    let style = Style { on: options.color };
    let mut out = Vec::new();
    writeln!(
        out,
        "{} {} {}{}",
        style.paint("33", "!"),
        exchange_method(ex),
        exchange_url(ex, info),
        stream(ex),
    )?;
    write_notes(&mut out, ex, &style)?;
    writeln!(out)?;
    Ok(Some(Part {
        // Never before the exchange, whatever the close time says.
        ts_ns: end_ns.max(exchange_start_ns(ex, info)),
        seq: part_seq(index, PartKind::Notes),
        bytes: out,
    }))
}

/// When a connection's notes are shown: when it closed, else after everything.
pub fn connection_end_ns(info: &ConnectionInfo) -> u64 {
    info.close_ns.unwrap_or(u64::MAX)
}

/// Every part of exchange `index` of a connection that ended at `end_ns`.
pub fn exchange_parts(
    info: &ConnectionInfo,
    index: usize,
    ex: &Exchange,
    options: &TextOptions,
    decode: &DecodeOptions,
    end_ns: u64,
) -> io::Result<Vec<Part>> {
    if options.compact {
        return Ok(vec![compact_part(info, index, ex, options)?]);
    }
    let mut parts = vec![request_part(info, index, ex, options, decode)?];
    parts.extend(response_part(info, index, ex, options, decode)?);
    parts.extend(notes_part(info, index, ex, options, end_ns)?);
    Ok(parts)
}
