# shellcheck shell=bash
# Sourced by the packet benchmarks: two network namespaces, $a (client) and
# $b (iperf3 server), joined by veth pairs veth0, veth1, ... with addresses
# 10.99.0.1/.2, 10.98.0.1/.2, ...; and their removal. Needs root, iproute2,
# iperf3.

# bench_netns_up <name prefix> <number of veth pairs>: sets a, b.
bench_netns_up() {
	a="$1-a-$$"
	b="$1-b-$$"
	ip netns add "$a"
	ip netns add "$b"
	local i
	for ((i = 0; i < $2; i++)); do
		ip link add "veth$i" netns "$a" type veth peer name "veth$i" netns "$b"
		ip -n "$a" addr add "$(bench_netns_address "$i" 1)/24" dev "veth$i"
		ip -n "$b" addr add "$(bench_netns_address "$i" 2)/24" dev "veth$i"
		ip -n "$a" link set "veth$i" up
		ip -n "$b" link set "veth$i" up
	done
	ip -n "$a" link set lo up
	ip -n "$b" link set lo up
	ip netns exec "$b" iperf3 -s -D
	sleep 0.5
}

# bench_netns_address <veth index> <1: client side, 2: server side>
bench_netns_address() { echo "10.$((99 - $1)).0.$2"; }

# Kills whatever runs in the namespaces and removes them.
bench_netns_down() {
	local ns pid
	for ns in "${a:-}" "${b:-}"; do
		[[ -n $ns ]] || continue
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
}
