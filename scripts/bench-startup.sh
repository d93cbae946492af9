#!/usr/bin/env bash
# Start-up of `spliff record -- CMD`: the time from launching the recorder to
# CMD's first instruction (CMD is `sh -c 'date +%s%N'`), for one or two
# binaries, alternating run by run so both meet the same machine load. Prints
# each run, then per binary the median and range in ms. With the environment
# variable SPLIFF_STARTUP_TIMES=1 each run also prints where the time went.
#
#   scripts/bench-startup.sh [runs, default 10] [spliff binary] [other spliff binary]
#
# Default binary: target/release/spliff. Extra recorder options go in
# BENCH_ARGS (e.g. BENCH_ARGS="--no-packets"). Needs root. Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
shift || true
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(target/release/spliff)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

one() { # <binary>: ms from launch to CMD's first instruction
	local start end
	start=$(date +%s%N)
	# shellcheck disable=SC2086 # BENCH_ARGS is a list of options
	"$1" record ${BENCH_ARGS:-} -o "$work/t.pcapng" -- sh -c "date +%s%N >$work/started" 2>"$work/err"
	end=$(cat "$work/started")
	grep -h 'start-up' "$work/err" >&2 || true
	rm -f "$work/t.pcapng" "$work/started"
	echo $(((end - start) / 1000000))
}

echo "# $runs runs, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A times
for run in $(seq "$runs"); do
	for i in "${!bins[@]}"; do
		# Alternate which binary goes first.
		j=$(((i + run) % ${#bins[@]}))
		ms=$(one "${bins[$j]}")
		times[$j]+="$ms "
		echo "run $run ${bins[$j]}: $ms ms (load $(cut -d' ' -f1 /proc/loadavg))"
	done
done
for i in "${!bins[@]}"; do
	echo "${bins[$i]}: $(echo "${times[$i]}" | tr ' ' '\n' | grep . | sort -n |
		awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "median %d ms, range %d-%d ms", m, v[1], v[NR]}')"
done
