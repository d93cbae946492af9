"""gRPC (grpcio, HTTP/2 without TLS) over a unix socket, without generated code: messages
are raw bytes.

`grpc_unix.py server PATH LOG`: serves /spliff.Test/Echo (unary: answers the request
reversed, sets trailing metadata x-trailer), /spliff.Test/Missing (fails with NOT_FOUND and
a message) and /spliff.Test/Count (server streaming: three messages). Prints `ready` once
listening; logs every call as one JSON line: method, the metadata it received (order kept),
request, every response message (base64), trailing metadata, status code and details.

`grpc_unix.py client PATH`: makes one call of each kind (and a 200 000-byte Echo), then exits.
"""
import base64, json, sys, threading
from concurrent import futures

import grpc

mode, path = sys.argv[1], sys.argv[2]


def b64(data):
    return base64.b64encode(data).decode()


if mode == "server":
    log = open(sys.argv[3], "a")
    lock = threading.Lock()

    def record(method, context, request, responses, trailers, code, details):
        entry = {
            "method": method,
            "metadata": [[k, v] for k, v in context.invocation_metadata()],
            "request": b64(request),
            "responses": [b64(r) for r in responses],
            "trailers": trailers,
            "code": code,
            "details": details,
        }
        with lock:
            log.write(json.dumps(entry) + "\n")
            log.flush()

    def echo(request, context):
        trailers = [["x-trailer", "echoed %d" % len(request)]]
        context.set_trailing_metadata([tuple(t) for t in trailers])
        answer = request[::-1]
        record("/spliff.Test/Echo", context, request, [answer], trailers, 0, "")
        return answer

    def missing(request, context):
        record("/spliff.Test/Missing", context, request, [], [], 5, "no such thing")
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    def count(request, context):
        answers = [b"message %d of %s" % (i, request) for i in range(3)]
        record("/spliff.Test/Count", context, request, answers, [], 0, "")
        for a in answers:
            yield a

    handler = grpc.method_handlers_generic_handler("spliff.Test", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Missing": grpc.unary_unary_rpc_method_handler(missing),
        "Count": grpc.unary_stream_rpc_method_handler(count),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("unix:" + path)
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()
else:
    with grpc.insecure_channel("unix:" + path) as channel:
        echo = channel.unary_unary("/spliff.Test/Echo")
        echo(b"hello over a unix socket", metadata=[("x-request", "one")])
        big = bytes((i * 7 + 3) % 251 for i in range(200000))
        echo(big, metadata=[("x-request", "big")])
        try:
            channel.unary_unary("/spliff.Test/Missing")(b"where?")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
        answers = list(channel.unary_stream("/spliff.Test/Count")(b"three"))
        assert len(answers) == 3, answers
