#!/usr/bin/env bash
# Packet-path overhead of `spliff record`: iperf3 (TCP) between two network
# namespaces joined by a veth pair, with and without the recorder's network
# hooks on the client's veth (XDP ingress + TC egress, headers only), in both
# directions (-R: the data comes in through XDP). Rounds alternate the modes
# so that load from elsewhere on the machine hits both alike; the medians and
# their ratio go to stdout; docs/BENCHMARKS.md has a run.
#
#   scripts/bench-packets.sh [seconds per run, default 5] [rounds, default 3]
#   MODES="auto xdp xdp-generic" scripts/bench-packets.sh   # compare ingress hooks
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
	summary="$(sed -n 's/^spliff: capturing packets on veth0: //p' "$work/rec.err"); $(sed -n 's/.*; \([0-9]*\) packets on .* \([0-9]*\) dropped.*/\1 packets, \2 dropped/p' "$work/rec.err"); recorder CPU $(python3 -c "print('%.2f' % ($ticks / $hz))") s"
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

read -r -a modes <<<"${MODES:-auto}"
echo "iperf3 TCP over veth, ${secs}s per run, median of $rounds rounds; ratio = with hooks / without"
for dir in forward reverse; do
	opt=()
	[[ $dir == reverse ]] && opt=(-R)
	: >"$work/base.$dir"
	for mode in "${modes[@]}"; do : >"$work/$mode.$dir"; : >"$work/$mode.$dir.ratio"; done
	for round in $(seq "$rounds"); do
		gbits "${opt[@]}" >>"$work/base.$dir"
		echo "  $dir round $round: no hooks $(tail -1 "$work/base.$dir") Gbit/s" >&2
		for mode in "${modes[@]}"; do
			start_recorder "$mode"
			gbits "${opt[@]}" >>"$work/$mode.$dir"
			stop_recorder
			python3 -c "print('%.3f' % ($(tail -1 "$work/$mode.$dir") / $(tail -1 "$work/base.$dir")))" >>"$work/$mode.$dir.ratio"
			echo "  $dir round $round: --ingress-hook $mode $(tail -1 "$work/$mode.$dir") Gbit/s ($summary)" >&2
		done
	done
	base="$(median <"$work/base.$dir")"
	echo "$dir ($([[ $dir == forward ]] && echo "data sent by the client: TC egress" || echo "data received by the client: ingress hook")): no hooks $base Gbit/s"
	for mode in "${modes[@]}"; do
		m="$(median <"$work/$mode.$dir")"
		echo "  --ingress-hook $mode: $m Gbit/s, ratio of medians $(python3 -c "print('%.3f' % ($m / $base))"), median of per-round ratios $(median <"$work/$mode.$dir.ratio")"
	done
done
