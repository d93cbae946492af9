//! HTTP/1 shapes real clients and servers rarely or never produce: pipelining
//! edge cases, garbage, truncation, loss, mid-connection starts, upgrades.
//! Hand-written bytes are the point here.

mod common;

use common::*;
use spliff_replay::{
    ConnectionStreams, DirectionStream, Piece, Protocol, Reconstruction, ReplayOptions, Side,
    UpgradeKind, WsOpcode, reconstruct,
};

/// Writes as `(ts, bytes)`; offsets follow from the order.
fn writes(list: &[(u64, &[u8])]) -> Vec<Write> {
    list.iter().map(|(t, b)| (*t, b.to_vec())).collect()
}

fn run(req: &[(u64, &[u8])], resp: &[(u64, &[u8])]) -> Reconstruction {
    replay(None, per_write(&writes(req)), per_write(&writes(resp)))
}

fn run_open(req: &[(u64, &[u8])], resp: &[(u64, &[u8])], closed: bool) -> Reconstruction {
    let mut c = connection(None, per_write(&writes(req)), per_write(&writes(resp)));
    c.closed = closed;
    reconstruct(&c, &ReplayOptions::default())
}

fn targets(r: &Reconstruction) -> Vec<String> {
    r.exchanges
        .iter()
        .map(|e| {
            e.request
                .target_str()
                .map(|t| t.into_owned())
                .unwrap_or_else(|| "?".into())
        })
        .collect()
}

