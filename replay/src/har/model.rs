//! HAR 1.2 as serde structs, with spliff's `_`-prefixed extensions. Own structs rather than a
//! HAR crate's, because those cannot carry the extensions. Field order is the serialisation
//! order, so output is byte-stable.

use std::borrow::Cow;

use serde::Serialize;

/// `log.creator`.
#[derive(Debug, Clone, Serialize)]
pub struct Creator {
    /// Always `spliff`.
    pub name: &'static str,
    /// spliff's version.
    pub version: &'static str,
}

/// A name/value pair (headers, query parameters, cookies without attributes).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NameValue {
    /// Name, as on the wire (lossy UTF-8).
    pub name: String,
    /// Value, as on the wire (lossy UTF-8).
    pub value: String,
}

/// `request.postData`.
#[derive(Debug, Clone, Serialize)]
pub struct PostData<'a> {
    /// Content-Type of the request body, empty when absent.
    #[serde(rename = "mimeType")]
    pub mime_type: String,
    /// The body; base64 when `_encoding` says so.
    pub text: Cow<'a, str>,
    /// `base64` when the body is not UTF-8 (HAR has no encoding field for postData).
    #[serde(rename = "_encoding", skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    /// `text` is a placeholder: the body is written from the trace in its place.
    #[serde(skip)]
    pub deferred: bool,
}

/// `entry.request`.
#[derive(Debug, Clone, Serialize)]
pub struct Request<'a> {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    #[serde(rename = "httpVersion")]
    pub http_version: String,
    /// Cookies from the `Cookie` header.
    pub cookies: Vec<NameValue>,
    /// Header fields in wire order (HTTP/2 pseudo-headers first in a well-formed block).
    pub headers: Vec<NameValue>,
    /// Query string parameters, undecoded.
    #[serde(rename = "queryString")]
    pub query_string: Vec<NameValue>,
    /// The request body, when there is one.
    #[serde(rename = "postData", skip_serializing_if = "Option::is_none")]
    pub post_data: Option<PostData<'a>>,
    /// Bytes of the request head, -1 unknown (HTTP/2: -1, headers are compressed).
    #[serde(rename = "headersSize")]
    pub headers_size: i64,
    /// Bytes of the request body as sent, -1 unknown.
    #[serde(rename = "bodySize")]
    pub body_size: i64,
    /// Trailer fields (chunked trailers, a trailing HTTP/2 HEADERS block) in wire order;
    /// absent when none. HAR has no place for them.
    #[serde(rename = "_trailers", skip_serializing_if = "Vec::is_empty")]
    pub trailers: Vec<NameValue>,
    /// Why the request is not what was sent, when its head was not captured (HAR 1.2
    /// `comment`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<&'static str>,
}

/// `response.content`.
#[derive(Debug, Clone, Serialize)]
pub struct Content<'a> {
    /// Decoded size in bytes.
    pub size: i64,
    /// Bytes saved by content-encoding (wire size smaller than decoded), when positive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<i64>,
    /// Content-Type, empty when absent.
    #[serde(rename = "mimeType")]
    pub mime_type: String,
    /// The decoded body (base64 when `encoding` says so); absent when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Cow<'a, str>>,
    /// `base64` when the text is base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    /// `text` is a placeholder: the body is written from the trace in its place.
    #[serde(skip)]
    pub deferred: bool,
}

/// `entry.response`.
#[derive(Debug, Clone, Serialize)]
pub struct Response<'a> {
    /// Status code; 0 when no response was captured.
    pub status: i64,
    /// Reason phrase (HTTP/1) or empty.
    #[serde(rename = "statusText")]
    pub status_text: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    #[serde(rename = "httpVersion")]
    pub http_version: String,
    /// Cookies from `Set-Cookie` headers (name and value).
    pub cookies: Vec<NameValue>,
    /// Header fields in wire order.
    pub headers: Vec<NameValue>,
    /// The body.
    pub content: Content<'a>,
    /// `Location` header, empty when absent.
    #[serde(rename = "redirectURL")]
    pub redirect_url: String,
    /// Bytes of the response head, -1 unknown.
    #[serde(rename = "headersSize")]
    pub headers_size: i64,
    /// Bytes of the body as received, -1 unknown.
    #[serde(rename = "bodySize")]
    pub body_size: i64,
    /// Interim 1xx responses (`100 Continue`, `103 Early Hints`) that came before this one, in
    /// order; absent when none. HAR has no place for them, and dropping them would hide what
    /// the server actually sent.
    #[serde(rename = "_informational", skip_serializing_if = "Vec::is_empty")]
    pub informational: Vec<InformationalResponse>,
    /// Trailer fields in wire order (gRPC's `grpc-status` lives here); absent when none.
    #[serde(rename = "_trailers", skip_serializing_if = "Vec::is_empty")]
    pub trailers: Vec<NameValue>,
}

