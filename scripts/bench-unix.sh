#!/usr/bin/env bash
# Cost of the unix socket hooks (`spliff record --unix any`) on processes that do unrelated
# syscalls. Rounds alternate, back to back, the same workload under `spliff record` (TLS
# probes only) and under `spliff record --unix any`, the workload in scope (`-- CMD`):
#   - dd: 64-byte reads of /dev/zero and writes to /dev/null (read/write on non-socket fds:
#     the unix programs check the syscall number and walk the fd to "not a socket");
#   - a C loop of getppid() (a syscall the unix programs return from at the number check).
# Each workload reports the CPU time it used (user + system: the BPF programs run in its
# system time), not wall time, which on a shared machine mostly measures the others; results
# go to stdout, docs/BENCHMARKS.md has a run.
#
#   scripts/bench-unix.sh [rounds, default 4] [syscalls per workload, default 4000000]
#
# Needs root and cc. Not a test: numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-4}"
n="${2:-4000000}"
spliff="${SPLIFF_BIN:-}"
if [ -z "$spliff" ]; then
	export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
	cargo build -q --release -p spliff-recorder --bin spliff
	spliff="$CARGO_TARGET_DIR/release/spliff"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/getppid.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv)
{
	long n = atol(argv[1]);
	struct timespec a, b;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	printf("%.3f s CPU\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
	return 0;
}
C
cc -O2 -o "$work/getppid" "$work/getppid.c"

# $1: label, $2: extra record options, $3: shell command whose last stderr/stdout line is its time
run() {
	local out="$work/out.txt"
	# shellcheck disable=SC2086
	"$spliff" record --lib wolfssl --no-packets --no-sockets $2 -o "$work/t.pcapng" \
		-- sh -c "$3 > $out 2>&1" >/dev/null 2>&1
	rm -f "$work/t.pcapng"
	local last
	last="$(tail -1 "$out")"
	# /usr/bin/time's "user sys" becomes their sum.
	case "$last" in
	*CPU) ;;
	*) last="$(echo "$last" | awk '{ printf "%.3f s CPU", $1 + $2 }')" ;;
	esac
	printf '%-28s %s\n' "$1" "$last"
}

dd_cmd="/usr/bin/time -f '%U %S' dd if=/dev/zero of=/dev/null bs=64 count=$((n / 2)) status=none"
for round in $(seq "$rounds"); do
	echo "round $round"
	run "dd, record" "" "$dd_cmd"
	run "dd, record --unix any" "--unix any" "$dd_cmd"
	run "getppid, record" "" "$work/getppid $n"
	run "getppid, record --unix any" "--unix any" "$work/getppid $n"
done
