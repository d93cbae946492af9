//! Benchmark helper: finds BoringSSL's functions in a stripped program as
//! `spliff record` does at exec, and says what it found and how long it took
//! (docs/BENCHMARKS.md).
//!
//! `cargo run --release --example boringssl_scan -- /usr/lib/chromium/chromium`

#[cfg(target_os = "linux")]
fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: boringssl_scan PROGRAM"))?;
    let started = std::time::Instant::now();
    let found = spliff_recorder::boringssl::inspect(std::path::Path::new(&path));
    println!("{found:?} in {:.3} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn main() {}
