//! BoringSSL compiled into a stripped program (Chromium and its kin): no
//! symbol names its functions, so they are found by what they do.
//!
//! BoringSSL reports errors with `OPENSSL_PUT_ERROR(SSL, reason)`, which
//! passes the source file's path and a reason code that BoringSSL never
//! renumbers. The functions of `ssl_lib.cc` are told apart by the set of
//! reasons each reports and by who calls whom:
//!
//! | function | reports (from `ssl_lib.cc`) | calls |
//! |---|---|---|
//! | `SSL_do_handshake` | `CONNECTION_TYPE_NOT_SET` only | |
//! | `ssl_read_impl` (internal) | `UNINITIALIZED`, not `BAD_LENGTH` | `SSL_do_handshake` |
//! | `SSL_write` | `SHOULD_NOT_HAVE_BEEN_CALLED`, `UNINITIALIZED`, `BAD_LENGTH` | `SSL_do_handshake` |
//! | `SSL_peek`, `SSL_read` | `SHOULD_NOT_HAVE_BEEN_CALLED` only | `ssl_read_impl` |
//! | `SSL_new` | `NULL_SSL_CTX` only | |
//!
//! `SSL_read` is `SSL_peek` plus consuming what was read, so of the two it
//! is the one whose direct calls include all of the other's and more.
//!
//! A function's first instruction is a target of some direct call in the
//! program (these are API functions the program calls), and it is decoded
//! from there: an error site counts only if decoding reaches it on an
//! instruction boundary before the padding that ends the function. Every
//! identification must be unique; anything else refuses the file with the
//! reason, as a uprobe placed by guess corrupts the program.

mod disk_cache;
mod functions;
mod image;

use std::{
    collections::{BTreeSet, HashMap},
    fs::{self, File},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

pub use disk_cache::{CacheError, DEFAULT_DIR as DEFAULT_CACHE_DIR, DiskCache, Identity};

use functions::{Function, MAX_FUNCTION_BYTES};
use image::Image;
use spliff_codescan as codescan;

/// `ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED` (`2 | ERR_R_FATAL`).
const SHOULD_NOT_HAVE_BEEN_CALLED: u32 = 66;
const BAD_LENGTH: u32 = 111;
const CONNECTION_TYPE_NOT_SET: u32 = 134;
const NULL_SSL_CTX: u32 = 185;
const UNINITIALIZED: u32 = 226;

/// The end of the path string `OPENSSL_PUT_ERROR` passes in `ssl_lib.cc`
/// (`__FILE__`, relative to wherever the program was built).
const FILE_NAME: &[u8] = b"ssl/ssl_lib.cc\0";

/// Where the hooked functions are: file offsets of their first instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offsets {
    pub ssl_write: u64,
    pub ssl_read: u64,
    pub ssl_do_handshake: u64,
    /// Optional: without it a freed connection's address reused for a new
    /// one is not noticed.
    pub ssl_new: Option<u64>,
}

impl Offsets {
    /// The offset of the function named as in BoringSSL's API.
    pub fn of(&self, name: &str) -> Option<u64> {
        match name {
            "SSL_write" => Some(self.ssl_write),
            "SSL_read" => Some(self.ssl_read),
            "SSL_do_handshake" => Some(self.ssl_do_handshake),
            "SSL_new" => self.ssl_new,
            _ => None,
        }
    }
}

/// What a file is, for the BoringSSL search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// No `ssl_lib.cc` in it (not x86-64 ELF, or no BoringSSL).
    NotBoringSsl,
    /// BoringSSL's functions, each identified uniquely.
    Hookable(Offsets),
    /// BoringSSL is there but its functions were not all identified: why.
    Refused(String),
}

/// Looks for BoringSSL's functions in the program at `path`.
pub fn inspect(path: &Path) -> Found {
    match File::open(path).ok().and_then(Image::open) {
        Some(image) => search(&image).0,
        None => Found::NotBoringSsl,
    }
}

