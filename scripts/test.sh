#!/usr/bin/env bash
# The one test command (README, CI): installs what the tests need when it is missing, then runs
# formatting, lints and every test. Run as root on Debian 12 for the eBPF tests; elsewhere they
# skip loudly (or fail when SPLIFF_REQUIRE_BPF=1).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have tshark || need_pkgs+=(tshark)
have capinfos || need_pkgs+=(wireshark-common)
have clang-19 || need_pkgs+=(clang-19 llvm-19)
[ -f /usr/include/bpf/bpf_helpers.h ] || need_pkgs+=(libbpf-dev)
have cc || need_pkgs+=(gcc)
# The fuzz crates' libfuzzer-sys (checked below) builds C++.
have c++ || need_pkgs+=(g++)
# tests/tests/record_openssl.rs, record_h2_join.rs: real TLS clients and servers (OpenSSL 3).
have curl || need_pkgs+=(curl)
have openssl || need_pkgs+=(openssl)
[ -x /usr/bin/python3 ] || need_pkgs+=(python3)
have nghttpd || need_pkgs+=(nghttp2-server)
# tests/tests/record_unix.rs: a gRPC client and server (grpcio) over a unix socket.
/usr/bin/python3 -c 'import grpc' 2>/dev/null || need_pkgs+=(python3-grpcio)
# GnuTLS and wolfSSL clients (tests/tests/record_gnutls_wolfssl.rs).
have wget || need_pkgs+=(wget)
have gnutls-cli || need_pkgs+=(gnutls-bin)
[ -f /usr/include/wolfssl/ssl.h ] || need_pkgs+=(libwolfssl-dev)
have git || need_pkgs+=(git)
# NSS: Firefox headless with a test CA imported by certutil (tests/tests/record_nss_firefox.rs).
have firefox-esr || need_pkgs+=(firefox-esr)
have certutil || need_pkgs+=(libnss3-tools)
# tests/tests/record_nss_client.rs: an NSS client built in the test.
[ -f /usr/include/nss/ssl.h ] || need_pkgs+=(libnss3-dev pkg-config)
# tests/tests/record_go.rs: Go clients and servers built in the test (Go >= 1.17).
have go || need_pkgs+=(golang-go)
# tests/tests/record_java.rs: a JSSE client, named as not supported.
have javac || need_pkgs+=(default-jdk-headless)
# tests/tests/record_chromium.rs: Chromium (BoringSSL compiled in, stripped).
[ -x /usr/lib/chromium/chromium ] || need_pkgs+=(chromium)
# tests/tests/record_packets.rs: network namespaces, veth and vxlan links.
have ip || need_pkgs+=(iproute2)
# tests/tests/record_sockets.rs: a private mount namespace without cgroup2 (unshare).
have unshare || need_pkgs+=(util-linux)
# tests/tests/record_safety.rs: a plain user (setpriv) given spliff's suggested capabilities.
have setpriv || need_pkgs+=(util-linux)
have setcap || need_pkgs+=(libcap2-bin)
# HAR checks (tests/src/har.rs): Debian's har-validator library, run by node.
have node || need_pkgs+=(nodejs)
[ -d /usr/share/nodejs/har-validator ] || need_pkgs+=(node-har-validator)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "test.sh: installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    echo "test.sh: missing ${need_pkgs[*]}; install them (Debian: apt-get install ${need_pkgs[*]})" >&2
    exit 1
  fi
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== fuzz targets build (they are outside the workspace, so nothing else compiles them)"
cargo check -q --manifest-path formats/fuzz/Cargo.toml
cargo check -q --manifest-path replay/fuzz/Cargo.toml
echo "== committed BPF object matches its sources"
bash scripts/check-bpf-object.sh
echo "== cargo test"
# --no-fail-fast: one failing test binary must not hide the results of the others.
cargo test --workspace --no-fail-fast 2>&1 | tee /tmp/spliff-test-output.txt
# One closing line over all test binaries, for humans and CI alike.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' \
  /tmp/spliff-test-output.txt
