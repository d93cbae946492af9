//! One exchange of one connection → one HAR entry.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::in_trace::{self, BodyText};
use super::model::{
    Content, Entry, InformationalResponse, LossRange, NameValue, PostData, Request, Response,
    Timings, WebSocketMessage,
};
use crate::body::{DecodeOptions, decode_body_cow};
use crate::body_stream::DeferredBody;
use crate::exchange::{Exchange, Header, HttpVersion, WsOpcode};
use crate::lazy::LazyConnection;
use crate::pipeline::{exchange_method, exchange_start_ns, exchange_url};
use crate::stream::Side;
use crate::trace_input::ConnectionInfo;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn pairs(headers: &[Header]) -> Vec<NameValue> {
    headers
        .iter()
        .map(|h| NameValue {
            name: text(&h.name),
            value: text(&h.value),
        })
        .collect()
}

fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    crate::exchange::find_header(headers, name)
}

/// A body as HAR text: UTF-8 as it is (borrowed, or taken over when owned), anything else
/// base64.
fn cow_body_text(body: Cow<'_, [u8]>) -> (Cow<'_, str>, Option<&'static str>) {
    match body {
        Cow::Borrowed(b) => match std::str::from_utf8(b) {
            Ok(s) => (Cow::Borrowed(s), None),
            Err(_) => (Cow::Owned(BASE64.encode(b)), Some("base64")),
        },
        Cow::Owned(v) => owned_body_text(v),
    }
}

/// [`cow_body_text`] of an owned body.
pub(super) fn owned_body_text(v: Vec<u8>) -> (Cow<'static, str>, Option<&'static str>) {
    match String::from_utf8(v) {
        Ok(s) => (Cow::Owned(s), None),
        Err(e) => (Cow::Owned(BASE64.encode(e.as_bytes())), Some("base64")),
    }
}

fn version_str(v: Option<HttpVersion>, fallback: HttpVersion) -> String {
    match v.unwrap_or(fallback) {
        HttpVersion::Http2 => "HTTP/2.0".to_string(),
        other => other.as_str().to_string(),
    }
}

/// Milliseconds between two kernel instants; 0 when either is unknown or they are reversed
/// (HAR consumers reject negative phases other than -1).
fn ms(from: Option<u64>, to: Option<u64>) -> f64 {
    match (from, to) {
        (Some(a), Some(b)) if b >= a => (b - a) as f64 / 1e6,
        _ => 0.0,
    }
}

fn query(url: &str) -> Vec<NameValue> {
    let Some((_, q)) = url.split_once('?') else {
        return Vec::new();
    };
    let q = q.split('#').next().unwrap_or("");
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            NameValue {
                name: n.to_string(),
                value: v.to_string(),
            }
        })
        .collect()
}

fn request_cookies(headers: &[Header]) -> Vec<NameValue> {
    crate::exchange::find_headers(headers, "cookie")
        .flat_map(|v| v.split(|b| *b == b';'))
        .filter_map(|c| {
            let c = text(c);
            let c = c.trim();
            let (n, v) = c.split_once('=')?;
            Some(NameValue {
                name: n.trim().to_string(),
                value: v.trim().to_string(),
            })
        })
        .collect()
}

fn response_cookies(headers: &[Header]) -> Vec<NameValue> {
    crate::exchange::find_headers(headers, "set-cookie")
        .filter_map(|v| {
            let v = text(v);
            let first = v.split(';').next()?.trim().to_string();
            let (n, val) = first.split_once('=')?;
            Some(NameValue {
                name: n.trim().to_string(),
                value: val.trim().to_string(),
            })
        })
        .collect()
}

/// The request's `postData`, and the body to write in its place when it is in the trace.
fn post_data<'a>(
    req: &'a crate::exchange::Request,
    trace: Option<&LazyConnection<'_>>,
    deferred: &mut Vec<DeferredBody>,
) -> Option<PostData<'a>> {
    let mime_type = || {
        header(&req.headers, "content-type")
            .map(self::text)
            .unwrap_or_default()
    };
    if let (Some(body), Some(conn)) = (&req.in_trace, trace) {
        let b = in_trace::request(conn, body);
        let text = b.text?;
        deferred.extend(b.deferred);
        return Some(PostData {
            mime_type: mime_type(),
            text,
            encoding: b.encoding,
            deferred: true,
        });
    }
    (!req.body.is_empty()).then(|| {
        let (text, encoding) = cow_body_text(Cow::Borrowed(&req.body));
        PostData {
            mime_type: mime_type(),
            text,
            encoding,
            deferred: false,
        }
    })
}

