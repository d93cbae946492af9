//! HTTP/2 shapes the `h2` crate never sends (padding, PRIORITY flags, server
//! push, GOAWAY refusals, table-size games, broken sequences), built frame by
//! frame. Header blocks come from loona-hpack's encoder.

mod common;

use common::*;
use spliff_replay::{Piece, Protocol, Reconstruction, ReplayOptions, Side, reconstruct};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = values
        .iter()
        .flat_map(|(id, v)| id.to_be_bytes().into_iter().chain(v.to_be_bytes()))
        .collect();
    frame(4, 0, 0, &payload)
}

fn block(enc: &mut loona_hpack::Encoder<'_>, headers: &[(&str, &str)]) -> Vec<u8> {
    enc.encode(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
}

fn get(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "GET".into()),
        (":scheme", "https".into()),
        (":authority", "example.test".into()),
        (":path", path.into()),
    ]
}

fn encode(enc: &mut loona_hpack::Encoder<'_>, headers: &[(&str, String)]) -> Vec<u8> {
    enc.encode(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
}

fn one(ts: u64, bytes: Vec<u8>) -> Vec<Piece<'static>> {
    vec![Piece::Data {
        offset: 0,
        ts_ns: ts,
        bytes: bytes.into(),
    }]
}

fn run(req: Vec<u8>, resp: Vec<u8>) -> Reconstruction {
    replay(None, one(1, req), one(2, resp))
}

#[test]
fn padding_and_priority_flags_are_stripped() {
    let mut cenc = loona_hpack::Encoder::new();
    let mut senc = loona_hpack::Encoder::new();
    let mut req = PREFACE.to_vec();
    req.extend(settings(&[]));
    // HEADERS with PADDED | PRIORITY: pad length, priority block, fragment, padding.
    let mut payload = vec![4u8, 0x80, 0, 0, 0, 200];
    payload.extend(encode(&mut cenc, &get("/padded")));
    payload.extend([0u8; 4]);
    req.extend(frame(
        1,
        END_HEADERS | END_STREAM | PADDED | PRIORITY,
        1,
        &payload,
    ));
    let mut resp = settings(&[]);
    resp.extend(frame(
        1,
        END_HEADERS,
        1,
        &block(&mut senc, &[(":status", "200")]),
    ));
    resp.extend(frame(
        0,
        PADDED,
        1,
        &[&[3u8][..], b"body", b"\0\0\0"].concat(),
    ));
    resp.extend(frame(
        0,
        PADDED | END_STREAM,
        1,
        &[&[0u8][..], b"!"].concat(),
    ));
    let r = run(req, resp);
    let e = &r.exchanges[0];
    assert!(e.is_complete(), "{:?}", e.incomplete);
    assert_eq!(e.request.target.as_deref(), Some(&b"/padded"[..]));
    let resp = e.response.as_ref().unwrap();
    assert_eq!(resp.body, b"body!");
    assert_eq!(resp.body_wire_size, 8 + 2);
}

/// A server header block that grows its table beyond 4096 with a dynamic table
/// size update, then indexes a header.
fn growing_server_block() -> Vec<u8> {
    // Size update to 8192 (001 11111, 8192-31 = 8161 = 0xe1 0x3f), :status 200,
    // then "x-big: <5000 bytes>" with incremental indexing (fits only in 8192).
    let mut b = vec![0x3f, 0xe1, 0x3f, 0x88, 0x40, 0x05];
    b.extend_from_slice(b"x-big");
    b.extend_from_slice(&[0x7f, 0x89, 0x26]); // length 5000 = 127 + 4873
    b.extend(std::iter::repeat_n(b'v', 5000));
    b
}

fn table_size_exchange(
    client_settings: &[(u16, u32)],
    server_settings: &[(u16, u32)],
) -> Reconstruction {
    let mut cenc = loona_hpack::Encoder::new();
    let mut req = PREFACE.to_vec();
    req.extend(settings(client_settings));
    req.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        1,
        &encode(&mut cenc, &get("/1")),
    ));
    req.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        3,
        &encode(&mut cenc, &get("/2")),
    ));
    let mut resp = settings(server_settings);
    resp.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        1,
        &growing_server_block(),
    ));
    // Stream 3 refers back to the indexed x-big entry (index 62).
    resp.extend(frame(1, END_HEADERS | END_STREAM, 3, &[0x88, 0xbe]));
    run(req, resp)
}

