//! Shared by the protocol fuzz targets: turn fuzz bytes into one connection (two streams cut
//! into pieces at fuzz-chosen points, optionally with a gap), reconstruct it, and push the
//! result through every sink. Every path must return without panicking, and the windowed
//! replay of large connections must equal the whole one.

use spliff_formats::{CaptureId, ConnectionRole, Direction, TlsLibrary};
use spliff_replay::body::DecodeOptions;
use spliff_replay::pipeline::{Replayed, ReplayedConnection};
use spliff_replay::trace_input::{ClockMap, ConnectionInfo, ConnectionKey};
use spliff_replay::{ConnectionStreams, DirectionStream, Piece, ReplayOptions, reconstruct};

fn pieces(bytes: &[u8], piece: usize, gap: Option<(u64, u64)>) -> Vec<Piece<'_>> {
    let mut out: Vec<Piece> = bytes
        .chunks(piece.max(1))
        .enumerate()
        .map(|(i, c)| Piece::Data {
            offset: (i * piece.max(1)) as u64,
            ts_ns: 1_000 + i as u64,
            bytes: c.into(),
        })
        .collect();
    if let Some((at, len)) = gap {
        out.retain(|p| !matches!(p, Piece::Data { offset, .. } if *offset >= at && *offset < at + len));
        out.push(Piece::Gap { offset: at, len, ts_ns: 5, reason: "fuzz".into() });
    }
    out
}

/// `data`: [split hi, split lo, piece size, flags, prefix...].
pub fn run(data: &[u8], alpn: &[u8], prefix: &[u8]) {
    let [hi, lo, piece, flags, rest @ ..] = data else { return };
    let split = (usize::from(*hi) << 8 | usize::from(*lo)).min(rest.len());
    let mut request = prefix.to_vec();
    request.extend_from_slice(&rest[..split]);
    let response = &rest[split..];
    let gap = (flags & 1 == 1).then(|| (u64::from(*piece) * 3, u64::from(*hi) + 1));
    let streams = ConnectionStreams {
        alpn: (flags & 2 == 2).then(|| alpn.to_vec()),
        request: DirectionStream::from_pieces(pieces(&request, usize::from(*piece) + 1, None)),
        response: DirectionStream::from_pieces(pieces(response, usize::from(*piece) + 1, gap)),
        closed: flags & 4 == 4,
    };
    let result = reconstruct(&streams, &ReplayOptions::default());
    // The pipeline's path for large connections (windowed streams, exchanges one at a time)
    // must give exactly the same, with windows that every read outgrows.
    let windowed = spliff_replay::lazy::reconstruct_windowed(
        streams.alpn.as_deref(),
        pieces(&request, usize::from(*piece) + 1, None),
        pieces(response, usize::from(*piece) + 1, gap),
        streams.closed,
        &ReplayOptions::default(),
        u64::from(flags >> 4) + 1,
    );
    assert!(windowed == result, "windowed replay differs from the whole-stream one");
    let info = ConnectionInfo {
        key: ConnectionKey { capture_id: CaptureId([1; 16]), conn_id: 1 },
        pid: 1,
        process: None,
        tls_library: TlsLibrary::OpenSsl,
        library_path: String::new(),
        alpn: streams.alpn.clone(),
        sni: None,
        local: "[::1]:5000".parse().ok(),
        remote: "127.0.0.1:443".parse().ok(),
        role: ConnectionRole::Client,
        open_ns: None,
        close_ns: streams.closed.then_some(9_999),
        handshake_ns: Some((1, 2)),
        first_ts_ns: 0,
        clock: Some(ClockMap { kernel_ns: 0, wall_ns: 1 }),
        request_direction: Direction::Egress,
        notes: Vec::new(),
        unix_path: None,
    };
    let order = (0..result.exchanges.len()).map(|e| (0, e)).collect();
    let replayed = Replayed {
        connections: vec![ReplayedConnection { info, result, streams }],
        order,
        errors: Vec::new(),
        unattributed_loss: Vec::new(),
    };
    let decode = DecodeOptions { max_decoded_len: 1 << 20 };
    let mut sink = std::io::sink();
    let _ = spliff_replay::har::write_har(&replayed, &decode, &mut sink);
    let options = spliff_replay::text::TextOptions { bodies: true, hexdump: flags & 8 == 8, compact: false, handshakes: flags & 16 == 16, color: true };
    let _ = spliff_replay::text::write_exchanges(&replayed, &options, &decode, &mut sink);
    let _ = spliff_replay::pcapng::write_pcapng(&replayed, &Default::default(), &mut sink);
}

/// The pcapng target: `data` is a trace file. Writing it as pcapng must return without
/// panicking and in work bounded by the input, and connections rendered item by item
/// (lazily, through windows) must give the bytes of the ones rebuilt whole.
pub fn pcapng(data: &[u8]) {
    use spliff_replay::pcapng::{PcapngOptions, PcapngSink};
    use spliff_replay::pipeline::{BatchLimits, replay_to};
    let run = |limits: BatchLimits| {
        let mut out = Vec::new();
        let sink = PcapngSink::new(PcapngOptions { max_segment: 64 });
        replay_to(data, &ReplayOptions::default(), limits, &|_| {}, &sink, &mut out)
            .map(|_| out)
            .map_err(|e| e.to_string())
    };
    let whole = run(BatchLimits::default());
    let lazy = run(BatchLimits { lazy_bytes: 0, lazy_window: 64, ..BatchLimits::default() });
    assert!(whole == lazy, "the lazy pcapng output differs from the whole one");
}
