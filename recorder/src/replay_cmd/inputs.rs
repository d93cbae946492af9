//! The traces `spliff replay` was given: paths as they are, and patterns the shell did not
//! expand (quoted, or from a script without a shell) expanded here, so that
//! `spliff replay 'trace.*.pcapng'` reads the files of a rotated capture in order.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// Expands one argument: an existing path (or `-`, standard input) stays; a pattern becomes
/// the matching files, sorted by name (the `glob` crate's order).
fn expand(arg: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let text = arg.to_string_lossy();
    if arg.exists() || arg.as_os_str() == "-" || !text.contains(['*', '?', '[']) {
        return Ok(vec![arg.to_path_buf()]);
    }
    let matches = glob::glob(&text).with_context(|| {
        format!("{text} is neither a file nor a usable pattern (escape `[` as `[[]`)")
    })?;
    let mut found = Vec::new();
    for entry in matches {
        let path = entry.with_context(|| format!("cannot list the files matching {text}"))?;
        if path.is_file() {
            found.push(path);
        }
    }
    if found.is_empty() {
        bail!("no trace file matches {}", arg.display());
    }
    Ok(found)
}

/// Every trace to read, in order.
pub fn traces(args: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for arg in args {
        out.extend(expand(arg)?);
    }
    if out.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        bail!("standard input (-) can be read only once");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_expands_to_its_files_in_name_order_and_plain_paths_stay() {
        let dir = std::env::temp_dir().join(format!("spliff-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "t.000002.pcapng",
            "t.000001.pcapng",
            "t.pcapng.har",
            "t.000003.pcapng.har",
            "u.000001.pcapng",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let found = traces(&[dir.join("t.*.pcapng"), dir.join("absent.pcapng")]).unwrap();
        assert_eq!(
            found,
            [
                dir.join("t.000001.pcapng"),
                dir.join("t.000002.pcapng"),
                dir.join("absent.pcapng")
            ]
        );
        let one = traces(&[dir.join("t.??????.pcapng")]).unwrap();
        assert_eq!(one.len(), 2);
        let none = traces(&[dir.join("v.*.pcapng")]).unwrap_err();
        assert!(none.to_string().contains("no trace file matches"), "{none}");
        let twice = traces(&[PathBuf::from("-"), PathBuf::from("-")]).unwrap_err();
        assert!(twice.to_string().contains("only once"), "{twice}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
