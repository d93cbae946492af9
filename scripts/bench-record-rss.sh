#!/usr/bin/env bash
# Memory of `spliff record` over a long capture of many short HTTPS connections: does the
# recorder give back what it held for connections that are over?
#
# Runs, all on 127.0.0.1:
#   - `openssl s_server -WWW` with a throwaway self-signed EC certificate, serving a 64-byte
#     file (HTTP/1.0: the server closes after each response);
#   - the release recorder, scoped to the client with `-- CMD` (the server is not recorded),
#     packets included (loopback is captured as on any interface);
#   - the client (CMD): Python's ssl (libssl) making RATE connections per second for
#     DURATION seconds, each a new TCP + TLS connection with one GET, paced to the schedule
#     and stopping by itself. The recorder ends when the client exits.
# Every SAMPLE seconds the recorder's VmRSS, RssAnon, RssFile and RssShmem (kB, from
# /proc/PID/status) go to a CSV with the client's connection count so far. At the end it
# prints start (first sample), end (last sample before the client finished) and maximum,
# the connections made and achieved per second, the recorder's summary lines, and the TLS
# connections the trace holds (`spliff replay --format records`).
#
#   DURATION=3600 RATE=100 scripts/bench-record-rss.sh
#
# Knobs (environment):
#   DURATION  seconds of client traffic (default 3600)
#   RATE      connections per second (default 100)
#   SAMPLE    seconds between RSS samples (default 60)
#   OUT       directory for rss.csv, recorder.log, client.log, trace.pcapng
#             (default: a new directory under /tmp, kept)
#   SPLIFF    recorder binary to measure (default: build and use target/release/spliff)
#   PORT      server port (default 18644)
#   KEEP_TRACE=0  delete the trace at the end (it grows ~3 KB per connection)
#
# Needs root, openssl, python3. Not a test: numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${DURATION:-3600}"
rate="${RATE:-100}"
sample="${SAMPLE:-60}"
port="${PORT:-18644}"
out="${OUT:-$(mktemp -d /tmp/spliff-rss.XXXXXX)}"
mkdir -p "$out"
if [[ -z "${SPLIFF:-}" ]]; then
	export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
	cargo build -q --release -p spliff-recorder --bin spliff
	SPLIFF="$CARGO_TARGET_DIR/release/spliff"
fi
spliff="$(realpath "$SPLIFF")"

work="$(mktemp -d)"
server=""
recorder=""
cleanup() {
	[[ -n "$recorder" ]] && kill "$recorder" 2>/dev/null || true
	[[ -n "$server" ]] && kill "$server" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
mkdir "$work/www"
head -c 64 /dev/zero | tr '\0' 'x' >"$work/www/hello.txt"
(cd "$work/www" && exec openssl s_server -accept "127.0.0.1:$port" -cert "$work/cert.pem" \
	-key "$work/key.pem" -WWW -quiet >/dev/null 2>&1) &
server=$!

cat >"$work/client.py" <<'PY'
import http.client, ssl, sys, time

port, rate, duration, progress = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
# The server needs a moment to listen.
for _ in range(100):
    try:
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
        c.connect()
        c.close()
        break
    except OSError:
        time.sleep(0.1)
ok = failed = 0
start = time.monotonic()
last_note = start
i = 0
while True:
    due = start + i / rate
    now = time.monotonic()
    if due - start >= duration:
        break
    if due > now:
        time.sleep(due - now)
    i += 1
    try:
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
        c.request("GET", "/hello.txt")
        body = c.getresponse().read()
        c.close()
        ok += len(body) == 64
        failed += len(body) != 64
    except (OSError, http.client.HTTPException):
        failed += 1
    if time.monotonic() - last_note >= 1:
        last_note = time.monotonic()
        with open(progress, "w") as f:
            f.write(f"{ok} {failed}\n")
elapsed = time.monotonic() - start
with open(progress, "w") as f:
    f.write(f"{ok} {failed} done\n")
print(f"client: {ok} connections ok, {failed} failed in {elapsed:.1f} s: {ok / elapsed:.1f} per second")
PY

echo 0 0 >"$out/progress"
"$spliff" record -o "$out/trace.pcapng" -- python3 "$work/client.py" "$port" "$rate" "$duration" \
	"$out/progress" >"$out/client.log" 2>"$out/recorder.log" &
recorder=$!
for _ in $(seq 100); do
	grep -q "spliff: recording" "$out/recorder.log" && break
	sleep 0.1
done

field() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$recorder/status" 2>/dev/null || true; }
echo "elapsed_s,connections,vm_rss_kb,rss_anon_kb,rss_file_kb,rss_shmem_kb,client_done" >"$out/rss.csv"
begin=$(date +%s)
next=0
while kill -0 "$recorder" 2>/dev/null; do
	now=$(($(date +%s) - begin))
	if ((now >= next)); then
		rss=$(field VmRSS)
		# The recorder may exit between the check and the read.
		read -r made _ done <"$out/progress" || true
		[[ -n "$rss" ]] && echo "$now,$made,$rss,$(field RssAnon),$(field RssFile),$(field RssShmem),${done:+1}" >>"$out/rss.csv"
		next=$((next + sample))
	fi
	sleep 1
done
wait "$recorder" || true
recorder=""

echo "== $out"
cat "$out/client.log"
grep -E "spliff: (recorded|correlation)" "$out/recorder.log" || tail -5 "$out/recorder.log"
# Samples while the client ran: after it, the recorder drains, writes the end and unmaps its
# rings.
awk -F, 'NR == 2 {s = $3; sa = $4; st = $1}
	NR > 1 && $7 != 1 {e = $3; ea = $4; et = $1; if ($3 > m) m = $3; if ($4 > ma) ma = $4}
	END {printf "VmRSS kB: start %d (t=%ds) end %d (t=%ds) max %d\n", s, st, e, et, m;
	     printf "RssAnon kB: start %d end %d max %d\n", sa, ea, ma}' "$out/rss.csv"
ls -l "$out/trace.pcapng"
# What the trace says: TLS connections with a connection record, how many of those got their
# last word with packet counters, and the correlation record.
"$spliff" replay --format records "$out/trace.pcapng" | awk '
	/ connection conn=/ {match($0, / conn=[0-9]+/); seen[substr($0, RSTART + 6, RLENGTH - 6)] = 1; if (/ packets=/) counted++}
	/ correlation / {sub(/^.* correlation /, "trace correlation record: "); print}
	END {n = 0; for (c in seen) n++; printf "trace: %d TLS connections, %d last words with packet counters\n", n, counted}'
if [[ "${KEEP_TRACE:-1}" == 0 ]]; then rm -f "$out/trace.pcapng"; fi
