//! What the HAR and text views show of messages at the edges: trailers, requests that were not
//! captured, header blocks in a malformed order. Traces are built with the formats writer and
//! replayed through the streaming sinks, as `spliff replay` does.

use std::net::SocketAddr;

use serde_json::Value;
use spliff_formats::{
    CaptureId, Connection, ConnectionRole, Direction, Record, SectionInfo, TlsData, TraceWriter,
};
use spliff_replay::ReplayOptions;
use spliff_replay::har::HarSink;
use spliff_replay::pipeline::{BatchLimits, Sink, replay_to};
use spliff_replay::text::{TextOptions, TextSink};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn headers(
    enc: &mut loona_hpack::Encoder<'_>,
    flags: u8,
    stream: u32,
    fields: &[(&str, &str)],
) -> Vec<u8> {
    let block = enc.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    frame(1, flags | END_HEADERS, stream, &block)
}

/// A trace of one client connection (`alpn`) that wrote `request` and read `response`, each
/// as one record at stream offset `offsets`.
fn trace(alpn: &[u8], request: &[u8], response: &[u8], offsets: (u64, u64)) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &SectionInfo::default(), CaptureId([9; 16]))
        .expect("writing to a Vec cannot fail");
    let mut records = vec![Record::Connection(Connection {
        conn_id: 1,
        pid: 7,
        role: ConnectionRole::Client,
        local: Some("10.0.0.1:40000".parse::<SocketAddr>().expect("literal")),
        remote: Some("10.0.0.2:443".parse::<SocketAddr>().expect("literal")),
        alpn,
        sni: b"example.test",
        ..Connection::default()
    })];
    for (direction, offset, payload) in [
        (Direction::Egress, offsets.0, request),
        (Direction::Ingress, offsets.1, response),
    ] {
        if !payload.is_empty() {
            records.push(Record::TlsData(TlsData {
                conn_id: 1,
                pid: 7,
                tid: 7,
                direction,
                stream_offset: offset,
                payload,
            }));
        }
    }
    for (i, r) in records.iter().enumerate() {
        w.write(1_000_000 + i as u64 * 1_000, r).expect("write");
    }
    w.finish().expect("finish")
}

fn render(trace: &[u8], sink: &impl Sink) -> Vec<u8> {
    let mut out = Vec::new();
    replay_to(
        trace,
        &ReplayOptions::default(),
        BatchLimits::default(),
        &|_| {},
        sink,
        &mut out,
    )
    .expect("replay into a Vec");
    out
}

