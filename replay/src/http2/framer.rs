//! Cutting one direction's bytes into HTTP/2 frames, across holes and
//! mid-connection starts.
//!
//! Once a frame header is trusted, its length is authoritative: missing bytes
//! inside a payload cost that frame's content but not the alignment of the
//! next frame. Alignment is lost only when a frame header itself falls in a
//! hole; it is then searched for again, accepting a position only when a chain
//! of strictly plausible frames starts there and does not break for about 96 KiB
//! (see `resync_chain_reach`): a body may hold complete HTTP/2 frames, and a chain of
//! such lookalikes breaks where the payload that holds it ends.

use super::frame::{self, FRAME_HEADER_LEN, Frame, FrameError, FrameHead, PREFACE};
use crate::stream::{DirectionStream, Side};

/// Complete plausible frames in a row that make a resync position believable
/// on their own. Random bytes pass one header check roughly once in a thousand
/// positions; three chained checks make a false resync vanishingly rare.
const MIN_CHAIN: usize = 3;

/// A frame with its place in the stream.
#[derive(Debug, Clone)]
pub(crate) struct Located<'a> {
    pub offset: u64,
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
    pub frame: Frame<'a>,
}

/// What the framer found, in stream order.
#[derive(Debug, Clone)]
pub(crate) enum Event<'a> {
    /// A complete, valid frame.
    Frame(Located<'a>),
    /// A complete frame whose payload breaks its type's rules; framing holds.
    Invalid {
        offset: u64,
        head: FrameHead,
        error: FrameError,
    },
    /// A frame whose header survived but some payload bytes are missing;
    /// framing holds.
    Damaged {
        offset: u64,
        head: FrameHead,
        first_ts: Option<u64>,
        last_ts: Option<u64>,
        /// Captured pieces of the payload, in order.
        parts: Vec<&'a [u8]>,
        /// Missing `(offset, len)` ranges inside the payload.
        losses: Vec<(u64, u64)>,
    },
    /// Bytes skipped while looking for a frame boundary.
    Desync {
        offset: u64,
        len: u64,
        reason: String,
    },
    /// Missing bytes at a frame boundary: alignment and HPACK context are gone.
    Lost {
        offset: u64,
        len: u64,
        ts: Option<u64>,
        reason: String,
    },
    /// The capture ended inside this frame.
    Truncated {
        offset: u64,
        head: Option<FrameHead>,
        first_ts: Option<u64>,
        /// Captured payload bytes (after the frame header).
        payload: &'a [u8],
    },
}

/// The framed view of one direction (all its events; for tests).
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub(crate) struct Framed<'a> {
    pub events: Vec<Event<'a>>,
    /// The client preface was seen (request side).
    pub saw_preface: bool,
    /// Whether this direction was followed from its first byte.
    pub from_start: bool,
}

/// Whether a chain of plausible frames, the first one not empty, starts at
/// `bytes[0]`.
fn chain_starts_here(bytes: &[u8], at_capture_end: bool) -> bool {
    chain_reach(bytes, at_capture_end).0
}

/// [`chain_starts_here`], and how far its answer depended on `bytes`: the number of bytes
/// examined, or `bytes.len() + 1` when the answer depended on where `bytes` ends (a window
/// that cuts the run there could have changed it).
fn chain_reach(bytes: &[u8], at_capture_end: bool) -> (bool, usize) {
    let ran_out = bytes.len() + 1;
    let mut at = 0usize;
    let mut complete = 0usize;
    loop {
        if at == bytes.len() {
            // Ending exactly on a frame boundary is strong evidence by itself:
            // the length field had to match the remaining bytes.
            return (complete >= 1, ran_out);
        }
        let Some(head) = FrameHead::parse(&bytes[at..]) else {
            return (at_capture_end && complete >= 2, ran_out);
        };
        let looked = at + FRAME_HEADER_LEN;
        if !head.is_strictly_plausible() {
            return (false, looked);
        }
        // An empty frame proves nothing about where it starts: nine bytes whose
        // first three are zero pass for one, and such runs are common (the tail
        // of a WINDOW_UPDATE right before a real boundary). Syncing a frame
        // later costs at most that empty frame.
        if complete == 0 && head.len == 0 {
            return (false, looked);
        }
        let total = head.total_len();
        if ((bytes.len() - at) as u64) < total {
            return (at_capture_end && complete >= 2, ran_out);
        }
        at += total as usize;
        complete += 1;
        if complete >= MIN_CHAIN {
            return (true, at);
        }
    }
}

