//! Go's function table (`.gopclntab`): names and address ranges of every
//! function, kept by the runtime for tracebacks, so also in binaries built
//! with `-ldflags=-s` (no `.symtab`).
//!
//! Layouts read: Go 1.16/1.17 (magic 0xfffffffa) and 1.18 onwards
//! (0xfffffff0 for 1.18/1.19, 0xfffffff1 from 1.20). Everything in the
//! table is untrusted: each offset is bounds-checked, a broken entry ends
//! the search with an error.

/// A function's address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuncRange {
    /// Virtual address of the entry.
    pub address: u64,
    /// Bytes up to the next function's entry.
    pub size: u64,
}

/// Why the table could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PclntabError {
    /// Not a known header.
    #[error("unknown .gopclntab header (magic {0:#x})")]
    UnknownMagic(u32),
    /// An offset or count points outside the table.
    #[error(".gopclntab is truncated or inconsistent")]
    OutOfBounds,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// 1.16, 1.17: entries hold absolute addresses.
    Go116,
    /// 1.18 on: entries hold 32-bit offsets from the text start.
    Go118,
}

/// A parsed table header.
pub struct Pclntab<'a> {
    data: &'a [u8],
    layout: Layout,
    ptr_size: usize,
    nfunc: usize,
    text_start: u64,
    funcname: usize,
    functab: usize,
}

fn bytes(data: &[u8], at: usize, n: usize) -> Result<&[u8], PclntabError> {
    data.get(at..at.checked_add(n).ok_or(PclntabError::OutOfBounds)?)
        .ok_or(PclntabError::OutOfBounds)
}

fn uint(data: &[u8], at: usize, size: usize) -> Result<u64, PclntabError> {
    let b = bytes(data, at, size)?;
    let mut buf = [0u8; 8];
    buf[..size].copy_from_slice(b);
    Ok(u64::from_le_bytes(buf))
}

fn usize_of(v: u64) -> Result<usize, PclntabError> {
    usize::try_from(v).map_err(|_| PclntabError::OutOfBounds)
}

impl<'a> Pclntab<'a> {
    /// Reads the header of `data`, the whole section. `text_fallback` is the
    /// `.text` address, used when the header's own is 0 (a PIE binary, whose
    /// header field is filled by a relocation at load).
    pub fn parse(data: &'a [u8], text_fallback: u64) -> Result<Self, PclntabError> {
        let magic = uint(data, 0, 4)? as u32;
        let layout = match magic {
            0xffff_fffa => Layout::Go116,
            0xffff_fff0 | 0xffff_fff1 => Layout::Go118,
            other => return Err(PclntabError::UnknownMagic(other)),
        };
        let ptr_size = usize::from(*data.get(7).ok_or(PclntabError::OutOfBounds)?);
        if ptr_size != 8 {
            return Err(PclntabError::UnknownMagic(magic));
        }
        let word = |i: usize| uint(data, 8 + i * ptr_size, ptr_size);
        let nfunc = usize_of(word(0)?)?;
        let (text_start, funcname, functab) = match layout {
            // nfunc, nfiles, funcnameOffset, cuOffset, filetabOffset,
            // pctabOffset, pclnOffset
            Layout::Go116 => (0, word(2)?, word(6)?),
            // nfunc, nfiles, textStart, funcnameOffset, cuOffset,
            // filetabOffset, pctabOffset, pclnOffset
            Layout::Go118 => {
                let text = word(2)?;
                (
                    if text == 0 { text_fallback } else { text },
                    word(3)?,
                    word(7)?,
                )
            }
        };
        Ok(Self {
            data,
            layout,
            ptr_size,
            nfunc,
            text_start,
            funcname: usize_of(funcname)?,
            functab: usize_of(functab)?,
        })
    }

    /// Size of one functab entry (entry, funcoff).
    fn entry_size(&self) -> usize {
        match self.layout {
            Layout::Go116 => 2 * self.ptr_size,
            Layout::Go118 => 8,
        }
    }

    /// (entry address, offset of the _func record) of entry `i`.
    fn entry(&self, i: usize) -> Result<(u64, usize), PclntabError> {
        let at = self.functab + i * self.entry_size();
        match self.layout {
            Layout::Go116 => Ok((
                uint(self.data, at, 8)?,
                usize_of(uint(self.data, at + 8, 8)?)?,
            )),
            Layout::Go118 => Ok((
                self.text_start
                    .checked_add(uint(self.data, at, 4)?)
                    .ok_or(PclntabError::OutOfBounds)?,
                usize_of(uint(self.data, at + 4, 4)?)?,
            )),
        }
    }

    /// The name of the function whose _func record is at `funcoff`.
    fn name(&self, funcoff: usize) -> Result<&'a [u8], PclntabError> {
        let record = self
            .functab
            .checked_add(funcoff)
            .ok_or(PclntabError::OutOfBounds)?;
        // _func: entry (uintptr in 1.16/1.17, uint32 offset after), nameOff int32.
        let name_field = match self.layout {
            Layout::Go116 => record + self.ptr_size,
            Layout::Go118 => record + 4,
        };
        let name_off = usize_of(uint(self.data, name_field, 4)?)?;
        let start = self
            .funcname
            .checked_add(name_off)
            .ok_or(PclntabError::OutOfBounds)?;
        let rest = self.data.get(start..).ok_or(PclntabError::OutOfBounds)?;
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(PclntabError::OutOfBounds)?;
        Ok(&rest[..len])
    }

    /// The range of function `name`, if the table has it. The size runs to
    /// the next entry (the table's last entry is the end of text).
    pub fn find(&self, name: &str) -> Result<Option<FuncRange>, PclntabError> {
        // The count is untrusted: never more entries than the table holds.
        if self.nfunc > self.data.len() / self.entry_size() {
            return Err(PclntabError::OutOfBounds);
        }
        for i in 0..self.nfunc {
            let (address, funcoff) = self.entry(i)?;
            if self.name(funcoff)? != name.as_bytes() {
                continue;
            }
            let (next, _) = self.entry(i + 1)?;
            if next <= address {
                return Err(PclntabError::OutOfBounds);
            }
            return Ok(Some(FuncRange {
                address,
                size: next - address,
            }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(Pclntab::parse(&[], 0).is_err());
        assert!(Pclntab::parse(&[0xf0, 0xff, 0xff, 0xff, 0, 0, 1, 8], 0).is_err());
        let mut header = vec![0xf0, 0xff, 0xff, 0xff, 0, 0, 1, 8];
        // nfunc huge, everything else 0.
        header.extend_from_slice(&u64::MAX.to_le_bytes());
        header.extend_from_slice(&[0; 7 * 8]);
        let table = Pclntab::parse(&header, 0).unwrap();
        assert_eq!(table.find("main.main"), Err(PclntabError::OutOfBounds));
    }
}
