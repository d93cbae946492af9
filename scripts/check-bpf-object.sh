#!/usr/bin/env bash
# Rebuilds recorder-ebpf's BPF object with clang 19, exactly as
# recorder-ebpf/build.rs does, and compares it with the committed
# recorder-ebpf/prebuilt/spliff.bpf.o, which is what `cargo build` embeds on
# machines without clang. A difference means the C sources changed and the
# committed object was not refreshed.
#
#   scripts/check-bpf-object.sh            compare (CI); exit 1 on difference
#   scripts/check-bpf-object.sh --update   rewrite the committed object
#
# SPLIFF_BPF_CLANG overrides the compiler (default: clang-19); it must be
# clang 19, the version the committed object is built with.
set -euo pipefail

mode=check
case "${1:-}" in
"") ;;
--update) mode=update ;;
-h | --help)
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "usage: $0 [--update]" >&2
	exit 2
	;;
esac

crate="$(cd "$(dirname "$0")/../recorder-ebpf" && pwd -P)"
committed="$crate/prebuilt/spliff.bpf.o"
clang="${SPLIFF_BPF_CLANG:-clang-19}"

if ! version="$("$clang" --version 2>/dev/null | head -n 1)"; then
	echo "error: $clang not found; install clang-19 and llvm-19 (apt install clang-19 llvm-19 libbpf-dev) or set SPLIFF_BPF_CLANG" >&2
	exit 2
fi
case "$version" in
*" version 19."*) ;;
*)
	echo "error: $clang is '$version'; the committed object is built with clang 19 (set SPLIFF_BPF_CLANG to a clang 19)" >&2
	exit 2
	;;
esac
# One flag per line in cflags.txt, '#' lines are comments (as in build.rs).
flags=()
while IFS= read -r line; do
	line="${line#"${line%%[![:space:]]*}"}"
	line="${line%"${line##*[![:space:]]}"}"
	[[ -z "$line" || "$line" == \#* ]] && continue
	flags+=("$line")
done <"$crate/bpf/cflags.txt"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Warnings are errors here (CI pins clang 19) but not in build.rs, where a
# developer's other clang may warn differently. A separate pass, because the
# real compile must use exactly the flags build.rs uses: clang 19's output can
# change with any added flag.
(cd "$crate" && "$clang" "${flags[@]}" -Werror -fsyntax-only bpf/spliff.bpf.c)

# The same command as build.rs: from the crate directory, relative paths, the
# crate directory mapped to ".".
build() { # <crate copy> <output>
	(cd "$1" && "$clang" "${flags[@]}" "-ffile-prefix-map=$1=." \
		-c bpf/spliff.bpf.c -o "$2")
}
build "$crate" "$tmp/spliff.bpf.o"

# Build again from a copy at a much longer path. Some BTF that clang 19 emits
# (forward declarations reached through vmlinux.h structs) is ordered by heap
# address, which shifts with path lengths; the committed object must not
# depend on where the tree is checked out.
copy="$tmp/$(printf 'reproducibility%.0s' {1..8})/recorder-ebpf"
mkdir -p "$copy"
cp -R "$crate/bpf" "$crate/include" "$copy/"
build "$copy" "$tmp/copy.bpf.o"
if ! cmp -s "$tmp/spliff.bpf.o" "$tmp/copy.bpf.o"; then
	echo "error: the BPF object is not reproducible: building recorder-ebpf/bpf/spliff.bpf.c from another directory gives different bytes." >&2
	echo "       Likely cause: a pointer walk through a full vmlinux.h struct; use a minimal '<name>___spliff' CO-RE struct (see bpf/common.h)." >&2
	echo "       Compare: bpftool btf dump file <object> for both builds." >&2
	exit 1
fi

if [[ "$mode" == update ]]; then
	mkdir -p "$(dirname "$committed")"
	cp "$tmp/spliff.bpf.o" "$committed"
	echo "updated recorder-ebpf/prebuilt/spliff.bpf.o ($(wc -c <"$committed") bytes, $version)"
	exit 0
fi

if [[ ! -f "$committed" ]]; then
	echo "error: recorder-ebpf/prebuilt/spliff.bpf.o is missing; run scripts/check-bpf-object.sh --update and commit it" >&2
	exit 1
fi
if ! cmp -s "$tmp/spliff.bpf.o" "$committed"; then
	echo "error: recorder-ebpf/prebuilt/spliff.bpf.o is stale: it differs from what recorder-ebpf/bpf/ and recorder-ebpf/include/ compile to with $version." >&2
	echo "       Run scripts/check-bpf-object.sh --update and commit recorder-ebpf/prebuilt/spliff.bpf.o." >&2
	exit 1
fi
echo "ok: recorder-ebpf/prebuilt/spliff.bpf.o matches the sources ($(wc -c <"$committed") bytes, $version)"
