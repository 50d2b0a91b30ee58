#!/usr/bin/env bash
# bench-proxy.sh: new TCP connections per second and throughput on loopback,
# in one run, for
#   (a) direct       the load generator straight to the backend
#   (b) uptables     `uptables run --proxy` with connlimit + recent rules (bench/uptables.rules),
#                    and with no rules at all (the proxy's own cost)
#   (c) HAProxy      stick-table conn_cur / conn_rate per source (bench/haproxy.cfg)
#   (d) nginx        stream proxy, limit_conn per $binary_remote_addr (bench/nginx.conf)
# The limits are high enough not to refuse the benchmark's own connections,
# but every new connection is checked against them.
#
# usage: scripts/bench-proxy.sh [-d SECONDS] [-r ROUNDS] [-c CLIENTS] [-s STREAMS] [-o FILE]
#   -d  duration of each measurement (default 10)
#   -r  rounds over all cases; each figure is the median over the rounds (default 1)
#   -c  concurrent clients of the connection test (default 32)
#   -s  concurrent connections of the throughput test (default 4)
#   -o  also write the markdown table to FILE (e.g. bench/proxy-results.md)
# Installs haproxy, nginx and libnginx-mod-stream with apt-get when missing
# (root). Everything listens on 127.0.0.1; processes started here are
# stopped on exit.
set -euo pipefail

dur=10 rounds=1 clients=32 streams=4 outfile=
while getopts "d:r:c:s:o:h" opt; do
	case $opt in
	d) dur=$OPTARG ;;
	r) rounds=$OPTARG ;;
	c) clients=$OPTARG ;;
	s) streams=$OPTARG ;;
	o) outfile=$OPTARG ;;
	*) sed -n '2,22p' "$0"; exit 2 ;;
	esac
