#!/usr/bin/env bash
# Packet-path overhead of `spliff record`: iperf3 (TCP) between two network
# namespaces joined by a veth pair, in both directions (-R: the data comes in
# through the ingress hook), three ways in every round: no recorder, the
# recorder without its packet hooks (`--no-packets`: TLS probes, sock_ops,
# process tracepoints), and the recorder with its hooks on the client's veth
# (headers only). Rounds alternate the modes, in an order that rotates from
# round to round, so that load from elsewhere on the machine hits all alike; medians and ratios go to stdout;
# docs/BENCHMARKS.md has runs. scripts/bench-packets-paired.sh prices the hooks alone
# (one recorder, hooked and unhooked veth in paired runs) with less noise.
#
# Throughput alone moves by +-20 % from run to run on a shared VM, more than
# the effect measured. So every run with the recorder also accounts for the
# CPU it cost while iperf3 ran: the recorder process (schedstat, ns) and the
# BPF programs (kernel.bpf_stats_enabled, ns, which itself adds two clock
# reads per program run, so the figure errs high). iperf3 keeps both CPUs
# busy, so that cost as a share of the machine's CPU time is the throughput
# the recorder takes away, measured with little noise.
#
#   scripts/bench-packets.sh [seconds per run, default 5] [rounds, default 3]
#   MODES="auto xdp xdp-generic" scripts/bench-packets.sh   # compare ingress hooks
#   PIN=1 scripts/bench-packets.sh     # iperf3 client on CPU 0, server on CPU 1
#   PIN=one scripts/bench-packets.sh   # iperf3 client, server and the recorder all on CPU 0
#   COST=0 scripts/bench-packets.sh    # without BPF run-time accounting (see below)
#
# PIN=one is the measurement with the least noise: the workload saturates one
# CPU and everything the recorder costs (hooks in softirq, its own process,
# its file writes) comes out of that CPU, so the throughput ratio is the
# share of the CPU the capture takes, with no idle second CPU to absorb it.
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

# shellcheck source=scripts/bench-netns.sh
. scripts/bench-netns.sh
work="$(mktemp -d)"
cleanup() {
	bench_netns_down
	rm -rf "$work"
}
trap cleanup EXIT
bench_netns_up spl-bench 1

