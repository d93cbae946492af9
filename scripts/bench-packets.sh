#!/usr/bin/env bash
# Packet-path overhead of `spliff record`: iperf3 (TCP) between two network
# namespaces joined by a veth pair, with and without the recorder's network
# hooks on the client's veth (XDP ingress + TC egress, headers only), in both
# directions (-R: the data comes in through XDP). Rounds alternate the modes
# so that load from elsewhere on the machine hits both alike; the medians and
# their ratio go to stdout; docs/BENCHMARKS.md has a run.
#
#   scripts/bench-packets.sh [seconds per run, default 5] [rounds, default 3]
#
# Needs root, iperf3 (apt-get install iperf3), iproute2. Not a test: numbers
# depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
rounds="${2:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p spliff-recorder --bin spliff
spliff="$(realpath "$CARGO_TARGET_DIR/release/spliff")"

a="spl-bench-a-$$"
b="spl-bench-b-$$"
work="$(mktemp -d)"
cleanup() {
	for ns in "$a" "$b"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$a"
ip netns add "$b"
ip link add veth0 netns "$a" type veth peer name veth0 netns "$b"
ip -n "$a" addr add 10.99.0.1/24 dev veth0
ip -n "$b" addr add 10.99.0.2/24 dev veth0
for ns in "$a" "$b"; do ip -n "$ns" link set veth0 up; ip -n "$ns" link set lo up; done
ip netns exec "$b" iperf3 -s -B 10.99.0.2 -D
sleep 0.5

gbits() { # [iperf3 options]: received throughput in Gbit/s
	ip netns exec "$a" iperf3 -c 10.99.0.2 -t "$secs" -J "$@" |
		python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'
}
start_recorder() { # <--ingress-hook value>
	ip netns exec "$a" "$spliff" record -i veth0 --ingress-hook "$1" -o "$work/t.pcapng" 2>"$work/rec.err" &
	rec=$!
	for _ in $(seq 100); do grep -q "spliff: recording" "$work/rec.err" && break; sleep 0.1; done
}
stop_recorder() { # sets summary: hooks, packets, recorder CPU
	local ticks hz
	ticks="$(awk '{print $14 + $15}' "/proc/$rec/stat")"
	hz="$(getconf CLK_TCK)"
	kill -INT "$rec"
	wait "$rec"
	summary="$(grep -o 'capturing packets on veth0: .*' "$work/rec.err" | sed 's/capturing packets on veth0: //'); $(grep -o '[0-9]* packets on' "$work/rec.err" | sed 's/ on//'), $(grep -o '[0-9]* dropped' "$work/rec.err"); recorder CPU $(python3 -c "print('%.2f' % ($ticks / $hz))") s"
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

modes=(auto xdp xdp-generic)
echo "iperf3 TCP over veth, ${secs}s per run, median of $rounds rounds; ratio = with hooks / without"
for dir in forward reverse; do
	opt=()
	[[ $dir == reverse ]] && opt=(-R)
	: >"$work/base.$dir"
	for mode in "${modes[@]}"; do : >"$work/$mode.$dir"; done
	for round in $(seq "$rounds"); do
		gbits "${opt[@]}" >>"$work/base.$dir"
		echo "  $dir round $round: no hooks $(tail -1 "$work/base.$dir") Gbit/s" >&2
		for mode in "${modes[@]}"; do
			start_recorder "$mode"
			gbits "${opt[@]}" >>"$work/$mode.$dir"
			stop_recorder
			echo "  $dir round $round: --ingress-hook $mode $(tail -1 "$work/$mode.$dir") Gbit/s ($summary)" >&2
		done
	done
	base="$(median <"$work/base.$dir")"
	echo "$dir ($([[ $dir == forward ]] && echo "data sent by the client: TC egress" || echo "data received by the client: ingress hook")): no hooks $base Gbit/s"
	for mode in "${modes[@]}"; do
		m="$(median <"$work/$mode.$dir")"
		echo "  --ingress-hook $mode: $m Gbit/s, ratio $(python3 -c "print('%.3f' % ($m / $base))")"
	done
done
