"""HTTP/1.1 over TLS (Python ssl + http.server) that logs every exchange it had, as the
ground truth the replayed HAR is compared with.

argv: cert key log.jsonl [git project root]. Prints its port on stdout. With `--unix PATH
log.jsonl` instead it serves plain HTTP/1.1 on a unix stream socket bound to PATH and prints
`0` once listening (client_port is then 0). With a git project
root, targets under /git/ are answered by `git http-backend` (smart HTTP, what `git
ls-remote https://...` asks for). One JSON object per line and exchange:
client_port, method, target, request headers as received (order and case kept), request
body, interim statuses sent (100 Continue), status, response headers as sent, the response
payload as sent before transfer coding (base64) and, for a compressed payload, its
Content-Encoding.
"""
import base64, gzip, json, os, socket, socketserver, ssl, subprocess, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

unix_path = sys.argv[2] if sys.argv[1] == "--unix" else None
if unix_path:
    cert = key = None
    log_path = sys.argv[3]
    git_root = None
else:
    cert, key, log_path = sys.argv[1:4]
    git_root = sys.argv[4] if len(sys.argv) > 4 else None
log_lock = threading.Lock()
log = open(log_path, "a")

BINARY = bytes((i * 37 + 11) % 256 for i in range(64 * 1024))
LARGE = bytes((i * 13 + 7) % 256 for i in range(200 * 1024))


def b64(data):
    return base64.b64encode(data).decode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "spliff-exchange-server/1"

    def log_message(self, *args):
        pass

    # Every header sent, in order: send_response adds Server and Date through here.
    def send_header(self, name, value):
        self.sent_headers.append([name, str(value)])
        super().send_header(name, value)

    def send_response_only(self, code, message=None):
        if code < 200:
            self.interim.append(code)
        super().send_response_only(code, message)

    def handle_one_request(self):
        self.sent_headers = []
        self.interim = []
        super().handle_one_request()

    def record(self, body, status, payload, encoding=None):
        entry = {
            "client_port": self.client_address[1] if isinstance(self.client_address, tuple) else 0,
            "method": self.command,
            "target": self.path,
            "request_headers": [[k, v] for k, v in self.headers.items()],
            "request_body": b64(body),
            "interim": self.interim,
            "status": status,
            "response_headers": self.sent_headers,
            "response_payload": b64(payload),
            "content_encoding": encoding,
        }
        with log_lock:
            log.write(json.dumps(entry) + "\n")
            log.flush()

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def reply(self, status, ctype, payload, body=b"", encoding=None, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.record(body, status, payload if self.command != "HEAD" else b"", encoding)

    def do_HEAD(self):
        self.do_GET()

    def git(self, body=b""):
        path, _, query = self.path.partition("?")
        env = dict(os.environ, GIT_PROJECT_ROOT=git_root, GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path[len("/git"):], QUERY_STRING=query,
                   REQUEST_METHOD=self.command, REMOTE_ADDR="127.0.0.1",
                   CONTENT_TYPE=self.headers.get("Content-Type", ""),
                   CONTENT_LENGTH=str(len(body)),
                   GIT_PROTOCOL=self.headers.get("Git-Protocol", ""))
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True, check=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, ctype, extra = 200, "text/plain", []
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(": ")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k.lower() == "content-type":
                ctype = v
            elif k:
                extra.append((k, v))
        self.reply(status, ctype, payload, body=body, extra=extra)

    def do_GET(self):
        path = self.path.split("?")[0]
        if git_root and path.startswith("/git/"):
            self.git()
        elif path == "/text":
            self.reply(200, "text/plain; charset=utf-8", ("hello " + self.path + " \u00e9\n").encode())
        elif path == "/gzip":
            plain = json.dumps({"items": list(range(400)), "note": "compressed"}).encode()
            self.reply(200, "application/json", gzip.compress(plain), encoding="gzip")
        elif path == "/page":
            # A page with subresources, for browsers (chromium --dump-dom).
            self.reply(200, "text/html; charset=utf-8",
                       b'<html><head><link rel="icon" href="data:,">'
                       b'<script src="/text?from=page"></script>'
                       b'<script src="/chunked"></script></head><body><p>page</p></body></html>')
        elif path == "/binary":
            self.reply(200, "application/octet-stream", BINARY)
        elif path == "/large":
            self.reply(200, "application/octet-stream", LARGE)
        elif path == "/redirect":
            self.reply(302, "text/plain", b"", extra=[("Location", "/text?from=redirect")])
        elif path == "/chunked":
            chunks = [b"first chunk\n", b"second, longer chunk " * 40 + b"\n", b"last\n"]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for c in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
            self.wfile.write(b"0\r\n\r\n")
            self.record(b"", 200, b"".join(chunks))
        else:
            self.reply(404, "text/html", b"<h1>not here</h1>\n")

    def do_POST(self):
        body = self.body()
        if git_root and self.path.startswith("/git/"):
            self.git(body)
            return
        answer = json.dumps({"received": len(body), "first": body[:16].hex()}).encode()
        self.reply(201, "application/json", answer, body=body)

    do_PUT = do_POST


if unix_path:
    class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    server = UnixServer(unix_path, Handler)
    print(0, flush=True)
    server.serve_forever()

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
