//! HTTP/1.1 reconstruction against bytes written by hyper: one keep-alive
//! connection carrying fixed-length, chunked (with trailers), HEAD, 304, 204
//! and `Expect: 100-continue` exchanges.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use common::*;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::channel::Channel;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use spliff_replay::{HttpVersion, Protocol, Reconstruction};

type Body = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn big(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 13 % 241) as u8).collect()
}

/// A chunked body: the given pieces, then optional trailers.
fn streamed(pieces: Vec<Vec<u8>>, trailers: Option<HeaderMap>) -> Body {
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(4);
    tokio::spawn(async move {
        for p in pieces {
            tx.send_data(Bytes::from(p)).await.unwrap();
        }
        if let Some(t) = trailers {
            tx.send_trailers(t).await.unwrap();
        }
    });
    body.boxed()
}

async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let collected = req.into_body().collect().await.unwrap();
    let req_trailers = collected.trailers().cloned();
    let received = collected.to_bytes();
    let resp = match path.as_str() {
        "/hello" => Response::builder()
            .header("content-type", "text/plain")
            .body(full("hello, world"))
            .unwrap(),
        "/echo" => {
            let mut r = Response::builder().status(201);
            if let Some(t) = req_trailers
                && let Some(v) = t.get("x-req-sum")
            {
                r = r.header("x-echo-trailer", v);
            }
            r.body(full(received)).unwrap()
        }
        "/chunked" => {
            let mut t = HeaderMap::new();
            t.insert("x-checksum", HeaderValue::from_static("abc123"));
            Response::builder()
                .header("trailer", "x-checksum")
                .body(streamed(
                    vec![b"first ".to_vec(), b"second ".to_vec(), big(20_000)],
                    Some(t),
                ))
                .unwrap()
        }
        "/not-modified" => Response::builder()
            .status(304)
            .header("etag", "\"v1\"")
            .body(Empty::new().boxed())
            .unwrap(),
        "/big" => Response::builder().body(full(big(300_000))).unwrap(),
        _ => Response::builder()
            .status(204)
            .body(Empty::new().boxed())
            .unwrap(),
    };
    Ok(resp)
}

#[derive(Debug)]
struct Got {
    method: String,
    path: String,
    request_body: Vec<u8>,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    trailers: Vec<(String, Vec<u8>)>,
}

fn pairs(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = map
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    v.sort();
    v
}

fn request(method: &str, path: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "example.test")
        .header("user-agent", "spliff-test/1.0")
        .header("te", "trailers")
        .body(body)
        .unwrap()
}

fn run() -> (Recording, Vec<Got>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (c, s) = tokio::io::duplex(1 << 16);
        let clock = Arc::new(AtomicU64::new(0));
        let c = Tap::new(c, clock.clone());
        let s = Tap::new(s, clock);
        let (req_log, resp_log) = (c.log(), s.log());
        let server = tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), hyper::service::service_fn(handle))
                .await;
        });
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(c))
            .await
            .unwrap();
        let conn = tokio::spawn(conn);

        let mut trailers = HeaderMap::new();
        trailers.insert("x-req-sum", HeaderValue::from_static("42"));
        let mut chunked_upload = request(
            "POST",
            "/echo",
            streamed(
                vec![b"part one, ".to_vec(), b"part two".to_vec()],
                Some(trailers),
            ),
        );
        chunked_upload
            .headers_mut()
            .insert("trailer", HeaderValue::from_static("x-req-sum"));
        let mut expect = request("PUT", "/echo", full(big(5_000)));
        expect
            .headers_mut()
            .insert("expect", HeaderValue::from_static("100-continue"));
        let requests = vec![
            (request("GET", "/hello", Empty::new().boxed()), Vec::new()),
            (
                request("POST", "/echo", full(&b"{\"a\":1}"[..])),
                b"{\"a\":1}".to_vec(),
            ),
            (chunked_upload, b"part one, part two".to_vec()),
            (request("GET", "/chunked", Empty::new().boxed()), Vec::new()),
            (request("HEAD", "/hello", Empty::new().boxed()), Vec::new()),
            (
                request("GET", "/not-modified", Empty::new().boxed()),
                Vec::new(),
            ),
            (
                request("DELETE", "/nothing", Empty::new().boxed()),
                Vec::new(),
            ),
            (expect, big(5_000)),
            (request("GET", "/big", Empty::new().boxed()), Vec::new()),
        ];
        let mut got = Vec::new();
        for (req, request_body) in requests {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            sender.ready().await.unwrap();
            let resp = sender.send_request(req).await.unwrap();
            let status = resp.status().as_u16();
            let headers = pairs(resp.headers());
            let collected = resp.into_body().collect().await.unwrap();
            let trailers = collected.trailers().map(pairs).unwrap_or_default();
            got.push(Got {
                method,
                path,
                request_body,
                status,
                headers,
                body: collected.to_bytes().to_vec(),
                trailers,
            });
        }
        drop(sender);
        let _ = conn.await;
        let _ = server.await;
        let rec = Recording {
            request: req_log.lock().unwrap().clone(),
            response: resp_log.lock().unwrap().clone(),
        };
        (rec, got)
    })
}

