//! The text view of a unix socket connection that is not HTTP: its bytes as the process
//! wrote and read them, one chunk per recorded call, both directions merged in time order.

use std::io::{self, Write};

use spliff_formats::{ConnectionRole, Direction};

use super::TextOptions;
use super::render::{clock, hexdump, process};
use crate::pipeline::{Item, ReplayedConnection};
use crate::stream::DirectionStream;

/// One recorded call's bytes.
struct Chunk<'s> {
    ts_ns: u64,
    written: bool,
    offset: u64,
    bytes: &'s [u8],
}

/// The captured bytes of `stream`, cut where their timestamps change (one recorded call
/// each) and at holes.
fn chunks<'s>(stream: &'s DirectionStream<'_>, written: bool, out: &mut Vec<Chunk<'s>>) {
    let stamps: Vec<(u64, u64)> = stream.stamps().collect();
    for (i, &(from, ts_ns)) in stamps.iter().enumerate() {
        let to = stamps.get(i + 1).map_or(stream.end(), |s| s.0);
        let mut pos = from;
        while let Some(start) = stream.next_data(pos).filter(|&p| p < to) {
            let bytes = stream.contiguous(start);
            let n = bytes
                .len()
                .min(usize::try_from(to - start).unwrap_or(usize::MAX));
            if n == 0 {
                break;
            }
            out.push(Chunk {
                ts_ns,
                written,
                offset: start,
                bytes: &bytes[..n],
            });
            pos = start + n as u64;
        }
    }
}

/// Text with control characters escaped (newlines and tabs kept), or `None` when the bytes
/// are not UTF-8 text.
fn escaped(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    let controls = s
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        .count();
    if controls * 8 > s.len() {
        return None;
    }
    Some(
        s.chars()
            .map(|c| match c {
                '\n' | '\t' => c.to_string(),
                c if c.is_control() => c.escape_default().to_string(),
                c => c.to_string(),
            })
            .collect(),
    )
}

fn render(conn: &ReplayedConnection<'_>, chunk: &Chunk<'_>, options: &TextOptions) -> Item {
    let info = &conn.info;
    let wall = clock(info.clock.map_or(chunk.ts_ns, |c| c.wall(chunk.ts_ns)));
    let (arrow, verb) = if chunk.written {
        ("→", "written")
    } else {
        ("←", "read")
    };
    let path = info.unix_path.as_deref().unwrap_or_default();
    // Both ends may be recorded in one process: the role tells them apart.
    let end = match info.role {
        ConnectionRole::Client => " [client end]",
        ConnectionRole::Server => " [server end]",
        _ => "",
    };
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = writeln!(
        bytes,
        "{wall} {arrow} {} bytes {verb} at offset {} unix:{path} {}{end}",
        chunk.bytes.len(),
        chunk.offset,
        process(info)
    );
    if !options.compact {
        let _ = match escaped(chunk.bytes).filter(|_| !options.hexdump) {
            Some(text) => {
                let end = if text.ends_with('\n') { "" } else { "\n" };
                write!(bytes, "{text}{end}")
            }
            None => hexdump(&mut bytes, chunk.bytes),
        };
        let _ = writeln!(bytes);
    }
    Item::new(chunk.ts_ns, bytes)
}

/// Every chunk of `conn` as a text item, in time order (written before read at equal times,
/// then by offset).
pub(super) fn data_items(
    conn: &ReplayedConnection<'_>,
    options: &TextOptions,
) -> io::Result<Vec<Item>> {
    let written_is_request = conn.info.request_direction == Direction::Egress;
    let mut all = Vec::new();
    chunks(&conn.streams.request, written_is_request, &mut all);
    chunks(&conn.streams.response, !written_is_request, &mut all);
    all.sort_by_key(|c| (c.ts_ns, !c.written, c.offset));
    Ok(all.iter().map(|c| render(conn, c, options)).collect())
}
