"""A non-HTTP conversation over a unix stream socket, written with many iovecs at once.

argv: socket-path. A server thread accepts one connection and answers every message with
its bytes reversed; the client sends one sendmsg of 100 buffers and one os.writev of 70
buffers (each buffer a different length and fill), peeks at the first answer with recv and
recvmsg (MSG_PEEK), and reads each answer whole. Prints the
client's sent bytes and received bytes as two hex lines and the length of its first message,
the ground truth of the test.
"""
import os, socket, sys, threading

path = sys.argv[1]
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(path)
listener.listen(1)


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def serve(sizes):
    conn, _ = listener.accept()
    for size in sizes:
        msg = recv_exactly(conn, size)
        conn.sendall(msg[::-1])
    conn.close()


first = [bytes([65 + i % 26]) * (i * 37 % 500 + 1) for i in range(100)]
second = [bytes([97 + i % 26]) * (i * 53 % 300 + 1) for i in range(70)]
sizes = [sum(map(len, first)), sum(map(len, second))]
server = threading.Thread(target=serve, args=(sizes,))
server.start()

client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
client.connect(path)
sent, received = b"", b""
n = client.sendmsg(first)
assert n == sizes[0], n
sent += b"".join(first)
# Peeks (recvfrom, recvmsg) leave the bytes queued: they are not received twice.
assert client.recv(10, socket.MSG_PEEK)
assert client.recvmsg(10, 0, socket.MSG_PEEK)[0]
received += recv_exactly(client, sizes[0])
n = os.writev(client.fileno(), second)
assert n == sizes[1], n
sent += b"".join(second)
received += recv_exactly(client, sizes[1])
client.close()
server.join()
print(sent.hex())
print(received.hex())
print(sizes[0])