#[test]
fn client_settings_bound_the_response_decoder() {
    // SETTINGS_HEADER_TABLE_SIZE=16384 from the client lets the server's encoder
    // grow its table: the response-direction decoder must accept it.
    let r = table_size_exchange(&[(1, 16384)], &[]);
    assert!(
        r.exchanges.iter().all(|e| e.is_complete()),
        "{:?}",
        r.exchanges[0].incomplete
    );
    let two = &r.exchanges[1].response.as_ref().unwrap().headers;
    assert_eq!(two[1].name, b"x-big");
    assert_eq!(two[1].value.len(), 5000);
}

#[test]
fn server_settings_do_not_bound_the_response_decoder() {
    // The same growth announced only by the *server* is a protocol violation by
    // the server's own encoder: its headers are dropped, never guessed.
    let r = table_size_exchange(&[], &[(1, 16384)]);
    for e in &r.exchanges {
        let resp = e.response.as_ref().unwrap();
        assert_eq!(resp.status, None);
        assert!(
            e.incomplete.iter().any(|m| m.contains("HPACK")),
            "{:?}",
            e.incomplete
        );
        assert!(e.request.method.is_some(), "request headers are unaffected");
    }
}

#[test]
fn table_size_cap_applies_whatever_was_advertised() {
    let mut cenc = loona_hpack::Encoder::new();
    let mut req = PREFACE.to_vec();
    req.extend(settings(&[(1, 1 << 30)]));
    req.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        1,
        &encode(&mut cenc, &get("/")),
    ));
    let mut resp = settings(&[]);
    resp.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        1,
        &growing_server_block(),
    ));
    let c = connection(None, one(1, req), one(2, resp));
    let tight = ReplayOptions {
        max_hpack_table_size: 4096,
        ..ReplayOptions::default()
    };
    let r = reconstruct(&c, &tight);
    assert!(
        r.notes.iter().any(|n| n.contains("capped at 4096")),
        "{:?}",
        r.notes
    );
    assert_eq!(r.exchanges[0].response.as_ref().unwrap().status, None);
}

#[test]
fn server_push_becomes_its_own_exchange() {
    let mut cenc = loona_hpack::Encoder::new();
    let mut senc = loona_hpack::Encoder::new();
    let mut req = PREFACE.to_vec();
    req.extend(settings(&[]));
    req.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        1,
        &encode(&mut cenc, &get("/index.html")),
    ));
    let mut resp = settings(&[]);
    let mut promise = 2u32.to_be_bytes().to_vec();
    promise.extend(encode(&mut senc, &get("/style.css")));
    resp.extend(frame(5, END_HEADERS, 1, &promise));
    resp.extend(frame(
        1,
        END_HEADERS,
        1,
        &block(&mut senc, &[(":status", "200")]),
    ));
    resp.extend(frame(
        1,
        END_HEADERS,
        2,
        &block(
            &mut senc,
            &[(":status", "200"), ("content-type", "text/css")],
        ),
    ));
    resp.extend(frame(0, END_STREAM, 2, b"body{}"));
    resp.extend(frame(0, END_STREAM, 1, b"<html>"));
    let r = run(req, resp);
    assert_eq!(r.exchanges.len(), 2);
    let pushed = r.exchanges.iter().find(|e| e.stream_id == Some(2)).unwrap();
    assert!(pushed.is_complete(), "{:?}", pushed.incomplete);
    assert_eq!(pushed.pushed_by, Some(1));
    assert_eq!(pushed.request.target.as_deref(), Some(&b"/style.css"[..]));
    assert_eq!(pushed.response.as_ref().unwrap().body, b"body{}");
}

