#!/usr/bin/env bash
# Overhead of `spliff record` on one TLS library's server under load, against
# that library's own floor: the same places hooked with no-op probes
# (recorder/examples/noop_probes.rs). Three modes, measured in rounds; within
# a round each mode runs once per load tool, in an order that alternates from
# round to round, so a slow minute of a shared machine hits every mode alike.
# Prints one line per run and, per load tool, the median and range of the
# per-round ratios (floor / no probes, record / floor). docs/BENCHMARKS.md
# has runs. TLS only (--no-packets), scoped to the server (--pid).
#
#   scripts/bench-tls-floor.sh go|gnutls|wolfssl [seconds per run, default 6] [rounds, default 4]
#
#   go       a Go net/http server (crypto/tls, HTTP/1.1 and h2), built here
#   gnutls   gnutls-serv --http (GnuTLS 3.7; HTTP/1.1, one connection at a time)
#   wolfssl  a wolfSSL HTTP/1.1 server built here from libwolfssl-dev
#
# Load: h2load (nghttp2-client), --h1 and, for Go, h2. Needs root, openssl,
# go (golang-go) for go, gnutls-bin for gnutls, libwolfssl-dev and cc for
# wolfssl. Not a test: numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
lib="${1:?usage: $0 go|gnutls|wolfssl [seconds] [rounds]}"
secs="${2:-6}"
rounds="${3:-4}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p spliff-recorder --bin spliff --example noop_probes
spliff="$CARGO_TARGET_DIR/release/spliff"
noop="$CARGO_TARGET_DIR/release/examples/noop_probes"
scripts="$(pwd)/scripts"

work="$(mktemp -d)"
server_pid=""
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
port=18651
url="https://127.0.0.1:$port/1k.bin"
# h2load stops after a duration, except against a server that closes every connection
# (it then waits for ever): gnutls-serv gets a number of requests instead.
limit=(-D "$secs")

case "$lib" in
go)
	cp "$scripts/bench/go_server.go" "$work/server.go"
	(cd "$work" && GOFLAGS= go build -o server server.go)
	"$work/server" "127.0.0.1:$port" "$work/cert.pem" "$work/key.pem" &
	server_pid=$!
	target="$work/server"
	tools="h1 h2"
	;;
gnutls)
	head -c 1024 /dev/urandom >"$work/1k.bin"
	gnutls-serv --http --httpdata "$work/1k.bin" --port "$port" --x509certfile "$work/cert.pem" \
		--x509keyfile "$work/key.pem" --quiet >/dev/null 2>&1 &
	server_pid=$!
	target="$(ldconfig -p | awk '/libgnutls\.so\.30 /{print $NF; exit}')"
	url="https://127.0.0.1:$port/"
	tools="h1"
	limit=(-n $((secs * 300)))
	;;
wolfssl)
	cc -O2 -o "$work/server" "$scripts/bench/wolfssl_server.c" -lwolfssl
	"$work/server" "$port" "$work/cert.pem" "$work/key.pem" &
	server_pid=$!
	target="$(ldconfig -p | awk '/libwolfssl\.so\.35 /{print $NF; exit}')"
	tools="h1"
	;;
*)
	echo "unknown library $lib: go, gnutls or wolfssl" >&2
	exit 2
	;;
esac
for _ in $(seq 50); do
	curl -sk -o /dev/null "$url" && break
	sleep 0.1
done

load() { # <tool>: req/s
	local args=("${limit[@]}" -t 1)
	if [ "$1" = h1 ]; then args+=(--h1 -c 16); else args+=(-c 16 -m 8); fi
	h2load "${args[@]}" "$url" 2>/dev/null | awk '/^finished in/{gsub(",","",$4); print $4}'
}
start_bg() { # <err file> <cmd...>: start, wait until attached
	# Not on our stdout: runs are read through $(...), which waits for every writer.
	"${@:2}" >/dev/null 2>"$1" &
	bg=$!
	for _ in $(seq 1200); do
		grep -q -e "spliff: recording" -e "no-op probes" "$1" 2>/dev/null && return
		sleep 0.1
	done
	echo "not ready after 120 s: $(cat "$1")" >&2
	kill -TERM "$bg"
	exit 1
}
stop_bg() {
	kill -TERM "$bg"
	wait "$bg" || true
}
run_mode() { # <mode> <tool>: req/s under that mode
	case "$1" in
	none) load "$2" ;;
	floor)
		start_bg "$work/noop.err" "$noop" "$lib" "$target"
		load "$2"
		stop_bg
		;;
	record)
		rm -f "$work/t.pcapng"
		start_bg "$work/record.err" "$spliff" record --no-packets -o "$work/t.pcapng" --pid "$server_pid"
		load "$2"
		stop_bg
		grep -o 'recorded.*connections' "$work/record.err" >&2 || true
		;;
	esac
}

echo "# $lib, $secs s per run, $rounds rounds, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A result
for round in $(seq "$rounds"); do
	if [ $((round % 2)) = 1 ]; then order="none floor record"; else order="record floor none"; fi
	for tool in $tools; do
		for mode in $order; do
			rps=$(run_mode "$mode" "$tool")
			result[$round.$tool.$mode]=$rps
			echo "round $round $tool $mode $rps req/s (load $(cut -d' ' -f1 /proc/loadavg))"
		done
	done
done
for tool in $tools; do
	floor_ratios=""
	record_ratios=""
	for round in $(seq "$rounds"); do
		none=${result[$round.$tool.none]}
		floor=${result[$round.$tool.floor]}
		record=${result[$round.$tool.record]}
		floor_ratios+="$(echo "scale=3; $floor / $none" | bc) "
		record_ratios+="$(echo "scale=3; $record / $floor" | bc) "
	done
	summary() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "median %.2f, range %.2f-%.2f", m, v[1], v[NR]}'; }
	echo "$lib $tool: floor/none $(echo "$floor_ratios" | summary) [$floor_ratios]"
	echo "$lib $tool: record/floor $(echo "$record_ratios" | summary) [$record_ratios]"
done
