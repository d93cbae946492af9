//! Benchmark helper: attaches no-op uprobes where `spliff record` attaches
//! its probes for one TLS library, and waits for a signal. What it costs is
//! the trap alone, the floor the recorder is measured against
//! (docs/BENCHMARKS.md).
//!
//! ```sh
//! noop_probes openssl /usr/lib/x86_64-linux-gnu/libssl.so.3
//! noop_probes gnutls /usr/lib/x86_64-linux-gnu/libgnutls.so.30
//! noop_probes wolfssl /usr/lib/x86_64-linux-gnu/libwolfssl.so.35
//! noop_probes nss /usr/lib/x86_64-linux-gnu/libnspr4.so   # and again on libssl3.so
//! noop_probes go ./go-server        # entries and every RET, as for Go programs
//! noop_probes boringssl /usr/lib/chromium/chromium   # stripped: found by code
//! ```
//!
//! Library kinds take the probe table's symbols that the file defines (entry
//! probes and return probes alike; not the functions found through a method
//! table, OpenSSL's SSL BIO path, which only programs reading through an SSL
//! BIO call); `go` inspects the executable as the recorder does and puts
//! an entry probe on each hooked function's first instruction and on each of
//! its RET instructions, the places of the recorder's Go probes;
//! `boringssl` runs the recorder's search of a stripped program and takes
//! the BoringSSL probe table at the offsets found, refusing, as the recorder
//! does, a program whose functions are not all identified.

#[cfg(target_os = "linux")]
fn main() -> anyhow::Result<()> {
    use anyhow::{Context as _, bail};
    use aya::{Btf, EbpfLoader, programs::UProbe};
    use spliff_recorder_ebpf::{BPF_OBJECT, names};

    let mut args = std::env::args().skip(1);
    let (Some(kind), Some(path)) = (args.next(), args.next()) else {
        bail!("usage: noop_probes openssl|gnutls|wolfssl|nss|go|boringssl PATH");
    };
    let points = points(&kind, std::path::Path::new(&path))?;
    // An owned copy: malloc alignment satisfies the ELF parser.
    let object = BPF_OBJECT.to_vec();
    let mut ebpf = EbpfLoader::new()
        .btf(Btf::from_sys_fs().ok().as_ref())
        .load(&object)
        .context("load the BPF object (root?)")?;
    for is_return in [false, true] {
        let program = if is_return {
            names::NOOP_RETURN_PROGRAM
        } else {
            names::NOOP_ENTRY_PROGRAM
        };
        let probe: &mut UProbe = ebpf
            .program_mut(program)
            .context("program missing")?
            .try_into()?;
        probe.load()?;
        for point in points.iter().filter(|p| p.is_return == is_return) {
            probe
                .attach(
                    point.location(),
                    &path,
                    aya::programs::uprobe::UProbeScope::AllProcesses,
                )
                .with_context(|| format!("attach at {point:?} in {path}"))?;
        }
    }
    eprintln!(
        "noop_probes: {} no-op probes on {path} ({kind}); Ctrl-C to stop",
        points.len()
    );
    loop {
        std::thread::park();
    }
}

/// One place for a no-op probe.
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct Point {
    symbol: Option<&'static str>,
    offset: u64,
    is_return: bool,
}

#[cfg(target_os = "linux")]
impl Point {
    fn location(&self) -> aya::programs::uprobe::UProbeAttachLocation<'static> {
        use aya::programs::uprobe::UProbeAttachLocation;
        match self.symbol {
            Some(symbol) => UProbeAttachLocation::Symbol(symbol),
            None => UProbeAttachLocation::AbsoluteOffset(self.offset),
        }
    }
}

/// Where `spliff record` puts its probes for `kind` in `path`.
#[cfg(target_os = "linux")]
fn points(kind: &str, path: &std::path::Path) -> anyhow::Result<Vec<Point>> {
    use anyhow::{anyhow, bail};
    use spliff_recorder::probes;

    let library = match kind {
        "openssl" => &probes::OPENSSL,
        "gnutls" => &probes::GNUTLS,
        "wolfssl" => &probes::WOLFSSL,
        "nss" => &probes::NSS,
        "go" => return go_points(path),
        "boringssl" => return boringssl_points(path),
        other => {
            bail!("unknown library kind {other:?}: openssl, gnutls, wolfssl, nss, go or boringssl")
        }
    };
    // Only symbols the file has: the recorder skips optional probes it lacks.
    let data = std::fs::read(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let elf = object::File::parse(&*data).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let defined: std::collections::HashSet<&str> = {
        use object::{Object as _, ObjectSymbol as _};
        elf.dynamic_symbols()
            .filter(|s| s.is_definition())
            .filter_map(|s| s.name().ok())
            .collect()
    };
    Ok(library
        .probes
        .iter()
        .filter(|p| p.table_slot.is_none() && defined.contains(p.symbol))
        .map(|p| Point {
            symbol: Some(p.symbol),
            offset: 0,
            is_return: p.is_return,
        })
        .collect())
}

/// Each hooked Go function's entry and RET instructions (`golang::PROBES`).
#[cfg(target_os = "linux")]
fn go_points(path: &std::path::Path) -> anyhow::Result<Vec<Point>> {
    use anyhow::anyhow;
    use spliff_recorder::golang;

    let binary = golang::inspect(path)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?
        .ok_or_else(|| anyhow!("{} is not a Go program", path.display()))?;
    let mut points = Vec::new();
    for &(name, entry, ret) in golang::PROBES {
        let Some(function) = binary.function(name) else {
            continue;
        };
        let offsets = entry
            .map(|_| function.entry)
            .into_iter()
            .chain(ret.into_iter().flat_map(|_| function.rets.iter().copied()));
        points.extend(offsets.map(|offset| Point {
            symbol: None,
            offset,
            is_return: false,
        }));
    }
    Ok(points)
}

/// The BoringSSL probe table at the offsets the recorder's search finds.
#[cfg(target_os = "linux")]
fn boringssl_points(path: &std::path::Path) -> anyhow::Result<Vec<Point>> {
    use anyhow::{anyhow, bail};
    use spliff_recorder::{boringssl, probes};

    // inspect() takes an unreadable file for one without BoringSSL.
    std::fs::metadata(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let offsets = match boringssl::inspect(path) {
        boringssl::Found::Hookable(offsets) => offsets,
        boringssl::Found::NotBoringSsl => {
            bail!("{}: no BoringSSL found", path.display())
        }
        boringssl::Found::Refused(why) => {
            bail!("{}: BoringSSL not hooked: {why}", path.display())
        }
    };
    // The optional SSL_new is left out when not found, as the recorder does.
    Ok(probes::BORINGSSL
        .probes
        .iter()
        .filter_map(|p| {
            offsets.of(p.symbol).map(|offset| Point {
                symbol: None,
                offset,
                is_return: p.is_return,
            })
        })
        .collect())
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("noop_probes needs Linux");
}