#[test]
fn goaway_marks_streams_the_server_never_processed() {
    let mut cenc = loona_hpack::Encoder::new();
    let mut senc = loona_hpack::Encoder::new();
    let mut req = PREFACE.to_vec();
    req.extend(settings(&[]));
    req.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        1,
        &encode(&mut cenc, &get("/a")),
    ));
    req.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        3,
        &encode(&mut cenc, &get("/b")),
    ));
    let mut resp = settings(&[]);
    resp.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        1,
        &block(&mut senc, &[(":status", "204")]),
    ));
    resp.extend(frame(7, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0]));
    let r = run(req, resp);
    assert!(r.exchanges[0].is_complete());
    assert!(
        r.exchanges[1]
            .incomplete
            .iter()
            .any(|m| m.contains("GOAWAY last stream id 1"))
    );
    assert!(r.notes.iter().any(|n| n.starts_with("GOAWAY from server")));
}

#[test]
fn unknown_and_invalid_frames_do_not_break_framing() {
    let mut cenc = loona_hpack::Encoder::new();
    let mut senc = loona_hpack::Encoder::new();
    let mut req = PREFACE.to_vec();
    req.extend(settings(&[]));
    req.extend(frame(0x10, 0, 0, b"priority-update-ish"));
    req.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        1,
        &encode(&mut cenc, &get("/")),
    ));
    let mut resp = settings(&[]);
    resp.extend(frame(4, 0, 0, &[0, 1, 0]));
    resp.extend(frame(
        1,
        END_HEADERS,
        1,
        &block(&mut senc, &[(":status", "200")]),
    ));
    resp.extend(frame(0, END_STREAM, 1, b"ok"));
    let r = run(req, resp);
    assert!(r.exchanges[0].is_complete());
    assert!(
        r.notes.iter().any(|n| n.contains("invalid response frame")),
        "{:?}",
        r.notes
    );
}

#[test]
fn interrupted_continuation_loses_context_but_not_bodies() {
    let mut cenc = loona_hpack::Encoder::new();
    let mut senc = loona_hpack::Encoder::new();
    let mut req = PREFACE.to_vec();
    req.extend(settings(&[]));
    req.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        1,
        &encode(&mut cenc, &get("/a")),
    ));
    req.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        3,
        &encode(&mut cenc, &get("/b")),
    ));
    let mut resp = settings(&[]);
    let b1 = block(&mut senc, &[(":status", "200"), ("x-custom", "first")]);
    resp.extend(frame(1, 0, 1, &b1[..2]));
    resp.extend(frame(0, END_STREAM, 3, b"interloper"));
    resp.extend(frame(0, END_STREAM, 1, b"one"));
    // Stream 3's head references x-custom (index 62), inserted by the lost block.
    resp.extend(frame(1, END_HEADERS, 3, &[0x88, 0xbe]));
    let r = run(req, resp);
    let one = r.exchanges.iter().find(|e| e.stream_id == Some(1)).unwrap();
    assert!(
        one.incomplete.iter().any(|m| m.contains("interrupted")),
        "{:?}",
        one.incomplete
    );
    assert_eq!(one.response.as_ref().unwrap().body, b"one");
    let three = r.exchanges.iter().find(|e| e.stream_id == Some(3)).unwrap();
    assert_eq!(three.response.as_ref().unwrap().body, b"interloper");
    assert_eq!(
        three.response.as_ref().unwrap().status,
        None,
        "never guessed"
    );
}

