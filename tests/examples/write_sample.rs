//! Writes the sample trace to the path given as the first argument (for docs and manual checks).
fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sample.pcapng".into());
    std::fs::write(&path, spliff_tests::sample::sample_trace([7; 16])).expect("write sample");
}
