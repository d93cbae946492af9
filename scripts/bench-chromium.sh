#!/usr/bin/env bash
# Chromium (BoringSSL compiled in, stripped) overhead against its own
# no-op-probe floor. A headless chromium loads, over HTTP/2 from nghttpd on
# loopback, a page whose script fetches SMALL files of 1 KiB and LARGE files
# of 1 MiB one after the other (synchronous requests: the page's load event,
# when --dump-dom prints, waits for them all) and writes the time they took
# (performance.now()) into the page. Three ways, interleaved round by round in
# an order that alternates: no probes; the no-op floor (noop_probes boringssl
# on the chromium executable: the recorder's search, its places, programs
# that do nothing); and `spliff record --lib openssl --no-packets -- chromium`
# (BoringSSL is looked for with OpenSSL), which holds the browser's first
# exec until the executable is searched and hooked.
# Prints per run the fetches per second inside the page and the whole
# process's wall time, then per measure the median and range of the
# per-round ratios (floor / none, record / floor). docs/BENCHMARKS.md has runs.
#
#   scripts/bench-chromium.sh [rounds, default 6] [small, default 200] [large, default 4]
#
# With `startup`, the start instead: chromium loading a page with nothing to
# fetch, three ways interleaved round by round: no recorder; `spliff record`
# with the cache of the BoringSSL search emptied first (the first capture
# after chromium is installed or updated: the search runs while the browser's
# first exec is held); and `spliff record` with the cache warm (the entry
# is only verified). Per run: the time from the command's launch to the
# page's request (the navigation's requestStart, written into the page as
# wall-clock time), and for the recorder the holds of processes at exec
# (SPLIFF_STARTUP_TIMES=1) and whether the cache was hit.
#
#   scripts/bench-chromium.sh startup [rounds, default 6]
#
# Needs root, chromium, nghttpd (nghttp2-server), openssl. Not a test: numbers
# depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
startup=""
if [ "${1:-}" = startup ]; then
	startup=1
	shift
fi
rounds="${1:-6}"
small="${2:-200}"
large="${3:-4}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p spliff-recorder --bin spliff --example noop_probes
spliff="$CARGO_TARGET_DIR/release/spliff"
noop="$CARGO_TARGET_DIR/release/examples/noop_probes"
# Debian's `chromium` is a script exec'ing this file, which carries BoringSSL.
browser_file=/usr/lib/chromium/chromium

work="$(mktemp -d)"
server=""
bg=""
trap 'kill $server $bg 2>/dev/null; rm -rf "$work"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
mkdir "$work/doc"
# Text, so that responseText is the body byte for byte.
head -c 786432 /dev/urandom | base64 -w0 >"$work/doc/1m.bin"
head -c 1024 "$work/doc/1m.bin" >"$work/doc/1k.bin"
cat >"$work/doc/index.html" <<HTML
<!doctype html><html><body><pre id="out"></pre><script>
function get(path) {
  const x = new XMLHttpRequest();
  x.open("GET", path, false);
  x.send();
  if (x.status !== 200) throw new Error(path + ": " + x.status);
  return x.responseText.length;
}
const t0 = performance.now();
let bytes = 0;
for (let i = 0; i < $small; i++) bytes += get("/1k.bin?" + i);
for (let i = 0; i < $large; i++) bytes += get("/1m.bin?" + i);
const ms = performance.now() - t0;
document.getElementById("out").textContent = "bench " + bytes + " bytes " + ms.toFixed(1) + " ms";
</script></body></html>
HTML
cat >"$work/doc/start.html" <<'HTML'
<!doctype html><html><body><pre id="out"></pre><script>
const n = performance.getEntriesByType("navigation")[0];
document.getElementById("out").textContent =
  "request at " + (performance.timeOrigin + n.requestStart).toFixed(1) + " ms";
</script></body></html>
HTML
expected_bytes=$((small * 1024 + large * 1048576))
port=18671
nghttpd -a 127.0.0.1 -d "$work/doc" "$port" "$work/key.pem" "$work/cert.pem" >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do
	curl -sk -o /dev/null "https://127.0.0.1:$port/1k.bin" && break
	sleep 0.1
done
url="https://127.0.0.1:$port/index.html"

browse=(chromium --headless=new --no-sandbox --ignore-certificate-errors --no-first-run
	--disable-background-networking --disable-component-update)