done
for v in "$dur" "$rounds" "$clients" "$streams"; do
	[[ $v =~ ^[0-9]+$ && $v -ge 1 && $v -le 600 ]] || { echo "bench-proxy: -d/-r/-c/-s must be 1..600" >&2; exit 2; }
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || need+=(nginx)
[[ -e /usr/lib/nginx/modules/ngx_stream_module.so ]] || need+=(libnginx-mod-stream)
if ((${#need[@]})); then
	echo "bench-proxy: installing ${need[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

tmp=$(mktemp -d /tmp/bench-proxy.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for f in "$tmp/nginx.pid" "$tmp/haproxy.pid"; do
		[[ -s $f ]] && kill "$(cat "$f")" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/uptables" ./cmd/uptables
go build -o "$tmp/loadgen" ./bench/loadgen
lg=$tmp/loadgen

mapfile -t ports < <("$lg" ports -n 5)
pb=${ports[0]} pu=${ports[1]} ph=${ports[2]} pn=${ports[3]} p0=${ports[4]}
up=127.0.0.1:$pb

subst() { sed -e "s|@PORT@|$2|g" -e "s|@UPSTREAM@|$up|g" -e "s|@DIR@|$tmp|g" "$1"; }

"$lg" backend -listen "$up" >/dev/null 2>"$tmp/backend.log" &
pids+=($!)
subst bench/uptables.rules "$pu" >"$tmp/uptables.rules"
"$tmp/uptables" run --rules "$tmp/uptables.rules" --proxy "tcp:127.0.0.1:$pu=$up" --max-conns 4096 2>"$tmp/uptables.log" &
pids+=($!)
printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' >"$tmp/empty.rules"
"$tmp/uptables" run --rules "$tmp/empty.rules" --proxy "tcp:127.0.0.1:$p0=$up" --max-conns 4096 2>"$tmp/uptables0.log" &
pids+=($!)
subst bench/haproxy.cfg "$ph" >"$tmp/haproxy.cfg"
haproxy -q -db -f "$tmp/haproxy.cfg" 2>"$tmp/haproxy.log" &
pids+=($!)
subst bench/nginx.conf "$pn" >"$tmp/nginx.conf"
nginx -e "$tmp/nginx-error.log" -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;' 2>"$tmp/nginx.log" &
pids+=($!)

if ! "$lg" wait -addr "$up" -addr "127.0.0.1:$pu" -addr "127.0.0.1:$ph" -addr "127.0.0.1:$pn" -addr "127.0.0.1:$p0"; then
	tail -n 5 "$tmp"/*.log >&2
	exit 1
fi

names=("direct" "uptables proxy, no rules" "uptables proxy (connlimit + recent)" "HAProxy $(haproxy -v | awk 'NR==1{print $3}') (stick-table conn_cur + conn_rate)" "nginx $(nginx -v 2>&1 | sed 's|.*/||') stream (limit_conn)")
addrs=("$up" "127.0.0.1:$p0" "127.0.0.1:$pu" "127.0.0.1:$ph" "127.0.0.1:$pn")
metrics=(conns_per_sec p50_us p99_us refused mbytes_per_sec gbit_per_sec)
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }
load=$(cut -d' ' -f1-3 /proc/loadavg)
# results: one file per case and metric, one value per round
for ((r = 1; r <= rounds; r++)); do
	for i in "${!names[@]}"; do
		echo "bench-proxy: round $r/$rounds: ${names[$i]} ..." >&2
		c=$("$lg" conns -addr "${addrs[$i]}" -d "${dur}s" -c "$clients" -src 64 2>>"$tmp/conns-$i.err")
		sleep 1
		s=$("$lg" stream -addr "${addrs[$i]}" -d "${dur}s" -c "$streams" 2>>"$tmp/stream-$i.err")
		sleep 1
		echo "$(($(kv refused "$c") + $(kv failed "$c") + $(kv errors "$s")))" >>"$tmp/r$i.refused"
		for m in conns_per_sec p50_us p99_us; do kv $m "$c" >>"$tmp/r$i.$m"; done
		for m in mbytes_per_sec gbit_per_sec; do kv $m "$s" >>"$tmp/r$i.$m"; done
	done
done
median() { sort -g "$1" | awk -v f="$2" '{v[NR]=$1} END{printf f, (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
declare -a rows
for i in "${!names[@]}"; do
	row="| ${names[$i]} |"
	for m in "${metrics[@]}"; do
		if [[ $m == refused ]]; then
			row+=" $(awk '{s+=$1} END{print s}' "$tmp/r$i.refused") |"
		else
			f=%.0f
			[[ $m == gbit_per_sec ]] && f=%.2f
			row+=" $(median "$tmp/r$i.$m" $f) |"
		fi
	done
	rows[i]=$row
	sort -u "$tmp/conns-$i.err" "$tmp/stream-$i.err" | head -n 3 >&2
done

cpu=$(awk -F: '/model name/{gsub(/^ +/,"",$2); print $2; exit}' /proc/cpuinfo)
{
	echo "New connections per second and throughput on loopback ($(nproc) CPUs, $cpu; Linux $(uname -r)), measured by scripts/bench-proxy.sh on $(date -u +%Y-%m-%d):"
	echo "${dur} s per measurement, median of $rounds round(s); load average before the run: $load. Connections: $clients concurrent clients over 64 source addresses, each connection sends a 2-byte request, reads a 64-byte reply and closes; throughput: $streams connections reading what the backend streams. The load generator, the backend and the proxy share the CPUs."
	echo
	echo "| path | new conns/s | p50 connect+reply (µs) | p99 (µs) | refused/failed (all rounds) | throughput (MB/s) | Gbit/s |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${rows[@]}"
	echo
	echo "Limits (per client address): uptables \`-m connlimit --connlimit-above 1000\` REJECT tcp-reset, \`-m recent --set\` + \`--update --seconds 1 --hitcount 2000\` DROP, on every SYN; HAProxy \`sc_conn_cur(0) gt 1000 || sc_conn_rate(0) gt 2000\` reject; nginx \`limit_conn 1000\` (nginx stream has no new-connection rate limit). Configurations: bench/uptables.rules, bench/haproxy.cfg, bench/nginx.conf."
} >"$tmp/table.md"
cat "$tmp/table.md"
if [[ -n $outfile ]]; then
	cp "$tmp/table.md" "$outfile"
fi