/// The search, with what it identified (to keep on disk).
fn search(image: &Image) -> (Found, Option<Identified>) {
    let file_names = file_name_strings(image);
    if file_names.is_empty() {
        return (Found::NotBoringSsl, None);
    }
    let identified = match find(image, &file_names) {
        Ok(Some(identified)) => identified,
        Ok(None) => return (Found::NotBoringSsl, None),
        Err(why) => return (Found::Refused(why), None),
    };
    match offsets(image, &identified) {
        Ok(offsets) => (Found::Hookable(offsets), Some(identified)),
        Err(why) => (Found::Refused(why), None),
    }
}

/// `None` when no code reports an error with ssl_lib.cc's name: the
/// string alone (this program has it too) is not BoringSSL.
fn find(image: &Image, file_names: &[u64]) -> Result<Option<Identified>, String> {
    let (sites, call_targets) = scan_code(image, file_names)?;
    let starts: BTreeSet<u64> = sites
        .iter()
        .filter_map(|&site| function_start(image, &call_targets, site))
        .collect();
    let functions: Vec<Function> = starts
        .into_iter()
        .filter_map(|start| {
            // Up to the next function, which may follow without padding.
            let end = next_function_start(image, &call_targets, start)
                .map_or(MAX_FUNCTION_BYTES, |next| {
                    (next - start).min(MAX_FUNCTION_BYTES)
                });
            let code = image.code_at(start, end)?;
            Some(functions::decode(start, &code, file_names))
        })
        .collect();
    if functions.iter().all(|f| f.known_reasons().is_empty()) {
        return Ok(None);
    }
    identify(&functions).map(Some)
}

/// The file offsets of the identified functions (where uprobes go).
fn offsets(image: &Image, found: &Identified) -> Result<Offsets, String> {
    let offset = |extent: Extent| {
        image
            .file_offset(extent.start)
            .ok_or_else(|| format!("{:#x} is outside the code", extent.start))
    };
    Ok(Offsets {
        ssl_write: offset(found.ssl_write)?,
        ssl_read: offset(found.ssl_read)?,
        ssl_do_handshake: offset(found.ssl_do_handshake)?,
        ssl_new: found.ssl_new.map(offset).transpose()?,
    })
}

