# A hand-written HTTP/2 client over Python's ssl (the system OpenSSL, so spliff records it)
# that reads slowly and in small pieces: each SSL_read asks for 997 bytes, so reads begin
# anywhere inside TLS records and HTTP/2 frames (a capture that joins starts mid-frame).
# Argv: base URL (https://127.0.0.1:PORT), then paths. Fetches them one after the other on
# one connection (streams 1, 3, 5, ...) and prints each URL when its response ended. Header
# fields are literals that are not indexed: its HPACK table stays empty.
import struct, sys
from h2_wire import Frames, connect, frame

base, paths = sys.argv[1], sys.argv[2:]
host, port = base.split("//")[1].rsplit(":", 1)
s = connect(host, port)

def string(b):
    assert len(b) < 127
    return bytes([len(b)]) + b

read_frame = Frames(s, 997, 0.004).read

s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
          frame(4, 0, 0, struct.pack(">HIHI", 2, 0, 4, (1 << 31) - 1)) +
          frame(8, 0, 0, struct.pack(">I", (1 << 31) - 1 - 65535)))
authority = ("%s:%s" % (host, port)).encode()
for k, path in enumerate(paths):
    sid = 2 * k + 1
    block = b"\x82\x87\x04" + string(path.encode()) + b"\x01" + string(authority)
    s.sendall(frame(1, 0x5, sid, block))
    while True:
        kind, flags, fsid, payload = read_frame()
        if kind == 4 and not flags & 1:
            s.sendall(frame(4, 1, 0, b""))
        elif kind == 6 and not flags & 1:
            s.sendall(frame(6, 1, 0, payload))
        elif kind == 0 and payload:
            s.sendall(frame(8, 0, 0, struct.pack(">I", len(payload))))
        if kind == 7:
            raise SystemExit("GOAWAY")
        if fsid == sid and kind in (0, 1) and flags & 1:
            break
    print(base + path, flush=True)
s.close()
