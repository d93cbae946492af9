#!/usr/bin/env bash
# Cost of socket identity in `spliff record`: the sock_ops program runs at every TCP connect,
# establishment and state change of the host, and the warm-up dumps the kernel's socket
# table at start. Measures, several rounds alternating the modes:
#   - a loopback connect/accept/1-byte/close loop (C, one process): connections per second
#     with no recorder, with `spliff record --no-sockets`, with `spliff record`;
#   - time from start until `spliff record` records (--no-sockets: its "recording" line) or
#     has also warmed up (its "sockets from ..." line), with N idle established connections
#     open (the warm-up's cost).
# Results go to stdout; docs/BENCHMARKS.md has a run.
#
#   scripts/bench-sockets.sh [connections per loop run, default 20000] [idle connections, default 5000]
#
# Needs root, cc, python3. Not a test: numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
conns="${1:-20000}"
idle="${2:-5000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p spliff-recorder --bin spliff
spliff="$CARGO_TARGET_DIR/release/spliff"

work="$(mktemp -d)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/loop.c" <<'C'
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
	int n = atoi(argv[1]);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (void *)&a, sizeof(a)) || listen(ls, 128) || getsockname(ls, (void *)&a, &len))
		return perror("listen"), 1;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		struct linger l = { 1, 0 }; /* RST on close: no TIME_WAIT pile-up, no port exhaustion */
		setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		if (connect(c, (void *)&a, sizeof(a)))
			return perror("connect"), 1;
		int s = accept(ls, NULL, NULL);
		char b = 'x';
		if (write(c, &b, 1) != 1 || read(s, &b, 1) != 1)
			return perror("io"), 1;
		close(c);
		close(s);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%.0f\n", n / secs);
	return 0;
}
C
cc -O2 -o "$work/loop" "$work/loop.c"

# Starts spliff record with $@ and waits until it records and, with sockets, has warmed up;
# its pid in $rec.
start_record() {
	local ready='^spliff: sockets from'
	[[ " $* " == *" --no-sockets "* ]] && ready='^spliff: recording'
	"$spliff" record --no-packets -o "$work/t.pcapng" "$@" 2>"$work/rec.log" &
	rec=$!
	until grep -q "$ready" "$work/rec.log" 2>/dev/null; do sleep 0.05; done
}
stop_record() {
	kill -INT "$rec"
	wait "$rec" || true
}

echo "== connect/accept/close loop, $conns connections per run (connections/s)"
printf '%-26s %s\n' mode "runs"
declare -A results
for round in 1 2 3; do
	results[none]+="$("$work/loop" "$conns") "
	start_record --no-sockets
	results[no_sockets]+="$("$work/loop" "$conns") "
	stop_record
	start_record
	results[sockets]+="$("$work/loop" "$conns") "
	stop_record
	events="$(grep -o '[0-9]* kernel events dropped' "$work/rec.log" || true)"
done
printf '%-26s %s\n' "no recorder" "${results[none]}"
printf '%-26s %s\n' "record --no-sockets" "${results[no_sockets]}"
printf '%-26s %s\n' "record (sock_ops)" "${results[sockets]}"
echo "last sock_ops run: $events"

# The program's own cost, from the kernel's BPF run-time statistics (a global switch: on
# only for this one run, then restored).
if command -v bpftool >/dev/null; then
	prev="$(sysctl -n kernel.bpf_stats_enabled)"
	start_record
	sysctl -qw kernel.bpf_stats_enabled=1
	"$work/loop" "$conns" >/dev/null
	stats="$(bpftool prog show name spliff_sock_ops | grep -o 'run_time_ns [0-9]* run_cnt [0-9]*' || true)"
	sysctl -qw kernel.bpf_stats_enabled="$prev"
	stop_record
	read -r _ ns _ cnt <<<"$stats"
	if [ -n "${cnt:-}" ] && [ "$cnt" -gt 0 ]; then
		echo "sock_ops: $cnt runs for $conns connections, $((ns / cnt)) ns per run," \
			"$((ns / conns)) ns per connection (both ends)"
	fi
fi

echo "== start-up with $idle idle established connections (seconds until recording and warmed up)"
cat >"$work/idle.py" <<PY
import socket, time, sys
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(4096)
keep = []
for _ in range($idle):
    c = socket.create_connection(ls.getsockname()); s, _ = ls.accept(); keep += [c, s]
print("ready", flush=True)
time.sleep(3600)
PY
ulimit -n 65536 2>/dev/null || true
python3 "$work/idle.py" >"$work/idle.out" &
pids+=($!)
until grep -q ready "$work/idle.out" 2>/dev/null; do sleep 0.1; done
for round in 1 2 3; do
	for mode in --no-sockets ""; do
		t0=$(date +%s.%N)
		# shellcheck disable=SC2086
		start_record $mode
		t1=$(date +%s.%N)
		stop_record
		printf '%-16s %.2f s  %s\n' "${mode:-sockets}" "$(echo "$t1 - $t0" | bc)" \
			"$(grep -o 'table: .*' "$work/rec.log" || true)"
	done
done
