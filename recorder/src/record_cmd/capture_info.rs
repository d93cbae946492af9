//! The capture info record, kept so that every file of a rotated capture starts with the same
//! one (docs/FORMAT.md, section 7.1).

use std::io::Write;

use spliff_formats::{CaptureInfo, ClockId, Record};

use super::convert::Converter;

/// What the capture info record says.
#[derive(Debug, Clone)]
pub struct CaptureHeader {
    /// Capture clock (`CLOCK_BOOTTIME`) at `wall_ns`.
    pub ts_ns: u64,
    /// `CLOCK_REALTIME` at `ts_ns`.
    pub wall_ns: u64,
    /// Host name.
    pub hostname: String,
    /// `uname -r` and `uname -v`.
    pub kernel: String,
    /// One line per hook attached at the start.
    pub attached: Vec<String>,
}

impl CaptureHeader {
    /// Writes the record (counted like the converter's own).
    pub fn write<W: Write>(&self, converter: &mut Converter<W>) -> anyhow::Result<()> {
        converter.write_record(
            self.ts_ns,
            &Record::CaptureInfo(CaptureInfo {
                wall_clock_ns: self.wall_ns,
                clock: ClockId::Boottime,
                spliff_version: env!("CARGO_PKG_VERSION").as_bytes(),
                hostname: self.hostname.as_bytes(),
                kernel: self.kernel.as_bytes(),
                attached: self.attached.iter().map(|l| l.as_bytes()).collect(),
            }),
        )?;
        Ok(())
    }
}