fn recording() -> &'static (Recording, Vec<Got>) {
    static REC: std::sync::OnceLock<(Recording, Vec<Got>)> = std::sync::OnceLock::new();
    REC.get_or_init(run)
}

fn header_pairs(headers: &[spliff_replay::Header]) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = headers
        .iter()
        .map(|h| (h.name_str().to_ascii_lowercase(), h.value.clone()))
        .collect();
    v.sort();
    v
}

fn check(r: &Reconstruction, got: &[Got]) {
    assert_eq!(r.detection.protocol, Protocol::Http1);
    assert_eq!(r.exchanges.len(), got.len());
    for (e, g) in r.exchanges.iter().zip(got) {
        assert!(
            e.is_complete(),
            "{} {}: {:?}",
            g.method,
            g.path,
            e.incomplete
        );
        assert_eq!(e.version, HttpVersion::Http11);
        assert_eq!(e.request.method_str().as_deref(), Some(g.method.as_str()));
        assert_eq!(e.request.target_str().as_deref(), Some(g.path.as_str()));
        assert_eq!(e.request.authority.as_deref(), Some(&b"example.test"[..]));
        assert_eq!(e.request.body, g.request_body, "{} {}", g.method, g.path);
        let resp = e.response.as_ref().unwrap();
        assert_eq!(resp.status, Some(g.status));
        assert_eq!(
            header_pairs(&resp.headers),
            g.headers,
            "{} {}",
            g.method,
            g.path
        );
        assert_eq!(resp.body, g.body, "{} {}", g.method, g.path);
        assert_eq!(header_pairs(&resp.trailers), g.trailers);
        let t = e.timings;
        assert!(t.request_first_byte_ns <= t.request_last_byte_ns);
        assert!(t.request_first_byte_ns < t.response_first_byte_ns);
        assert!(t.response_first_byte_ns <= t.response_last_byte_ns);
    }
}

#[test]
fn keep_alive_connection_matches_what_the_client_saw() {
    let (rec, got) = recording();
    let r = replay(None, per_write(&rec.request), per_write(&rec.response));
    check(&r, got);
    let by_path = |m: &str, p: &str| {
        r.exchanges
            .iter()
            .find(|e| {
                e.request.method_str().as_deref() == Some(m)
                    && e.request.target_str().as_deref() == Some(p)
            })
            .unwrap()
    };
    // Chunked upload: trailers kept, body de-chunked, wire size includes framing.
    let upload = by_path("POST", "/echo");
    let upload = if upload.request.trailers.is_empty() {
        r.exchanges
            .iter()
            .filter(|e| e.request.target_str().as_deref() == Some("/echo"))
            .nth(1)
            .unwrap()
    } else {
        upload
    };
    assert_eq!(upload.request.trailers[0].value, b"42");
    assert!(upload.request.body_wire_size > upload.request.body.len() as u64);
    let chunked = by_path("GET", "/chunked");
    assert_eq!(
        chunked.response.as_ref().unwrap().trailer("x-checksum"),
        Some(&b"abc123"[..])
    );
    // HEAD: Content-Length advertised, no body consumed.
    let head = by_path("HEAD", "/hello");
    let hr = head.response.as_ref().unwrap();
    assert_eq!(hr.header("content-length"), Some(&b"12"[..]));
    assert!(hr.body.is_empty());
    // Expect: 100-continue → an interim 100 before the final response.
    let put = by_path("PUT", "/echo");
    let pr = put.response.as_ref().unwrap();
    assert_eq!(pr.informational.len(), 1);
    assert_eq!(pr.informational[0].status, 100);
    assert_eq!(pr.status, Some(201));
    assert_eq!(
        by_path("GET", "/not-modified")
            .response
            .as_ref()
            .unwrap()
            .status,
        Some(304)
    );
}

#[test]
fn piece_boundaries_do_not_matter() {
    let (rec, _) = recording();
    let reference = replay(None, per_write(&rec.request), per_write(&rec.response));
    for n in [1usize, 3, 1460] {
        let r = replay(
            None,
            sub_pieces(&rec.request, n),
            sub_pieces(&rec.response, n),
        );
        assert_same(&r, &reference, &format!("sub-pieces of {n} bytes"));
    }
    let reference = without_timings(reference);
    for n in [1460usize, 4096, usize::MAX] {
        let r = replay(
            None,
            coalesced(&rec.request, n),
            coalesced(&rec.response, n),
        );
        assert_same(
            &without_timings(r),
            &reference,
            &format!("re-cut every {n} bytes"),
        );
    }
}