#[test]
fn client_reset_and_open_streams_at_capture_end() {
    let mut cenc = loona_hpack::Encoder::new();
    let mut senc = loona_hpack::Encoder::new();
    let mut req = PREFACE.to_vec();
    req.extend(settings(&[]));
    let mut post = get("/upload");
    post[0].1 = "POST".into();
    req.extend(frame(1, END_HEADERS, 1, &encode(&mut cenc, &post)));
    req.extend(frame(0, 0, 1, b"partial upload"));
    req.extend(frame(3, 0, 1, &8u32.to_be_bytes()));
    req.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        3,
        &encode(&mut cenc, &get("/slow")),
    ));
    let mut resp = settings(&[]);
    resp.extend(frame(
        1,
        END_HEADERS,
        3,
        &block(&mut senc, &[(":status", "200")]),
    ));
    resp.extend(frame(0, 0, 3, b"still coming"));
    let mut c = connection(None, one(1, req), one(2, resp));
    c.closed = false;
    let r = reconstruct(&c, &ReplayOptions::default());
    let upload = &r.exchanges[0];
    assert_eq!(
        upload.reset.map(|x| (x.by, x.error_code)),
        Some((Side::Request, 8))
    );
    assert!(
        upload
            .incomplete
            .iter()
            .any(|m| m == "stream reset by client: CANCEL (0x8)")
    );
    assert_eq!(upload.request.body, b"partial upload");
    let slow = &r.exchanges[1];
    assert_eq!(
        slow.incomplete,
        ["response truncated: stream still open when the capture ended"]
    );
}

#[test]
fn mid_connection_frames_are_detected_without_alpn_or_preface() {
    let mut senc = loona_hpack::Encoder::new();
    let mut resp = b"...tail of an earlier DATA payload".to_vec();
    resp.extend(frame(
        1,
        END_HEADERS,
        7,
        &block(&mut senc, &[(":status", "404")]),
    ));
    resp.extend(frame(0, 0, 7, b"not "));
    resp.extend(frame(0, END_STREAM, 7, b"found"));
    let r = replay(
        None,
        Vec::new(),
        vec![Piece::Data {
            offset: 90_000,
            ts_ns: 5,
            bytes: resp.into(),
        }],
    );
    assert_eq!(r.detection.protocol, Protocol::Http2);
    let e = &r.exchanges[0];
    // :status 404 is in the static table: provable without context.
    assert_eq!(e.response.as_ref().unwrap().status, Some(404));
    assert_eq!(e.response.as_ref().unwrap().body, b"not found");
    assert!(
        e.incomplete
            .iter()
            .any(|m| m.contains("request headers not captured"))
    );
    // The first frame was found by resynchronisation past the payload's tail: said so.
    assert!(
        e.incomplete.iter().any(|m| m
            == "response frames located by resynchronisation (from offset 90034): their \
                framing is not certain"),
        "{:?}",
        e.incomplete
    );
    assert_eq!(e.stream_id, Some(7));
}

/// Pieces at the given timestamps, one per write, at consecutive offsets.
fn timed(writes: Vec<(u64, Vec<u8>)>) -> Vec<Piece<'static>> {
    let mut offset = 0;
    writes
        .into_iter()
        .map(|(ts_ns, bytes)| {
            let p = Piece::Data {
                offset,
                ts_ns,
                bytes: bytes.into(),
            };
            offset += match &p {
                Piece::Data { bytes, .. } => bytes.len() as u64,
                Piece::Gap { .. } => 0,
            };
            p
        })
        .collect()
}

#[test]
fn both_directions_are_read_in_time_order_and_a_closed_stream_is_final() {
    let mut cenc = loona_hpack::Encoder::new();
    let mut senc = loona_hpack::Encoder::new();
    let mut head = PREFACE.to_vec();
    head.extend(settings(&[]));
    head.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        1,
        &encode(&mut cenc, &get("/cancelled")),
    ));
    head.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        3,
        &encode(&mut cenc, &get("/done")),
    ));
    let req = timed(vec![
        (10, head),
        // The client cancels stream 1 at 30, while the server's data is in flight.
        (30, frame(3, 0, 1, &8u32.to_be_bytes())),
        // A GOAWAY after stream 3 closed does not reopen it.
        (60, frame(7, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0])),
    ]);
    let resp = timed(vec![
        (20, settings(&[])),
        (
            21,
            frame(1, END_HEADERS, 1, &block(&mut senc, &[(":status", "200")])),
        ),
        (22, frame(0, 0, 1, b"before the reset")),
        (
            23,
            frame(1, END_HEADERS, 3, &block(&mut senc, &[(":status", "204")])),
        ),
        (24, frame(0, END_STREAM, 3, b"")),
        // Crossed the client's RST_STREAM: the client discarded these.
        (40, frame(0, 0, 1, b"after the reset")),
        // A reset of a closed stream is allowed and changes nothing.
        (41, frame(3, 0, 1, &5u32.to_be_bytes())),
    ]);
    let r = replay(None, req, resp);
    assert_eq!(r.exchanges.len(), 2);
    let cancelled = &r.exchanges[0];
    assert_eq!(cancelled.stream_id, Some(1));
    // The first reset (the client's, at 30) wins; the server's later one finds it closed.
    assert_eq!(
        cancelled.reset.map(|x| (x.by, x.error_code)),
        Some((Side::Request, 8))
    );
    assert_eq!(
        cancelled.response.as_ref().map(|x| x.body.as_slice()),
        Some(&b"before the reset"[..])
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n == "1 response frame(s) for stream 1 after it closed were ignored"),
        "{:?}",
        r.notes
    );
    let done = &r.exchanges[1];
    assert!(done.is_complete(), "{:?}", done.incomplete);
}