/// [`chain_reach`] for the framer's resynchronisation, which must not take a chain of
/// lookalike frames inside a payload (a body that holds HTTP/2 frames) for the connection's
/// own. Such a chain lives inside DATA payloads of at most 16 KiB (the default maximum frame
/// size): it crosses a real frame header at least every 16 KiB, and past each one it goes on
/// only if it lands, by chance, where a plausible header follows; a frame longer than 16 KiB is
/// such a chance landing too. So a chain is accepted only once it has gone through
/// [`RESYNC_LANDINGS`] of them without an implausible header: each frame over 16 KiB counts
/// one, and so does every 16 KiB (plus a header) of smaller frames. A chain that reaches the
/// end of the captured run (a hole, the window or the capture's end) first is judged as by
/// [`chain_reach`] if it had no frame over 16 KiB and is not cut inside one.
fn resync_chain_reach(bytes: &[u8], at_capture_end: bool) -> (bool, usize) {
    const SPAN: u64 = DEFAULT_MAX_FRAME + FRAME_HEADER_LEN as u64;
    let ran_out = bytes.len() + 1;
    let mut at = 0usize;
    let mut complete = 0usize;
    // Landings gone through: frames over 16 KiB, and bytes of smaller frames.
    let (mut big, mut small) = (0u64, 0u64);
    loop {
        if at == bytes.len() {
            return (complete >= 1, ran_out);
        }
        // Cut by the end of the run: as `chain_reach`, unless the chain went through a frame
        // over 16 KiB, or is cut inside one: a garbage length is most often large, and a
        // chain that ran off the end on one proves nothing.
        let cut = |big: u64, len: u64| {
            big == 0
                && len <= DEFAULT_MAX_FRAME
                && (complete >= MIN_CHAIN || (at_capture_end && complete >= 2))
        };
        let Some(head) = FrameHead::parse(&bytes[at..]) else {
            return (cut(big, 0), ran_out);
        };
        let looked = at + FRAME_HEADER_LEN;
        if !head.is_strictly_plausible() || (complete == 0 && head.len == 0) {
            return (false, looked);
        }
        let total = head.total_len();
        if ((bytes.len() - at) as u64) < total {
            return (cut(big, u64::from(head.len)), ran_out);
        }
        at += total as usize;
        complete += 1;
        if u64::from(head.len) > DEFAULT_MAX_FRAME {
            big += 1;
        } else {
            small += total;
        }
        if complete >= MIN_CHAIN && big + small / SPAN >= RESYNC_LANDINGS {
            return (true, at);
        }
    }
}

/// The default (and usual) SETTINGS_MAX_FRAME_SIZE.
const DEFAULT_MAX_FRAME: u64 = 16_384;

/// Chance landings a chain found by resynchronisation must go through (see
/// [`resync_chain_reach`]). In a body made only of lookalike frames (`record_h2_join`), a
/// plausible frame header starts at about 3.5% of the positions: each landing keeps a false
/// chain alive about once in 30, and six leave about one false start in a billion.
const RESYNC_LANDINGS: u64 = 6;

/// First index in `bytes` where a believable frame chain starts.
pub(crate) fn find_sync(bytes: &[u8], at_capture_end: bool) -> Option<usize> {
    find_sync_reach(bytes, at_capture_end).0
}

/// [`find_sync`] and how far its answer depended on `bytes` (as in [`chain_reach`]).
fn find_sync_reach(bytes: &[u8], at_capture_end: bool) -> (Option<usize>, usize) {
    find_sync_with(bytes, at_capture_end, chain_reach)
}

