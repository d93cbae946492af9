//! `--unix PATH|any`: which unix stream sockets to record, and attaching their programs.

use std::{ffi::OsString, os::unix::ffi::OsStrExt as _};

use anyhow::{Context as _, bail};
use spliff_recorder::bpf::{BpfPipeline, UnixSelection};
use spliff_recorder_ebpf::abi::UNIX_PATH_MAX;

/// What `--list-libs` says about the unix socket hooks.
pub const LIST_LINE: &str = "unix stream sockets (--unix PATH|any; off without it): raw \
     tracepoints sys_enter and sys_exit; every read, write, readv, writev, sendto, recvfrom, \
     sendmsg, recvmsg and close of a process in scope pays a walk from its fd to the socket, \
     and every syscall two more BPF programs (tens to hundreds of ns per syscall, \
     docs/BENCHMARKS.md); bytes are copied only for the selected sockets";

/// The selection `--unix` asks for; `None` when it was not given (nothing is attached).
pub fn selection(values: &[OsString]) -> anyhow::Result<Option<UnixSelection>> {
    if values.is_empty() {
        return Ok(None);
    }
    let mut selection = UnixSelection::default();
    for value in values {
        let bytes = value.as_bytes();
        if bytes == b"any" {
            selection.any = true;
            continue;
        }
        // `@name` is an abstract socket, stored by the kernel with a leading NUL (as ss and
        // /proc/net/unix show it).
        let path = match bytes.strip_prefix(b"@") {
            Some(name) => [&[0u8][..], name].concat(),
            None => bytes.to_vec(),
        };
        if path.is_empty() || path.len() > UNIX_PATH_MAX {
            bail!(
                "--unix {}: a socket path has 1 to {UNIX_PATH_MAX} bytes",
                value.to_string_lossy()
            );
        }
        if path[1..].contains(&0) {
            bail!("--unix {}: a path has no NUL byte", value.to_string_lossy());
        }
        selection.paths.push(path);
    }
    Ok(Some(selection))
}

/// Attaches the unix socket programs; returns the line for the capture info's hook list.
pub fn attach(pipeline: &mut BpfPipeline, selection: &UnixSelection) -> anyhow::Result<String> {
    pipeline
        .attach_unix(selection)
        .context("cannot attach the unix socket programs (--unix)")?;
    let what = if selection.any {
        "every unix stream socket".to_string()
    } else {
        selection
            .paths
            .iter()
            .map(|p| display_path(p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(format!(
        "raw tracepoints sys_enter, sys_exit (read, write, readv, writev, sendto, recvfrom, \
         sendmsg, recvmsg, close) for unix stream sockets: {what}"
    ))
}

/// A path as `ss` shows it: an abstract name with `@` for its NUL.
fn display_path(path: &[u8]) -> String {
    match path.strip_prefix(&[0]) {
        Some(name) => format!("@{}", String::from_utf8_lossy(name)),
        None => String::from_utf8_lossy(path).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_any_and_abstract_names_are_parsed_and_bad_ones_named() {
        let s = selection(&["/run/a.sock".into(), "@abs".into(), "any".into()])
            .unwrap()
            .unwrap();
        assert!(s.any);
        assert_eq!(s.paths, vec![b"/run/a.sock".to_vec(), b"\0abs".to_vec()]);
        assert_eq!(selection(&[]).unwrap(), None);
        let long = "/".repeat(UNIX_PATH_MAX + 1);
        let error = selection(&[long.into()]).unwrap_err().to_string();
        assert!(error.contains("1 to 108 bytes"), "{error}");
        assert!(selection(&["".into()]).is_err());
    }
}