/// An HPACK literal with incremental indexing and a new name: `name: <len bytes of fill>`.
fn indexed_literal(name: &str, fill: u8, len: usize) -> Vec<u8> {
    assert!(name.len() < 127 && (127..127 + 128 * 128).contains(&len));
    let rest = len - 127;
    let mut b = vec![0x40, name.len() as u8];
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&[0x7f, (rest & 0x7f) as u8 | 0x80, (rest >> 7) as u8]);
    b.extend(std::iter::repeat_n(fill, len));
    b
}

#[test]
fn a_join_after_a_64k_table_was_announced_decodes_without_false_invalid_hpack() {
    // Before the capture: the client allowed a 64 KiB table and the server's encoder grew to
    // it. After the join, the server inserts 5 entries of ~1 KiB (more than the 4096-byte
    // default holds) and then refers back to the oldest of them: valid for a 64 KiB table.
    let mut cenc = loona_hpack::Encoder::new();
    let mut req = PREFACE.to_vec();
    req.extend(settings(&[(1, 65_536)]));
    let mut resp = settings(&[]);
    let mut first = vec![0x3f, 0xe1, 0xff, 0x03, 0x88]; // size update to 65536, :status 200
    first.extend(indexed_literal("x-before", b'b', 1000));
    let mut join = (0, 0);
    for (k, stream) in (1..=13u32).step_by(2).enumerate() {
        if stream == 3 {
            join = (req.len() as u64, resp.len() as u64);
        }
        let path = format!("/{stream}");
        req.extend(frame(
            1,
            END_HEADERS | END_STREAM,
            stream,
            &encode(&mut cenc, &get(&path)),
        ));
        let block = match stream {
            1 => first.clone(),
            // The oldest entry inserted after the join: dynamic index 5, HPACK index 66.
            13 => vec![0x88, 0x80 | 66],
            _ => [
                vec![0x88],
                indexed_literal(&format!("x-after-{k}"), b'a', 1000),
            ]
            .concat(),
        };
        resp.extend(frame(1, END_HEADERS | END_STREAM, stream, &block));
    }
    let r = replay(
        None,
        starting_at(one(1, req), join.0),
        starting_at(one(2, resp), join.1),
    );
    let last = r
        .exchanges
        .iter()
        .find(|e| e.stream_id == Some(13))
        .expect("stream 13");
    let resp = last.response.as_ref().expect("a response");
    assert_eq!(resp.status, Some(200), "{:?}", last.incomplete);
    assert_eq!(resp.headers[1].name, b"x-after-1");
    assert_eq!(resp.headers[1].value, vec![b'a'; 1000]);
    for e in &r.exchanges {
        assert!(
            !e.incomplete.iter().any(|m| m.contains("invalid HPACK")),
            "stream {:?}: {:?}",
            e.stream_id,
            e.incomplete
        );
        assert_eq!(e.response.as_ref().and_then(|r| r.status), Some(200));
    }
}