pin=()
rec_pin=()
[[ ${PIN:-0} == 1 ]] && pin=(-A 0,1)
cpus=2
[[ ${PIN:-0} == one ]] && pin=(-A 0,0) && rec_pin=(taskset -c 0) && cpus=1
rec=""
bpf_ns() { # run time of all spliff BPF programs so far, ns (0 with COST=0)
	[[ ${COST:-1} == 0 ]] && { echo 0; return; }
	bpftool -j prog show | python3 -c 'import json,sys
print(sum(p.get("run_time_ns", 0) for p in json.load(sys.stdin) if p.get("name", "").startswith("spliff")))'
}
rec_ns() { # CPU time of the recorder so far, ns (0 without one)
	if [[ -n $rec ]]; then awk '{print $1}' "/proc/$rec/schedstat"; else echo 0; fi
}
gbits() { # [iperf3 options]: received throughput in Gbit/s; sets cost (ms of CPU per s)
	local r0 b0 json
	r0="$(rec_ns)"
	b0="$(bpf_ns)"
	json="$(ip netns exec "$a" iperf3 -c 10.99.0.2 -t "$secs" -J "${pin[@]}" "$@")"
	read -r gb cost < <(python3 -c 'import json,sys
e = json.loads(sys.argv[1])["end"]
secs = e["sum_received"]["seconds"]
rec, bpf = (int(sys.argv[3]) - int(sys.argv[2])), (int(sys.argv[5]) - int(sys.argv[4]))
print("%.2f %.1f/%.1f" % (e["sum_received"]["bits_per_second"] / 1e9, rec / secs / 1e6, bpf / secs / 1e6))' \
		"$json" "$r0" "$(rec_ns)" "$b0" "$(bpf_ns)")
	echo "$gb"
}
start_recorder() { # <--ingress-hook value> | nopackets
	local net=(-i veth0 --ingress-hook "$1")
	[[ $1 == nopackets ]] && net=(--no-packets)
	ip netns exec "$a" "${rec_pin[@]}" "$spliff" record "${net[@]}" -o "$work/t.pcapng" 2>"$work/rec.err" &
	rec=$!
	for _ in $(seq 100); do grep -q "spliff: recording" "$work/rec.err" && break; sleep 0.1; done
	# Steady state only: the recorder's start (warm-up from the socket table,
	# the first scan of processes) is a one-off, not the packet path.
	sleep 0.5
}
stop_recorder() { # sets summary: hooks, packets, recorder CPU
	local ticks hz
	ticks="$(awk '{print $14 + $15}' "/proc/$rec/stat")"
	hz="$(getconf CLK_TCK)"
	kill -INT "$rec"
	wait "$rec"
	rec=""
	summary="$(sed -n 's/^spliff: capturing packets on veth0: //p' "$work/rec.err"); $(sed -n 's/.*; \([0-9]*\) packets on .* \([0-9]*\) dropped.*/\1 packets, \2 dropped/p' "$work/rec.err"); recorder CPU $(python3 -c "print('%.2f' % ($ticks / $hz))") s"
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

read -r -a modes <<<"${MODES:-auto}"
modes=(nopackets "${modes[@]}")
# bpf_stats adds two clock reads to every program run, which the throughput
# with the recorder pays too: COST=0 leaves it off (BPF cost then reads 0).
[[ ${COST:-1} == 0 ]] || sysctl -q -w kernel.bpf_stats_enabled=1
trap 'sysctl -q -w kernel.bpf_stats_enabled=0; cleanup' EXIT
echo "iperf3 TCP over veth, ${secs}s per run, median of $rounds rounds${pin[*]:+, pinned}; ratio = with the recorder / without"
echo "cost = CPU of the recorder process / of its BPF programs while iperf3 ran, ms per s (1000 = one CPU)"
for dir in forward reverse; do
	opt=()
	[[ $dir == reverse ]] && opt=(-R)
	: >"$work/base.$dir"
	for mode in "${modes[@]}"; do : >"$work/$mode.$dir"; : >"$work/$mode.$dir.ratio"; : >"$work/$mode.$dir.vsnp"; : >"$work/$mode.$dir.cost"; done
	for round in $(seq "$rounds"); do
		# The order rotates from round to round: runs late in a round were slower even
		# without any hook, and a fixed order put that on the recorder's account.
		order=(base "${modes[@]}")
		k=$(((round - 1) % ${#order[@]}))
		order=("${order[@]:k}" "${order[@]:0:k}")
		for mode in "${order[@]}"; do
			if [[ $mode == base ]]; then
				gbits "${opt[@]}" >>"$work/base.$dir"
				echo "  $dir round $round: no hooks $(tail -1 "$work/base.$dir") Gbit/s" >&2
				continue
			fi
			start_recorder "$mode"
			gbits "${opt[@]}" >>"$work/$mode.$dir"
			echo "$cost" >>"$work/$mode.$dir.cost"
			stop_recorder
			echo "  $dir round $round: $mode $(tail -1 "$work/$mode.$dir") Gbit/s, cost $cost ($summary)" >&2
		done
		for mode in "${modes[@]}"; do
			python3 -c "print('%.3f' % ($(tail -1 "$work/$mode.$dir") / $(tail -1 "$work/base.$dir")))" >>"$work/$mode.$dir.ratio"
			python3 -c "print('%.3f' % ($(tail -1 "$work/$mode.$dir") / $(tail -1 "$work/nopackets.$dir")))" >>"$work/$mode.$dir.vsnp"
		done
	done
	base="$(median <"$work/base.$dir")"
	echo "$dir ($([[ $dir == forward ]] && echo "data sent by the client: TC egress" || echo "data received by the client: ingress hook")): no hooks $base Gbit/s"
	for mode in "${modes[@]}"; do
		m="$(median <"$work/$mode.$dir")"
		label="--ingress-hook $mode"
		[[ $mode == nopackets ]] && label="--no-packets"
		recm="$(cut -d/ -f1 "$work/$mode.$dir.cost" | median)"
		bpfm="$(cut -d/ -f2 "$work/$mode.$dir.cost" | median)"
		np="$(median <"$work/nopackets.$dir")"
		vsnp=""
		[[ $mode != nopackets ]] && vsnp="; against --no-packets: ratio of medians $(python3 -c "print('%.3f' % ($m / $np))"), median of per-round ratios $(median <"$work/$mode.$dir.vsnp")"
		echo "  $label: $m Gbit/s, ratio of medians $(python3 -c "print('%.3f' % ($m / $base))"), median of per-round ratios $(median <"$work/$mode.$dir.ratio")$vsnp; median cost: recorder $recm + BPF $bpfm ms/s = $(python3 -c "print('%.1f' % (($recm + $bpfm) / $cpus / 10))") % of $cpus CPU(s)"
	done
done
