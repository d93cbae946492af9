# Shared by scripts/bench-replay*.sh (sourced): timing one replay command.
# Expects $work (scratch directory), $runs (runs per line) and $bytes (trace size) to be set.

# One measurement: wall seconds, CPU seconds and peak RSS (GNU time), and peak anonymous memory
# (RssAnon polled every 10 ms: the mmap'd trace is file-backed and not in it). Outputs are
# removed first, so that no run pays for truncating the previous one's file.
measure_once() {
  rm -f "$work"/out.* "$work/sub.har"
  /usr/bin/time -f '%e %U %S %M' -o "$work/time.txt" "$@" >/dev/null &
  local timer=$! pid="" anon=0 a
  while kill -0 "$timer" 2>/dev/null; do
    [ -n "$pid" ] || pid=$(pgrep -P "$timer" | head -n1 || true)
    if [ -n "$pid" ]; then
      a=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
      [ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
    fi
    sleep 0.01
  done
  wait "$timer"
  echo "$(cat "$work/time.txt") $anon" >"$work/once.txt"
}

# The best of $runs runs; leaves its "wall user sys rss anon" in $work/time.txt.
measure() {
  local label="$1"; shift
  : >"$work/runs.txt"
  for _ in $(seq "$runs"); do
    measure_once "$@"
    cat "$work/once.txt" >>"$work/runs.txt"
  done
  sort -n "$work/runs.txt" | head -n1 >"$work/time.txt"
  read -r secs user sys rss anon <"$work/time.txt"
  awk -v l="$label" -v s="$secs" -v u="$user" -v k="$sys" -v r="$rss" -v a="$anon" -v b="$bytes" \
    'BEGIN { printf "%-44s %7.2f s %8.1f MB/s %7.2f s CPU %6.0f MiB RSS %6.0f MiB anon\n",
             l, s, b / s / 1e6, u + k, r / 1024, a / 1024 }'
}

