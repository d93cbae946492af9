#!/usr/bin/env bash
# NSS overhead against its own no-op-probe floor: a small NSS client
# (compiled here against libnss3-dev) does N request/answer round trips of
# SIZE bytes (PR_Write, then PR_Read until the answer is in) over one TLS
# connection to `openssl s_server -rev` (OpenSSL: not hooked by --lib nss).
# Three ways, interleaved round by round: no probes, no-op uprobes at the
# recorder's NSS places (the trap floor: noop_probes nss on libnspr4.so and
# libssl3.so), and `spliff record --lib nss --no-packets` of all processes.
# Prints the median microseconds per round trip of each and the ratios;
# docs/BENCHMARKS.md has a run.
#
#   scripts/bench-nss.sh [rounds, default 7] [round trips, default 20000] [size, default 100]
#
# Needs root, cc, libnss3-dev, openssl. NOOP overrides the no-op tool
# (default: the noop_probes example). Not a test: numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-7}"
trips="${2:-20000}"
size="${3:-100}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
if [ -z "${NOOP:-}" ]; then
	cargo build -q --release -p spliff-recorder --bin spliff --example noop_probes
	NOOP="$CARGO_TARGET_DIR/release/examples/noop_probes"
else
	cargo build -q --release -p spliff-recorder --bin spliff
fi
spliff="$CARGO_TARGET_DIR/release/spliff"
nspr="$(ldconfig -p | awk '/libnspr4\.so /{print $NF; exit}')"
nss_ssl="$(ldconfig -p | awk '/libssl3\.so /{print $NF; exit}')"

work="$(mktemp -d)"
bg=""
server=""
noop=""
trap 'kill $bg $server $noop 2>/dev/null; rm -rf "$work"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat >"$work/client.c" <<'C'
#include <nss.h>
#include <ssl.h>
#include <prio.h>
#include <prnetdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The benchmark trusts its own server. */
static SECStatus accept_any(void *arg, PRFileDesc *fd, PRBool checksig, PRBool server)
{
	return SECSuccess;
}

int main(int argc, char **argv)
{
	int port = atoi(argv[1]), n = atoi(argv[2]), size = atoi(argv[3]), i;
	char *line = malloc(size), *back = malloc(size);
	struct timespec t0, t1;
	PRNetAddr addr;
	PRFileDesc *fd;

	if (NSS_NoDB_Init(NULL) != SECSuccess || NSS_SetDomesticPolicy() != SECSuccess)
		return 1;
	fd = SSL_ImportFD(NULL, PR_OpenTCPSocket(PR_AF_INET));
	SSL_OptionSet(fd, SSL_HANDSHAKE_AS_CLIENT, PR_TRUE);
	SSL_AuthCertificateHook(fd, accept_any, NULL);
	SSL_SetURL(fd, "localhost");
	PR_InitializeNetAddr(PR_IpAddrLoopback, port, &addr);
	if (PR_Connect(fd, &addr, PR_INTERVAL_NO_TIMEOUT) != PR_SUCCESS)
		return 2;
	if (SSL_ResetHandshake(fd, PR_FALSE) != SECSuccess || SSL_ForceHandshake(fd) != SECSuccess)
		return 3;
	memset(line, 'x', size - 1);
	line[size - 1] = '\n'; /* s_server -rev answers each line, reversed */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++) {
		int got = 0;

		if (PR_Write(fd, line, size) != size)
			return 4;
		while (got < size) {
			int r = PR_Read(fd, back + got, size - got);

			if (r <= 0)
				return 5;
			got += r;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.2f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n);
	PR_Close(fd);
	return 0;
}
C
# shellcheck disable=SC2046
cc -O2 -o "$work/client" "$work/client.c" $(pkg-config --cflags --libs nss nspr)

port=18644
openssl s_server -rev -quiet -accept "$port" -cert "$work/cert.pem" -key "$work/key.pem" \
	>/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do ss -ltn | grep -q ":$port " && break; sleep 0.1; done
one_trip() { "$work/client" "$port" "$trips" "$size"; } # microseconds per round trip
start_bg() { # <log> <cmd...>: start in the background, wait until attached
	"${@:2}" 2>"$work/$1" &
	bg=$!
	for _ in $(seq 300); do grep -q -e recording -e "no-op probes" "$work/$1" 2>/dev/null && break; sleep 0.1; done
}
stop_bg() {
	kill -INT "$bg" 2>/dev/null || true
	wait "$bg" 2>/dev/null || true
	bg=""
}
start_floor() { # no-op probes on both NSS files, until both are attached
	: >"$work/noop.err"
	"$NOOP" nss "$nspr" >/dev/null 2>>"$work/noop.err" &
	noop="$!"
	"$NOOP" nss "$nss_ssl" >/dev/null 2>>"$work/noop.err" &
	noop="$noop $!"
	for _ in $(seq 300); do [ "$(grep -c "no-op probes" "$work/noop.err")" -ge 2 ] && break; sleep 0.1; done
}
stop_floor() {
	# shellcheck disable=SC2086
	kill $noop 2>/dev/null || true
	# shellcheck disable=SC2086
	wait $noop 2>/dev/null || true
	noop=""
}

: >"$work/none"
: >"$work/floor"
: >"$work/record"
for round in $(seq "$rounds"); do
	one_trip >>"$work/none"
	start_floor
	one_trip >>"$work/floor"
	stop_floor
	start_bg record.err "$spliff" record --lib nss --no-packets -o "$work/t$round.pcapng"
	one_trip >>"$work/record"
	stop_bg
	rm -f "$work/t$round.pcapng"
	echo "round $round: none $(tail -1 "$work/none") floor $(tail -1 "$work/floor") record $(tail -1 "$work/record") us/round trip" >&2
done
median() { sort -g "$1" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
none="$(median "$work/none")"
fl="$(median "$work/floor")"
rec="$(median "$work/record")"
echo "NSS round trips ($trips x $size B, median of $rounds, us per round trip):"
echo "  no probes        $none"
echo "  no-op floor      $fl   ($(awk -v a="$fl" -v b="$none" 'BEGIN{printf "%.2f", a/b}') x no probes)"
echo "  spliff record    $rec   ($(awk -v a="$rec" -v b="$none" 'BEGIN{printf "%.2f", a/b}') x no probes, $(awk -v a="$rec" -v b="$fl" 'BEGIN{printf "%.2f", a/b}') x floor)"
