set -e
A=uptlogA B=uptlogB
ip netns add $A; ip netns add $B
trap 'ip netns del $A; ip netns del $B; sysctl -qw net.netfilter.nf_log_all_netns=0' EXIT
ip link add va netns $A type veth peer name vb netns $B
ip -n $A addr add 10.77.0.1/24 dev va; ip -n $B addr add 10.77.0.2/24 dev vb
ip -n $A link set va up; ip -n $B link set vb up; ip -n $A link set lo up; ip -n $B link set lo up
sleep 1
ip netns exec $B iptables -t mangle -A PREROUTING -p udp --dport 7 -j MARK --set-mark 42
ip netns exec $B iptables -t raw -A PREROUTING -f -j LOG --log-prefix "uFR: " --log-tcp-sequence
ip netns exec $B iptables -t raw -A PREROUTING -p tcp --dport 83 -j LOG --log-prefix "uF0: " --log-tcp-sequence --log-tcp-options
ip netns exec $B iptables -A INPUT -j LOG --log-prefix "uIN: " --log-tcp-sequence --log-tcp-options --log-ip-options
ip netns exec $B iptables -A INPUT -j LOG --log-prefix "uPL:"
ip netns exec $B iptables -A INPUT -p udp --dport 9 -j LOG --log-prefix "uMD: " --log-macdecode
ip netns exec $B iptables -A OUTPUT -j LOG --log-prefix "uOUT: " --log-uid --log-ip-options
sysctl -qw net.netfilter.nf_log_all_netns=1
ip netns exec $B tcpdump -i vb -w /tmp/logexp/cap.pcap -U 2>/dev/null & TP=$!
sleep 1
before=$(dmesg | wc -l)
ip netns exec $A python3 /tmp/logexp/send.py
ip netns exec $B python3 -c 'import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.sendto(b"fromB", ("10.77.0.1", 6000))'
sleep 1
kill $TP; wait $TP 2>/dev/null || true
dmesg | tail -n +$((before+1)) | grep -a ' u[A-Z]*:' > /tmp/logexp/dmesg.txt || true
ip -n $B link show vb