/// The first index where `chain` accepts a chain, and how far the answer depended on `bytes`.
fn find_sync_with(
    bytes: &[u8],
    at_capture_end: bool,
    chain: fn(&[u8], bool) -> (bool, usize),
) -> (Option<usize>, usize) {
    let mut reach = 0usize;
    for i in 0..bytes.len() {
        let (found, r) = chain(&bytes[i..], at_capture_end);
        reach = reach.max(i + r);
        if found {
            return (Some(i), reach);
        }
    }
    (None, bytes.len() + 1)
}

/// Whether the first captured run of `stream` looks like HTTP/2 frames.
pub(crate) fn looks_like_frames(stream: &DirectionStream) -> bool {
    let Some((offset, bytes)) = stream.runs().next() else {
        return false;
    };
    let last = offset + bytes.len() as u64 >= stream.end();
    // A capture that starts mid-frame skips at most about one frame.
    let window = &bytes[..bytes.len().min(4 * 16384 + FRAME_HEADER_LEN)];
    find_sync(window, last && window.len() == bytes.len()).is_some()
        || chain_starts_here(bytes, last)
}

/// [`looks_like_frames`] on a windowed stream: the same answer, or `None` when the window cut
/// the first run before all the bytes that answer depends on (show more and ask again).
pub(crate) fn looks_like_frames_settled(stream: &DirectionStream) -> Option<bool> {
    let Some((offset, len)) = stream.spans().next() else {
        return Some(false);
    };
    let bytes = stream.runs().next().map_or(&[][..], |(_, b)| b);
    // Cuts are judged here, from the reach of each answer.
    stream.take_missed();
    let whole_run = bytes.len() as u64 == len;
    let last = offset + len >= stream.end();
    let probe = usize::try_from(len)
        .unwrap_or(usize::MAX)
        .min(4 * 16384 + FRAME_HEADER_LEN);
    let window = &bytes[..bytes.len().min(probe)];
    let (sync, reach) = find_sync_reach(window, last && probe as u64 == len);
    if window.len() < probe && reach > window.len() {
        return None;
    }
    if sync.is_some() {
        return Some(true);
    }
    let (chain, reach) = chain_reach(bytes, last);
    if !whole_run && reach > bytes.len() {
        return None;
    }
    Some(chain)
}

/// Frames one direction. A direction captured from byte 0 must start with its
/// preface (client magic, or the server's SETTINGS) to be trusted as such.
#[cfg(test)]
pub(crate) fn frame_stream<'s>(stream: &'s DirectionStream<'_>, side: Side) -> Framed<'s> {
    let mut framer = Framer::new(side);
    let mut events = Vec::new();
    while let Some(event) = framer.next(stream) {
        events.push(event);
    }
    Framed {
        events,
        saw_preface: framer.saw_preface,
        from_start: framer.from_start,
    }
}

/// One direction's framing, resumable: [`Framer::next`] gives the next event from where the
/// previous one ended, so a caller holds one event at a time and may show the stream through a
/// window (see [`crate::stream::DirectionStream::windowed`]). After each call,
/// [`Framer::reach`] tells how far into the stream that step's answer depended on the bytes;
/// an answer whose reach stays within the window's bytes (and that met no miss) is the one the
/// whole stream gives, since the framer reads nothing before its position. A frame is at most
/// 16 MiB + 9 bytes, so a window of about a frame (or of a resync's look-ahead) suffices.
#[derive(Debug, Clone)]
pub(crate) struct Framer {
    side: Side,
    /// Where the next event starts.
    pos: u64,
    in_sync: bool,
    /// The start (preface) has been checked.
    started: bool,
    /// The client preface was seen (request side).
    pub saw_preface: bool,
    /// Whether this direction is followed from its first byte (known once started).
    pub from_start: bool,
    /// One past the last offset the latest step depended on.
    reach: u64,
}

impl Framer {
    /// A framer at the start of `side`'s stream.
    pub(crate) fn new(side: Side) -> Framer {
        Framer {
            side,
            pos: 0,
            in_sync: false,
            started: false,
            saw_preface: false,
            from_start: false,
            reach: 0,
        }
    }

    /// Where the next event starts (before the first step: not yet known).
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// One past the last offset the latest [`Framer::next`] depended on.
    pub(crate) fn reach(&self) -> u64 {
        self.reach
    }

