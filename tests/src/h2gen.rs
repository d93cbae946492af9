//! Real HTTP/2 wire bytes for fixtures: an in-process `h2` client and server talk over an
//! in-memory pipe, and every write each side makes is kept with a logical timestamp. The
//! bytes are what the `h2` crate really sends (preface, SETTINGS, HPACK, CONTINUATION,
//! WINDOW_UPDATE ...), not hand-made frames.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

/// Flow-control window of both peers in [`conversation_with_bodies`].
const WIDE_WINDOW: u32 = 16 << 20;

/// One write of one side: logical time (ns) and bytes.
pub type Write = (u64, Vec<u8>);

/// The client's handshake on `io`; the connection is driven by a task of its own.
async fn start_client(
    builder: &h2::client::Builder,
    io: Tap<DuplexStream>,
) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let (client, conn) = builder
        .handshake::<_, Bytes>(io)
        .await
        .expect("client handshake");
    let conn_task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (client.ready().await.expect("ready"), conn_task)
}

/// Log of one side's writes, shared with its [`Tap`].
type WriteLog = Arc<Mutex<Vec<Write>>>;

/// Two connected in-memory streams whose writes are logged on one clock starting at
/// `start_ns`: (client, server, client's log, server's log).
fn tapped_pair(start_ns: u64) -> (Tap<DuplexStream>, Tap<DuplexStream>, WriteLog, WriteLog) {
    let clock = Arc::new(AtomicU64::new(start_ns));
    let (c, s) = tokio::io::duplex(1 << 20);
    let client_log = WriteLog::default();
    let server_log = WriteLog::default();
    let c = Tap {
        inner: c,
        clock: clock.clone(),
        log: client_log.clone(),
    };
    let s = Tap {
        inner: s,
        clock,
        log: server_log.clone(),
    };
    (c, s, client_log, server_log)
}

/// Wraps a stream and logs every write with the shared clock's time, advancing it.
struct Tap<S> {
    inner: S,
    clock: Arc<AtomicU64>,
    log: Arc<Mutex<Vec<Write>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            let t = self.clock.fetch_add(250_000, Ordering::SeqCst);
            self.log.lock().expect("log").push((t, buf[..*n].to_vec()));
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One request and what the client received for it.
#[derive(Debug, Clone)]
pub struct H2Exchange {
    /// `GET` or `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Request body sent.
    pub request_body: Vec<u8>,
    /// Response body received.
    pub response_body: Vec<u8>,
}

/// What the conversation was: requests (method, path, body) and their response bodies.
#[derive(Debug, Clone)]
pub struct H2Conversation {
    /// Client writes.
    pub client: Vec<Write>,
    /// Server writes.
    pub server: Vec<Write>,
    /// One per stream, in the order the client opened them.
    pub exchanges: Vec<H2Exchange>,
    /// Value of the large `x-big` request header.
    pub big_header: String,
}

/// Runs `streams` concurrent requests (GETs, and a POST every third) over one HTTP/2
/// connection; the first request carries an `x-big` header of `big_header_len` bytes (forcing
/// CONTINUATION frames), and every response carries a `grpc-status` trailer.
pub fn conversation(streams: usize, big_header_len: usize, start_ns: u64) -> H2Conversation {
    conversation_with_bodies(streams, big_header_len, 0, start_ns)
}

/// Like [`conversation`], with responses of `response_body_len` bytes of text each (0: the
/// short default reply, and default settings). With bodies, flow-control windows are opened
/// wide on both sides: the client reads no response before it has sent every request, so
/// default windows would stall large bodies.
pub fn conversation_with_bodies(
    streams: usize,
    big_header_len: usize,
    response_body_len: usize,
    start_ns: u64,
) -> H2Conversation {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (c, s, client_log, server_log) = tapped_pair(start_ns);
        let big_header: String = (0..big_header_len)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect();

        let server = tokio::spawn(async move {
            let mut builder = h2::server::Builder::new();
            builder.max_header_list_size(1 << 20);
            if response_body_len > 0 {
                builder
                    .initial_window_size(WIDE_WINDOW)
                    .initial_connection_window_size(WIDE_WINDOW);
            }
            let mut conn = builder
                .handshake::<_, Bytes>(s)
                .await
                .expect("server handshake");
            while let Some(req) = conn.accept().await {
                let (req, mut respond) = req.expect("accept");
                tokio::spawn(async move {
                    let path = req.uri().path().to_string();
                    let mut body = req.into_body();
                    let mut got = Vec::new();
                    while let Some(chunk) = body.data().await {
                        let chunk = chunk.expect("data");
                        let _ = body.flow_control().release_capacity(chunk.len());
                        got.extend_from_slice(&chunk);
                    }
                    let line = format!("response to {path}: {} bytes received\n", got.len());
                    let reply = if response_body_len == 0 {
                        line.repeat(3)
                    } else {
                        line.repeat(response_body_len / line.len() + 1)[..response_body_len]
                            .to_string()
                    };
                    let resp = http::Response::builder()
                        .status(200)
                        .header("content-type", "text/plain")
                        .body(())
                        .expect("response");
                    let mut send = respond.send_response(resp, false).expect("send response");
                    send.send_data(Bytes::from(reply), false)
                        .expect("send data");
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    send.send_trailers(trailers).expect("trailers");
                });
            }
        });

        let mut builder = h2::client::Builder::new();
        if response_body_len > 0 {
            builder
                .initial_window_size(WIDE_WINDOW)
                .initial_connection_window_size(WIDE_WINDOW);
        }
        let (mut client, conn_task) = start_client(&builder, c).await;
        let mut pending = Vec::new();
        let mut exchanges = Vec::new();
        for i in 0..streams {
            let post = i % 3 == 2;
            let path = format!("/item/{i}?q={i}");
            let mut b = http::Request::builder()
                .method(if post { "POST" } else { "GET" })
                .uri(format!("https://h2.example.test{path}"))
                .header("user-agent", "spliff-test/1");
            if i == 0 {
                b = b.header("x-big", big_header.as_str());
            }
            let req = b.body(()).expect("request");
            let body: Vec<u8> = if post {
                format!("payload of stream {i}").into_bytes()
            } else {
                Vec::new()
            };
            let (resp, mut send) = client.send_request(req, !post).expect("send request");
            if post {
                send.send_data(Bytes::from(body.clone()), true)
                    .expect("send body");
            }
            exchanges.push(H2Exchange {
                method: if post { "POST" } else { "GET" }.to_string(),
                path: path.clone(),
                request_body: body,
                response_body: Vec::new(),
            });
            pending.push(resp);
            client = client.ready().await.expect("ready");
        }
        for (i, resp) in pending.into_iter().enumerate() {
            let resp = resp.await.expect("response");
            let mut body = resp.into_body();
            let mut got = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.expect("data");
                let _ = body.flow_control().release_capacity(chunk.len());
                got.extend_from_slice(&chunk);
            }
            let _ = body.trailers().await;
            exchanges[i].response_body = got;
        }
        drop(client);
        let _ = conn_task.await;
        server.abort();
        let client = client_log.lock().expect("log").clone();
        let server = server_log.lock().expect("log").clone();
        H2Conversation {
            client,
            server,
            exchanges,
            big_header,
        }
    })
}

