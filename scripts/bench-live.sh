#!/usr/bin/env bash
# The live view of `spliff record` under load: how late each request and response is printed,
# and the recorder's memory over a long session.
#
# Runs, all on 127.0.0.1:
#   - nghttpd (HTTP/2, self-signed certificate) serving a 64-byte file;
#   - the release recorder in live-view mode (no -o), its view on /dev/null, scoped to the
#     load generator with `-- CMD` (the server is not recorded), --no-packets;
#   - the load (CMD): h2load in rounds of CLIENTS new connections, each making RATE/CLIENTS
#     requests per second for ROUND seconds (--rps), one stream at a time: RATE exchanges per
#     second in CLIENTS connections that open and close every ROUND seconds, for DURATION
#     seconds. Longer rounds spend less of the machine on handshakes and h2load start-up,
#     which is what limits the rate a 2-core machine reaches.
# With LATENCY=1 the view records, for every part it prints while the capture runs, the time
# from the part's first byte (the kernel timestamp of the record that carried the first byte
# of the request or response head) to the tick that printed it, on the same clock
# (CLOCK_BOOTTIME); the script prints percentiles. With LATENCY=0 (the memory run) nothing is
# recorded and the recorder's VmRSS and RssAnon are sampled every SAMPLE seconds.
#
#   RATE=1000 DURATION=60 LATENCY=1 scripts/bench-live.sh
#   RATE=1000 DURATION=3600 LATENCY=0 scripts/bench-live.sh
#
# Knobs (environment): RATE (default 1000), CLIENTS (default 10), ROUND (default 1),
# DURATION (default 60),
# LATENCY (default 1), SAMPLE (default 30), PORT (default 18645), OUT (default: a new
# directory under /tmp, kept), SPLIFF (default: build and use target/release/spliff).
# Needs root, nghttpd and h2load (nghttp2), openssl. Not a test: numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${RATE:-1000}"
clients="${CLIENTS:-10}"
round="${ROUND:-1}"
duration="${DURATION:-60}"
latency="${LATENCY:-1}"
sample="${SAMPLE:-30}"
port="${PORT:-18645}"
out="${OUT:-$(mktemp -d /tmp/spliff-live.XXXXXX)}"
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

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	-subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
mkdir -p "$work/doc"
head -c 64 /dev/zero | tr '\0' x >"$work/doc/x"
nghttpd -a 127.0.0.1 -d "$work/doc" "$port" "$work/key.pem" "$work/cert.pem" >/dev/null 2>&1 &
server=$!
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done

# The load: h2load rounds of ROUND seconds, each CLIENTS connections at RATE/CLIENTS requests
# per second.
per_client=$((rate / clients))
cat >"$work/load.sh" <<EOF
#!/usr/bin/env bash
echo \$EPOCHREALTIME >"$out/load.start"
end=\$((SECONDS + $duration))
while ((SECONDS < end)); do
	h2load -c $clients -n $((per_client * clients * round)) -m 1 --rps $per_client \
		https://127.0.0.1:$port/x >>"$out/h2load.log" 2>&1 || true
done
echo \$EPOCHREALTIME >"$out/load.end"
EOF
chmod +x "$work/load.sh"

env_latency=()
if [[ "$latency" == 1 ]]; then
	env_latency=(env "SPLIFF_LIVE_LATENCY_LOG=$out/latency.ns")
fi
"${env_latency[@]}" "$spliff" record --no-packets -- "$work/load.sh" \
	>/dev/null 2>"$out/recorder.log" &
recorder=$!
# The first sample once the recorder is attached (its "recording" line).
until grep -q "^spliff: recording" "$out/recorder.log" 2>/dev/null || ! kill -0 "$recorder" 2>/dev/null; do
	sleep 0.1
done
echo "time_s,vmrss_kb,rssanon_kb" >"$out/rss.csv"
start=$SECONDS
while kill -0 "$recorder" 2>/dev/null; do
	if [[ -r /proc/$recorder/status ]]; then
		rss=$(awk '/^VmRSS/ {print $2}' "/proc/$recorder/status" 2>/dev/null || true)
		anon=$(awk '/^RssAnon/ {print $2}' "/proc/$recorder/status" 2>/dev/null || true)
		[[ -n "$rss" ]] && echo "$((SECONDS - start)),$rss,$anon" >>"$out/rss.csv"
	fi
	sleep "$sample"
done
wait "$recorder" || true
recorder=""

requests=$(awk '/^requests:/ {s += $4} END {print s + 0}' "$out/h2load.log")
# Rounds can run past DURATION: the rate is over the load's own wall time.
elapsed=$(awk '{ print $1 }' "$out/load.end" "$out/load.start" | paste -sd' ' | awk '{ printf "%.2f", $1 - $2 }')
echo "load: $requests requests succeeded in ${elapsed}s ($(awk -v r="$requests" -v e="$elapsed" 'BEGIN { printf "%d", r / e }') per second, asked $rate)"
grep -E "^spliff: recorded" "$out/recorder.log" || true
echo "rss (time_s,vmrss_kb,rssanon_kb): first $(sed -n 2p "$out/rss.csv"), last $(tail -1 "$out/rss.csv")"
if [[ "$latency" == 1 && -s "$out/latency.ns" ]]; then
	sort -n "$out/latency.ns" | awk '
		{ v[NR] = $1 }
		END {
			n = NR
			printf "parts printed live: %d; latency ms: p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f\n",
				n, v[int(n*0.5)+1]/1e6, v[int(n*0.9)+1]/1e6, v[int(n*0.99)+1]/1e6,
				v[int(n*0.999)+1]/1e6, v[n]/1e6
		}'
fi
echo "files in $out"
