package metrics

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/uptables/uptables/internal/control"
	"github.com/uptables/uptables/internal/dataplane/nfqueue"
	"github.com/uptables/uptables/internal/dataplane/proxy"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

const rules = `*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -m recent --set --name SSH --mask 255.255.255.255 --rsource -j ACCEPT
-A INPUT -p udp -m udp --dport 53 -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name DNS -j ACCEPT
-A INPUT -p tcp -m tcp --dport 80 -m comment --comment "a rule whose text is longer than eighty bytes is cut in its label" -j ACCEPT
COMMIT
`

type discard struct{}

func (discard) Reply(*xt.Ctx, []byte)      {}
func (discard) Log(*xt.Ctx, uint8, []byte) {}

func engine(t *testing.T) *netfilter.Engine {
	t.Helper()
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), builtin.Registry(), strings.NewReader(rules), iptables.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eng := netfilter.New(netfilter.Config{Seed: 1})
	if err := eng.Load(rs); err != nil {
		t.Fatal(err)
	}
	w := eng.NewWorker(discard{})
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	run := func(b []byte) {
		p := &packet.Packet{}
		if st := p.Decode(b); st != packet.OK {
			t.Fatal(st)
		}
		p.InIface, p.TimeNS = "eth0", now
		w.Process(netfilter.PathInput, p)
	}
	run(packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1000, DstPort: 22, Flags: packettest.SYN}))
	run(packettest.TCP(packettest.TCPOpts{Src: "10.0.0.3", Dst: "10.0.0.2", SrcPort: 1000, DstPort: 22, Flags: packettest.SYN}))
	run(packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1000, DstPort: 53, Payload: []byte("q")}))
	run(packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1001, DstPort: 443, Flags: packettest.SYN}))
	return eng
}

