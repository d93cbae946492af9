//! Produces `$OUT_DIR/spliff.bpf.o`, the BPF object that `src/lib.rs` embeds.
//!
//! The decision, first match wins:
//! 1. `SPLIFF_BPF_USE_PREBUILT=1`: the committed `prebuilt/spliff.bpf.o`.
//!    This is how the no-clang path is exercised on a machine that has clang.
//! 2. Target OS is not Linux: prebuilt. The object is never loaded there, and
//!    some clangs (Apple's) have no BPF target.
//! 3. `SPLIFF_BPF_CLANG=<path>`: that compiler, and any failure is an error.
//!    Otherwise the first of `clang-19`, `clang` that runs. None: prebuilt,
//!    silently, because that is the normal state of a fresh machine.
//! 4. A clang without libbpf headers: prebuilt, with a warning, because
//!    whoever installed clang probably expected it to be used.
//! 5. Compile with the flags in `bpf/cflags.txt`. A compile error fails the
//!    build: it is a bug in the C sources.
//!
//! `scripts/check-bpf-object.sh` runs the same steps with clang 19 and
//! compares the result with the committed object.

use std::{
    env,
    ffi::{OsStr, OsString},
    fs,
    path::{Path, PathBuf},
    process::{self, Command},
};

const SOURCE: &str = "bpf/spliff.bpf.c";
const CFLAGS: &str = "bpf/cflags.txt";
const PREBUILT: &str = "prebuilt/spliff.bpf.o";
const OBJECT: &str = "spliff.bpf.o";

fn main() {
    let manifest_dir = PathBuf::from(env_or_exit("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env_or_exit("OUT_DIR"));
    let object = out_dir.join(OBJECT);

    // Directories: cargo rescans them, so new headers are noticed too.
    for path in ["bpf", "include", PREBUILT] {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=SPLIFF_BPF_USE_PREBUILT");
    println!("cargo:rerun-if-env-changed=SPLIFF_BPF_CLANG");
    println!("cargo::rustc-check-cfg=cfg(spliff_bpf_prebuilt)");

    match choose_toolchain() {
        Choice::Compile { clang } => compile(&clang, &manifest_dir, &object),
        Choice::Prebuilt { warning } => {
            if let Some(warning) = warning {
                println!(
                    "cargo:warning=using the committed {PREBUILT}: {warning} \
                     (edits to recorder-ebpf/bpf/ are not compiled)"
                );
            }
            if let Err(error) = fs::copy(manifest_dir.join(PREBUILT), &object) {
                fail(&format!(
                    "cannot copy {PREBUILT} to {}: {error}; the committed BPF object is \
                     missing, restore it with `git checkout recorder-ebpf/{PREBUILT}` or \
                     regenerate it with scripts/check-bpf-object.sh --update",
                    object.display()
                ));
            }
            println!("cargo:rustc-cfg=spliff_bpf_prebuilt");
        }
    }
}

enum Choice {
    Compile { clang: OsString },
    Prebuilt { warning: Option<String> },
}

fn choose_toolchain() -> Choice {
    if env_flag("SPLIFF_BPF_USE_PREBUILT") {
        return Choice::Prebuilt { warning: None };
    }
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return Choice::Prebuilt { warning: None };
    }

    let explicit = env::var_os("SPLIFF_BPF_CLANG").filter(|clang| !clang.is_empty());
    let clang = match &explicit {
        Some(clang) => {
            if !runs(clang, "--version") {
                fail(&format!(
                    "SPLIFF_BPF_CLANG={} does not run; point it at a clang with the BPF \
                     target, or unset it",
                    clang.display()
                ));
            }
            clang.clone()
        }
        None => match ["clang-19", "clang"]
            .into_iter()
            .find(|clang| runs(OsStr::new(clang), "--version"))
        {
            Some(clang) => OsString::from(clang),
            None => return Choice::Prebuilt { warning: None },
        },
    };

    if has_libbpf_headers(&clang) {
        return Choice::Compile { clang };
    }
    let problem = format!(
        "{} cannot find <bpf/bpf_helpers.h>; install libbpf headers \
         (Debian/Ubuntu: apt install libbpf-dev)",
        clang.display()
    );
    if explicit.is_some() {
        fail(&format!("SPLIFF_BPF_CLANG is set but {problem}"));
    }
    Choice::Prebuilt {
        warning: Some(problem),
    }
}

fn compile(clang: &OsStr, manifest_dir: &Path, object: &Path) {
    let cflags = fs::read_to_string(manifest_dir.join(CFLAGS))
        .unwrap_or_else(|error| fail(&format!("cannot read {CFLAGS}: {error}")));
    // Relative paths from the crate directory, plus mapping the directory
    // clang's getcwd() reports (symlinks resolved) to ".", keep the checkout
    // location out of the object. Exactly one map, as in the check script:
    // clang 19's output changes with any extra flag.
    let cwd = manifest_dir
        .canonicalize()
        .unwrap_or_else(|_| manifest_dir.to_path_buf());
    let mut command = Command::new(clang);
    command
        .current_dir(manifest_dir)
        .args(parse_flags(&cflags))
        .arg(format!("-ffile-prefix-map={}=.", cwd.display()))
        .args(["-c", SOURCE, "-o"])
        .arg(object);
    run_or_exit(&mut command, "compiling the BPF object");
}

fn parse_flags(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

fn has_libbpf_headers(clang: &OsStr) -> bool {
    // Preprocessing a one-line file asks clang's own include search, which is
    // what the real compile will use.
    let Some(out_dir) = env::var_os("OUT_DIR") else {
        return false;
    };
    let probe = Path::new(&out_dir).join("libbpf-probe.c");
    if fs::write(&probe, "#include <bpf/bpf_helpers.h>\n").is_err() {
        return false;
    }
    Command::new(clang)
        .args(["-target", "bpf", "-E", "-o"])
        .arg(Path::new(&out_dir).join("libbpf-probe.i"))
        .arg(&probe)
        .output()
        .is_ok_and(|output| output.status.success())
}

fn runs(program: &OsStr, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|output| output.status.success())
}

fn run_or_exit(command: &mut Command, what: &str) {
    match command.output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => fail(&format!(
            "{what} failed ({}):\n{:?}\n{}{}\nFix the C sources in recorder-ebpf/bpf/, or build \
             with SPLIFF_BPF_USE_PREBUILT=1 to use the committed object.",
            output.status,
            command,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        )),
        Err(error) => fail(&format!(
            "{what}: cannot run {:?}: {error}",
            command.get_program()
        )),
    }
}

fn env_flag(name: &str) -> bool {
    env::var(name).is_ok_and(|value| {
        !matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "false" | "no" | "off"
        )
    })
}

fn env_or_exit(name: &str) -> OsString {
    env::var_os(name).unwrap_or_else(|| fail(&format!("{name} is not set; run through cargo")))
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    process::exit(1);
}