#[test]
fn server_frames_on_streams_the_client_never_opened_are_not_shown() {
    let (mut cenc, mut senc) = (loona_hpack::Encoder::new(), loona_hpack::Encoder::new());
    let mut req = PREFACE.to_vec();
    req.extend(settings(&[]));
    req.extend(frame(
        1,
        END_HEADERS | END_STREAM,
        1,
        &encode(&mut cenc, &get("/real")),
    ));
    let mut resp = settings(&[]);
    resp.extend(frame(
        1,
        END_HEADERS,
        1,
        &block(&mut senc, &[(":status", "200")]),
    ));
    // What a resynchronisation inside a payload can find: a lookalike response on stream 3,
    // which the client (seen from the preface, nothing lost) never opened.
    resp.extend(frame(
        1,
        END_HEADERS,
        3,
        &block(&mut senc, &[(":status", "200"), ("x-evil", "injected")]),
    ));
    resp.extend(frame(0, END_STREAM, 3, b"invented"));
    resp.extend(frame(0, END_STREAM, 1, b"real body"));
    let r = run(req, resp);
    assert_eq!(r.exchanges.len(), 1, "{:?}", r.exchanges);
    let e = &r.exchanges[0];
    assert_eq!(e.stream_id, Some(1));
    assert_eq!(e.response.as_ref().unwrap().body, b"real body");
    assert!(
        r.notes.iter().any(|n| n
            == "2 response frame(s) for stream 3, which the client never opened, were ignored \
                (framing found by resynchronisation is not certain)"),
        "{:?}",
        r.notes
    );
}

#[test]
fn after_a_join_only_streams_above_the_first_captured_one_must_have_been_opened() {
    let (mut cenc, mut senc) = (loona_hpack::Encoder::new(), loona_hpack::Encoder::new());
    // The capture joined the connection: the client's first captured stream is 5.
    let req = frame(
        1,
        END_HEADERS | END_STREAM,
        5,
        &encode(&mut cenc, &get("/five")),
    );
    let mut resp = Vec::new();
    for id in [3u32, 5, 7] {
        resp.extend(frame(
            1,
            END_HEADERS | END_STREAM,
            id,
            &block(&mut senc, &[(":status", "204")]),
        ));
    }
    let at = |offset: u64, ts_ns: u64, bytes: Vec<u8>| {
        vec![Piece::Data {
            offset,
            ts_ns,
            bytes: bytes.into(),
        }]
    };
    let r = replay(None, at(1000, 1, req), at(2000, 2, resp));
    let mut ids: Vec<_> = r.exchanges.iter().map(|e| e.stream_id).collect();
    ids.sort();
    // Stream 3 may have opened before the capture; stream 7 would be in it.
    assert_eq!(ids, [Some(3), Some(5)], "{:?}", r.notes);
}

/// Complete HTTP/2 frames, as a body may hold them: HEADERS with `x-evil` on the stream that
/// carries them and the next ones, DATA (some with END_STREAM), RST_STREAM, PING, SETTINGS.
/// Returns the bytes and where each lookalike frame starts.
fn lookalike_frames(own: u32, len: usize) -> (Vec<u8>, Vec<usize>) {
    let mut x = own.wrapping_mul(2_654_435_761) | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let (mut out, mut starts) = (Vec::new(), Vec::new());
    while out.len() < len {
        let r = rnd();
        let target = [own, own + 2, own + 4][r as usize % 3];
        starts.push(out.len());
        let f = match (r >> 8) % 7 {
            0 | 1 => {
                let mut block = vec![0x88, 0x00, 6];
                block.extend_from_slice(b"x-evil");
                block.push(8);
                block.extend_from_slice(b"injected");
                frame(
                    1,
                    END_HEADERS | (r >> 16) as u8 & END_STREAM,
                    target,
                    &block,
                )
            }
            2 | 3 => frame(
                0,
                (r >> 16) as u8 & END_STREAM,
                target,
                &vec![b'e'; 1 + (rnd() % 1500) as usize],
            ),
            4 => frame(3, 0, target, &8u32.to_be_bytes()),
            // Its payload holds what reads as the header of a 64 KiB DATA frame.
            5 => settings(&[(1, 65_536), (4, 1 << 20)]),
            _ => frame(6, 0, 0, &[7; 8]),
        };
        out.extend(f);
    }
    out.truncate(len);
    (out, starts)
}