    /// Whether the start of the stream (the preface) has been read.
    pub(crate) fn is_started(&self) -> bool {
        self.started
    }

    /// Reads the start of the stream (the preface) only; [`Framer::reach`] tells what it read.
    pub(crate) fn start_only(&mut self, stream: &DirectionStream<'_>) {
        self.reach = 0;
        if !self.started {
            self.start(stream);
        }
    }

    /// Whether the framer has nothing more to give for `stream`.
    pub(crate) fn is_done(&self, stream: &DirectionStream<'_>) -> bool {
        self.started && self.pos >= stream.end()
    }

    fn depend(&mut self, to: u64) {
        self.reach = self.reach.max(to);
    }

    /// How much of a slice starting at `at` a step depended on: `looked` bytes, where
    /// `looked > len` means its end.
    fn depend_slice(&mut self, at: u64, looked: usize) {
        self.depend(at.saturating_add(looked as u64));
    }

    fn start(&mut self, stream: &DirectionStream<'_>) {
        self.started = true;
        if stream.is_empty() && stream.holes().is_empty() {
            self.pos = stream.end();
            return;
        }
        self.pos = stream.start();
        if self.pos != 0 {
            return;
        }
        self.from_start = true;
        let first = stream.contiguous(0);
        // The checks below read at most the preface's 24 bytes.
        let looked = if first.len() >= PREFACE.len() {
            PREFACE.len()
        } else {
            first.len() + 1
        };
        self.depend_slice(0, looked);
        match self.side {
            Side::Request if first.starts_with(PREFACE) => {
                self.saw_preface = true;
                self.pos = PREFACE.len() as u64;
                self.in_sync = true;
            }
            Side::Request => {
                self.from_start = false;
            }
            // The server preface is a SETTINGS frame (RFC 9113 §3.4); anything
            // else at offset 0 means the offsets do not start at the connection.
            Side::Response => {
                self.in_sync = FrameHead::parse(first).is_some_and(|h| {
                    h.kind == frame::Kind::Settings && h.is_strictly_plausible() && !h.has(0x1)
                });
                self.from_start = self.in_sync;
            }
        }
    }

    /// The next event, or `None` at the end of the stream.
    pub(crate) fn next<'s>(&mut self, stream: &'s DirectionStream<'_>) -> Option<Event<'s>> {
        self.reach = 0;
        if !self.started {
            self.start(stream);
        }
        while self.pos < stream.end() {
            let pos = self.pos;
            let bytes = stream.contiguous(pos);
            if bytes.is_empty() {
                let (end, ts, reason) = match stream.hole_at(pos) {
                    Some(h) => (h.end(), h.ts_ns, h.reason.clone()),
                    None => (stream.end(), None, "bytes missing".into()),
                };
                self.pos = end;
                self.in_sync = false;
                return Some(Event::Lost {
                    offset: pos,
                    len: end - pos,
                    ts,
                    reason,
                });
            }
            let run_end = pos + bytes.len() as u64;
            let at_capture_end = run_end >= stream.end();
            if !self.in_sync {
                let (found, looked) = find_sync_with(bytes, at_capture_end, resync_chain_reach);
                self.depend_slice(pos, looked);
                match found {
                    Some(skip) => {
                        self.pos += skip as u64;
                        self.in_sync = true;
                        if skip > 0 {
                            return Some(Event::Desync {
                                offset: pos,
                                len: skip as u64,
                                reason: format!("skipped {skip} bytes to reach a frame boundary"),
                            });
                        }
                    }
                    None => {
                        self.pos = run_end;
                        return Some(Event::Desync {
                            offset: pos,
                            len: bytes.len() as u64,
                            reason: "no frame boundary found".into(),
                        });
                    }
                }
                continue;
            }
            let Some(head) = FrameHead::parse(bytes) else {
                self.depend_slice(pos, bytes.len() + 1);
                self.pos = run_end;
                if at_capture_end {
                    return Some(Event::Truncated {
                        offset: pos,
                        head: None,
                        first_ts: stream.ts_at(pos),
                        payload: &[],
                    });
                }
                self.in_sync = false;
                return Some(Event::Desync {
                    offset: pos,
                    len: bytes.len() as u64,
                    reason: "frame header cut by missing bytes".into(),
                });
            };
            let total = head.total_len();
            let frame_end = pos.saturating_add(total);
            if (bytes.len() as u64) >= total {
                self.depend(frame_end);
                let payload = &bytes[FRAME_HEADER_LEN..total as usize];
                let first_ts = stream.ts_at(pos);
                self.pos = frame_end;
                return Some(match frame::parse(head, payload) {
                    Ok(frame) => Event::Frame(Located {
                        offset: pos,
                        first_ts,
                        last_ts: stream.ts_at(frame_end - 1),
                        frame,
                    }),
                    Err(error) => Event::Invalid {
                        offset: pos,
                        head,
                        error,
                    },
                });
            }
            self.depend_slice(pos, bytes.len() + 1);
            if at_capture_end {
                self.pos = run_end;
                return Some(Event::Truncated {
                    offset: pos,
                    head: Some(head),
                    first_ts: stream.ts_at(pos),
                    payload: &bytes[FRAME_HEADER_LEN..],
                });
            }
            // The payload runs into a hole: collect what survives up to the frame end.
            let (next, event, sync_kept) = self.damaged(stream, pos, head);
            self.pos = next;
            self.in_sync = sync_kept;
            return Some(event);
        }
        None
    }

