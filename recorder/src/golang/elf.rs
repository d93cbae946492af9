//! The ELF side of a Go executable: sections, symbols and the mapping from
//! virtual addresses to file offsets (uprobes are placed by file offset).
//! Parsed with the `object` crate; every range taken from the file is
//! checked against the file's bytes.

use std::{fs::File, path::Path};

use object::{
    Architecture, Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _,
    ReadCache, read::elf::ElfFile64,
};

/// Whether the file at `path` is an ELF file the Go linker made, reading
/// only its headers and section names.
pub fn looks_like_go(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let cache = ReadCache::new(file);
    ElfFile64::<object::Endianness, _>::parse(&cache).is_ok_and(|elf| {
        elf.section_by_name(".gopclntab").is_some()
            || elf.section_by_name(".go.buildinfo").is_some()
    })
}

use super::{GoError, GoFunction, Source, buildinfo, pclntab::Pclntab, ret_offsets};

/// A parsed x86-64 ELF file.
pub struct Elf<'a> {
    data: &'a [u8],
    file: ElfFile64<'a>,
}

impl<'a> Elf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, GoError> {
        let file = ElfFile64::parse(data).map_err(|e| GoError::NotElf(e.to_string()))?;
        if file.architecture() != Architecture::X86_64 {
            return Err(GoError::NotElf(format!("{:?}", file.architecture())));
        }
        Ok(Self { data, file })
    }

    fn section(&self, name: &str) -> Option<&'a [u8]> {
        self.file.section_by_name(name)?.data().ok()
    }

    /// Whether the Go linker made it (its function table is there).
    pub fn is_go(&self) -> bool {
        self.file.section_by_name(".gopclntab").is_some()
            || self.file.section_by_name(".go.buildinfo").is_some()
    }

    pub fn go_version(&self) -> Option<String> {
        buildinfo::version(self.section(".go.buildinfo")?, |address, len| {
            let offset = self.file_offset(address, len as u64)?;
            let start = usize::try_from(offset).ok()?;
            self.data
                .get(start..start.checked_add(len)?)
                .map(<[u8]>::to_vec)
        })
    }

    /// The file offset of `[address, address + len)`, if a loaded segment
    /// holds all of it in the file.
    fn file_offset(&self, address: u64, len: u64) -> Option<u64> {
        let end = address.checked_add(len)?;
        self.file.segments().find_map(|segment| {
            let (offset, file_size) = segment.file_range();
            let start = segment.address();
            (address >= start && end <= start.checked_add(file_size)?)
                .then(|| offset + (address - start))
        })
    }

    /// (address, size) of `name`: `.symtab` first, else `.gopclntab`.
    fn locate(&self, name: &str) -> Result<Option<(u64, u64, Source)>, GoError> {
        let symbol = self
            .file
            .symbols()
            .find(|s| s.name_bytes().is_ok_and(|n| n == name.as_bytes()) && s.size() > 0);
        if let Some(symbol) = symbol {
            return Ok(Some((symbol.address(), symbol.size(), Source::Symtab)));
        }
        let Some(table) = self.section(".gopclntab") else {
            return Ok(None);
        };
        let text = self
            .file
            .section_by_name(".text")
            .map_or(0, |s| s.address());
        let unhookable = |e: super::pclntab::PclntabError| GoError::Unhookable {
            name: "crypto/tls",
            reason: e.to_string(),
        };
        let table = Pclntab::parse(table, text).map_err(unhookable)?;
        Ok(table
            .find(name)
            .map_err(unhookable)?
            .map(|f| (f.address, f.size, Source::Pclntab)))
    }

    /// The hook points of function `name`, `None` if the binary lacks it.
    pub fn function(&self, name: &'static str) -> Result<Option<GoFunction>, GoError> {
        let Some((address, size, source)) = self.locate(name)? else {
            return Ok(None);
        };
        let unhookable = |reason: String| GoError::Unhookable { name, reason };
        let entry = self
            .file_offset(address, size)
            .ok_or_else(|| unhookable(format!("{address:#x}+{size:#x} is not in the file")))?;
        let code = usize::try_from(entry)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(start, len)| self.data.get(start..start.checked_add(len)?))
            .ok_or_else(|| unhookable("function bytes outside the file".into()))?;
        // Go pads functions to 32 bytes with INT3; a pclntab range runs to
        // the next function, padding included, which decodes fine.
        let rets = ret_offsets(code).map_err(|e| unhookable(e.to_string()))?;
        Ok(Some(GoFunction {
            name,
            entry,
            rets: rets.into_iter().map(|r| entry + r).collect(),
            source,
        }))
    }
}