#[test]
fn pipelined_requests_pair_in_order_including_head() {
    let r = run(
        &[(10, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nHEAD /b HTTP/1.1\r\nHost: h\r\n\r\nPOST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz")],
        &[(20, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")],
    );
    assert_eq!(targets(&r), ["/a", "/b", "/c"]);
    assert!(
        r.exchanges.iter().all(|e| e.is_complete()),
        "{:?}",
        r.exchanges[2].incomplete
    );
    let bodies: Vec<_> = r
        .exchanges
        .iter()
        .map(|e| e.response.as_ref().unwrap().body.clone())
        .collect();
    assert_eq!(bodies, [b"A".to_vec(), vec![], b"ok".to_vec()]);
    assert_eq!(r.exchanges[2].request.body, b"xyz");
    assert_eq!(r.exchanges[1].timings.response_first_byte_ns, Some(20));
}

#[test]
fn garbled_request_is_marked_and_neighbours_survive() {
    let r = run(
        &[
            (1, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"),
            (2, b"\x16\x03\x01garbage that is not http\r\n\r\n"),
            (3, b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n"),
        ],
        &[
            (5, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"),
            (6, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
            (7, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc"),
        ],
    );
    assert_eq!(targets(&r), ["/a", "?", "/c"]);
    assert!(r.exchanges[0].is_complete() && r.exchanges[2].is_complete());
    let bad = &r.exchanges[1];
    assert!(
        bad.incomplete[0].starts_with("unparseable request head at offset 28"),
        "{:?}",
        bad.incomplete
    );
    assert_eq!(bad.response.as_ref().unwrap().status, Some(400));
    assert_eq!(r.exchanges[2].response.as_ref().unwrap().body, b"c");
}

#[test]
fn garbled_response_head_is_marked_and_resynced() {
    let r = run(
        &[(
            1,
            b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n",
        )],
        &[
            (5, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"),
            (6, b"HTTP/1.1 200 OK\r\nBroken Header Line\r\n\r\nbody"),
            (7, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc"),
        ],
    );
    assert_eq!(targets(&r), ["/a", "/b", "/c"]);
    let b = &r.exchanges[1];
    assert!(
        b.incomplete[0].starts_with("unparseable response head"),
        "{:?}",
        b.incomplete
    );
    assert_eq!(b.response.as_ref().unwrap().status, None);
    assert!(r.exchanges[0].is_complete() && r.exchanges[2].is_complete());
    assert_eq!(r.exchanges[2].response.as_ref().unwrap().body, b"c");
}

#[test]
fn interim_responses_precede_the_final_one() {
    let r = run(
        &[(1, b"POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"), (3, b"data")],
        &[
            (2, b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"),
            (4, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ],
    );
    let e = &r.exchanges[0];
    assert!(e.is_complete());
    let resp = e.response.as_ref().unwrap();
    assert_eq!(
        resp.informational
            .iter()
            .map(|i| i.status)
            .collect::<Vec<_>>(),
        [103, 100]
    );
    assert_eq!(resp.informational[0].headers[0].name, b"Link");
    assert_eq!(resp.status, Some(200));
    assert_eq!(e.request.body, b"data");
    assert_eq!(e.timings.request_last_byte_ns, Some(3));
    assert_eq!(e.timings.response_first_byte_ns, Some(2));
    assert_eq!(e.timings.response_last_byte_ns, Some(4));
}

#[test]
fn expect_100_refused_body_is_not_reported_as_lost() {
    let r = run(
        &[(1, b"PUT /big HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n")],
        &[(2, b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")],
    );
    let e = &r.exchanges[0];
    assert_eq!(e.response.as_ref().unwrap().status, Some(417));
    assert_eq!(
        e.incomplete,
        ["request body not sent: the server answered before 100 Continue"]
    );
}

#[test]
fn websocket_upgrade_stops_http_and_yields_messages() {
    let key = [9u8, 8, 7, 6];
    let mut client_frame = vec![0x81, 0x80 | 5];
    client_frame.extend_from_slice(&key);
    client_frame.extend(b"hello".iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    let server_frame = [&[0x82u8, 3][..], b"\x01\x02\x03"].concat();
    let r = run(
        &[
            (1, b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\n\r\n"),
            (3, &client_frame),
            // Bytes that look like HTTP must not be parsed as HTTP any more.
            (5, b"GET /not-http HTTP/1.1\r\n\r\n"),
        ],
        &[
            (2, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
            (4, &server_frame),
        ],
    );
    assert_eq!(r.exchanges.len(), 1);
    let e = &r.exchanges[0];
    assert!(e.is_complete());
    let up = e.upgrade.as_ref().unwrap();
    assert_eq!(up.kind, UpgradeKind::WebSocket);
    assert_eq!(up.protocol, b"websocket");
    assert_eq!(up.messages.len(), 3);
    assert_eq!(
        (up.messages[0].from, up.messages[0].opcode),
        (Side::Request, WsOpcode::Text)
    );
    assert_eq!(up.messages[0].payload, b"hello");
    assert_eq!(
        (up.messages[1].from, up.messages[1].opcode),
        (Side::Response, WsOpcode::Binary)
    );
    assert_eq!(up.messages[1].payload, b"\x01\x02\x03");
    assert_eq!(up.response_bytes, 5);
}

#[test]
fn connect_tunnel_is_opaque() {
    let r = run(
        &[(1, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01\x02\x00tls...")],
        &[(2, b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x03\x00\x10server hello")],
    );
    assert_eq!(r.exchanges.len(), 1);
    let up = r.exchanges[0].upgrade.as_ref().unwrap();
    assert_eq!(up.kind, UpgradeKind::Tunnel);
    assert_eq!(up.request_bytes, 11);
    assert!(up.messages.is_empty());
    assert!(r.exchanges[0].is_complete());
}

#[test]
fn read_until_close_depends_on_seeing_the_close() {
    let req: &[(u64, &[u8])] = &[(1, b"GET / HTTP/1.0\r\n\r\n")];
    let resp: &[(u64, &[u8])] = &[(
        2,
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it",
    )];
    let closed = run_open(req, resp, true);
    assert!(closed.exchanges[0].is_complete());
    assert_eq!(
        closed.exchanges[0].response.as_ref().unwrap().body,
        b"all of it"
    );
    let open = run_open(req, resp, false);
    assert_eq!(
        open.exchanges[0].incomplete,
        ["response body delimited by connection close, but the capture ended first"]
    );
}

#[test]
fn truncated_bodies_are_marked() {
    let r = run(
        &[(1, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")],
        &[(2, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")],
    );
    assert!(r.exchanges[0].is_complete());
    assert_eq!(
        r.exchanges[1].incomplete,
        ["response body truncated at connection closed: got 9 of 100 bytes"]
    );
    let r = run(&[(1, b"GET /a HTTP/1.1\r\n")], &[]);
    assert!(r.exchanges[0].incomplete[0].starts_with("request head truncated at end of capture"));
    let r = run(
        &[(1, b"GET /a HTTP/1.1\r\n\r\n")],
        &[(
            2,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        )],
    );
    assert!(r.exchanges[0].incomplete[0].contains("chunked body unfinished"));
}

#[test]
fn loss_inside_chunk_framing_resyncs_on_the_next_response() {
    let mut pieces = per_write(&writes(&[(
        2,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    )]));
    // Lose "6\r\n wo": the chunk size line goes with it.
    pieces = with_gap(pieces, 57, 6);
    let r = replay(
        None,
        per_write(&writes(&[(
            1,
            b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        )])),
        pieces,
    );
    assert_eq!(r.exchanges.len(), 2);
    let a = &r.exchanges[0];
    assert_eq!(a.loss.len(), 1);
    assert!(
        a.incomplete
            .iter()
            .any(|m| m.contains("chunk framing lost")),
        "{:?}",
        a.incomplete
    );
    assert_eq!(a.response.as_ref().unwrap().body, b"hello");
    assert!(r.exchanges[1].is_complete());
    assert_eq!(r.exchanges[1].response.as_ref().unwrap().status, Some(204));
}

#[test]
fn lost_response_head_is_one_lost_unit() {
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlostHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nc!";
    let second = 40u64;
    let pieces = with_gap(per_write(&writes(&[(5, resp)])), second, 10);
    let r = replay(
        None,
        per_write(&writes(&[(
            1,
            b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n",
        )])),
        pieces,
    );
    assert_eq!(targets(&r), ["/a", "/b", "/c"]);
    assert!(r.exchanges[0].is_complete() && r.exchanges[2].is_complete());
    let b = &r.exchanges[1];
    assert_eq!(
        (b.loss[0].side, b.loss[0].offset, b.loss[0].len),
        (Side::Response, second, 10)
    );
    assert!(
        b.incomplete[0].starts_with("response lost"),
        "{:?}",
        b.incomplete
    );
}

#[test]
fn mid_connection_start_skips_partial_messages_and_pairs_by_time() {
    let req = b"POST /first HTTP/1.1\r\nContent-Length: 20\r\n\r\n01234567890123456789GET /second HTTP/1.1\r\nHost: h\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo";
    // Request side starts inside the first body, response side inside the first body.
    let r = replay(
        None,
        starting_at(per_write(&writes(&[(1, req)])), 50),
        starting_at(per_write(&writes(&[(2, resp)])), 41),
    );
    assert_eq!(r.detection.protocol, Protocol::Http1);
    assert_eq!(targets(&r), ["/second"]);
    assert!(r.exchanges[0].is_complete());
    assert_eq!(r.notes.len(), 2);
    assert!(
        r.notes[0].contains("skipped 14 request bytes at offset 50"),
        "{:?}",
        r.notes
    );

    // The request side starts after the first request, the response side before
    // the first response: that response answers a request we never saw.
    let r = replay(
        None,
        per_write(&[(1, req[..64].to_vec()), (3, req[64..].to_vec())])
            .into_iter()
            .skip(1)
            .collect(),
        per_write(&[(2, resp[..49].to_vec()), (4, resp[49..].to_vec())]),
    );
    assert_eq!(targets(&r), ["?", "/second"]);
    assert!(r.exchanges[0].incomplete[0].starts_with("request not captured"));
    assert_eq!(
        r.exchanges[0].response.as_ref().unwrap().body,
        b"0123456789"
    );
    assert!(r.exchanges[1].is_complete());
}

#[test]
fn conflicting_content_length_is_marked_then_resynced() {
    let r = run(
        &[(1, b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcGET /y HTTP/1.1\r\n\r\n")],
        &[(2, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")],
    );
    assert_eq!(targets(&r), ["/x", "/y"]);
    assert!(r.exchanges[0].incomplete[0].contains("conflicting Content-Length"));
    assert!(r.exchanges[1].is_complete());
}

#[test]
fn absolute_form_target_gives_scheme_and_authority() {
    let r = run(
        &[(1, b"GET http://proxy.example:8080/p?q=1 HTTP/1.1\r\n\r\n")],
        &[(2, b"HTTP/1.1 204 No Content\r\n\r\n")],
    );
    let q = &r.exchanges[0].request;
    assert_eq!(q.scheme.as_deref(), Some(&b"http"[..]));
    assert_eq!(q.authority.as_deref(), Some(&b"proxy.example:8080"[..]));
}

#[test]
fn non_http_bytes_give_no_exchanges() {
    let c = ConnectionStreams {
        alpn: None,
        request: DirectionStream::from_pieces([Piece::Data {
            offset: 0,
            ts_ns: 1,
            bytes: vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0x01].into(),
        }]),
        response: DirectionStream::default(),
        closed: true,
    };
    let r = reconstruct(&c, &ReplayOptions::default());
    assert_eq!(r.detection.protocol, Protocol::Unknown);
    assert!(r.exchanges.is_empty());
    assert_eq!(r.notes.len(), 1);
}

#[test]
fn same_input_any_split_same_output() {
    let req: &[u8] = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: 1\r\n\r\nGET /c HTTP/1.1\r\n\r\n";
    let resp: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n";
    let reference = run(&[(1, req)], &[(2, resp)]);
    assert_eq!(reference.exchanges.len(), 3);
    assert!(reference.exchanges.iter().all(|e| e.is_complete()));
    for n in 1..=17 {
        let r = replay(
            None,
            sub_pieces(&writes(&[(1, req)]), n),
            sub_pieces(&writes(&[(2, resp)]), n),
        );
        assert_same(&r, &reference, &format!("{n}-byte pieces"));
    }
}
