#!/usr/bin/env bash
# Benchmark of `spliff record` against nginx (TLS, 1 KiB file) under wrk
# (HTTP/1.1) and h2load (HTTP/2), four ways: no probes, no-op uprobes on the
# same functions (the trap-cost floor), `spliff record` of all processes, and
# scoped recordings. Results go to stdout; docs/BENCHMARKS.md has a run.
# TLS only (--no-packets): the packet path has its own benchmark
# (scripts/bench-packets.sh), and this one must not hook the host's NICs.
#
#   scripts/bench-record.sh [seconds per run, default 8]
#
# Needs root, nginx (nginx-light), wrk, h2load (nghttp2-client), openssl.
# Not a test: numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-8}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p spliff-recorder --bin spliff --example noop_probes
spliff="$CARGO_TARGET_DIR/release/spliff"
noop="$CARGO_TARGET_DIR/release/examples/noop_probes"
libssl="$(ldconfig -p | awk '/libssl\.so\.3 /{print $NF; exit}')"

work="$(mktemp -d)"
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/www" "$work/tmp"
head -c 1024 /dev/urandom >"$work/www/1k.bin"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/tmp/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp;
  fastcgi_temp_path $work/tmp; uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server {
    listen 127.0.0.1:18643 ssl http2;
    ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
    keepalive_requests 10000000;
    root $work/www;
  }
}
CONF
nginx -c "$work/nginx.conf"
sleep 0.5
url=https://127.0.0.1:18643/1k.bin

wrk_rps() { wrk -t1 -c32 -d"${secs}s" "$url" | awk '/Requests\/sec/{print $2}'; }
h2_rps() { h2load -D "$secs" -c 16 -m 8 -t 1 "$@" "$url" | awk '/^finished in/{gsub(",","",$4); print $4}'; }
h2_rate() { # <req/s>: fixed offered load over 10 clients
	h2load -D "$secs" -c 10 -m 1 -t 1 --rps=$(($1 / 10)) "$url" | awk '/^finished in/{gsub(",","",$4); print $4}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start_bg() { # <name> <cmd...>: start, wait until attached
	"${@:2}" 2>"$work/$1.err" &
	bg=$!
	for _ in $(seq 100); do grep -q -e recording -e "no-op probes" "$work/$1.err" 2>/dev/null && break; sleep 0.1; done
}
stop_bg() { # sets cpu (seconds of CPU the process used)
	local ticks
	ticks=$(cpu_ticks "$bg")
	# SIGTERM: background jobs of a script ignore SIGINT; spliff handles both.
	kill -TERM "$bg"
	wait "$bg" || true
	cpu=$(echo "scale=2; $ticks / $(getconf CLK_TCK)" | bc)
}

printf '%-28s %10s %10s %8s %10s %12s %s\n' mode tool req/s ratio cpu_s trace_B/req summary
base_wrk=$(wrk_rps)
base_h2=$(h2_rps)
printf '%-28s %10s %10s %8s\n' "no probes" wrk "$base_wrk" 1.00
printf '%-28s %10s %10s %8s\n' "no probes" h2load "$base_h2" 1.00

report() { # <mode> <tool> <rps> <base> <cpu> <trace> <requests> <errfile>
	local ratio perreq=""
	ratio=$(echo "scale=2; $3 / $4" | bc)
	if [ -n "$6" ] && [ -f "$6" ]; then perreq=$(echo "scale=1; $(stat -c %s "$6") / $7" | bc); fi
	printf '%-28s %10s %10s %8s %10s %12s %s\n' "$1" "$2" "$3" "$ratio" "$5" "$perreq" \
		"$(grep -o 'recorded.*' "$8" 2>/dev/null | cut -c1-160)"
}

for tool in wrk h2load; do
	base=$base_wrk; [ $tool = h2load ] && base=$base_h2
	run() { if [ $tool = wrk ]; then wrk_rps; else h2_rps; fi; }

	start_bg noop "$noop" openssl "$libssl"
	rps=$(run); stop_bg
	report "no-op uprobes (floor)" $tool "$rps" "$base" "$cpu" "" 1 /dev/null

	start_bg all "$spliff" record --no-packets -o "$work/all.pcapng"
	rps=$(run); stop_bg
	report "record all" $tool "$rps" "$base" "$cpu" "$work/all.pcapng" "$(echo "$rps * $secs" | bc)" "$work/all.err"

	start_bg comm "$spliff" record --no-packets -o "$work/comm.pcapng" --comm "$tool"
	rps=$(run); stop_bg
	report "record --comm $tool" $tool "$rps" "$base" "$cpu" "$work/comm.pcapng" "$(echo "$rps * $secs" | bc)" "$work/comm.err"

	# --comm of a process not in the benchmark: nginx and the load generator
	# are both unselected (with per-process attachment they carry no probes).
	start_bg commother "$spliff" record --no-packets -o "$work/commother.pcapng" --comm spliff-bench-idle
	rps=$(run); stop_bg
	report "record --comm <other>" $tool "$rps" "$base" "$cpu" "" 1 "$work/commother.err"

	# Scoped at attach time: only one (idle) process carries the probes.
	sleep 1000 &
	idle=$!
	start_bg pid "$spliff" record --no-packets -o "$work/pid.pcapng" --pid "$idle"
	rps=$(run); stop_bg
	kill "$idle"
	report "record --pid <other>" $tool "$rps" "$base" "$cpu" "" 1 "$work/pid.err"
done

echo "== fixed offered load (h2load --rps over 10 clients), record all"
for rate in 5000 10000 20000; do
	start_bg rate "$spliff" record --no-packets -o "$work/rate.pcapng"
	rps=$(h2_rate $rate); stop_bg
	loss=$(grep -o '[0-9]* loss records' "$work/rate.err" || true)
	drops=$(grep -o '[0-9]* kernel events dropped' "$work/rate.err" || true)
	printf 'offered %6s req/s: achieved %10s req/s, recorder cpu %ss, %s, %s\n' "$rate" "$rps" "$cpu" "$loss" "$drops"
done