/// Checks an identification read from the cache against the program the
/// way the search checks its candidates: each function starts after the
/// end of another and ends where the search ended it, decoding it finds
/// the same error sites (against the `ssl_lib.cc` strings found anew) and
/// calls, and the identification picks each of them for its role again.
/// What this cannot redo without the search is the uniqueness among all
/// the program's functions; the build-id, size and mtime stand for that.
fn verify(image: &Image, cached: &Identified) -> Result<Offsets, String> {
    let file_names = file_name_strings(image);
    if file_names.is_empty() {
        return Err("no ssl/ssl_lib.cc string in the program".into());
    }
    let functions = cached
        .extents()
        .map(|(name, extent)| {
            decode_cached(image, extent, &file_names)
                .ok_or_else(|| format!("{name} at {:#x} is not a whole function", extent.start))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let found = identify(&functions)?;
    if found != *cached {
        return Err("the functions at the cached addresses are identified otherwise".into());
    }
    offsets(image, &found)
}

/// The function at `extent` if it starts and ends where the search starts
/// and ends functions.
fn decode_cached(image: &Image, extent: Extent, file_names: &[u64]) -> Option<Function> {
    let end = extent.start.checked_add(extent.len)?;
    let ends = extent.len == MAX_FUNCTION_BYTES
        || follows_a_function(image, end)
        || image.ends_code_section(end);
    if extent.len == 0 || extent.len > MAX_FUNCTION_BYTES || !ends {
        return None;
    }
    if !follows_a_function(image, extent.start) {
        return None;
    }
    let code = image.code_at(extent.start, extent.len)?;
    (code.len() as u64 == extent.len).then(|| functions::decode(extent.start, &code, file_names))
}

/// Addresses of every string ending in `ssl/ssl_lib.cc`.
fn file_name_strings(image: &Image) -> Vec<u64> {
    let mut ends = Vec::new();
    for section in &image.constants {
        image.stream(section, FILE_NAME.len() as u64, |address, bytes, owned| {
            let found = codescan::find_all(bytes, FILE_NAME, owned);
            ends.extend(found.into_iter().map(|at| address + at as u64));
        });
    }
    // Each string starts after the NUL before it.
    ends.into_iter()
        .filter_map(|end| {
            let (from, before) = image.constants_before(end, 512)?;
            match before.iter().rposition(|&b| b == 0) {
                Some(nul) => Some(from + nul as u64 + 1),
                None if from + (before.len() as u64) == end && before.len() < 512 => Some(from),
                None => None,
            }
        })
        .collect()
}

/// One pass over the code: the addresses of `lea` instructions loading one
/// of `file_names`, and the sorted targets of every `call rel32` that lands
/// on a 16-byte boundary in the code (where the compiler starts functions).
fn scan_code(image: &Image, file_names: &[u64]) -> Result<(Vec<u64>, Vec<u64>), String> {
    let (low, high) = image.code.iter().fold((u64::MAX, 0), |(l, h), s| {
        (l.min(s.address), h.max(s.address + s.size))
    });
    let wanted = codescan::Wanted {
        loaded: file_names,
        code: low..high,
        target_alignment: 16,
    };
    let mut found = codescan::Found::default();
    for section in &image.code {
        let read = image.stream(
            section,
            codescan::OVERLAP as u64,
            |address, bytes, owned| {
                codescan::scan(bytes, address, owned, &wanted, &mut found);
            },
        );
        if !read {
            return Err("the program's code could not be read".into());
        }
    }
    found.sort();
    Ok((found.loads, found.call_targets))
}

/// The first instruction of the function holding `site`: the nearest
/// call target before it that follows the end of another function (the
/// `int3` padding, or a `ret` right before the boundary). A call target
/// inside a function that does not look so is passed over; a wrong start
/// is caught later, as its decoding does not reach the expected sites.
fn function_start(image: &Image, call_targets: &[u64], site: u64) -> Option<u64> {
    let index = call_targets.partition_point(|&t| t <= site);
    call_targets[..index]
        .iter()
        .rev()
        .take_while(|&&t| site - t < MAX_FUNCTION_BYTES)
        .find(|&&t| follows_a_function(image, t))
        .copied()
}

/// The start of the function after the one at `start`, as [`function_start`]
/// tells starts.
fn next_function_start(image: &Image, call_targets: &[u64], start: u64) -> Option<u64> {
    let index = call_targets.partition_point(|&t| t <= start);
    call_targets[index..]
        .iter()
        .take_while(|&&t| t - start < MAX_FUNCTION_BYTES)
        .find(|&&t| follows_a_function(image, t))
        .copied()
}

fn follows_a_function(image: &Image, address: u64) -> bool {
    image
        .code_at(address.wrapping_sub(1), 1)
        .is_some_and(|b| matches!(b[..], [0xcc] | [0xc3]))
}

/// Where an identified function is: its first instruction's address and
/// the bytes the search decoded of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
}

impl Extent {
    fn of(function: &Function) -> Self {
        Self {
            start: function.start,
            len: function.len,
        }
    }
}

/// The identified functions, the internal ones the identification rests
/// on too (so that a cached one is checked as the search checked it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identified {
    pub ssl_do_handshake: Extent,
    pub ssl_read_impl: Extent,
    pub ssl_write: Extent,
    pub ssl_read: Extent,
    pub ssl_peek: Extent,
    pub ssl_new: Option<Extent>,
}