/// One HTTP/2 connection carrying `streams` GETs, `concurrency` open at a time, each answered
/// with `body(i)`: `(bytes, gzip)` where `gzip` adds `content-encoding: gzip` (the bytes are
/// then already compressed). For the single-large-connection replay benchmark: returns the
/// client and server writes only.
pub fn big_conversation(
    streams: usize,
    concurrency: usize,
    body: impl Fn(usize) -> (Bytes, bool) + Send + Sync + 'static,
) -> (Vec<Write>, Vec<Write>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let body = Arc::new(body);
    rt.block_on(async move {
        let (c, s, client_log, server_log) = tapped_pair(0);
        let server = tokio::spawn(async move {
            let mut conn = h2::server::Builder::new()
                .initial_window_size(WIDE_WINDOW)
                .initial_connection_window_size(WIDE_WINDOW)
                .handshake::<_, Bytes>(s)
                .await
                .expect("server handshake");
            while let Some(req) = conn.accept().await {
                let (req, mut respond) = req.expect("accept");
                let body = body.clone();
                tokio::spawn(async move {
                    let i: usize = req
                        .uri()
                        .path()
                        .rsplit('/')
                        .next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let (bytes, gzip) = body(i);
                    let mut resp = http::Response::builder()
                        .status(200)
                        .header("content-type", "application/octet-stream");
                    if gzip {
                        resp = resp.header("content-encoding", "gzip");
                    }
                    let resp = resp.body(()).expect("response");
                    let mut send = respond.send_response(resp, false).expect("send response");
                    send.send_data(bytes, true).expect("send data");
                });
            }
        });
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(WIDE_WINDOW)
            .initial_connection_window_size(WIDE_WINDOW);
        let (mut client, conn_task) = start_client(&builder, c).await;
        let mut next = 0;
        while next < streams {
            let mut pending = Vec::new();
            for i in next..(next + concurrency).min(streams) {
                let req = http::Request::builder()
                    .uri(format!("https://big.example.test/blob/{i}"))
                    .header("user-agent", "spliff-bench/1")
                    .body(())
                    .expect("request");
                let (resp, _) = client.send_request(req, true).expect("send request");
                pending.push(resp);
                client = client.ready().await.expect("ready");
            }
            next += pending.len();
            for resp in pending {
                let mut body = resp.await.expect("response").into_body();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.expect("data");
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
            }
        }
        drop(client);
        let _ = conn_task.await;
        server.abort();
        let client = std::mem::take(&mut *client_log.lock().expect("log"));
        let server = std::mem::take(&mut *server_log.lock().expect("log"));
        (client, server)
    })
}
