//! Text views of a trace.

mod data_chunks;
mod exchanges;
pub mod parts;
mod records;
mod render;

pub use exchanges::{TextCursor, TextSink, write_exchanges};
pub use records::{RecordsSummary, write_records};

/// How the text view looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// Print decoded bodies (`-b`).
    pub bodies: bool,
    /// Print bodies as a hex dump with the detected file type (`-x`).
    pub hexdump: bool,
    /// One line per exchange (`-c`).
    pub compact: bool,
    /// TLS handshakes with their duration (`-H`).
    pub handshakes: bool,
    /// ANSI colours (the binary decides from `--color` and the terminal).
    pub color: bool,
}