impl Identified {
    /// The function called `name` (BoringSSL's names).
    pub fn extent(&self, name: &str) -> Option<Extent> {
        match name {
            "SSL_do_handshake" => Some(self.ssl_do_handshake),
            "ssl_read_impl" => Some(self.ssl_read_impl),
            "SSL_write" => Some(self.ssl_write),
            "SSL_read" => Some(self.ssl_read),
            "SSL_peek" => Some(self.ssl_peek),
            "SSL_new" => self.ssl_new,
            _ => None,
        }
    }

    fn extents(&self) -> impl Iterator<Item = (&'static str, Extent)> + '_ {
        [
            "SSL_do_handshake",
            "ssl_read_impl",
            "SSL_write",
            "SSL_read",
            "SSL_peek",
            "SSL_new",
        ]
        .into_iter()
        .filter_map(|name| Some((name, self.extent(name)?)))
    }

    /// From named extents, each name once; `SSL_new` may be missing.
    fn from_extents(named: &[(&str, Extent)]) -> Option<Self> {
        let get = |name: &str| {
            let mut matching = named.iter().filter(|(n, _)| *n == name);
            match (matching.next(), matching.next()) {
                (Some((_, extent)), None) => Some(Some(*extent)),
                (None, _) => Some(None),
                (Some(_), Some(_)) => None,
            }
        };
        Some(Self {
            ssl_do_handshake: get("SSL_do_handshake")??,
            ssl_read_impl: get("ssl_read_impl")??,
            ssl_write: get("SSL_write")??,
            ssl_read: get("SSL_read")??,
            ssl_peek: get("SSL_peek")??,
            ssl_new: get("SSL_new")?,
        })
    }
}

fn identify(functions: &[Function]) -> Result<Identified, String> {
    let reasons = |f: &Function| f.known_reasons();
    let only = |f: &Function, reason: u32| reasons(f) == BTreeSet::from([reason]);
    let handshake = unique("SSL_do_handshake", functions, |f| {
        only(f, CONNECTION_TYPE_NOT_SET)
    })?;
    let read_impl = unique("ssl_read_impl", functions, |f| {
        let r = reasons(f);
        r.contains(&UNINITIALIZED)
            && !r.contains(&BAD_LENGTH)
            && !r.contains(&SHOULD_NOT_HAVE_BEEN_CALLED)
            && f.calls.contains(&handshake.start)
    })?;
    let write = unique("SSL_write", functions, |f| {
        let r = reasons(f);
        [SHOULD_NOT_HAVE_BEEN_CALLED, UNINITIALIZED, BAD_LENGTH]
            .iter()
            .all(|x| r.contains(x))
            && f.calls.contains(&handshake.start)
    })?;
    let readers: Vec<&Function> = functions
        .iter()
        .filter(|f| only(f, SHOULD_NOT_HAVE_BEEN_CALLED) && f.calls.contains(&read_impl.start))
        .collect();
    let (read, peek) = match readers.as_slice() {
        [a, b] if a.calls.is_superset(&b.calls) && a.calls != b.calls => (a, b),
        [a, b] if b.calls.is_superset(&a.calls) && a.calls != b.calls => (b, a),
        _ => {
            return Err(format!(
                "SSL_read not told from SSL_peek ({} candidates)",
                readers.len()
            ));
        }
    };
    let new = unique("SSL_new", functions, |f| only(f, NULL_SSL_CTX)).ok();
    Ok(Identified {
        ssl_do_handshake: Extent::of(handshake),
        ssl_read_impl: Extent::of(read_impl),
        ssl_write: Extent::of(write),
        ssl_read: Extent::of(read),
        ssl_peek: Extent::of(peek),
        ssl_new: new.map(Extent::of),
    })
}

fn unique<'a>(
    name: &str,
    functions: &'a [Function],
    is: impl Fn(&Function) -> bool,
) -> Result<&'a Function, String> {
    let mut matching = functions.iter().filter(|f| is(f));
    match (matching.next(), matching.next()) {
        (Some(f), None) => Ok(f),
        (None, _) => Err(format!("{name} not found")),
        (Some(_), Some(_)) => Err(format!("{name} is not unique")),
    }
}

