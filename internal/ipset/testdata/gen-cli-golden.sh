#!/bin/sh
# Records the real ipset's answers to testdata/cli.in (one ipset command line
# per line; "@restore FILE" feeds testdata/FILE to `ipset restore`) into
# testdata/cli.golden, in a throw-away network namespace. Run as root from
# internal/ipset: sh testdata/gen-cli-golden.sh
set -u
ns=uptipsetgold$$
ip netns add $ns || exit 1
trap 'ip netns exec $ns ipset destroy 2>/dev/null; ip netns del $ns' EXIT
out=testdata/cli.golden
: > $out
while IFS= read -r line; do
	case "$line" in ''|'#'*) continue ;; esac
	printf '$ %s\n' "$line" >> $out
	case "$line" in
	'@restore '*) f=${line#@restore }
		ip netns exec $ns ipset restore < testdata/$f > /tmp/$ns.out 2> /tmp/$ns.err ;;
	*) eval "set -- $line"
		ip netns exec $ns ipset "$@" > /tmp/$ns.out 2> /tmp/$ns.err ;;
	esac
	rc=$?
	# The memory size depends on the kernel's allocator: not reproduced.
	sed 's/^Size in memory: .*/Size in memory: */' /tmp/$ns.out >> $out
	sed 's/^/stderr: /' /tmp/$ns.err >> $out
	echo "rc: $rc" >> $out
done < testdata/cli.in
rm -f /tmp/$ns.out /tmp/$ns.err
