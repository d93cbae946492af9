"""Python urllib client for the record → replay end-to-end test: a few requests of different
shapes against exchange_server.py. argv: base URL. Exits non-zero if any answer is not what
the server sends, so a broken workload cannot pass as a recording problem."""
import gzip, json, ssl, sys, urllib.error, urllib.request

base = sys.argv[1]
ctx = ssl._create_unverified_context()


def fetch(req):
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


status, body = fetch(base + "/text?client=urllib")
assert status == 200 and body.startswith(b"hello "), (status, body)
payload = json.dumps({"from": "urllib", "numbers": list(range(50))}).encode()
req = urllib.request.Request(base + "/json?client=urllib", data=payload, method="POST",
                             headers={"Content-Type": "application/json"})
status, body = fetch(req)
assert status == 201 and json.loads(body)["received"] == len(payload), (status, body)
req = urllib.request.Request(base + "/gzip?client=urllib", headers={"Accept-Encoding": "gzip"})
status, body = fetch(req)
assert status == 200 and json.loads(gzip.decompress(body))["note"] == "compressed"
status, body = fetch(base + "/missing?client=urllib")
assert status == 404, status
status, body = fetch(base + "/binary?client=urllib")
assert status == 200 and len(body) == 64 * 1024