/// Builds the entry. `first_on_connection` says whether the TLS handshake time belongs to it.
/// Bodies in the trace ([`crate::exchange::InTrace`]) are read from `trace`, the connection
/// being rendered item by item, and left there: the entry holds placeholders for them, and
/// the bodies to write in their place are returned, in the order they appear.
pub(crate) fn build<'a>(
    ex: &'a Exchange,
    info: &ConnectionInfo,
    first_on_connection: bool,
    decode: &DecodeOptions,
    trace: Option<&LazyConnection<'_>>,
) -> (Entry<'a>, Vec<DeferredBody>) {
    let mut incomplete = ex.incomplete.clone();
    let url = exchange_url(ex, info);
    let method = exchange_method(ex);
    let req = &ex.request;
    let mut deferred = Vec::new();
    let post_data = post_data(req, trace, &mut deferred);
    let request = Request {
        method,
        query_string: query(&url),
        url,
        http_version: version_str(req.version, ex.version),
        cookies: request_cookies(&req.headers),
        headers: pairs(&req.headers),
        post_data,
        headers_size: req.head_size.map_or(-1, |s| s as i64),
        body_size: req.body_wire_size as i64,
        trailers: pairs(&req.trailers),
        comment: req.head_missing().then_some(
            "request not captured (sent before the capture or in lost bytes): method and URL \
             are placeholders",
        ),
    };

    let response = match &ex.response {
        Some(resp) => {
            let mime_type = header(&resp.headers, "content-type")
                .map(text)
                .unwrap_or_default();
            let b = match (&resp.in_trace, trace) {
                (Some(body), Some(conn)) => {
                    in_trace::response(conn, body, &resp.headers, decode, &mut incomplete)
                }
                _ => held_body(resp, decode, &mut incomplete),
            };
            let (size, wire, body, encoding) = (b.size, b.wire, b.text, b.encoding);
            let in_place = b.deferred.is_some();
            deferred.extend(b.deferred);
            Response {
                status: resp.status.map_or(0, i64::from),
                status_text: text(&resp.reason),
                http_version: version_str(resp.version, ex.version),
                cookies: response_cookies(&resp.headers),
                headers: pairs(&resp.headers),
                content: Content {
                    size,
                    compression: (size > wire && wire > 0).then_some(size - wire),
                    mime_type,
                    text: body,
                    encoding,
                    deferred: in_place,
                },
                redirect_url: header(&resp.headers, "location")
                    .map(self::text)
                    .unwrap_or_default(),
                headers_size: resp.head_size.map_or(-1, |s| s as i64),
                body_size: resp.body_wire_size as i64,
                informational: resp
                    .informational
                    .iter()
                    .map(|i| InformationalResponse {
                        status: i64::from(i.status),
                        headers: pairs(&i.headers),
                    })
                    .collect(),
                trailers: pairs(&resp.trailers),
            }
        }
        None => {
            incomplete.push("no response was captured".to_string());
            Response {
                status: 0,
                status_text: String::new(),
                http_version: version_str(None, ex.version),
                cookies: Vec::new(),
                headers: Vec::new(),
                content: Content {
                    size: 0,
                    compression: None,
                    mime_type: String::new(),
                    text: None,
                    encoding: None,
                    deferred: false,
                },
                redirect_url: String::new(),
                headers_size: -1,
                body_size: -1,
                informational: Vec::new(),
                trailers: Vec::new(),
            }
        }
    };

    let t = &ex.timings;
    let ssl = match (first_on_connection, info.handshake_ns) {
        (true, Some((start, end))) => ms(Some(start), Some(end)),
        _ => -1.0,
    };
    let timings = Timings {
        blocked: -1.0,
        dns: -1.0,
        connect: -1.0,
        send: ms(t.request_first_byte_ns, t.request_last_byte_ns),
        wait: ms(t.request_last_byte_ns, t.response_first_byte_ns),
        receive: ms(t.response_first_byte_ns, t.response_last_byte_ns),
        ssl,
    };
    let time = [timings.send, timings.wait, timings.receive, timings.ssl]
        .iter()
        .filter(|v| **v >= 0.0)
        .sum();

    let started_ns = exchange_start_ns(ex, info);
    let wall = info.clock.map(|c| c.wall(started_ns));
    if info.clock.is_none() {
        incomplete.push(
            "the trace has no capture info record: startedDateTime counts from the epoch"
                .to_string(),
        );
    }
    let websocket_messages = ex
        .upgrade
        .as_ref()
        .map(|u| {
            u.messages
                .iter()
                .map(|m| WebSocketMessage {
                    kind: match m.from {
                        Side::Request => "send",
                        Side::Response => "receive",
                    },
                    time: m
                        .ts_ns
                        .and_then(|ts| info.clock.map(|c| c.wall(ts)))
                        .map_or(0.0, |w| w as f64 / 1e9),
                    opcode: ws_opcode(m.opcode),
                    data: match (m.opcode, m.compressed, std::str::from_utf8(&m.payload)) {
                        (WsOpcode::Text, false, Ok(s)) => s.to_string(),
                        _ => BASE64.encode(&m.payload),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let (_, server) = info.client_server();
    let entry = Entry {
        started_date_time: rfc3339(wall.unwrap_or(started_ns)),
        time,
        request,
        response,
        cache: serde_json::Map::new(),
        timings,
        server_ip_address: server.map(|a| a.ip().to_string()),
        connection: format!(
            "{}:{}",
            &info.key.capture_id.to_string()[..8],
            info.key.conn_id
        ),
        pid: info.pid,
        comm: info.process.as_ref().map(|p| p.comm.clone()),
        exe: info.process.as_ref().map(|p| p.exe.clone()),
        tls_library: if info.unix_path.is_some() {
            "none"
        } else {
            info.tls_library.name()
        },
        unix_socket: info.unix_path.clone(),
        alpn: info.alpn.as_deref().map(text),
        sni: info.sni.clone(),
        connection_id: info.key.conn_id,
        capture_id: info.key.capture_id.to_string(),
        stream_id: ex.stream_id,
        request_missing: req.head_missing(),
        incomplete,
        loss: ex
            .loss
            .iter()
            .map(|l| LossRange {
                side: l.side.as_str(),
                offset: l.offset,
                length: l.len,
            })
            .collect(),
        websocket_messages,
    };
    (entry, deferred)
}

/// The response body held in memory, with its content-coding undone.
fn held_body<'a>(
    resp: &'a crate::exchange::Response,
    decode: &DecodeOptions,
    incomplete: &mut Vec<String>,
) -> BodyText<'a> {
    let decoded = match decode_body_cow(&resp.headers, &resp.body, decode) {
        Ok(d) => d,
        Err(e) => {
            incomplete.push(format!(
                "response body could not be decoded ({e}); content holds it as received"
            ));
            Cow::Borrowed(&resp.body[..])
        }
    };
    let size = decoded.len() as i64;
    let wire = resp.body.len() as i64;
    let (text, encoding) = if decoded.is_empty() {
        (None, None)
    } else {
        let (t, e) = cow_body_text(decoded);
        (Some(t), e)
    };
    BodyText {
        size,
        wire,
        text,
        encoding,
        deferred: None,
    }
}

fn ws_opcode(op: WsOpcode) -> u8 {
    match op {
        WsOpcode::Text => 1,
        WsOpcode::Binary => 2,
        WsOpcode::Close => 8,
        WsOpcode::Ping => 9,
        WsOpcode::Pong => 10,
        WsOpcode::Reserved(v) => v,
    }
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2026-11-23T12:00:00.000000002Z`.
pub(crate) fn rfc3339(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let nanos = unix_ns % 1_000_000_000;
    match time::OffsetDateTime::from_unix_timestamp(secs as i64) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        // Beyond year 9999: cannot happen for a u64 of ns (year 2554), kept total anyway.
        Err(_) => "1970-01-01T00:00:00.000000000Z".to_string(),
    }
}
