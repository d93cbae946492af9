//! The live view fed a recorded trace's bytes in small chunks, as the recorder hands them
//! over, prints the same text as `spliff replay` of the file: for every fixture and look.

use std::path::Path;

use spliff_formats::RecordKind;
use spliff_replay::live::{BlockClass, LiveOptions, LiveView, WINDOW_NS, classify};
use spliff_replay::text::TextOptions;
use spliff_tests::spliff::spliff;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/traces")
        .join(name)
}

/// The live view's output for `trace`, fed `chunk` bytes at a time with the clock at the
/// latest record time seen so far (as if each chunk arrived right after it was written) and
/// a reorder window of `window_ns`.
fn live_text(trace: &[u8], text: TextOptions, chunk: usize, window_ns: u64) -> Vec<u8> {
    let mut view = LiveView::new(LiveOptions {
        text,
        window_ns,
        ..LiveOptions::default()
    });
    let mut out = Vec::new();
    for piece in trace.chunks(chunk) {
        view.push(piece).expect("a fixture is a valid stream");
        view.tick(view.latest_ns(), &mut out)
            .expect("writing to memory");
    }
    view.finish(&mut out).expect("writing to memory");
    out
}

fn sorted_lines(text: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(text)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn the_live_view_of_every_fixture_is_the_replay_text() {
    let looks: [(&[&str], TextOptions); 4] = [
        (&[], TextOptions::default()),
        (
            &["-c"],
            TextOptions {
                compact: true,
                ..TextOptions::default()
            },
        ),
        (
            &["-b", "-H"],
            TextOptions {
                bodies: true,
                handshakes: true,
                ..TextOptions::default()
            },
        ),
        (
            &["-x"],
            TextOptions {
                hexdump: true,
                ..TextOptions::default()
            },
        ),
    ];
    for name in [
        "http1-keepalive.pcapng",
        "http1-loss.pcapng",
        "h2-multiplexed-ipv6.pcapng",
        "recorded-curl-h2-h1.pcapng",
        "recorded-urllib-curl-exchanges.pcapng",
    ] {
        let path = fixture(name);
        let bytes = std::fs::read(&path).unwrap();
        for (flags, text) in &looks {
            let mut args = vec!["replay", path.to_str().unwrap(), "--color", "never"];
            args.extend_from_slice(flags);
            let replayed = spliff(&args);
            assert!(replayed.status.success());
            assert!(!replayed.stdout.is_empty(), "{name} {flags:?}");
            for chunk in [97, 4096] {
                let live = live_text(&bytes, *text, chunk, WINDOW_NS);
                assert_eq!(
                    String::from_utf8_lossy(&live),
                    String::from_utf8_lossy(&replayed.stdout),
                    "{name} {flags:?} in chunks of {chunk}"
                );
                // Without a window every part is printed the moment it is ready: the same
                // parts, but one that is ready only when its connection ends (an exchange with
                // lost bytes, with -c) comes after later ones.
                let eager = live_text(&bytes, *text, chunk, 0);
                assert_eq!(
                    sorted_lines(&eager),
                    sorted_lines(&replayed.stdout),
                    "{name} {flags:?} in chunks of {chunk}, no window"
                );
            }
        }
    }
}

/// The blocks of a trace, whole.
fn blocks(trace: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= trace.len() {
        let len = u32::from_le_bytes(trace[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push(&trace[at..at + len]);
        at += len;
    }
    out
}

#[test]
fn an_idle_connection_is_emptied_and_its_later_exchanges_still_shown() {
    let bytes = std::fs::read(fixture("http1-keepalive.pcapng")).unwrap();
    let idle_ns = 1_000_000;
    let mut view = LiveView::new(LiveOptions {
        idle_ns,
        window_ns: 0,
        ..LiveOptions::default()
    });
    let mut out = Vec::new();
    let mut data = 0;
    for block in blocks(&bytes) {
        view.push(block).unwrap();
        if matches!(
            classify(block),
            BlockClass::Record(Some(RecordKind::TlsData))
        ) {
            data += 1;
            if data == 3 {
                // First exchange over; the connection then falls idle.
                view.tick(view.latest_ns() + idle_ns, &mut out).unwrap();
                // Only its connection records are left.
                assert!(view.held_bytes() < 1024, "{}", view.held_bytes());
            }
        }
    }
    view.finish(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for line in [
        "→ GET https://example.test/index.html?lang=en&x=1",
        "← 200 https://example.test/index.html?lang=en&x=1",
        "→ POST https://example.test/api/items",
        "← 201 https://example.test/api/items",
    ] {
        assert_eq!(text.matches(line).count(), 1, "{line} once in:\n{text}");
    }
}
