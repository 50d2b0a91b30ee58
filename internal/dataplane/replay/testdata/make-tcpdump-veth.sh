#!/bin/sh
# Recreates tcpdump-veth.pcap: two throw-away namespaces joined by a veth
# pair, the kernel's REJECT on the server side (tcp/23 tcp-reset, udp/9999
# icmp-port-unreachable), a 100-byte ping, a refused TCP connect, a rejected
# UDP datagram and one full HTTP-like exchange on port 8080, captured by the
# real tcpdump on the server's interface. Needs root, iptables, tcpdump,
# python3. Traffic stays inside the two namespaces.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/tcpdump-veth.pcap}
ip netns add uptRpA
ip netns add uptRpB
trap 'ip netns del uptRpA; ip netns del uptRpB' EXIT
ip link add rpa0 netns uptRpA type veth peer name rpb0 netns uptRpB
ip -n uptRpA addr add 10.99.7.1/24 dev rpa0
ip -n uptRpB addr add 10.99.7.2/24 dev rpb0
for ns in uptRpA uptRpB; do ip -n $ns link set lo up; done
ip -n uptRpA link set rpa0 up
ip -n uptRpB link set rpb0 up
ip netns exec uptRpB iptables -A INPUT -p tcp --dport 23 -j REJECT --reject-with tcp-reset
ip netns exec uptRpB iptables -A INPUT -p udp --dport 9999 -j REJECT
sleep 2
ip netns exec uptRpB timeout 20 tcpdump -i rpb0 -w "$out" -U &
dump=$!
sleep 1.5
ip netns exec uptRpB timeout 15 python3 "$here/server.py" &
sleep 0.5
ip netns exec uptRpA timeout 15 python3 "$here/traffic.py"
sleep 1
kill -INT $dump
wait $dump || true
