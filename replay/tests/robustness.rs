//! Arbitrary and mutated input: nothing panics, output is deterministic, and
//! garbage next to valid messages costs only the messages it touches.

mod common;

use common::*;
use proptest::prelude::*;
use spliff_replay::{
    ConnectionStreams, DirectionStream, Piece, ReplayOptions, body, decode_body, reconstruct,
};

fn offset() -> impl Strategy<Value = u64> {
    // Near zero pieces overlap and abut; near u64::MAX arithmetic must not overflow.
    prop_oneof![4 => 0u64..4096, 1 => (u64::MAX - 4096)..=u64::MAX]
}

fn piece() -> impl Strategy<Value = Piece<'static>> {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        // Mostly-valid starts reach deeper into the parsers.
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|tail| [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"[..],
            &tail
        ]
        .concat()),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|tail| [
            &b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            &tail
        ]
        .concat()),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|tail| [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0"[..],
            &tail
        ]
        .concat()),
    ];
    prop_oneof![
        4 => (offset(), any::<u64>(), bytes)
            .prop_map(|(offset, ts_ns, bytes)| Piece::Data {
                offset,
                ts_ns,
                bytes: bytes.into(),
            }),
        1 => (offset(), any::<u64>(), any::<u64>())
            .prop_map(|(offset, len, ts_ns)| Piece::Gap { offset, len, ts_ns, reason: "fuzz".into() }),
    ]
}

fn alpn() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        Just(Some(b"h2".to_vec())),
        Just(Some(b"http/1.1".to_vec())),
    ]
}

/// A valid HTTP/1 exchange pair and a valid HTTP/2 connection to mutate.
fn seeds() -> [(Vec<u8>, Vec<u8>); 2] {
    let h1 = (
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\nT: 1\r\n\r\n".to_vec(),
    );
    let mut enc = loona_hpack::Encoder::new();
    let frame = |kind: u8, flags: u8, sid: u32, payload: &[u8]| {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&sid.to_be_bytes());
        out.extend_from_slice(payload);
        out
    };
    let mut req = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    req.extend(frame(4, 0, 0, &[0, 1, 0, 0, 0x10, 0]));
    for sid in [1u32, 3, 5] {
        let b = enc.encode([
            (&b":method"[..], &b"GET"[..]),
            (b":path", format!("/{sid}").as_bytes()),
            (b":scheme", b"https"),
            (b"x-common", b"shared value"),
        ]);
        req.extend(frame(1, 0x5, sid, &b));
    }
    let mut senc = loona_hpack::Encoder::new();
    let mut resp = frame(4, 0, 0, &[]);
    for sid in [1u32, 3, 5] {
        let b = senc.encode([(&b":status"[..], &b"200"[..]), (b"server", b"fuzz")]);
        resp.extend(frame(1, 0x4, sid, &b));
        resp.extend(frame(0, 0x1, sid, format!("body {sid}").as_bytes()));
    }
    [h1, (req, resp)]
}

fn streams(
    alpn: Option<Vec<u8>>,
    req: Vec<Piece<'static>>,
    resp: Vec<Piece<'static>>,
    closed: bool,
) -> ConnectionStreams<'static> {
    ConnectionStreams {
        alpn,
        request: DirectionStream::from_pieces(req),
        response: DirectionStream::from_pieces(resp),
        closed,
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..40)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..30).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip(i, b) => {
                if let Some(x) = bytes.get_mut(i % len) {
                    *x ^= b | 1;
                }
            }
            Mutation::Insert(i, b) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let at = i % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i % len),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_pieces_never_panic_and_are_deterministic(
        alpn in alpn(),
        req in proptest::collection::vec(piece(), 0..8),
        resp in proptest::collection::vec(piece(), 0..8),
        closed in any::<bool>(),
    ) {
        let c = streams(alpn.clone(), req.clone(), resp.clone(), closed);
        let a = reconstruct(&c, &ReplayOptions::default());
        let b = reconstruct(&c, &ReplayOptions::default());
        prop_assert_eq!(&a, &b);
        common::assert_windowed_same(alpn.as_deref(), req, resp, closed, &a);
    }

    #[test]
    fn mutated_valid_traffic_never_panics(
        which in 0usize..2,
        req_muts in proptest::collection::vec(mutation(), 0..6),
        resp_muts in proptest::collection::vec(mutation(), 0..6),
        split in 1usize..64,
        alpn in alpn(),
    ) {
        let [h1, h2] = seeds();
        let (req, resp) = if which == 0 { h1 } else { h2 };
        let req = mutate(req, &req_muts);
        let resp = mutate(resp, &resp_muts);
        let whole = reconstruct(
            &streams(alpn.clone(), per_write(&[(1, req.clone())]), per_write(&[(2, resp.clone())]), true),
            &ReplayOptions::default(),
        );
        // Splitting never changes the result, even for garbage.
        let (req_pieces, resp_pieces) = (sub_pieces(&[(1, req)], split), sub_pieces(&[(2, resp)], split));
        let split_up = reconstruct(
            &streams(alpn.clone(), req_pieces.clone(), resp_pieces.clone(), true),
            &ReplayOptions::default(),
        );
        assert_same(&split_up, &whole, "mutated input");
        common::assert_windowed_same(alpn.as_deref(), req_pieces, resp_pieces, true, &split_up);
    }

    #[test]
    fn garbage_between_pipelined_requests_costs_one_exchange(
        // Garbage must not contain a request line of its own: no upper case.
        garbage in proptest::collection::vec(any::<u8>().prop_map(|b| b.to_ascii_lowercase()), 1..200),
    ) {
        // Empty lines between requests are legal (RFC 9112 §2.2), not garbage.
        prop_assume!(garbage.iter().any(|b| !b"\r\n".contains(b)));
        let mut req = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
        req.extend_from_slice(&garbage);
        req.extend_from_slice(b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n");
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc".to_vec();
        let r = replay(None, per_write(&[(1, req)]), per_write(&[(2, resp)]));
        prop_assert_eq!(r.exchanges.len(), 3);
        prop_assert!(r.exchanges[0].is_complete());
        prop_assert!(!r.exchanges[1].is_complete());
        prop_assert!(r.exchanges[2].is_complete());
        prop_assert_eq!(&r.exchanges[2].response.as_ref().unwrap().body, b"c");
    }

    #[test]
    fn body_decoding_of_arbitrary_bytes_never_panics(
        coding in prop_oneof![Just("gzip"), Just("deflate"), Just("br"), Just("zstd"), Just("gzip, br"), Just("x-unknown")],
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let headers = vec![spliff_replay::Header::new("content-encoding", coding)];
        let options = body::DecodeOptions { max_decoded_len: 1 << 20 };
        if let Ok(out) = decode_body(&headers, &bytes, &options) {
            prop_assert!(out.len() <= 1 << 20);
        }
    }
}
