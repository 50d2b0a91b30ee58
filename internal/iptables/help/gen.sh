#!/bin/bash
# Records the text `iptables -h` prints (base.txt) and what each extension
# adds to it when loaded before -h (m-NAME.txt for -m NAME, t-NAME.txt for
# -j NAME), from the real iptables 1.8.9 (nf_tables), as root, in a
# throw-away network namespace. help.go embeds these files.
set -eu
cd "$(dirname "$0")"
ns=upt-help-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ipt() { ip netns exec "$ns" iptables "$@"; }
ipt -h > base.txt
n=$(wc -l < base.txt)
rest() { # the lines after the base text; fails if the base is not a prefix
	local f=$1; shift
	ipt "$@" -h > "$f.all"
	head -n "$n" "$f.all" | cmp -s - base.txt || { echo "$*: base text differs" >&2; exit 1; }
	tail -n +$((n + 1)) "$f.all" > "$f"
	rm "$f.all"
}
for m in addrtype comment connlimit connmark conntrack cpu devgroup dscp hashlimit helper icmp iprange \
	length limit mac mark multiport owner physdev pkttype quota recent set socket state statistic string \
	tcp time tos ttl u32 udp sctp ah; do
	rest "m-$m.txt" -m "$m"
done
for t in CONNMARK CT DNAT DSCP LOG MARK MASQUERADE NFLOG NFQUEUE NOTRACK REDIRECT REJECT SNAT TCPMSS TOS \
	TRACE TTL SET; do
	rest "t-$t.txt" -j "$t"
done