/// One interim 1xx response in `response._informational`.
#[derive(Debug, Clone, Serialize)]
pub struct InformationalResponse {
    /// The 1xx status code.
    pub status: i64,
    /// Its header fields in wire order (`:status` first for HTTP/2).
    pub headers: Vec<NameValue>,
}

/// `entry.timings`, in milliseconds; -1 where not applicable.
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    /// Not measured by spliff: -1.
    pub blocked: f64,
    /// Not measured by spliff: -1.
    pub dns: f64,
    /// Not measured by spliff: -1.
    pub connect: f64,
    /// First to last request byte.
    pub send: f64,
    /// Last request byte to first response byte.
    pub wait: f64,
    /// First to last response byte.
    pub receive: f64,
    /// TLS handshake, on the first exchange of a connection; -1 otherwise or unknown.
    pub ssl: f64,
}

/// A byte range lost from an exchange (`_loss`).
#[derive(Debug, Clone, Serialize)]
pub struct LossRange {
    /// `request` or `response`.
    pub side: &'static str,
    /// Offset of the first lost byte in that direction's stream.
    pub offset: u64,
    /// Number of lost bytes.
    pub length: u64,
}

/// A WebSocket message in Chrome's `_webSocketMessages` form.
#[derive(Debug, Clone, Serialize)]
pub struct WebSocketMessage {
    /// `send` (client to server) or `receive`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// WebSocket opcode.
    pub opcode: u8,
    /// Payload (base64 for binary or compressed frames, as Chrome does for binary).
    pub data: String,
}

/// One HAR entry.
#[derive(Debug, Clone, Serialize)]
pub struct Entry<'a> {
    /// Wall-clock time of the first request byte, RFC 3339 with nanoseconds, UTC.
    #[serde(rename = "startedDateTime")]
    pub started_date_time: String,
    /// Sum of the timings that are not -1, ms.
    pub time: f64,
    /// The request.
    pub request: Request<'a>,
    /// The response.
    pub response: Response<'a>,
    /// Always empty: spliff sees no cache.
    pub cache: serde_json::Map<String, serde_json::Value>,
    /// Phase timings.
    pub timings: Timings,
    /// Server IP address, when recorded.
    #[serde(rename = "serverIPAddress", skip_serializing_if = "Option::is_none")]
    pub server_ip_address: Option<String>,
    /// Connection identity: `<capture id prefix>:<connection id>`.
    pub connection: String,
    /// Process id.
    #[serde(rename = "_pid")]
    pub pid: u32,
    /// Process comm, when recorded.
    #[serde(rename = "_comm", skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// Executable path, when recorded.
    #[serde(rename = "_exe", skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// TLS library, e.g. `openssl`.
    #[serde(rename = "_tlsLibrary")]
    pub tls_library: &'static str,
    /// The socket path of a unix stream socket connection (`@` for an abstract name's NUL).
    #[serde(rename = "_unixSocket", skip_serializing_if = "Option::is_none")]
    pub unix_socket: Option<String>,
    /// Negotiated ALPN, when recorded.
    #[serde(rename = "_alpn", skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// Server name indication, when recorded.
    #[serde(rename = "_sni", skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Connection id within its capture.
    #[serde(rename = "_connectionId")]
    pub connection_id: u64,
    /// Capture id (hex).
    #[serde(rename = "_captureId")]
    pub capture_id: String,
    /// HTTP/2 stream id.
    #[serde(rename = "_streamId", skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<u32>,
    /// `true` when the request head was not captured: method and URL are then placeholders
    /// ([`crate::pipeline::UNKNOWN_METHOD`]), not what was sent; absent otherwise.
    #[serde(rename = "_requestMissing", skip_serializing_if = "std::ops::Not::not")]
    pub request_missing: bool,
    /// Why the entry is not a complete, faithful copy; absent when it is.
    #[serde(rename = "_incomplete", skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
    /// Lost byte ranges; absent when none.
    #[serde(rename = "_loss", skip_serializing_if = "Vec::is_empty")]
    pub loss: Vec<LossRange>,
    /// WebSocket messages after an upgrade; absent when none.
    #[serde(rename = "_webSocketMessages", skip_serializing_if = "Vec::is_empty")]
    pub websocket_messages: Vec<WebSocketMessage>,
}
