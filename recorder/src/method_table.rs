//! Functions reached only through a method table: OpenSSL's SSL BIO reads
//! and writes through `ssl_read`/`ssl_write`, static functions of libssl that
//! no symbol names, whose addresses sit in the `BIO_METHOD` that the exported
//! `BIO_f_ssl` returns. Found in the file: decode the getter (`lea rax,
//! [rip+table]; ret`), check the table's type field, and read the slot's
//! pointer from the relocation that fills it at load time (or, without one,
//! from the slot itself). x86-64 only, as the rest of the recorder.
//!
//! Any file can be mapped by a process, so nothing here trusts it: the
//! object crate checks every range it reads, and each step says what was
//! not found where.

use std::{fs::File, path::Path};

use crate::probes::TableSlot;
use iced_x86::{Code, Decoder, DecoderOptions, Register};
use object::{
    Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _, ReadCache,
    RelocationFlags, RelocationTarget, elf, read::elf::ElfFile64,
};

/// Why a method table's function was not found.
#[derive(Debug, thiserror::Error)]
pub enum MethodTableError {
    #[error("cannot read {0}: {1}")]
    Read(String, String),
    #[error("{getter} is not exported")]
    NoGetter { getter: &'static str },
    #[error("{getter} does not return a table as `lea rax, [rip+X]; ret`")]
    UnknownGetter { getter: &'static str },
    #[error("the table {getter} returns has type {found:#x}, not {expected:#x}")]
    WrongType {
        getter: &'static str,
        found: u32,
        expected: u32,
    },
    #[error("slot {slot} of the table {getter} returns holds no function")]
    EmptySlot { getter: &'static str, slot: u64 },
    #[error("address {0:#x} is not in a loaded part of the file")]
    NotInFile(u64),
}

/// The file offset (where a uprobe goes) of the function in `at`'s slot of
/// the table `getter` returns, in the ELF file at `path`.
pub fn function_offset(
    path: &Path,
    getter: &'static str,
    at: TableSlot,
) -> Result<u64, MethodTableError> {
    let slot = at.slot;
    let file = File::open(path)
        .map_err(|e| MethodTableError::Read(path.display().to_string(), e.to_string()))?;
    let cache = ReadCache::new(file);
    let elf = ElfFile64::<object::Endianness, _>::parse(&cache)
        .map_err(|e| MethodTableError::Read(path.display().to_string(), e.to_string()))?;
    let getter_address = elf
        .dynamic_symbols()
        .find(|s| s.is_definition() && s.name() == Ok(getter))
        .ok_or(MethodTableError::NoGetter { getter })?
        .address();
    let code = bytes_at(&elf, getter_address, 16)?;
    let address = returned_address(&code, getter_address)
        .ok_or(MethodTableError::UnknownGetter { getter })?;
    let found = u32::from_le_bytes(
        bytes_at(&elf, address, 4)?
            .try_into()
            .map_err(|_| MethodTableError::NotInFile(address))?,
    );
    if found != at.table_type {
        return Err(MethodTableError::WrongType {
            getter,
            found,
            expected: at.table_type,
        });
    }
    let slot_address = address
        .checked_add(slot)
        .ok_or(MethodTableError::NotInFile(address))?;
    let function = slot_value(&elf, slot_address)?;
    if function == 0 {
        return Err(MethodTableError::EmptySlot { getter, slot });
    }
    file_offset(&elf, function)
}

type Elf<'a> = ElfFile64<'a, object::Endianness, &'a ReadCache<File>>;

/// `len` bytes at virtual address `address`, from the section holding them.
fn bytes_at(elf: &Elf<'_>, address: u64, len: u64) -> Result<Vec<u8>, MethodTableError> {
    elf.sections()
        .filter(|s| s.kind() != object::SectionKind::UninitializedData)
        .find_map(|s| s.data_range(address, len).ok().flatten())
        .map(<[u8]>::to_vec)
        .ok_or(MethodTableError::NotInFile(address))
}

/// The address a getter at `ip` returns: an optional `endbr64`, then `lea
/// rax, [rip+X]` and `ret`.
fn returned_address(code: &[u8], ip: u64) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut instruction = decoder.decode();
    if instruction.code() == Code::Endbr64 {
        instruction = decoder.decode();
    }
    let lea = instruction.code() == Code::Lea_r64_m
        && instruction.op0_register() == Register::RAX
        && instruction.is_ip_rel_memory_operand();
    let address = instruction.ip_rel_memory_address();
    let next = decoder.decode();
    (lea && next.code() == Code::Retnq).then_some(address)
}

/// The pointer a loaded file holds at `address`: the addend of its
/// R_X86_64_RELATIVE relocation (shared objects and PIE programs), else the
/// bytes there.
fn slot_value(elf: &Elf<'_>, address: u64) -> Result<u64, MethodTableError> {
    let relocated =
        elf.dynamic_relocations()
            .into_iter()
            .flatten()
            .find_map(|(offset, relocation)| {
                let relative = matches!(
                    relocation.flags(),
                    RelocationFlags::Elf { r_type } if r_type == elf::R_X86_64_RELATIVE
                );
                (offset == address && relative && relocation.target() == RelocationTarget::Absolute)
                    .then(|| relocation.addend() as u64)
            });
    if let Some(value) = relocated {
        return Ok(value);
    }
    let bytes = bytes_at(elf, address, 8)?;
    Ok(u64::from_le_bytes(
        bytes
            .try_into()
            .map_err(|_| MethodTableError::NotInFile(address))?,
    ))
}

/// The file offset of virtual address `address`.
fn file_offset(elf: &Elf<'_>, address: u64) -> Result<u64, MethodTableError> {
    elf.segments()
        .find_map(|segment| {
            let (offset, size) = segment.file_range();
            let start = segment.address();
            (address >= start && address < start.checked_add(size)?)
                .then(|| offset + (address - start))
        })
        .ok_or(MethodTableError::NotInFile(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getters_are_decoded() {
        // endbr64; lea rax, [rip+0x100]; ret
        let code = [
            0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x8d, 0x05, 0x00, 0x01, 0x00, 0x00, 0xc3,
        ];
        assert_eq!(returned_address(&code, 0x1000), Some(0x1000 + 11 + 0x100));
        assert_eq!(
            returned_address(&code[4..], 0x1000),
            Some(0x1000 + 7 + 0x100)
        );
        // lea rcx instead of rax; no ret; nothing.
        let rcx = [0x48, 0x8d, 0x0d, 0x00, 0x01, 0x00, 0x00, 0xc3];
        assert_eq!(returned_address(&rcx, 0), None);
        assert_eq!(returned_address(&code[..11], 0), None);
        assert_eq!(returned_address(&[], 0), None);
    }

    #[test]
    fn a_missing_or_foreign_file_is_an_error() {
        let at = TableSlot {
            table_type: 0x207,
            slot: 16,
        };
        assert!(matches!(
            function_offset(Path::new("/nonexistent/libssl.so.3"), "BIO_f_ssl", at),
            Err(MethodTableError::Read(..))
        ));
        // An ELF file without the getter.
        assert!(matches!(
            function_offset(Path::new("/bin/sh"), "BIO_f_ssl", at),
            Err(MethodTableError::NoGetter { .. })
        ));
    }
}