    /// A frame at `pos` whose payload meets missing bytes. Returns where to go on,
    /// the event, and whether the next frame boundary is known.
    fn damaged<'s>(
        &mut self,
        stream: &'s DirectionStream<'_>,
        pos: u64,
        head: FrameHead,
    ) -> (u64, Event<'s>, bool) {
        let frame_end = pos.saturating_add(head.total_len());
        let mut at = pos + FRAME_HEADER_LEN as u64;
        let mut parts = Vec::new();
        let mut losses = Vec::new();
        let mut last_ts = None;
        // Where to go on, and whether that is a known frame boundary.
        let (next, known) = loop {
            if at >= frame_end {
                break (frame_end, true);
            }
            let bytes = stream.contiguous(at);
            if !bytes.is_empty() {
                let take = (bytes.len() as u64).min(frame_end - at);
                let looked = if take < frame_end - at {
                    bytes.len() + 1
                } else {
                    take as usize
                };
                self.depend_slice(at, looked);
                parts.push(&bytes[..take as usize]);
                at += take;
                last_ts = stream.ts_at(at - 1);
                continue;
            }
            match stream.hole_at(at) {
                Some(hole) if hole.end() <= frame_end => {
                    losses.push((at, hole.end() - at));
                    at = hole.end();
                }
                Some(hole) => {
                    // The hole swallows the end of this frame and the next header.
                    losses.push((at, frame_end - at));
                    break (frame_end, frame_end == hole.end());
                }
                None => {
                    // Capture ended after a hole inside this frame.
                    losses.push((at, stream.end().saturating_sub(at)));
                    break (stream.end(), false);
                }
            }
        };
        let event = Event::Damaged {
            offset: pos,
            head,
            first_ts: stream.ts_at(pos),
            last_ts,
            parts,
            losses,
        };
        (next, event, known)
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::test_util::frame;
    use super::*;
    use crate::stream::Piece;

    fn settings() -> Vec<u8> {
        frame(4, 0, 0, &[0, 3, 0, 0, 0, 100])
    }

    fn data(stream_id: u32, payload: &[u8]) -> Vec<u8> {
        frame(0, 0, stream_id, payload)
    }

    fn one_run(offset: u64, bytes: Vec<u8>) -> DirectionStream<'static> {
        DirectionStream::from_pieces([Piece::Data {
            offset,
            ts_ns: 1,
            bytes: bytes.into(),
        }])
    }

    fn kinds(f: &Framed<'_>) -> Vec<&'static str> {
        f.events
            .iter()
            .map(|e| match e {
                Event::Frame(_) => "frame",
                Event::Invalid { .. } => "invalid",
                Event::Damaged { .. } => "damaged",
                Event::Desync { .. } => "desync",
                Event::Lost { .. } => "lost",
                Event::Truncated { .. } => "truncated",
            })
            .collect()
    }

    #[test]
    fn preface_then_frames() {
        let mut wire = PREFACE.to_vec();
        wire.extend(settings());
        wire.extend(data(1, b"abc"));
        let s = one_run(0, wire);
        let f = frame_stream(&s, Side::Request);
        assert!(f.saw_preface);
        assert_eq!(kinds(&f), vec!["frame", "frame"]);
    }

    #[test]
    fn mid_frame_start_resyncs_on_a_chain() {
        let mut wire = b"tail-of-an-earlier-frame".to_vec();
        wire.extend(data(1, b"x"));
        wire.extend(settings());
        wire.extend(data(3, b"yz"));
        let s = one_run(5000, wire);
        let f = frame_stream(&s, Side::Response);
        assert_eq!(kinds(&f), vec!["desync", "frame", "frame", "frame"]);
        let Event::Desync { len, .. } = f.events[0] else {
            panic!()
        };
        assert_eq!(len, 24);
    }

    #[test]
    fn hole_inside_payload_keeps_alignment() {
        // Server preface (15 bytes), then a DATA frame whose payload loses 4 bytes.
        let mut first = [settings(), data(1, b"0123456789")].concat();
        let second = first.split_off(27);
        let second_piece = [&second[4..], &data(1, b"more")[..]].concat();
        let s = DirectionStream::from_pieces([
            Piece::Data {
                offset: 0,
                ts_ns: 1,
                bytes: first.into(),
            },
            Piece::Gap {
                offset: 27,
                len: 4,
                ts_ns: 2,
                reason: "lost".into(),
            },
            Piece::Data {
                offset: 31,
                ts_ns: 3,
                bytes: second_piece.into(),
            },
        ]);
        let f = frame_stream(&s, Side::Response);
        assert!(f.from_start);
        assert_eq!(kinds(&f), vec!["frame", "damaged", "frame"]);
        let Event::Damaged { parts, losses, .. } = &f.events[1] else {
            panic!()
        };
        assert_eq!(parts.concat(), b"012789");
        assert_eq!(losses, &vec![(27, 4)]);
    }

    #[test]
    fn hole_at_boundary_loses_alignment_until_a_chain() {
        let mut after = vec![0xde, 0xad];
        after.extend(settings());
        after.extend(data(1, b"a"));
        after.extend(data(1, b"b"));
        let before = settings();
        let s = DirectionStream::from_pieces([
            Piece::Data {
                offset: 0,
                ts_ns: 1,
                bytes: before.into(),
            },
            Piece::Gap {
                offset: 15,
                len: 100,
                ts_ns: 2,
                reason: "lost".into(),
            },
            Piece::Data {
                offset: 115,
                ts_ns: 3,
                bytes: after.into(),
            },
        ]);
        let f = frame_stream(&s, Side::Response);
        assert_eq!(
            kinds(&f),
            vec!["frame", "lost", "desync", "frame", "frame", "frame"]
        );
    }

    #[test]
    fn truncated_at_capture_end() {
        let mut wire = settings();
        let d = data(1, b"abcdef");
        wire.extend_from_slice(&d[..12]);
        let s = one_run(0, wire);
        let f = frame_stream(&s, Side::Response);
        assert_eq!(kinds(&f), vec!["frame", "truncated"]);
        let Event::Truncated { payload, .. } = f.events[1] else {
            panic!()
        };
        assert_eq!(payload, b"abc");
    }

    #[test]
    fn response_at_offset_zero_must_open_with_settings() {
        let data_first = one_run(0, [data(1, b"x"), settings()].concat());
        let f = frame_stream(&data_first, Side::Response);
        assert!(!f.from_start, "a DATA frame cannot be the server preface");
        let settings_first = one_run(0, [settings(), data(1, b"x")].concat());
        assert!(frame_stream(&settings_first, Side::Response).from_start);
    }

    #[test]
    fn text_does_not_sync() {
        let s = one_run(10, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n".to_vec());
        assert!(!looks_like_frames(&s));
        let f = frame_stream(&s, Side::Request);
        assert_eq!(kinds(&f), vec!["desync"]);
    }
}
