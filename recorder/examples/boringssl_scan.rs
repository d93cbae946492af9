//! Benchmark helper: finds BoringSSL's functions in a stripped program as
//! `spliff record` does at exec, and says what it found and how long it took
//! (docs/BENCHMARKS.md). With `--cache`, through the cache in
//! /var/cache/spliff as the recorder does (a search the first time, then a
//! check of the cached offsets), with the CPU time too.
//!
//! `cargo run --release --example boringssl_scan -- [--cache] /usr/lib/chromium/chromium`

#[cfg(target_os = "linux")]
fn main() -> anyhow::Result<()> {
    use spliff_recorder::boringssl::{Cache, DiskCache, inspect};
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let cached = args.first().is_some_and(|a| a == "--cache");
    if cached {
        args.remove(0);
    }
    let [path] = args.as_slice() else {
        anyhow::bail!("usage: boringssl_scan [--cache] PROGRAM");
    };
    let path = std::path::Path::new(path);
    let cpu = cpu_seconds();
    let started = std::time::Instant::now();
    if cached {
        let mut cache = Cache::with_disk(DiskCache::system());
        let found = cache.inspect(path);
        println!("{found:?}; {:?}", cache.take_events());
    } else {
        println!("{:?}", inspect(path));
    }
    println!(
        "in {:.3} s ({:.3} s CPU)",
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu
    );
    Ok(())
}

/// User and system CPU time of this process so far.
#[cfg(target_os = "linux")]
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

#[cfg(not(target_os = "linux"))]
fn main() {}
