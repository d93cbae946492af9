//! The traces `spliff replay` was given: paths as they are, and patterns the shell did not
//! expand (quoted, or from a script without a shell) expanded here, so that
//! `spliff replay 'trace.*.pcapng'` reads the files of a rotated capture in order.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// Whether `name` holds a wildcard (`*` or `?`).
fn is_pattern(name: &str) -> bool {
    name.contains(['*', '?'])
}

/// Whether `name` matches `pattern`: `*` any run of characters, `?` any one character.
/// Greedy with one backtrack point (the last `*`), so time stays linear-ish whatever the
/// pattern.
fn matches(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                // Let the last `*` take one more character and try again after it.
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    p = sp + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Expands one argument: an existing path stays; a wildcard in the file name (not in the
/// directories) becomes the matching files, sorted by name.
fn expand(arg: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let name = arg.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if arg.exists() || !is_pattern(name) {
        return Ok(vec![arg.to_path_buf()]);
    }
    let dir = match arg.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let pattern: Vec<char> = name.chars().collect();
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let file_name = entry.file_name();
        let Some(candidate) = file_name.to_str() else {
            continue;
        };
        let candidate: Vec<char> = candidate.chars().collect();
        if matches(&pattern, &candidate) && entry.path().is_file() {
            found.push(arg.with_file_name(file_name));
        }
    }
    if found.is_empty() {
        bail!("no trace file matches {}", arg.display());
    }
    found.sort();
    Ok(found)
}

/// Every trace to read, in order.
pub fn traces(args: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for arg in args {
        out.extend(expand(arg)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        let p: Vec<char> = pattern.chars().collect();
        let n: Vec<char> = name.chars().collect();
        matches(&p, &n)
    }

    #[test]
    fn wildcards_match_like_a_shell() {
        assert!(m("trace.*.pcapng", "trace.000001.pcapng"));
        assert!(m("trace.??????.pcapng", "trace.000001.pcapng"));
        assert!(!m("trace.?????.pcapng", "trace.000001.pcapng"));
        assert!(!m("trace.*.pcapng", "trace.000001.pcapng.har"));
        assert!(m("*", ""));
        assert!(!m("a*", "b"));
    }

    #[test]
    fn a_pattern_expands_to_its_files_in_name_order_and_plain_paths_stay() {
        let dir = std::env::temp_dir().join(format!("spliff-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "t.000002.pcapng",
            "t.000001.pcapng",
            "t.pcapng.har",
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
        let none = traces(&[dir.join("v.*.pcapng")]).unwrap_err();
        assert!(none.to_string().contains("no trace file matches"), "{none}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