/// (device, inode, mtime, size): a file replaced in place is looked at again.
type FileKey = (u64, u64, i64, u64);

/// What the on-disk cache did, for the recorder to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheEvent {
    /// `path`'s functions came from `entry` and were verified in `took`.
    Hit {
        path: PathBuf,
        entry: PathBuf,
        took: Duration,
    },
    /// The cache is not used (said once), or an entry did not verify.
    Warning(String),
}

/// [`inspect`] once per file in memory, and, with a [`DiskCache`], once
/// per build of a program across captures.
#[derive(Debug, Default)]
pub struct Cache {
    files: HashMap<FileKey, Arc<Found>>,
    disk: Option<DiskCache>,
    events: Vec<CacheEvent>,
}

fn key(meta: &fs::Metadata) -> FileKey {
    (meta.dev(), meta.ino(), meta.mtime(), meta.size())
}

impl Cache {
    /// Keeping hookable results in `disk` too.
    pub fn with_disk(disk: DiskCache) -> Self {
        Self {
            disk: Some(disk),
            ..Self::default()
        }
    }

    /// Whether the file was looked at already.
    pub fn knows(&self, meta: &fs::Metadata) -> bool {
        self.files.contains_key(&key(meta))
    }

    /// Remembers `path` as not stripped BoringSSL without searching it
    /// (it exports its TLS library's functions).
    pub fn skip(&mut self, path: &Path) {
        if let Ok(meta) = fs::metadata(path) {
            self.files
                .entry(key(&meta))
                .or_insert_with(|| Arc::new(Found::NotBoringSsl));
        }
    }

    pub fn inspect(&mut self, path: &Path) -> Arc<Found> {
        let Ok(meta) = fs::metadata(path) else {
            return Arc::new(Found::NotBoringSsl);
        };
        let key = key(&meta);
        if let Some(found) = self.files.get(&key) {
            return found.clone();
        }
        let found = Arc::new(self.inspect_file(path));
        self.files.insert(key, found.clone());
        found
    }

    /// What the disk cache did since last asked.
    pub fn take_events(&mut self) -> Vec<CacheEvent> {
        std::mem::take(&mut self.events)
    }

    fn inspect_file(&mut self, path: &Path) -> Found {
        let Some(image) = File::open(path).ok().and_then(Image::open) else {
            return Found::NotBoringSsl;
        };
        let identity = self
            .disk
            .as_ref()
            .and_then(|_| image.file().metadata().ok())
            .and_then(|meta| Identity::new(image.build_id.as_deref(), &meta));
        if let Some(identity) = &identity
            && let Some(offsets) = self.cached(path, &image, identity)
        {
            return Found::Hookable(offsets);
        }
        let (found, identified) = search(&image);
        if let (Some(identity), Some(identified), Some(disk)) =
            (&identity, &identified, &mut self.disk)
            && let Err(error) = disk.store(identity, identified)
        {
            self.give_up(error);
        }
        found
    }

    /// The offsets cached for `identity`, once verified against `image`.
    fn cached(&mut self, path: &Path, image: &Image, identity: &Identity) -> Option<Offsets> {
        let started = Instant::now();
        let disk = self.disk.as_mut()?;
        let cached = match disk.load(identity) {
            Ok(cached) => cached?,
            Err(error) => {
                self.give_up(error);
                return None;
            }
        };
        let entry = disk.entry_path(identity);
        match verify(image, &cached) {
            Ok(offsets) => {
                self.events.push(CacheEvent::Hit {
                    path: path.to_path_buf(),
                    entry,
                    took: started.elapsed(),
                });
                Some(offsets)
            }
            Err(why) => {
                disk.remove(identity);
                self.events.push(CacheEvent::Warning(format!(
                    "the cached BoringSSL offsets of {} ({}) do not verify against the \
                     program: {why}; searching it again (the entry is replaced)",
                    path.display(),
                    entry.display()
                )));
                None
            }
        }
    }