start_noop() { # wait until attached: the search of the executable takes a moment
	"$noop" boringssl "$browser_file" >/dev/null 2>"$work/noop.err" &
	bg=$!
	for _ in $(seq 1200); do
		grep -q "no-op probes" "$work/noop.err" 2>/dev/null && return
		kill -0 "$bg" 2>/dev/null || break
		sleep 0.1
	done
	echo "noop_probes not ready: $(cat "$work/noop.err")" >&2
	exit 1
}
stop_noop() {
	kill -TERM "$bg"
	wait "$bg" || true
	bg=""
}
run_mode() { # <mode>: "<fetches/s in the page> <process seconds>"
	local prefix=() profile="$work/profile" started ended ms
	rm -rf "$profile" "$work/t.pcapng"
	# The floor and the recorder read the whole executable (their search), which
	# leaves it in the page cache: every mode starts from that state.
	cat "$browser_file" >/dev/null
	case "$1" in
	floor) start_noop ;;
	record) prefix=("$spliff" record --lib openssl --no-packets -o "$work/t.pcapng" --) ;;
	esac
	started=$(date +%s%N)
	"${prefix[@]}" "${browse[@]}" --user-data-dir="$profile" --dump-dom "$url" \
		>"$work/dom" 2>"$work/browser.err" </dev/null || true
	ended=$(date +%s%N)
	[ "$1" = floor ] && stop_noop
	if [ "$1" = record ]; then
		grep -o 'recorded.*connections' "$work/browser.err" >&2 || true
	fi
	ms=$(grep -o "bench $expected_bytes bytes [0-9.]* ms" "$work/dom" | cut -d' ' -f4) || {
		echo "$1: the page did not finish: $(head -c 300 "$work/dom")" >&2
		exit 1
	}
	echo "$(echo "scale=1; ($small + $large) * 1000 / $ms" | bc) $(echo "scale=3; ($ended - $started) / 1000000000" | bc)"
}

cache_entry="/var/cache/spliff/boringssl-$(readelf -n "$browser_file" | awk '/Build ID/ {print $3}')"
start_mode() { # <mode>: "<ms from launch to the page's request> <holds> <cache hit?>"
	local prefix=() profile="$work/profile" started request holds hit looked
	rm -rf "$profile" "$work/t.pcapng"
	cat "$browser_file" >/dev/null
	case "$1" in
	cold) rm -f "$cache_entry" ;&
	warm) prefix=(env SPLIFF_STARTUP_TIMES=1 "$spliff" record --lib openssl --no-packets -o "$work/t.pcapng" --) ;;
	esac
	started=$(date +%s%N)
	"${prefix[@]}" "${browse[@]}" --user-data-dir="$profile" --dump-dom "https://127.0.0.1:$port/start.html" \
		>"$work/dom" 2>"$work/browser.err" </dev/null || true
	request=$(grep -o "request at [0-9.]* ms" "$work/dom" | cut -d' ' -f3) || {
		echo "$1: the page did not load: $(head -c 300 "$work/dom") $(tail -3 "$work/browser.err")" >&2
		exit 1
	}
	holds=$({ grep -o "held pid [0-9]* ([^)]*) at exec for [0-9.]* ms" "$work/browser.err" || true; } |
		sed 's/held pid [0-9]* (\(.*\)) at exec for \([0-9.]*\) ms/\1:\2/' | tr '\n' ',' | sed 's/,$//')
	if grep -q "stripped BoringSSL found in cache" "$work/browser.err"; then hit=hit; else hit=searched; fi
	[ "$1" = none ] && hit=-
	# The search, or the cache's check, of the browser's executable: the rest of its hold
	# is attaching its probes.
	looked=$({ grep -o "$browser_file: looked for stripped BoringSSL in [0-9.]* ms" "$work/browser.err" || true; } |
		awk '{print $(NF-1)}' | head -1)
	echo "$(echo "scale=0; ($request * 1000000 - $started) / 1000000" | bc) ${holds:--} $hit:${looked:--}"
}

if [ -n "$startup" ]; then
	echo "# chromium $(chromium --version 2>/dev/null | awk '{print $2}'), start to the page's request, $rounds rounds, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); cache entry $cache_entry"
	for round in $(seq "$rounds"); do
		if [ $((round % 2)) = 1 ]; then order="none cold warm"; else order="warm cold none"; fi
		for mode in $order; do
			read -r ms holds hit < <(start_mode "$mode")
			echo "round $round $mode: request $ms ms after launch; holds (comm:ms) $holds; how found:ms $hit (load $(cut -d' ' -f1 /proc/loadavg))"
		done
	done
	echo "# load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
	exit 0
fi

echo "# chromium $(chromium --version 2>/dev/null | awk '{print $2}'), $small x 1 KiB + $large x 1 MiB over h2, $rounds rounds, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A rate wall
for round in $(seq "$rounds"); do
	if [ $((round % 2)) = 1 ]; then order="none floor record"; else order="record floor none"; fi
	for mode in $order; do
		read -r r w < <(run_mode "$mode")
		rate[$round.$mode]=$r
		wall[$round.$mode]=$w
		echo "round $round $mode $r fetches/s in the page, $w s process (load $(cut -d' ' -f1 /proc/loadavg))"
	done
done
summary() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "median %.2f, range %.2f-%.2f", m, v[1], v[NR]}'; }
for measure in rate wall; do
	floor_ratios=""
	record_ratios=""
	medians=""
	declare -n m=$measure
	for round in $(seq "$rounds"); do
		floor_ratios+="$(echo "scale=3; ${m[$round.floor]} / ${m[$round.none]}" | bc) "
		record_ratios+="$(echo "scale=3; ${m[$round.record]} / ${m[$round.floor]}" | bc) "
	done
	for mode in none floor record; do
		values=""
		for round in $(seq "$rounds"); do values+="${m[$round.$mode]} "; done
		medians+="$mode $(echo "$values" | summary); "
	done
	echo "$measure: $medians"
	echo "$measure: floor/none $(echo "$floor_ratios" | summary) [$floor_ratios]"
	echo "$measure: record/floor $(echo "$record_ratios" | summary) [$record_ratios]"
done
echo "# load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
