#!/bin/bash
# usage: probe2.sh in out ; lines: table<TAB>chain<TAB>rule ; out TSV: table chain rule rc save listn list msg
ns=uptprobe$$
ip netns add $ns
esc() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/\t/\\t/g' | awk 'BEGIN{ORS=""} NR>1{print "\\n"} {print}'; }
while IFS=$'\t' read -r t c r; do
  [ -z "$t" ] && continue
  case "$t" in \#*) continue;; esac
  out=$(eval ip netns exec $ns iptables -t $t -A $c $r 2>&1); rc=$?
  s=""; ln=""; l=""
  if [ $rc = 0 ]; then
    s=$(ip netns exec $ns iptables -t $t -S $c | grep -- '^-A' | sed "s/^-A $c //")
    [ "$s" = "-A $c" ] && s=""
    e0=$(ip netns exec $ns iptables -t $t -L $c -n | sed -n 2p)
    ln=$(ip netns exec $ns iptables -t $t -L $c -n | sed -n '3p' | cut -c62-)
    l=$(ip netns exec $ns iptables -t $t -L $c | sed -n '3p' | cut -c62-)
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$c" "$(esc "$r")" "$rc" "$(esc "$s")" "$(esc "$ln")" "$(esc "$l")" "$(esc "$out")"
  ip netns exec $ns iptables -t $t -F
done < "$1" > "$2"
ip netns del $ns
