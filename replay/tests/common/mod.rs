//! Shared test plumbing: tap real HTTP implementations' writes, turn them into
//! trace pieces split in various ways, and compare reconstructions.

#![allow(dead_code)]

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use spliff_replay::{
    ConnectionStreams, DirectionStream, Exchange, Piece, Reconstruction, ReplayOptions, Timings,
    reconstruct,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One write as the recorder would see it: timestamp and bytes.
pub type Write = (u64, Vec<u8>);

/// Wraps one end of an in-process connection and records every write.
pub struct Tap<S> {
    inner: S,
    log: Arc<Mutex<Vec<Write>>>,
    clock: Arc<AtomicU64>,
}

impl<S> Tap<S> {
    /// `clock` is shared by both ends so timestamps order all writes.
    pub fn new(inner: S, clock: Arc<AtomicU64>) -> Tap<S> {
        Tap {
            inner,
            log: Arc::default(),
            clock,
        }
    }

    pub fn log(&self) -> Arc<Mutex<Vec<Write>>> {
        self.log.clone()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            let ts = 1_000_000 + self.clock.fetch_add(1, Ordering::SeqCst) * 1_000;
            self.log.lock().unwrap().push((ts, buf[..n].to_vec()));
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Both directions' writes of one connection.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub request: Vec<Write>,
    pub response: Vec<Write>,
}

/// One piece per write: exactly what the recorder produces.
pub fn per_write(writes: &[Write]) -> Vec<Piece<'static>> {
    sub_pieces(writes, usize::MAX)
}

/// Every write cut into `n`-byte pieces, each keeping its write's timestamp
/// (n = 1 is byte by byte). Timings must come out identical.
pub fn sub_pieces(writes: &[Write], n: usize) -> Vec<Piece<'static>> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for (ts, bytes) in writes {
        for chunk in bytes.chunks(n.max(1)) {
            out.push(Piece::Data {
                offset,
                ts_ns: *ts,
                bytes: chunk.to_vec().into(),
            });
            offset += chunk.len() as u64;
        }
    }
    out
}

/// Each write cut at the given relative positions (taken modulo its length).
pub fn cut_writes(writes: &[Write], cuts: &[usize]) -> Vec<Piece<'static>> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for (i, (ts, bytes)) in writes.iter().enumerate() {
        let mut points: Vec<usize> = cuts
            .iter()
            .skip(i % cuts.len().max(1))
            .take(3)
            .map(|c| c % bytes.len().max(1))
            .filter(|&c| c > 0)
            .collect();
        points.sort_unstable();
        points.dedup();
        let mut start = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            out.push(Piece::Data {
                offset: offset + start as u64,
                ts_ns: *ts,
                bytes: bytes[start..p].to_vec().into(),
            });
            start = p;
        }
        offset += bytes.len() as u64;
    }
    out
}

/// The stream re-cut every `n` bytes regardless of write boundaries; a piece
/// takes the timestamp of its first byte (so timings may differ).
pub fn coalesced(writes: &[Write], n: usize) -> Vec<Piece<'static>> {
    let mut flat = Vec::new();
    let mut stamps = Vec::new();
    for (ts, bytes) in writes {
        stamps.extend(std::iter::repeat_n(*ts, bytes.len()));
        flat.extend_from_slice(bytes);
    }
    flat.chunks(n.max(1))
        .enumerate()
        .map(|(i, c)| Piece::Data {
            offset: (i * n.max(1)) as u64,
            ts_ns: stamps[i * n.max(1)],
            bytes: c.to_vec().into(),
        })
        .collect()
}

