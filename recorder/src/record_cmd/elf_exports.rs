//! Which functions an ELF file exports: how a TLS library compiled into a
//! program (node carries OpenSSL) is recognised when no file name says so.
//!
//! Only the ELF header, the section headers, `.dynsym` and its string table
//! are read, never the whole file (node is 100 MB). Any
//! file can be mapped by a process, so nothing here trusts it: every offset
//! and size is checked against the file's length before anything is read.

use std::{fs::File, os::unix::fs::FileExt as _, path::Path};

use object::{
    Endianness, ReadCache, SectionIndex, elf,
    read::elf::{FileHeader, SectionHeader as _, Sym as _},
};

/// Larger dynamic symbol or string tables are not read: node's are 2 and 5
/// MB; a table of this size is no library's but a hostile or broken file's.
const MAX_TABLE_BYTES: u64 = 64 << 20;

/// The names among `names` that the file at `path` defines as functions in
/// its dynamic symbol table; none for a file that is not a readable ELF
/// file.
pub fn exported_functions(path: &Path, names: &[&'static str]) -> Vec<&'static str> {
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    defined_functions::<elf::FileHeader64<Endianness>>(&file, names)
        .or_else(|| defined_functions::<elf::FileHeader32<Endianness>>(&file, names))
        .unwrap_or_default()
}

fn defined_functions<Elf: FileHeader<Endian = Endianness>>(
    file: &File,
    names: &[&'static str],
) -> Option<Vec<&'static str>> {
    // The headers through the object crate's reader, which checks every
    // range against the file's length.
    let headers = ReadCache::new(file);
    let header = Elf::parse(&headers).ok()?;
    let endian = header.endian().ok()?;
    let sections = header.sections(endian, &headers).ok()?;
    let dynsym = sections
        .iter()
        .find(|s| s.sh_type(endian) == elf::SHT_DYNSYM)?;
    let link = usize::try_from(dynsym.sh_link(endian)).ok()?;
    let strtab = sections.section(SectionIndex(link)).ok()?;
    let symbols = table(file, dynsym.file_range(endian)?)?;
    let symbols: &[Elf::Sym] = object::pod::slice_from_all_bytes(&symbols).ok()?;
    let strings = table(file, strtab.file_range(endian)?)?;
    let mut found: Vec<&'static str> = Vec::new();
    for symbol in symbols.iter().filter(|s| is_defined_function(*s, endian)) {
        let at = symbol.st_name(endian);
        if let Some(wanted) = names.iter().find(|n| name_is(&strings, at, n))
            && !found.contains(wanted)
        {
            found.push(wanted);
        }
    }
    Some(found)
}

/// A table's bytes (offset and size in the file), if it is of a size worth
/// reading and within the file. Read at once rather than through the
/// object crate's reader, which zeroes its buffers byte by byte first.
fn table(file: &File, (offset, size): (u64, u64)) -> Option<Vec<u8>> {
    let len = file.metadata().ok()?.len();
    if size > MAX_TABLE_BYTES || offset.checked_add(size)? > len {
        return None;
    }
    let mut bytes = vec![0; usize::try_from(size).ok()?];
    file.read_exact_at(&mut bytes, offset).ok()?;
    Some(bytes)
}

/// Whether the string at `at` in a string table is `name`: compared in
/// place rather than by finding each name's end first, as node's 74,000
/// symbols would make that the whole cost.
fn name_is(strings: &[u8], at: u32, name: &str) -> bool {
    let Ok(start) = usize::try_from(at) else {
        return false;
    };
    // Most names differ at once: no comparison call for them.
    if strings.get(start) != name.as_bytes().first() {
        return false;
    }
    let end = start.saturating_add(name.len());
    strings.get(start..end) == Some(name.as_bytes()) && strings.get(end) == Some(&0)
}

/// A function the file itself defines: a program calling a shared
/// library's `SSL_read` lists it too, undefined.
fn is_defined_function<S: object::read::elf::Sym<Endian = Endianness>>(
    symbol: &S,
    endian: Endianness,
) -> bool {
    symbol.st_shndx(endian) != elf::SHN_UNDEF
        && matches!(symbol.st_type(), elf::STT_FUNC | elf::STT_GNU_IFUNC)
        && matches!(symbol.st_bind(), elf::STB_GLOBAL | elf::STB_WEAK)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    const NAMES: &[&str] = &["SSL_read", "SSL_write", "SSL_CTX_new", "OPENSSL_init_ssl"];

    /// A shared object built by `cc` from `source`.
    fn build(dir: &Path, name: &str, source: &str) -> std::path::PathBuf {
        let c = dir.join(format!("{name}.c"));
        let so = dir.join(format!("{name}.so"));
        std::fs::write(&c, source).unwrap();
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&so)
            .arg(&c)
            .status()
            .expect("cc runs");
        assert!(status.success());
        so
    }

    fn library(path: &Path) -> Option<spliff_formats::TlsLibrary> {
        let found = exported_functions(path, NAMES);
        spliff_recorder::probes::library_of_exports(|n| found.contains(&n)).map(|l| l.kind)
    }

    #[test]
    fn a_file_defining_the_functions_is_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let all = build(
            dir.path(),
            "all",
            "int SSL_read(void *s, void *b, int n) { return n; }\n\
             int SSL_write(void *s, const void *b, int n) { return n; }\n\
             void *SSL_CTX_new(const void *m) { return 0; }\n\
             int OPENSSL_init_ssl(unsigned long o, const void *s) { return 1; }\n",
        );
        assert_eq!(exported_functions(&all, NAMES).len(), 4);
        assert_eq!(library(&all), Some(spliff_formats::TlsLibrary::OpenSsl));
    }

    #[test]
    fn one_function_is_not_enough() {
        let dir = tempfile::tempdir().unwrap();
        let one = build(
            dir.path(),
            "one",
            "int SSL_read(void *s, void *b, int n) { return n; }\n",
        );
        assert_eq!(exported_functions(&one, NAMES), vec!["SSL_read"]);
        assert_eq!(library(&one), None);
    }

    #[test]
    fn calling_the_functions_is_not_defining_them() {
        let dir = tempfile::tempdir().unwrap();
        let caller = build(
            dir.path(),
            "caller",
            "int SSL_read(void *, void *, int); int SSL_write(void *, const void *, int);\n\
             void *SSL_CTX_new(const void *); int OPENSSL_init_ssl(unsigned long, const void *);\n\
             int f(void) { return SSL_read(0, 0, 0) + SSL_write(0, 0, 0)\n\
             + OPENSSL_init_ssl(0, SSL_CTX_new(0)); }\n",
        );
        assert_eq!(exported_functions(&caller, NAMES), Vec::<&str>::new());
        assert_eq!(library(&caller), None);
    }

    #[test]
    fn hostile_and_foreign_files_export_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let all = build(
            dir.path(),
            "all",
            "int SSL_read(void *s, void *b, int n) { return n; }\n",
        );
        let bytes = std::fs::read(&all).unwrap();
        let text = dir.path().join("text");
        std::fs::write(&text, "not ELF at all").unwrap();
        assert!(exported_functions(&text, NAMES).is_empty());
        assert!(exported_functions(&dir.path().join("missing"), NAMES).is_empty());
        // Every truncation, and every byte of the headers set to 0xff: no
        // panic, and never more than the names asked for.
        for len in (0..bytes.len()).step_by(97) {
            let cut = dir.path().join("cut");
            std::fs::write(&cut, &bytes[..len]).unwrap();
            assert!(exported_functions(&cut, NAMES).len() <= 1);
        }
        for at in 0..64.min(bytes.len()) {
            let mut broken = bytes.clone();
            broken[at] = 0xff;
            let path = dir.path().join("broken");
            std::fs::write(&path, &broken).unwrap();
            assert!(exported_functions(&path, NAMES).len() <= 1);
        }
    }
}
