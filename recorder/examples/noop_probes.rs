//! Benchmark helper: attaches no-op uprobes to the same libssl functions as
//! `spliff record` and waits for Ctrl-C. What it costs is the trap alone,
//! the floor the recorder is measured against (docs/BENCHMARKS.md).
//!
//! `cargo run --release --example noop_probes -- /usr/lib/x86_64-linux-gnu/libssl.so.3`

#[cfg(target_os = "linux")]
fn main() -> anyhow::Result<()> {
    use anyhow::Context as _;
    use aya::{
        Btf, EbpfLoader,
        programs::{
            UProbe,
            uprobe::{UProbeAttachLocation, UProbeScope},
        },
    };
    use spliff_recorder_ebpf::{BPF_OBJECT, names};

    let library = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/usr/lib/x86_64-linux-gnu/libssl.so.3".into());
    // An owned copy: malloc alignment satisfies the ELF parser.
    let object = BPF_OBJECT.to_vec();
    let mut ebpf = EbpfLoader::new()
        .btf(Btf::from_sys_fs().ok().as_ref())
        .load(&object)
        .context("load the BPF object (root?)")?;
    let mut attached = 0;
    for (program, is_return) in [
        (names::NOOP_ENTRY_PROGRAM, false),
        (names::NOOP_RETURN_PROGRAM, true),
    ] {
        let probe: &mut UProbe = ebpf
            .program_mut(program)
            .context("program missing")?
            .try_into()?;
        probe.load()?;
        for p in spliff_recorder::probes::OPENSSL
            .probes
            .iter()
            .filter(|p| p.is_return == is_return)
        {
            probe.attach(
                UProbeAttachLocation::Symbol(p.symbol),
                &library,
                UProbeScope::AllProcesses,
            )?;
            attached += 1;
        }
    }
    eprintln!("noop_probes: {attached} no-op probes on {library}; Ctrl-C to stop");
    loop {
        std::thread::park();
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("noop_probes needs Linux");
}