/// The HAR entries and the text view of `trace`.
fn views(trace: &[u8]) -> (Vec<Value>, String) {
    let har: Value =
        serde_json::from_slice(&render(trace, &HarSink::default())).expect("HAR is JSON");
    let text = TextSink {
        options: TextOptions::default(),
        ..TextSink::default()
    };
    let text = String::from_utf8(render(trace, &text)).expect("text is UTF-8");
    let entries = har["log"]["entries"].as_array().expect("entries").clone();
    (entries, text)
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap_or_default().to_string(),
                        p["value"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn owned(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn http2_trailers_of_both_sides_are_in_har_and_text() {
    let (mut c, mut s) = (loona_hpack::Encoder::new(), loona_hpack::Encoder::new());
    let req_trailers = [("x-checksum", "abc")];
    let resp_trailers = [("grpc-status", "0"), ("grpc-message", "fine")];
    let mut req = PREFACE.to_vec();
    req.extend(frame(4, 0, 0, &[]));
    req.extend(headers(
        &mut c,
        0,
        1,
        &[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "example.test"),
            (":path", "/svc/Call"),
        ],
    ));
    req.extend(frame(0, 0, 1, b"ping"));
    req.extend(headers(&mut c, END_STREAM, 1, &req_trailers));
    let mut resp = frame(4, 0, 0, &[]);
    resp.extend(headers(&mut s, 0, 1, &[(":status", "200")]));
    resp.extend(frame(0, 0, 1, b"pong"));
    resp.extend(headers(&mut s, END_STREAM, 1, &resp_trailers));

    let (entries, text) = views(&trace(b"h2", &req, &resp, (0, 0)));
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(pairs(&e["request"]["_trailers"]), owned(&req_trailers));
    assert_eq!(pairs(&e["response"]["_trailers"]), owned(&resp_trailers));
    assert_eq!(e["response"]["status"], 200);
    assert!(
        text.contains("  trailers:\n  x-checksum: abc\n"),
        "request trailers in the text view:\n{text}"
    );
    assert!(
        text.contains("  trailers:\n  grpc-status: 0\n  grpc-message: fine\n"),
        "response trailers in the text view:\n{text}"
    );
}

#[test]
fn chunked_trailers_are_in_har_and_text() {
    let req = b"GET /t HTTP/1.1\r\nHost: example.test\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n\
                 2\r\nok\r\n0\r\ngrpc-status: 0\r\n\r\n";
    let (entries, text) = views(&trace(b"http/1.1", req, resp, (0, 0)));
    assert_eq!(entries.len(), 1);
    assert_eq!(
        pairs(&entries[0]["response"]["_trailers"]),
        owned(&[("grpc-status", "0")])
    );
    assert!(entries[0]["request"].get("_trailers").is_none());
    assert!(text.contains("  trailers:\n  grpc-status: 0\n"), "{text}");
}

#[test]
fn a_request_not_captured_is_visibly_unknown() {
    // The capture began after the request was written: only the response is in the trace.
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (entries, text) = views(&trace(b"http/1.1", b"", resp, (0, 0)));
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["_requestMissing"], true);
    assert_eq!(e["request"]["method"], "(not captured)");
    assert_eq!(
        e["request"]["url"],
        "https://example.test/#spliff:request-not-captured"
    );
    assert!(
        e["request"]["comment"]
            .as_str()
            .is_some_and(|c| c.starts_with("request not captured")),
        "{e}"
    );
    assert_eq!(e["response"]["status"], 200);
    assert!(
        text.contains("(not captured) https://example.test/#spliff:request-not-captured")
            && text
                .contains("  (request not captured: sent before the capture or in lost bytes)\n"),
        "{text}"
    );
}

#[test]
fn a_captured_request_has_no_missing_mark() {
    let req = b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (entries, text) = views(&trace(b"http/1.1", req, resp, (0, 0)));
    let e = &entries[0];
    assert!(e.get("_requestMissing").is_none());
    assert!(e["request"].get("comment").is_none());
    assert_eq!(e["request"]["url"], "https://example.test/");
    assert!(!text.contains("not captured"), "{text}");
}

#[test]
fn a_malformed_header_order_is_shown_as_sent_and_marked() {
    let (mut c, mut s) = (loona_hpack::Encoder::new(), loona_hpack::Encoder::new());
    // RFC 9113 §8.3: pseudo-headers must precede regular ones; this block breaks that.
    let wire = [
        (":method", "GET"),
        ("user-agent", "odd/1"),
        (":scheme", "https"),
        (":authority", "example.test"),
        (":path", "/m"),
    ];
    let mut req = PREFACE.to_vec();
    req.extend(frame(4, 0, 0, &[]));
    req.extend(headers(&mut c, END_STREAM, 1, &wire));
    let mut resp = frame(4, 0, 0, &[]);
    let resp_wire = [("server", "s"), (":status", "204")];
    resp.extend(headers(&mut s, END_STREAM, 1, &resp_wire));

    let (entries, text) = views(&trace(b"h2", &req, &resp, (0, 0)));
    let e = &entries[0];
    assert_eq!(pairs(&e["request"]["headers"]), owned(&wire));
    assert_eq!(pairs(&e["response"]["headers"]), owned(&resp_wire));
    assert_eq!(e["request"]["url"], "https://example.test/m");
    assert_eq!(e["response"]["status"], 204);
    let incomplete: Vec<&str> = e["_incomplete"]
        .as_array()
        .expect("marked")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for reason in [
        "request header block malformed (RFC 9113 §8.3): pseudo-header :scheme after regular \
         header user-agent; shown in wire order",
        "response header block malformed (RFC 9113 §8.3): pseudo-header :status after regular \
         header server; shown in wire order",
    ] {
        assert!(incomplete.contains(&reason), "{incomplete:?}");
        assert!(text.contains(reason), "{text}");
    }
    assert!(
        text.contains("  :method: GET\n  user-agent: odd/1\n  :scheme: https\n"),
        "{text}"
    );
}
