# A hand-written HTTP/2 client over Python's ssl (the system OpenSSL, so spliff records it).
# Argv: port, go-file, number of requests before, number after. It announces a 64 KiB HPACK
# table for its decoder, raises its own encoder's table to 64 KiB (the server allows it),
# and fills it: request i inserts `x-pre-i` (~900 bytes) and refers to every earlier one.
# Then it prints "ready", waits for the go-file, and sends the requests after: request j
# inserts `x-post-j` and refers to every earlier `x-post-*` (deeper than 4096 bytes once a
# few are in); odd j also to `x-pre-1` (inserted before). After the join, `:authority` is a
# literal that is not indexed, so even requests refer to nothing from before the join. One
# stream at a time; prints "done PATH".
import os, struct, sys, time
from h2_wire import Frames, connect, frame

port, go, n_before, n_after = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = connect("127.0.0.1", port)

def integer(v, prefix, first):
    m = (1 << prefix) - 1
    if v < m:
        return bytes([first | v])
    out = [first | m]
    v -= m
    while v >= 128:
        out.append(v % 128 + 128)
        v //= 128
    out.append(v)
    return bytes(out)

def string(b):
    return integer(len(b), 7, 0) + b

table = []  # newest first: (name, value); never 64 KiB, so nothing is evicted

def insert(name, value):
    table.insert(0, (name, value))
    return b"\x40" + string(name) + string(value)

def ref(name, value):
    return integer(62 + table.index((name, value)), 7, 0x80)

read_frame = Frames(s, 65536).read

s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
          frame(4, 0, 0, struct.pack(">HIHIHI", 1, 65536, 2, 0, 4, 1 << 20)) +
          frame(8, 0, 0, struct.pack(">I", 1 << 24)))
# The server's SETTINGS (its decoder's 64 KiB) must be acknowledged before the encoder may
# use more than 4096 bytes.
while True:
    kind, flags, _, _ = read_frame()
    if kind == 4 and not flags & 1:
        s.sendall(frame(4, 1, 0, b""))
        break
authority = ("127.0.0.1:%d" % port).encode()
sid = -1

def get(path, fields, after=False):
    global sid
    sid += 2
    block = b""
    if sid == 1:
        block += integer(65536, 5, 0x20)
    block += b"\x82\x87" + b"\x44" + string(path.encode())
    table.insert(0, (b":path", path.encode()))
    if sid == 1:
        block += b"\x41" + string(authority)
        table.insert(0, (b":authority", authority))
    elif after:
        block += b"\x01" + string(authority)  # literal, not indexed: nothing from before
    else:
        block += ref(b":authority", authority)
    block += fields()
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
    print("done", path, flush=True)

big = lambda tag: (tag * 60)[:900].encode()
for i in range(1, n_before + 1):
    get("/pre%d.txt" % i, lambda: b"".join(ref(b"x-pre-%d" % j, big("pre-%d-" % j)) for j in range(1, i))
        + insert(b"x-pre-%d" % i, big("pre-%d-" % i)))
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.05)
for i in range(1, n_after + 1):
    get("/post%d.txt" % i, lambda: (ref(b"x-pre-1", big("pre-1-")) if i % 2 else b"")
        + b"".join(ref(b"x-post-%d" % j, big("post-%d-" % j)) for j in range(1, i))
        + insert(b"x-post-%d" % i, big("post-%d-" % i)), after=True)
s.close()
