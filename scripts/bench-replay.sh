#!/usr/bin/env bash
# Benchmark of `spliff replay`: MB/s, peak RSS and peak anonymous memory on a generated mixed
# HTTP/1.1 + HTTP/2 trace, with 1 and 2 threads, side by side with tshark reading the same
# sessions in Wireshark form (the replay's own pcapng output) and exporting the same fields;
# then on a bulk trace (two parallel HTTP/1.1 downloads of half the bulk size each, one body
# apiece: memory must not follow the body). Not a test: numbers depend on the machine. Results
# go to stdout; docs/BENCHMARKS.md records a run.
#
#   scripts/bench-replay.sh [trace size in MiB, default 1024] [tshark subset in MiB, default 256]
#                           [bulk trace size in MiB, default 1024; 0: no bulk run]
#
# BULK_H2=1 adds a third download, over HTTP/2, to the bulk trace.
# SPLIFF_BEFORE=/path/to/old/spliff also measures that binary on the same traces, for a
# before/after table from one run. BENCH_DIR keeps the traces between runs. Each line is the
# best (shortest wall time) of BENCH_RUNS runs (default 3): the machine is usually shared.
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-1024}"
tshark_size="${2:-256}"
bulk_size="${3:-1024}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p spliff-recorder --bin spliff -p spliff-tests --example bench_trace \
  --example bulk_trace
spliff="$CARGO_TARGET_DIR/release/spliff"
gen="$CARGO_TARGET_DIR/release/examples/bench_trace"
bulk_gen="$CARGO_TARGET_DIR/release/examples/bulk_trace"
work="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$work"

trace="$work/bench-$size.pcapng"
[ -f "$trace" ] || "$gen" "$size" "$trace"
bytes=$(stat -c %s "$trace")
printf 'trace: %s, %d bytes\n' "$trace" "$bytes"

runs="${BENCH_RUNS:-3}"

# measure LABEL COMMAND...: the best of $runs runs, one line of MB/s and memory.
. scripts/bench-measure.sh # (the cd above made the root the working directory)

bins=("$spliff")
[ -n "${SPLIFF_BEFORE:-}" ] && bins+=("$SPLIFF_BEFORE")

# all_outputs LABEL TRACE: HAR, text and pcapng with 1 and 2 threads, for every binary.
all_outputs() {
  local label="$1" trace="$2"
  for bin in "${bins[@]}"; do
    tag=$([ "$bin" = "$spliff" ] && echo "" || echo " [before]")
    for threads in 1 2; do
      export RAYON_NUM_THREADS=$threads
      measure "$label -> HAR, $threads thread(s)$tag" "$bin" replay "$trace" -o "$work/out.har"
      entries=$(grep -o '"startedDateTime"' "$work/out.har" | wc -l)
      measure "$label -> text, $threads thread(s)$tag" "$bin" replay "$trace" -o "$work/out.txt"
      measure "$label -> pcapng, $threads thread(s)$tag" "$bin" replay "$trace" \
        -o "$work/out.pcapng"
    done
    unset RAYON_NUM_THREADS
  done
  printf 'entries in the HAR: %s\n' "$entries"
}

printf 'load average before: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
all_outputs replay "$trace"

if [ "$bulk_size" -gt 0 ]; then
  h2=$([ -n "${BULK_H2:-}" ] && echo h2 || true)
  bulk="$work/bulk-$bulk_size$h2.pcapng"
  [ -f "$bulk" ] || "$bulk_gen" "$bulk_size" "$bulk" $h2
  bytes=$(stat -c %s "$bulk")
  printf 'bulk trace: %s, %d bytes\n' "$bulk" "$bytes"
  all_outputs bulk "$bulk"
  bytes=$(stat -c %s "$trace")
fi
printf 'load average after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"

# tshark on the same sessions, on a subset (tshark's reassembly state grows with the file):
# the first $tshark_size MiB of plaintext, replayed to pcapng, then method/URI/status/host and
# the HTTP/2 header fields, which is what the HAR carries.
sub="$work/bench-$tshark_size.pcapng"
[ -f "$sub" ] || "$gen" "$tshark_size" "$sub"
"$spliff" replay "$sub" -o "$work/sub.pcapng"  # tshark's input, kept across measurements
bytes=$(stat -c %s "$sub")
measure "spliff replay -> HAR ($tshark_size MiB)" "$spliff" replay "$sub" -o "$work/sub.har"
read -r spliff_secs _ <"$work/time.txt"
measure "tshark fields ($tshark_size MiB)" tshark -r "$work/sub.pcapng" -T fields \
  -e frame.number -e http.request.method -e http.request.uri -e http.response.code -e http.host \
  -e http2.header.name -e http2.header.value -e http.file_data -e http2.data.data
read -r tshark_secs _ <"$work/time.txt"
awk -v a="$spliff_secs" -v b="$tshark_secs" \
  'BEGIN { printf "spliff (2 threads) is %.1fx as fast as tshark on the same sessions\n", b / a }'