#[test]
fn a_join_inside_a_body_of_lookalike_frames_finds_the_real_frames() {
    // Four responses whose bodies (40 KB, in DATA frames of 16 KiB) are made of frames. The
    // capture joins inside the first body, right on a lookalike frame: a chain of lookalikes
    // starts there, and breaks only where the payload holding it ends.
    let (mut senc, mut cenc) = (loona_hpack::Encoder::new(), loona_hpack::Encoder::new());
    let mut req_writes = Vec::new();
    let mut resp_writes = Vec::new();
    let mut bodies = Vec::new();
    let mut joins = Vec::new();
    let mut resp_len = 0u64;
    for (k, sid) in [1u32, 3, 5, 7].into_iter().enumerate() {
        let ts = 100 * (k as u64 + 1);
        if sid > 1 {
            req_writes.push((
                ts,
                frame(
                    1,
                    END_HEADERS | END_STREAM,
                    sid,
                    &encode(&mut cenc, &get(&format!("/{sid}"))),
                ),
            ));
        }
        let head = frame(
            1,
            END_HEADERS,
            sid,
            &block(&mut senc, &[(":status", "200")]),
        );
        resp_len += head.len() as u64;
        resp_writes.push((ts + 1, head));
        let (body, starts) = lookalike_frames(sid, 40_000);
        for (i, chunk) in body.chunks(16_384).enumerate() {
            let last = (i + 1) * 16_384 >= body.len();
            if sid == 1 && i == 0 {
                // Every lookalike boundary of the first payload, and places between.
                joins = starts
                    .iter()
                    .copied()
                    .chain((1..16_384).step_by(37))
                    .filter(|&s| s > 0 && s < 16_384)
                    .map(|s| resp_len + 9 + s as u64)
                    .collect();
            }
            let f = frame(0, if last { END_STREAM } else { 0 }, sid, chunk);
            resp_len += f.len() as u64;
            resp_writes.push((ts + 2 + i as u64, f));
        }
        bodies.push((sid, body));
    }
    let (req, resp) = (timed(req_writes), timed(resp_writes));
    // Windows of every size at one join; the others through the whole-connection path.
    let r = replay(
        None,
        req.clone(),
        starting_at(resp.clone(), joins[joins.len() / 2]),
    );
    check_lookalike_join(&r, &bodies);
    for &join in &joins {
        let r = reconstruct(
            &connection(None, req.clone(), starting_at(resp.clone(), join)),
            &ReplayOptions::default(),
        );
        check_lookalike_join(&r, &bodies);
    }
}

/// Only the real streams, no lookalike's header, the later bodies exact, the first one's tail
/// marked.
fn check_lookalike_join(r: &Reconstruction, bodies: &[(u32, Vec<u8>)]) {
    for e in &r.exchanges {
        let resp = e.response.as_ref();
        let headers = e.request.headers.iter().chain(
            resp.into_iter()
                .flat_map(|p| p.headers.iter().chain(&p.trailers)),
        );
        for h in headers {
            assert_ne!(
                h.name, b"x-evil",
                "stream {:?}: a lookalike's header",
                e.stream_id
            );
        }
    }
    let ids: Vec<_> = r.exchanges.iter().map(|e| e.stream_id).collect();
    assert_eq!(ids, [Some(1), Some(3), Some(5), Some(7)], "{:?}", r.notes);
    for (sid, body) in &bodies[1..] {
        let e = r
            .exchanges
            .iter()
            .find(|e| e.stream_id == Some(*sid))
            .unwrap();
        let resp = e.response.as_ref().expect("a response");
        assert_eq!(resp.status, Some(200), "stream {sid}: {:?}", e.incomplete);
        assert!(
            resp.body == *body,
            "stream {sid}: body of {} bytes",
            resp.body.len()
        );
    }
    // The first one is the tail of a body whose start went before the capture, and says so.
    let first = &r.exchanges[0];
    assert!(!first.incomplete.is_empty());
    assert!(
        bodies[0]
            .1
            .ends_with(&first.response.as_ref().unwrap().body)
    );
}