    /// Does without the disk cache for the rest of the capture (one
    /// warning, not one per program).
    fn give_up(&mut self, error: CacheError) {
        self.disk = None;
        self.events.push(CacheEvent::Warning(error.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use std::{path::PathBuf, process::Command};

    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

    use super::*;

    /// tests/support/boringssl_lookalike.S and its main, built (with
    /// `defines`).
    fn lookalike(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
        let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support");
        let out = dir.join(name);
        let status = Command::new("cc")
            .args(defines)
            .arg("-o")
            .arg(&out)
            .args(["-x", "assembler-with-cpp"])
            .arg(support.join("boringssl_lookalike.S"))
            .args(["-x", "c"])
            .arg(support.join("boringssl_lookalike_main.c"))
            .status()
            .expect("cc runs");
        assert!(status.success());
        out
    }

    /// The file offset of symbol `name` (the lookalike keeps its symbols,
    /// which the search never reads).
    fn symbol_offset(path: &Path, name: &str) -> u64 {
        let data = fs::read(path).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let symbol = file.symbols().find(|s| s.name() == Ok(name)).unwrap();
        let text = file.section_by_name(".text").unwrap();
        symbol.address() - text.address() + text.file_range().unwrap().0
    }

    #[test]
    fn finds_each_function_by_what_it_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = lookalike(dir.path(), "lookalike", &[]);
        let Found::Hookable(offsets) = inspect(&path) else {
            panic!("{:?}", inspect(&path));
        };
        for name in ["SSL_write", "SSL_read", "SSL_do_handshake", "SSL_new"] {
            assert_eq!(offsets.of(name), Some(symbol_offset(&path, name)), "{name}");
        }
        // SSL_peek does what SSL_read does, less: never taken for it.
        assert_ne!(offsets.ssl_read, symbol_offset(&path, "SSL_peek"));
    }

    #[test]
    fn a_near_miss_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = lookalike(dir.path(), "near-miss", &["-DNEAR_MISS"]);
        assert_eq!(inspect(&path), Found::Refused("SSL_write not found".into()));
    }

    #[test]
    fn other_files_are_not_boringssl_and_broken_ones_do_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        assert_eq!(inspect(&exe), Found::NotBoringSsl);
        assert_eq!(inspect(&dir.path().join("missing")), Found::NotBoringSsl);
        let bytes = fs::read(lookalike(dir.path(), "lookalike", &[])).unwrap();
        let broken = dir.path().join("broken");
        for len in (0..bytes.len()).step_by(bytes.len() / 50) {
            fs::write(&broken, &bytes[..len]).unwrap();
            assert!(!matches!(inspect(&broken), Found::Hookable(_)), "{len}");
        }
        for at in 0..64 {
            let mut changed = bytes.clone();
            changed[at] ^= 0xff;
            fs::write(&broken, &changed).unwrap();
            let _ = inspect(&broken);
        }
    }

    /// A disk cache in `dir`, owned by whoever runs the test.
    fn disk(dir: &Path) -> DiskCache {
        let owner = fs::metadata(dir).unwrap().uid();
        DiskCache::new(dir.join("cache"), owner)
    }

    fn identity_of(path: &Path) -> Identity {
        let image = Image::open(File::open(path).unwrap()).unwrap();
        let meta = fs::metadata(path).unwrap();
        Identity::new(image.build_id.as_deref(), &meta).expect("cc writes a build-id")
    }

    fn identified_in(path: &Path) -> Identified {
        let image = Image::open(File::open(path).unwrap()).unwrap();
        search(&image).1.unwrap()
    }

