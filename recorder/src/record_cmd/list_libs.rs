//! `spliff record --list-libs`: every TLS library file found, of every
//! kind, whether `--lib` hooks it and what each kind gets; with a scope, what
//! each selected process maps.

use std::{collections::BTreeSet, process::ExitCode};

use spliff_recorder::probes::{self, LibrarySpec};

use super::{
    hooks::{discover, looked_for, wanted_libraries},
    libraries::{is_wanted, library_by_exports, mapped_files},
    process_info::processes_named,
    unrecorded,
};
use crate::cli::RecordArgs;

/// `--list-libs`: every library file of every kind, and what it gets; with
/// --pid, --comm or --ppid, also what each selected process maps.
pub fn list_libs(args: &RecordArgs) -> ExitCode {
    // A lister ends quietly when its reader goes (`spliff record --list-libs | head`), as
    // Unix tools do: Rust ignores SIGPIPE, so println! would panic instead. Nothing is being
    // recorded here, so there is nothing to clean up.
    // SAFETY: signal(2) with a valid signal number and the default disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let wanted = wanted_libraries(&args.libs);
    list_selected(args, &wanted);
    let discovery = discover(probes::LIBRARIES.iter().collect(), args.no_cache);
    // Go programs carry their TLS: each running one is its own "library".
    let go = super::go_programs::running();
    for line in &go {
        println!("{line}");
    }
    if discovery.files.is_empty() && !go.is_empty() {
        return ExitCode::SUCCESS;
    }
    if discovery.files.is_empty() {
        println!(
            "no TLS library found in the linker cache or in any process; looked for {}",
            looked_for(&probes::LIBRARIES.iter().collect::<Vec<_>>())
        );
        return ExitCode::FAILURE;
    }
    for file in discovery.files.values() {
        let hooked = is_wanted(&wanted, file.library);
        println!(
            "{} ({}, {}{})",
            file.path.display(),
            file.library.display,
            file.found_by.text(),
            if hooked {
                ""
            } else {
                ", not hooked: see --lib"
            }
        );
        for reason in &file.reasons {
            println!("    {reason}");
        }
    }
    for (path, why) in discovery.refused.values() {
        println!(
            "{} (BoringSSL, found by code pattern, not hooked: {why})",
            path.display()
        );
    }
    for library in probes::LIBRARIES.iter().chain([&probes::BORINGSSL]) {
        // A library of several files (NSS) says what goes on each.
        let files: BTreeSet<Option<&str>> = library.probes.iter().map(|p| p.file).collect();
        for file in files {
            let on_file: Vec<_> = library.probes.iter().filter(|p| p.file == file).collect();
            let symbols: BTreeSet<String> = on_file.iter().map(|p| p.target_text()).collect();
            println!(
                "each {} {} gets {} probes on: {}",
                library.display,
                file.unwrap_or("file"),
                on_file.len(),
                symbols.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
    }
    println!("{}", super::unix_sockets::LIST_LINE);
    ExitCode::SUCCESS
}

/// Per selected running process: the TLS libraries it maps, hooked or not.
fn list_selected(args: &RecordArgs, wanted: &[&'static LibrarySpec]) {
    let mut pids: Vec<u32> = args.pids.clone();
    pids.extend(processes_named(&args.comms));
    if let Some(ppid) = args.ppid {
        pids.push(ppid);
        pids.extend(descendants(ppid));
    }
    pids.sort_unstable();
    pids.dedup();
    let mut boringssl = super::hooks::boringssl_cache(args.no_cache);
    for pid in pids {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let found = unrecorded::tls_libraries(pid, wanted).map(|found| {
            let by_name = found
                .into_iter()
                .map(|(p, n, h)| (p, n.to_string(), h, String::new()));
            by_name
                .chain(embedded(pid, wanted, &mut boringssl))
                .collect::<Vec<_>>()
        });
        let line = match found {
            None => "its memory maps cannot be read (gone?)".to_string(),
            Some(found) if found.is_empty() => {
                "no known TLS library mapped (statically linked?)".to_string()
            }
            Some(found) => found
                .iter()
                .map(|(path, name, hooked, how)| {
                    let state = if *hooked { "hooked" } else { "not hooked" };
                    format!("{path} ({name}, {state}{how})")
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        println!("pid {pid} ({}): {line}", comm.trim());
    }
}

/// The files `pid` maps that carry a TLS library compiled in (found by
/// exported symbols, or stripped BoringSSL by code pattern), as (path,
/// library, hooked, how found).
fn embedded(
    pid: u32,
    wanted: &[&'static LibrarySpec],
    boringssl: &mut spliff_recorder::boringssl::Cache,
) -> Vec<(String, String, bool, String)> {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    // Through the process's root: the path it maps may be a container's.
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    mapped_files(&maps)
        .into_iter()
        .filter(|file| {
            let name = std::path::Path::new(file.path).file_name();
            name.and_then(|n| n.to_str())
                .is_none_or(|n| probes::library_of_file(n).is_none())
        })
        .filter_map(|file| {
            let path = root.join(file.path.trim_start_matches('/'));
            if let Some(library) = library_by_exports(&path) {
                let hooked = wanted.iter().any(|w| w.kind == library.kind);
                return Some((
                    file.path.to_string(),
                    library.display.to_string(),
                    hooked,
                    ", found by exported symbols".to_string(),
                ));
            }
            // As record: only programs large enough to hold BoringSSL.
            if !std::fs::metadata(&path).is_ok_and(|m| m.len() >= 1 << 20) {
                return None;
            }
            let boring = &probes::BORINGSSL;
            match &*boringssl.inspect(&path) {
                spliff_recorder::boringssl::Found::NotBoringSsl => None,
                spliff_recorder::boringssl::Found::Hookable(_) => Some((
                    file.path.to_string(),
                    boring.display.to_string(),
                    is_wanted(wanted, boring),
                    ", found by code pattern".to_string(),
                )),
                spliff_recorder::boringssl::Found::Refused(why) => Some((
                    file.path.to_string(),
                    boring.display.to_string(),
                    false,
                    format!(", refused: {why}"),
                )),
            }
        })
        .collect()
}

/// Running processes whose parent chain leads to `ppid`.
fn descendants(ppid: u32) -> Vec<u32> {
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let mut at = pid;
            // Bounded: a parent chain is short, and a racing exit ends it.
            for _ in 0..64 {
                match parent(at) {
                    Some(p) if p == ppid => return true,
                    Some(p) if p > 1 => at = p,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}
