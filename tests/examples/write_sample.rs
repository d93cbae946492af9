//! Writes a sample trace: `write_sample [all-blocks|http1|http1-loss|h2] PATH` (for fixtures and manual checks).
fn main() {
    let mut args = std::env::args().skip(1);
    let (kind, path) = match (args.next(), args.next()) {
        (Some(k), Some(p)) => (k, p),
        (Some(p), None) => ("all-blocks".to_string(), p),
        _ => ("all-blocks".to_string(), "sample.pcapng".to_string()),
    };
    let bytes = match kind.as_str() {
        "all-blocks" => spliff_tests::sample::sample_trace([7; 16]),
        "http1" => spliff_tests::sample::http1_trace().0,
        "http1-loss" => spliff_tests::sample::http1_loss_trace(),
        "h2" => spliff_tests::sample::h2_trace(&spliff_tests::h2gen::conversation(
            12,
            40_000,
            spliff_tests::sample::MONO + 1_000_000,
        )),
        other => {
            eprintln!("unknown sample {other}: all-blocks, http1, http1-loss or h2");
            std::process::exit(2);
        }
    };
    std::fs::write(&path, bytes).expect("write sample");
}