    #[test]
    fn a_second_capture_finds_the_offsets_in_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = lookalike(dir.path(), "lookalike", &[]);
        let searched = inspect(&path);
        let mut first = Cache::with_disk(disk(dir.path()));
        assert_eq!(*first.inspect(&path), searched);
        assert_eq!(first.take_events(), []);
        let mut second = Cache::with_disk(disk(dir.path()));
        assert_eq!(*second.inspect(&path), searched);
        let events = second.take_events();
        assert!(
            matches!(&events[..], [CacheEvent::Hit { path: p, .. }] if *p == path),
            "{events:?}"
        );
    }

    #[test]
    fn a_cached_offset_that_does_not_verify_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = lookalike(dir.path(), "lookalike", &[]);
        let searched = inspect(&path);
        let good = identified_in(&path);
        let identity = identity_of(&path);
        let wrong = [
            // SSL_peek for SSL_read: both decode, the roles differ.
            Identified {
                ssl_read: good.ssl_peek,
                ssl_peek: good.ssl_read,
                ..good.clone()
            },
            // Inside a function.
            Identified {
                ssl_write: Extent {
                    start: good.ssl_write.start + 1,
                    len: good.ssl_write.len - 1,
                },
                ..good.clone()
            },
            // Past the function's end.
            Identified {
                ssl_do_handshake: Extent {
                    len: good.ssl_do_handshake.len + 1,
                    ..good.ssl_do_handshake
                },
                ..good.clone()
            },
        ];
        for (n, cached) in wrong.iter().enumerate() {
            disk(dir.path()).store(&identity, cached).unwrap();
            let mut cache = Cache::with_disk(disk(dir.path()));
            assert_eq!(*cache.inspect(&path), searched, "{n}");
            let events = cache.take_events();
            assert!(
                matches!(&events[..], [CacheEvent::Warning(w)] if w.contains("do not verify")),
                "{n}: {events:?}"
            );
            // Searched again and replaced: the next capture hits.
            let mut next = Cache::with_disk(disk(dir.path()));
            assert_eq!(*next.inspect(&path), searched);
            assert!(matches!(&next.take_events()[..], [CacheEvent::Hit { .. }]));
        }
    }

    #[test]
    fn a_near_miss_is_refused_even_with_a_cache_entry() {
        let dir = tempfile::tempdir().unwrap();
        let good = lookalike(dir.path(), "lookalike", &[]);
        let near_miss = lookalike(dir.path(), "near-miss", &["-DNEAR_MISS"]);
        // The lookalike's identification, as if cached for the near miss.
        disk(dir.path())
            .store(&identity_of(&near_miss), &identified_in(&good))
            .unwrap();
        let mut cache = Cache::with_disk(disk(dir.path()));
        assert_eq!(
            *cache.inspect(&near_miss),
            Found::Refused("SSL_write not found".into())
        );
        assert!(matches!(&cache.take_events()[..], [CacheEvent::Warning(_)]));
    }

    #[test]
    fn an_unsafe_cache_directory_is_said_once_and_not_used() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = lookalike(dir.path(), "lookalike", &[]);
        let cache_dir = dir.path().join("cache");
        fs::create_dir(&cache_dir).unwrap();
        fs::set_permissions(&cache_dir, fs::Permissions::from_mode(0o777)).unwrap();
        let mut cache = Cache::with_disk(disk(dir.path()));
        assert!(matches!(*cache.inspect(&path), Found::Hookable(_)));
        let copy = dir.path().join("copy");
        fs::copy(&path, &copy).unwrap();
        assert!(matches!(*cache.inspect(&copy), Found::Hookable(_)));
        let events = cache.take_events();
        assert!(
            matches!(&events[..], [CacheEvent::Warning(w)] if w.contains(&*cache_dir.to_string_lossy()) && w.contains("--no-cache")),
            "{events:?}"
        );
        assert_eq!(fs::read_dir(&cache_dir).unwrap().count(), 0);
    }
}
