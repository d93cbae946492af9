//! The parts of a large stripped x86-64 ELF program that the BoringSSL
//! search reads: where its code and constant data are (section headers
//! only), streamed in bounded chunks rather than loaded whole (Chromium is
//! 300 MB). Every range comes from the file and is checked against its
//! length before it is read.

use std::{fs::File, os::unix::fs::FileExt as _};

use object::{
    Architecture, Object as _, ObjectSection as _, ReadCache, SectionFlags, SectionKind, elf,
    read::elf::ElfFile64,
};

/// Bytes read at once while streaming a section.
const CHUNK: u64 = 16 << 20;

/// One section: its address when mapped and its place in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    pub address: u64,
    pub offset: u64,
    pub size: u64,
}

impl Section {
    pub fn contains(&self, address: u64) -> bool {
        address >= self.address && address - self.address < self.size
    }
}

/// An x86-64 ELF file's code and constant data sections.
#[derive(Debug)]
pub struct Image {
    file: File,
    /// Executable sections.
    pub code: Vec<Section>,
    /// Allocated, non-executable sections with file contents (string
    /// constants live there).
    pub constants: Vec<Section>,
    /// The GNU build-id note, if any (what the search's results are kept
    /// under on disk).
    pub build_id: Option<Vec<u8>>,
}

impl Image {
    /// `None` for anything that is not a 64-bit x86-64 ELF file with
    /// section headers.
    pub fn open(file: File) -> Option<Self> {
        let len = file.metadata().ok()?.len();
        let (code, constants, build_id) = {
            let cache = ReadCache::new(&file);
            let elf = ElfFile64::<object::Endianness, _>::parse(&cache).ok()?;
            if elf.architecture() != Architecture::X86_64 {
                return None;
            }
            let build_id = elf.build_id().ok().flatten().map(<[u8]>::to_vec);
            let mut code = Vec::new();
            let mut constants = Vec::new();
            for section in elf.sections() {
                let SectionFlags::Elf { sh_flags } = section.flags() else {
                    continue;
                };
                let Some((offset, size)) = section.file_range() else {
                    continue;
                };
                if offset.checked_add(size).is_none_or(|end| end > len) {
                    return None;
                }
                let found = Section {
                    address: section.address(),
                    offset,
                    size,
                };
                if sh_flags & u64::from(elf::SHF_EXECINSTR) != 0 {
                    code.push(found);
                } else if sh_flags & u64::from(elf::SHF_ALLOC) != 0
                    && matches!(
                        section.kind(),
                        SectionKind::ReadOnlyData | SectionKind::ReadOnlyString
                    )
                {
                    constants.push(found);
                }
            }
            (code, constants, build_id)
        };
        Some(Self {
            file,
            code,
            constants,
            build_id,
        })
    }

    /// Calls `visit(address, bytes, owned)` for consecutive pieces of
    /// `section`; each piece reaches `overlap` bytes into the next so that a
    /// pattern shorter than that is never cut, and a pattern is looked for
    /// only where it starts in the first `owned` bytes (counted once).
    /// `false` if the file could not be read.
    pub fn stream(
        &self,
        section: &Section,
        overlap: u64,
        mut visit: impl FnMut(u64, &[u8], usize),
    ) -> bool {
        // Zeroed by the allocator (calloc), not byte by byte.
        let mut buffer = vec![0; (section.size.min(CHUNK + overlap)) as usize];
        let mut at = 0;
        while at < section.size {
            let len = (section.size - at).min(CHUNK + overlap);
            let buffer = &mut buffer[..len as usize];
            if self
                .file
                .read_exact_at(buffer, section.offset + at)
                .is_err()
            {
                return false;
            }
            let owned = if len < CHUNK + overlap { len } else { CHUNK };
            visit(section.address + at, buffer, owned as usize);
            if len < CHUNK + overlap {
                break;
            }
            at += CHUNK;
        }
        true
    }

    /// The code at `address`, at most `len` bytes (less at a section's end).
    pub fn code_at(&self, address: u64, len: u64) -> Option<Vec<u8>> {
        let section = self.code.iter().find(|s| s.contains(address))?;
        let from = address - section.address;
        let len = len.min(section.size - from);
        let mut bytes = vec![0; usize::try_from(len).ok()?];
        self.file
            .read_exact_at(&mut bytes, section.offset + from)
            .ok()?;
        Some(bytes)
    }

    /// The file it reads.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Whether `address` is the end of the code section holding `address - 1`.
    pub fn ends_code_section(&self, address: u64) -> bool {
        self.code
            .iter()
            .any(|s| s.contains(address.wrapping_sub(1)) && !s.contains(address))
    }

    /// The file offset of a code address (where a uprobe goes).
    pub fn file_offset(&self, address: u64) -> Option<u64> {
        let section = self.code.iter().find(|s| s.contains(address))?;
        Some(section.offset + (address - section.address))
    }

    /// Up to `len` constant bytes before `address` (clipped to its section).
    pub fn constants_before(&self, address: u64, len: u64) -> Option<(u64, Vec<u8>)> {
        let section = self.constants.iter().find(|s| s.contains(address))?;
        let from = address.saturating_sub(len).max(section.address);
        let mut bytes = vec![0; usize::try_from(address - from).ok()?];
        self.file
            .read_exact_at(&mut bytes, section.offset + (from - section.address))
            .ok()?;
        Some((from, bytes))
    }
}