/// Keeps only bytes at or after `from` (a capture that started late).
pub fn starting_at(pieces: Vec<Piece<'static>>, from: u64) -> Vec<Piece<'static>> {
    pieces
        .into_iter()
        .filter_map(|p| match p {
            Piece::Data {
                offset,
                ts_ns,
                bytes,
            } => {
                let end = offset + bytes.len() as u64;
                if end <= from {
                    None
                } else if offset >= from {
                    Some(Piece::Data {
                        offset,
                        ts_ns,
                        bytes,
                    })
                } else {
                    Some(Piece::Data {
                        offset: from,
                        ts_ns,
                        bytes: bytes[(from - offset) as usize..].to_vec().into(),
                    })
                }
            }
            gap => Some(gap),
        })
        .collect()
}

/// Replaces `[from, from + len)` with a loss record.
pub fn with_gap(pieces: Vec<Piece<'static>>, from: u64, len: u64) -> Vec<Piece<'static>> {
    let to = from + len;
    let mut out = Vec::new();
    let mut gap_ts = 0;
    for p in pieces {
        let Piece::Data {
            offset,
            ts_ns,
            bytes,
        } = p
        else {
            out.push(p);
            continue;
        };
        let end = offset + bytes.len() as u64;
        if end <= from || offset >= to {
            out.push(Piece::Data {
                offset,
                ts_ns,
                bytes,
            });
            continue;
        }
        gap_ts = ts_ns;
        if offset < from {
            out.push(Piece::Data {
                offset,
                ts_ns,
                bytes: bytes[..(from - offset) as usize].to_vec().into(),
            });
        }
        if end > to {
            out.push(Piece::Data {
                offset: to,
                ts_ns,
                bytes: bytes[(to - offset) as usize..].to_vec().into(),
            });
        }
    }
    out.push(Piece::Gap {
        offset: from,
        len,
        ts_ns: gap_ts,
        reason: "test loss".into(),
    });
    out
}

pub fn connection(
    alpn: Option<&[u8]>,
    request: Vec<Piece<'static>>,
    response: Vec<Piece<'static>>,
) -> ConnectionStreams<'static> {
    ConnectionStreams {
        alpn: alpn.map(<[u8]>::to_vec),
        request: DirectionStream::from_pieces(request),
        response: DirectionStream::from_pieces(response),
        closed: true,
    }
}

pub fn replay(
    alpn: Option<&[u8]>,
    request: Vec<Piece<'static>>,
    response: Vec<Piece<'static>>,
) -> Reconstruction {
    let whole = reconstruct(
        &connection(alpn, request.clone(), response.clone()),
        &ReplayOptions::default(),
    );
    if whole.detection.protocol == spliff_replay::Protocol::Http2 {
        // HTTP/2 frames are read one at a time: windows from every size of 1 to 64 bytes cut
        // small frames at every place. Larger conversations (the proptests run many) get a
        // sample of sizes.
        let len: usize = request.iter().chain(&response).map(piece_len).sum();
        let windows: Vec<u64> = if len <= 16 << 10 {
            (1..=64).chain([100, 300, 1000, 4096, 1 << 16]).collect()
        } else {
            vec![1, 2, 3, 5, 8, 9, 13, 24, 33, 64, 300, 4096, 1 << 16]
        };
        assert_windowed_same_with(alpn, request, response, true, &whole, windows);
    } else {
        assert_windowed_same(alpn, request, response, true, &whole);
    }
    whole
}

fn piece_len(p: &Piece<'_>) -> usize {
    match p {
        Piece::Data { bytes, .. } => bytes.len(),
        Piece::Gap { .. } => 0,
    }
}

/// The pipeline's path for large connections (windowed streams, exchanges one at a time) gives
/// exactly `whole`, with windows from 1 byte (every read meets an edge) and from a few bytes.
pub fn assert_windowed_same(
    alpn: Option<&[u8]>,
    request: Vec<Piece<'_>>,
    response: Vec<Piece<'_>>,
    closed: bool,
    whole: &Reconstruction,
) {
    assert_windowed_same_with(alpn, request, response, closed, whole, [1, 7, 300]);
}

/// [`assert_windowed_same`] with windows starting at each of `windows` bytes.
pub fn assert_windowed_same_with(
    alpn: Option<&[u8]>,
    request: Vec<Piece<'_>>,
    response: Vec<Piece<'_>>,
    closed: bool,
    whole: &Reconstruction,
    windows: impl IntoIterator<Item = u64>,
) {
    for window in windows {
        let windowed = spliff_replay::lazy::reconstruct_windowed(
            alpn,
            request.clone(),
            response.clone(),
            closed,
            &ReplayOptions::default(),
            window,
        );
        assert!(
            &windowed == whole,
            "windowed replay (first window {window}) differs:\n{windowed:#?}\nwhole:\n{whole:#?}"
        );
    }
}

/// The reconstruction without timestamps, for comparing splits that move them.
pub fn without_timings(mut r: Reconstruction) -> Reconstruction {
    for e in &mut r.exchanges {
        e.timings = Timings::default();
        if let Some(u) = e.upgrade.as_mut() {
            for m in &mut u.messages {
                m.ts_ns = None;
            }
        }
    }
    r
}

pub fn total_len(writes: &[Write]) -> u64 {
    writes.iter().map(|(_, b)| b.len() as u64).sum()
}

/// Offsets at which each write starts.
pub fn write_offsets(writes: &[Write]) -> Vec<u64> {
    let mut at = 0;
    writes
        .iter()
        .map(|(_, b)| {
            let o = at;
            at += b.len() as u64;
            o
        })
        .collect()
}

/// Whether `part` can be made from `whole` by deleting bytes.
pub fn is_subsequence(part: &[u8], whole: &[u8]) -> bool {
    let mut rest = whole.iter();
    part.iter().all(|b| rest.any(|w| w == b))
}

/// The core promise: whatever a degraded capture outputs is what the full
/// capture says. Headers present must be identical; a complete exchange must
/// be identical in full.
pub fn assert_never_wrong(
    degraded: &Reconstruction,
    full: &Reconstruction,
    key: impl Fn(&Exchange) -> Option<u64>,
) {
    for e in &degraded.exchanges {
        let Some(k) = key(e) else { continue };
        let Some(truth) = full.exchanges.iter().find(|f| key(f) == Some(k)) else {
            panic!("exchange {k} does not exist in the full capture: {e:#?}");
        };
        // Bodies may miss bytes, but never gain or reorder any: framing after a
        // resync must not attribute another stream's bytes to this one.
        assert!(
            is_subsequence(&e.request.body, &truth.request.body),
            "request body of {k} is not part of the real one"
        );
        if let (Some(r), Some(t)) = (&e.response, &truth.response) {
            assert!(
                is_subsequence(&r.body, &t.body),
                "response body of {k} is not part of the real one"
            );
        }
        if e.request.method.is_some() {
            assert_eq!(
                e.request.headers, truth.request.headers,
                "request headers of {k}"
            );
            assert_eq!(e.request.target, truth.request.target, "target of {k}");
        }
        if !e.request.trailers.is_empty() {
            assert_eq!(
                e.request.trailers, truth.request.trailers,
                "request trailers of {k}"
            );
        }
        if let Some(r) = &e.response {
            let t = truth.response.as_ref().expect("response in full capture");
            if r.status.is_some() {
                assert_eq!(r.headers, t.headers, "response headers of {k}");
                assert_eq!(r.status, t.status, "status of {k}");
            }
            if !r.trailers.is_empty() {
                assert_eq!(r.trailers, t.trailers, "response trailers of {k}");
            }
        }
        if e.is_complete() {
            let mut a = e.clone();
            let mut b = truth.clone();
            a.timings = Timings::default();
            b.timings = Timings::default();
            assert_eq!(a, b, "complete exchange {k} differs from the full capture");
        }
    }
}

/// Where two exchanges first differ, briefly (full dumps of bodies are useless).
fn first_difference(a: &Exchange, b: &Exchange) -> String {
    let fields: [(&str, bool); 9] = [
        (
            "request head",
            a.request.headers != b.request.headers || a.request.method != b.request.method,
        ),
        ("request body", a.request.body != b.request.body),
        ("request trailers", a.request.trailers != b.request.trailers),
        (
            "response",
            a.response.as_ref().map(|r| (&r.status, &r.headers))
                != b.response.as_ref().map(|r| (&r.status, &r.headers)),
        ),
        (
            "response body",
            a.response.as_ref().map(|r| &r.body) != b.response.as_ref().map(|r| &r.body),
        ),
        ("timings", a.timings != b.timings),
        ("incomplete", a.incomplete != b.incomplete),
        ("loss", a.loss != b.loss),
        ("other", true),
    ];
    let field = fields.iter().find(|f| f.1).map_or("?", |f| f.0);
    format!(
        "{field}; incomplete {:?} vs {:?}; timings {:?} vs {:?}",
        a.incomplete, b.incomplete, a.timings, b.timings
    )
}

/// Asserts two reconstructions are equal, reporting the first difference briefly.
pub fn assert_same(a: &Reconstruction, b: &Reconstruction, context: &str) {
    assert_eq!(a.detection, b.detection, "{context}: detection");
    assert_eq!(a.notes, b.notes, "{context}: notes");
    assert_eq!(
        a.exchanges.len(),
        b.exchanges.len(),
        "{context}: exchange count"
    );
    for (i, (x, y)) in a.exchanges.iter().zip(&b.exchanges).enumerate() {
        assert!(
            x == y,
            "{context}: exchange {i} differs in {}",
            first_difference(x, y)
        );
    }
}
