#!/usr/bin/env bash
# Packet hooks' cost with everything else held equal: ONE recorder runs the
# whole time with its packet hooks on one of two veth pairs between the same
# two network namespaces, and iperf3 runs alternate between the hooked pair
# and the other one, back to back (order AB, BA, AB, ...). The ratio hooked /
# unhooked of each such pair of runs is the throughput the network side costs
# (hooks, packet ring, the recorder's packet work and file writes): the TLS
# probes, sock_ops and tracepoints are attached in both halves alike, and
# nothing is started or stopped between the two runs of a pair.
#
# scripts/bench-packets.sh restarts the recorder for every run and compares
# against no recorder at all; its medians move by 3-6 % between runs of the
# same code on this VM, as much as the effect. Pairing cancels the drift of
# the machine (other VMs, frequency) that makes most of that noise, and the
# halves swap which pair is hooked, so a difference between the pairs
# cancels too.
#
# Prints per direction the median of the per-pair ratios with a bootstrap
# 95 % interval (of the median), and the ratio of the two medians.
#
#   scripts/bench-packets-paired.sh [seconds per run, default 3] [pairs per half, default 10]
#   PIN=one ...   # iperf3 client, server and the recorder all on CPU 0 (the
#                 # recorder's work then comes out of the workload's CPU)
#   DIRS=reverse ...          # one direction only (default: forward reverse)
#   SPLIFF=/path/to/spliff ...  # another build (experiments), no cargo build
#
# Needs root, iperf3 (apt-get install iperf3), iproute2, python3. Not a test:
# numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-3}"
pairs="${2:-10}"
if [[ -z ${SPLIFF:-} ]]; then
	export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
	cargo build -q --release -p spliff-recorder --bin spliff
fi
spliff="${SPLIFF:-$(realpath "$CARGO_TARGET_DIR/release/spliff")}"

# shellcheck source=scripts/bench-netns.sh
. scripts/bench-netns.sh
work="$(mktemp -d)"
rec=""
cleanup() {
	if [[ -n $rec ]]; then kill -INT "$rec" 2>/dev/null && wait "$rec" 2>/dev/null; fi
	bench_netns_down
	rm -rf "$work"
}
trap cleanup EXIT
bench_netns_up spl-pair 2

pin=()
rec_pin=()
[[ ${PIN:-0} == one ]] && pin=(-A 0,0) && rec_pin=(taskset -c 0)

gbits() { # <veth index> [iperf3 options]: received throughput, Gbit/s
	local to
	to="$(bench_netns_address "$1" 2)"
	shift
	ip netns exec "$a" iperf3 -c "$to" -t "$secs" -J "${pin[@]}" "$@" |
		python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'
}
start_recorder() { # <veth index to hook>
	ip netns exec "$a" "${rec_pin[@]}" "$spliff" record -i "veth$1" -o "$work/t.pcapng" 2>"$work/rec.err" &
	rec=$!
	for _ in $(seq 100); do grep -q "spliff: recording" "$work/rec.err" && break; sleep 0.1; done
	sleep 0.5
}
stop_recorder() {
	kill -INT "$rec"
	wait "$rec"
	rec=""
	sed -n 's/.*; \([0-9]*\) packets on .* \([0-9]*\) dropped.*/  recorder: \1 packets, \2 dropped/p' "$work/rec.err" >&2
}

echo "iperf3 TCP over two veth pairs, one recorder hooking one of them; ${secs}s per run, $pairs pairs of runs per half${pin[*]:+, all on CPU 0}"
for dir in ${DIRS:-forward reverse}; do
	opt=()
	[[ $dir == reverse ]] && opt=(-R)
	: >"$work/ratios"
	: >"$work/hooked"
	: >"$work/plain"
	for hooked in 0 1; do
		plain=$((1 - hooked))
		start_recorder "$hooked"
		for pair in $(seq "$pairs"); do
			if ((pair % 2)); then
				h="$(gbits "$hooked" "${opt[@]}")"
				p="$(gbits "$plain" "${opt[@]}")"
			else
				p="$(gbits "$plain" "${opt[@]}")"
				h="$(gbits "$hooked" "${opt[@]}")"
			fi
			echo "$h" >>"$work/hooked"
			echo "$p" >>"$work/plain"
			python3 -c "print('%.4f' % ($h / $p))" >>"$work/ratios"
			echo "  $dir, veth$hooked hooked, pair $pair: hooked $h, not hooked $p Gbit/s" >&2
		done
		stop_recorder
	done
	python3 - "$dir" "$work/ratios" "$work/hooked" "$work/plain" <<'EOF'
import random, statistics, sys
direction, ratios, hooked, plain = sys.argv[1], *(
    [float(x) for x in open(p).read().split()] for p in sys.argv[2:])
rng = random.Random(1)
boot = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(10000))
what = "data sent by the client: TC egress" if direction == "forward" else "data received by the client: ingress hook"
print(f"{direction} ({what}), {len(ratios)} pairs: hooked {statistics.median(hooked):.2f}, "
      f"not hooked {statistics.median(plain):.2f} Gbit/s (medians); "
      f"median of per-pair ratios {statistics.median(ratios):.3f} "
      f"(95 % interval {boot[249]:.3f}-{boot[9749]:.3f}), "
      f"ratio of medians {statistics.median(hooked) / statistics.median(plain):.3f}")
EOF
done
