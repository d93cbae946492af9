# What the hand-written HTTP/2 test clients (h2_slow_client.py, h2_table_client.py) share:
# a TLS connection with ALPN h2 over Python's ssl (the system OpenSSL, so spliff records it),
# frames out, and frames in, read `chunk` bytes per SSL_read with `pause` seconds between.
import socket, ssl, struct, time


def connect(host, port):
    ctx = ssl._create_unverified_context()
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(socket.create_connection((host, int(port))))
    assert s.selected_alpn_protocol() == "h2"
    return s


def frame(kind, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", sid) + payload


class Frames:
    def __init__(self, sock, chunk, pause=0.0):
        self.sock, self.chunk, self.pause, self.buf = sock, chunk, pause, b""

    def read(self):
        """The next frame: (type, flags, stream id, payload)."""
        while True:
            buf = self.buf
            if len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) >= 9 + n:
                    self.buf = buf[9 + n:]
                    return (buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff, buf[9:9 + n])
            d = self.sock.recv(self.chunk)
            if not d:
                raise SystemExit("connection closed")
            self.buf += d
            if self.pause:
                time.sleep(self.pause)
