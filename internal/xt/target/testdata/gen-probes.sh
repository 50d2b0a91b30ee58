#!/bin/bash
# Regenerates probes.tsv from the real iptables (run as root):
#   ./gen-probes.sh probes.in > probes.tsv
# probes.in: "table<TAB>chain<TAB>rule" per line (rule in shell syntax).
# Output columns: table chain rule exit save list list_n stderr, with
# \ TAB LF escaped as in the shared conformance TSVs. list/list_n are the
# text iptables -L prints after the destination column.
set -u
ns=uptgen$$
ip netns add $ns
trap 'ip netns del $ns' EXIT
esc() { sed -e 's/\\/\\\\/g' -e 's/\t/\\t/g' | awk 'BEGIN{ORS=""} NR>1{print "\\n"} {print}'; }
col() { # text after the destination column of the first rule line
  awk 'NR==3 { n=0; s=$0; off=0
    for (k=0; k<2; k++) { i=index(s, key); s=substr(s, i+length(key)); off+=i+length(key)-1 }
    print substr($0, off-length(key)+21) }' key="$1"; }
while IFS=$'\t' read -r table chain rule; do
  [ -z "$table" ] && continue
  err=$(eval ip netns exec $ns iptables -t $table -A $chain "$rule" 2>&1 >/dev/null); rc=$?
  s=""; l=""; ln=""
  if [ $rc = 0 ]; then
    s=$(ip netns exec $ns iptables -t $table -S $chain | grep -a -- "^-A $chain" | sed "s/^-A $chain //")
    l=$(ip netns exec $ns iptables -t $table -L $chain | col anywhere)
    ln=$(ip netns exec $ns iptables -t $table -L $chain -n | col 0.0.0.0/0)
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$table" "$chain" "$(printf %s "$rule" | esc)" "$rc" \
    "$(printf %s "$s" | esc)" "$(printf %s "$l" | esc)" "$(printf %s "$ln" | esc)" "$(printf %s "$err" | esc)"
  ip netns exec $ns iptables -t $table -F
done < "$1"