#[test]
fn gap_inside_a_fixed_length_body_only_marks_that_exchange() {
    let (rec, _) = recording();
    let full = replay(None, per_write(&rec.request), per_write(&rec.response));
    // The last response is the 300 000-byte /big body; lose 1200 bytes of it.
    let total = total_len(&rec.response);
    let at = total - 100_000;
    let damaged = replay(
        None,
        per_write(&rec.request),
        with_gap(per_write(&rec.response), at, 1200),
    );
    assert_eq!(damaged.exchanges.len(), full.exchanges.len());
    let (last, rest) = damaged.exchanges.split_last().unwrap();
    assert!(
        rest == &full.exchanges[..rest.len()],
        "earlier exchanges changed"
    );
    assert_eq!(
        last.incomplete,
        vec![format!("lost 1200 bytes at response offset {at}")]
    );
    assert_eq!(last.response.as_ref().unwrap().body.len(), 300_000 - 1200);
}

#[test]
fn capture_starting_mid_connection_resyncs_on_the_next_messages() {
    let (rec, _) = recording();
    let full = replay(None, per_write(&rec.request), per_write(&rec.response));
    // Start both directions a few bytes into the third exchange (the chunked
    // upload and its 201).
    let req_cut = offset_of(&rec.request, b"POST /echo", 2) + 5;
    let resp_cut = offset_of(&rec.response, b"HTTP/1.1 201", 2) + 5;
    let late = replay(
        None,
        starting_at(per_write(&rec.request), req_cut),
        starting_at(per_write(&rec.response), resp_cut),
    );
    assert_eq!(late.detection.protocol, Protocol::Http1);
    assert_eq!(late.notes.len(), 2, "{:?}", late.notes);
    assert!(
        late.notes
            .iter()
            .all(|n| n.contains("capture started mid-connection"))
    );
    // Everything from the fourth exchange on is complete and identical.
    assert_eq!(
        without_timings_vec(&late.exchanges),
        without_timings_vec(&full.exchanges[3..])
    );
}

fn without_timings_vec(e: &[spliff_replay::Exchange]) -> Vec<spliff_replay::Exchange> {
    e.iter()
        .cloned()
        .map(|mut e| {
            e.timings = Default::default();
            e
        })
        .collect()
}

/// Offset of the `nth` occurrence (counting from 1) of `needle`.
fn offset_of(writes: &[Write], needle: &[u8], nth: usize) -> u64 {
    let flat: Vec<u8> = writes.iter().flat_map(|(_, b)| b.clone()).collect();
    flat.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i as u64)
        .nth(nth - 1)
        .expect("needle present")
}

/// Where each exchange's request and response end on the wire (messages are
/// back to back on a keep-alive connection).
fn message_ends() -> &'static [(u64, u64)] {
    static ENDS: std::sync::OnceLock<Vec<(u64, u64)>> = std::sync::OnceLock::new();
    ENDS.get_or_init(|| {
        let (rec, _) = recording();
        let full = replay(None, per_write(&rec.request), per_write(&rec.response));
        let (mut req, mut resp) = (0, 0);
        full.exchanges
            .iter()
            .map(|x| {
                req += x.request.head_size.unwrap() + x.request.body_wire_size;
                let r = x.response.as_ref().unwrap();
                // Each interim response here is "HTTP/1.1 100 Continue\r\n\r\n".
                resp += r.informational.len() as u64 * 25 + r.head_size.unwrap() + r.body_wire_size;
                (req, resp)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_split_points_give_identical_output(cuts in proptest::collection::vec(1usize..4000, 1..30)) {
        let (rec, _) = recording();
        let reference = replay(None, per_write(&rec.request), per_write(&rec.response));
        let r = replay(None, cut_writes(&rec.request, &cuts), cut_writes(&rec.response, &cuts));
        assert_same(&r, &reference, "random cuts");
    }

    #[test]
    fn any_gap_leaves_the_exchanges_before_it_intact(start_frac in 0.0f64..1.0, len in 1u64..3000, response_side in any::<bool>()) {
        let (rec, _) = recording();
        let full = replay(None, per_write(&rec.request), per_write(&rec.response));
        prop_assert_eq!(message_ends().last().unwrap(), &(total_len(&rec.request), total_len(&rec.response)));
        let (mut req, mut resp) = (per_write(&rec.request), per_write(&rec.response));
        let stream = if response_side { &rec.response } else { &rec.request };
        let at = (total_len(stream) as f64 * start_frac) as u64;
        if response_side { resp = with_gap(resp, at, len) } else { req = with_gap(req, at, len) }
        let damaged = replay(None, req, resp);
        let mut intact = 0;
        for ((d, f), (req_end, resp_end)) in damaged.exchanges.iter().zip(&full.exchanges).zip(message_ends()) {
            let end = if response_side { resp_end } else { req_end };
            if *end > at { break; }
            prop_assert!(d == f, "exchange before the gap changed: {:?}", d.incomplete);
            intact += 1;
        }
        // The exchange holding the gap says so.
        prop_assert!(damaged.exchanges.iter().skip(intact).any(|e| !e.is_complete()));
    }
}
