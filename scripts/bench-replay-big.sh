#!/usr/bin/env bash
# Memory benchmark of `spliff replay` on ONE large connection: a keep-alive HTTP/1.1 connection
# and an HTTP/2 connection of SIZE MiB each (bodies up to 1 MiB: binary, chunked, gzip), replayed
# to HAR, text and pcapng with 1 and 2 threads. Reports MB/s, peak RSS (GNU time, = VmHWM) and
# peak anonymous memory (RssAnon polled every 10 ms; the mmap'd trace is file-backed and not in
# it). Not a test; docs/BENCHMARKS.md records a run.
#
#   scripts/bench-replay-big.sh [size in MiB, default 1024]
#
# SPLIFF_BEFORE=/path/to/old/spliff also measures that binary; BENCH_DIR keeps the traces;
# BENCH_RUNS (default 1) runs per line, the best is shown.
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-1024}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p spliff-recorder --bin spliff -p spliff-tests --example big_connection_trace
spliff="$CARGO_TARGET_DIR/release/spliff"
gen="$CARGO_TARGET_DIR/release/examples/big_connection_trace"
work="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$work"
runs="${BENCH_RUNS:-1}"

# measure LABEL COMMAND...: the best of $runs runs, one line of MB/s and memory.
. scripts/bench-measure.sh # (the cd above made the root the working directory)

bins=("$spliff")
[ -n "${SPLIFF_BEFORE:-}" ] && bins+=("$SPLIFF_BEFORE")
for proto in h1 h2; do
  trace="$work/big-$proto-$size.pcapng"
  [ -f "$trace" ] || "$gen" "$proto" "$size" "$trace"
  bytes=$(stat -c %s "$trace")
  printf 'trace: %s, %d bytes\n' "$trace" "$bytes"
  for bin in "${bins[@]}"; do
    tag=$([ "$bin" = "$spliff" ] && echo "" || echo " [before]")
    for threads in 1 2; do
      export RAYON_NUM_THREADS=$threads
      for fmt in har txt pcapng; do
        measure "$proto -> $fmt, $threads thread(s)$tag" "$bin" replay "$trace" -o "$work/out.$fmt"
      done
    done
    unset RAYON_NUM_THREADS
  done
done