// The scrape holds the expected series with the engine's values.
func TestCollector(t *testing.T) {
	eng := engine(t)
	loaded := time.Unix(1777636800, 0)
	q := &nfqueue.QueueStats{Num: 3}
	q.Packets.Add(10)
	q.Accepted.Add(8)
	q.Dropped.Add(2)
	q.Panics.Add(1)
	c := NewCollector(Config{Engine: eng,
		Loads:  func() control.LoadStats { return control.LoadStats{Loads: 2, Failures: 1, LastLoad: loaded} },
		Queues: func() []*nfqueue.QueueStats { return []*nfqueue.QueueStats{q} },
		Proxy: func() proxy.Stats {
			return proxy.Stats{ConnsAccepted: 4, ConnsDropped: 1, ConnsCut: 2, UpstreamErrors: 3, ConnsActive: 1, SessionsEvicted: 5}
		},
	})
	want := `
# HELP uptables_rule_packets_total Packets that matched the rule (iptables -Z resets it, as in the kernel).
# TYPE uptables_rule_packets_total counter
uptables_rule_packets_total{chain="INPUT",rule="1",table="filter",text="-m state --state RELATED,ESTABLISHED -j ACCEPT"} 0
uptables_rule_packets_total{chain="INPUT",rule="2",table="filter",text="-p tcp -m tcp --dport 22 -m recent --set --name SSH --mask 255.255.255.255 --..."} 2
uptables_rule_packets_total{chain="INPUT",rule="3",table="filter",text="-p udp -m udp --dport 53 -m hashlimit --hashlimit-upto 10/sec --hashlimit-bur..."} 1
uptables_rule_packets_total{chain="INPUT",rule="4",table="filter",text="-p tcp -m tcp --dport 80 -m comment --comment \"a rule whose text is longer th..."} 0
# HELP uptables_policy_packets_total Packets that reached the end of a built-in chain and took its policy.
# TYPE uptables_policy_packets_total counter
uptables_policy_packets_total{chain="FORWARD",policy="ACCEPT",table="filter"} 0
uptables_policy_packets_total{chain="INPUT",policy="DROP",table="filter"} 1
uptables_policy_packets_total{chain="OUTPUT",policy="ACCEPT",table="filter"} 0
# HELP uptables_recent_entries Addresses in a recent list.
# TYPE uptables_recent_entries gauge
uptables_recent_entries{list="SSH"} 2
# HELP uptables_hashlimit_entries Buckets in use in a hashlimit table.
# TYPE uptables_hashlimit_entries gauge
uptables_hashlimit_entries{table="DNS"} 1
# HELP uptables_conntrack_entries Connection-table entries in use (nf_conntrack_count).
# TYPE uptables_conntrack_entries gauge
uptables_conntrack_entries 3
# HELP uptables_conntrack_new_total Connections created.
# TYPE uptables_conntrack_new_total counter
uptables_conntrack_new_total 4
# HELP uptables_nfqueue_verdicts_total Verdicts given, by verdict.
# TYPE uptables_nfqueue_verdicts_total counter
uptables_nfqueue_verdicts_total{queue="3",verdict="accept"} 8
uptables_nfqueue_verdicts_total{queue="3",verdict="drop"} 2
uptables_nfqueue_verdicts_total{queue="3",verdict="requeue"} 0
# HELP uptables_nfqueue_panics_total Recovered panics while handling a packet (fail verdict given).
# TYPE uptables_nfqueue_panics_total counter
uptables_nfqueue_panics_total{queue="3"} 1
# HELP uptables_nfqueue_overruns_total Netlink receive buffer overruns (packets lost to the fail-open/closed verdict).
# TYPE uptables_nfqueue_overruns_total counter
uptables_nfqueue_overruns_total{queue="3"} 0
# HELP uptables_proxy_connections_total Client connections by outcome (cut: admitted, later refused).
# TYPE uptables_proxy_connections_total counter
uptables_proxy_connections_total{outcome="accepted"} 4
uptables_proxy_connections_total{outcome="closed"} 0
uptables_proxy_connections_total{outcome="cut"} 2
uptables_proxy_connections_total{outcome="dropped"} 1
uptables_proxy_connections_total{outcome="reset"} 0
# HELP uptables_proxy_upstream_failures_total Upstream dial or I/O failures.
# TYPE uptables_proxy_upstream_failures_total counter
uptables_proxy_upstream_failures_total 3
# HELP uptables_proxy_udp_sessions_evicted_total UDP sessions that never got a reply, evicted at the session bound to make room for a new client.
# TYPE uptables_proxy_udp_sessions_evicted_total counter
uptables_proxy_udp_sessions_evicted_total 5
# HELP uptables_nfqueue_malformed_total Kernel messages cut short or with a bad attribute (a malformed packet gets the fail verdict).
# TYPE uptables_nfqueue_malformed_total counter
uptables_nfqueue_malformed_total{queue="3"} 0
# HELP uptables_ruleset_loads_total Successful rule-set loads (start, SIGHUP, control commands).
# TYPE uptables_ruleset_loads_total counter
uptables_ruleset_loads_total 2
# HELP uptables_ruleset_load_failures_total Failed rule-set loads (the running rules stayed).
# TYPE uptables_ruleset_load_failures_total counter
uptables_ruleset_load_failures_total 1
# HELP uptables_ruleset_last_load_timestamp_seconds Unix time of the last successful rule-set load.
# TYPE uptables_ruleset_last_load_timestamp_seconds gauge
uptables_ruleset_last_load_timestamp_seconds 1.7776368e+09
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"uptables_rule_packets_total", "uptables_policy_packets_total", "uptables_recent_entries", "uptables_hashlimit_entries",
		"uptables_conntrack_entries", "uptables_conntrack_new_total", "uptables_nfqueue_verdicts_total", "uptables_nfqueue_panics_total",
		"uptables_nfqueue_overruns_total", "uptables_nfqueue_malformed_total", "uptables_proxy_udp_sessions_evicted_total", "uptables_proxy_connections_total", "uptables_proxy_upstream_failures_total",
		"uptables_ruleset_loads_total", "uptables_ruleset_load_failures_total", "uptables_ruleset_last_load_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	// Every series is consistent with its description (names, label sets, types).
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
}

// The HTTP server serves the private registry on /metrics.
func TestServe(t *testing.T) {
	eng := engine(t)
	reg := NewRegistry(Config{Engine: eng, Started: time.Unix(1777636800, 0)})
	s, err := Listen("127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get("http://" + s.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`uptables_rule_bytes_total{chain="INPUT",rule="2",table="filter",text="-p tcp -m tcp --dport 22 -m recent --set --name SSH --mask 255.255.255.255 --..."} 80`,
		"uptables_start_time_seconds 1.7776368e+09",
		"go_goroutines ", "process_start_time_seconds ",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if bytes.Contains(body, []byte("uptables_proxy_")) || bytes.Contains(body, []byte("uptables_nfqueue_")) {
		t.Error("a data plane that is not running must export no series")
	}
}

// The engine packages do not import client_golang (DESIGN: heavy
// dependencies stay at the edges).
func TestEngineHasNoPrometheus(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/uptables/uptables/internal/netfilter",
		"github.com/uptables/uptables/internal/control", "github.com/uptables/uptables/internal/dataplane/nfqueue",
		"github.com/uptables/uptables/internal/dataplane/proxy").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	if bytes.Contains(out, []byte("prometheus")) {
		t.Error("the engine, the data planes or the control socket import prometheus")
	}
}
