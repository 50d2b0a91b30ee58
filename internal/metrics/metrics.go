// Package metrics exports a running uptables daemon's counters to
// Prometheus. Everything is read when Prometheus scrapes (a collector over
// the engine's live counters), so the packet path pays nothing. The
// registry is private to the daemon (never prometheus.DefaultRegisterer),
// and this is the only package that imports client_golang: the engine and
// the data planes stay free of it.
//
// Series (all prefixed uptables_):
//
//	rule_packets_total, rule_bytes_total{table,chain,rule,text}    per rule
//	policy_packets_total, policy_bytes_total{table,chain,policy}  built-in chain policies
//	conntrack_entries, conntrack_max, conntrack_{new,invalid,drop,early_drop,insert_failed,expired}_total
//	recent_entries{list}, hashlimit_entries{table}
//	state_store_shared{backend,kind}, state_store_calls_total{result}, state_store_hotdrops_total (--state redis://)
//	nfqueue_packets_total{queue}, nfqueue_verdicts_total{queue,verdict},
//	nfqueue_{panics,undecodable,overruns,read_errors,replies,logs}_total{queue}
//	nfqueue_{cut,cut_rewrites}_total{queue}: packets beyond NFQUEUE's 65531-byte copy, and rewrites of them that got the fail verdict
//	nfqueue_kernel_waiting{queue}, nfqueue_kernel_{queue,user}_dropped_total{queue}: the kernel's own
//	  counters of the queue (/proc/net/netfilter/nfnetlink_queue), read at each scrape
//	proxy_connections_total{outcome}, proxy_connections_active, proxy_upstream_failures_total,
//	proxy_header_errors_total, proxy_overload_total, proxy_packets_total{direction},
//	proxy_datagrams_total{outcome}
//	ruleset_loads_total, ruleset_load_failures_total, ruleset_last_load_timestamp_seconds
//	start_time_seconds
//
// Rule counters are the engine's: they only grow (an iptables -Z through
// the control socket changes what listings show, not these), as
// Prometheus counters must.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/uptables/uptables/internal/control"
	"github.com/uptables/uptables/internal/dataplane/nfqueue"
	"github.com/uptables/uptables/internal/dataplane/proxy"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/match"
)

// RuleTextMax bounds the rule text label (a label value should stay short;
// the rule number identifies the rule, the text helps a human).
const RuleTextMax = 80

// Config says where the collector reads.
type Config struct {
	// Engine is required.
	Engine *netfilter.Engine
	// Loads returns the rule-set load counters (nil = not exported).
	Loads func() control.LoadStats
	// Queues returns the NFQUEUE workers' counters (nfqueue mode).
	Queues func() []*nfqueue.QueueStats
	// Proxy returns the proxy's counters (proxy mode).
	Proxy func() proxy.Stats
	// Started is the daemon's start time (zero = not exported).
	Started time.Time
}

// NewRegistry returns a private registry holding the uptables collector
// and the Go runtime and process collectors.
func NewRegistry(cfg Config) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(cfg),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("uptables_"+name, help, labels, nil)
}

var (
	dRulePkts   = desc("rule_packets_total", "Packets that matched the rule (iptables -Z resets it, as in the kernel).", "table", "chain", "rule", "text")
	dRuleBytes  = desc("rule_bytes_total", "Bytes of the packets that matched the rule.", "table", "chain", "rule", "text")
	dPolPkts    = desc("policy_packets_total", "Packets that reached the end of a built-in chain and took its policy.", "table", "chain", "policy")
	dPolBytes   = desc("policy_bytes_total", "Bytes of the packets that took a built-in chain's policy.", "table", "chain", "policy")
	dCtEntries  = desc("conntrack_entries", "Connection-table entries in use (nf_conntrack_count).")
	dCtMax      = desc("conntrack_max", "Connection-table capacity (nf_conntrack_max).")
	dCtNew      = desc("conntrack_new_total", "Connections created.")
	dCtInvalid  = desc("conntrack_invalid_total", "Packets conntrack found INVALID.")
	dCtDrop     = desc("conntrack_drop_total", "Packets dropped because the table was full and nothing could be early-dropped.")
	dCtEarly    = desc("conntrack_early_drop_total", "Entries evicted early to make room.")
	dCtInsFail  = desc("conntrack_insert_failed_total", "Entries that lost a race to confirm.")
	dCtExpired  = desc("conntrack_expired_total", "Entries removed at expiry by the reaper.")
	dRecent     = desc("recent_entries", "Addresses in a recent list.", "list")
	dHashlimit  = desc("hashlimit_entries", "Buckets in use in a hashlimit table.", "table")
	dQPackets   = desc("nfqueue_packets_total", "Packets read from the queue.", "queue")
	dQVerdicts  = desc("nfqueue_verdicts_total", "Verdicts given, by verdict.", "queue", "verdict")
	dQPanics    = desc("nfqueue_panics_total", "Recovered panics while handling a packet (fail verdict given).", "queue")
	dQUndec     = desc("nfqueue_undecodable_total", "Payloads that did not decode (fail verdict given).", "queue")
	dQOverruns  = desc("nfqueue_overruns_total", "Netlink receive buffer overruns (packets lost to the fail-open/closed verdict).", "queue")
	dQMalformed = desc("nfqueue_malformed_total", "Kernel messages cut short or with a bad attribute (a malformed packet gets the fail verdict).", "queue")
	dQReadErr   = desc("nfqueue_read_errors_total", "Queue read errors.", "queue")
	dQReplies   = desc("nfqueue_replies_total", "REJECT replies sent.", "queue")
	dQLogs      = desc("nfqueue_logs_total", "LOG lines written.", "queue")
	dQCut       = desc("nfqueue_cut_total", "Packets longer than NFQUEUE's 65531-byte copy, decided on the copy and their real length.", "queue")
	dQCutRew    = desc("nfqueue_cut_rewrites_total", "Rewrites of packets longer than the copy, which cannot be handed back (fail verdict given).", "queue")
	dQKWaiting  = desc("nfqueue_kernel_waiting", "Packets waiting in the kernel's queue for a verdict (nfnetlink_queue).", "queue")
	dQKQDrop    = desc("nfqueue_kernel_queue_dropped_total", "Packets the kernel dropped because the queue was full (fail-closed; fail-open accepts them uncounted).", "queue")
	dQKUDrop    = desc("nfqueue_kernel_user_dropped_total", "Packets the kernel could not deliver to the socket (receive buffer full; fail verdict applied).", "queue")
	dPConns     = desc("proxy_connections_total", "Client connections by outcome (cut: admitted, later refused).", "outcome")
	dPActive    = desc("proxy_connections_active", "Admitted connections still open.")
	dPUpstream  = desc("proxy_upstream_failures_total", "Upstream dial or I/O failures.")
	dPHeader    = desc("proxy_header_errors_total", "Bad, missing or untrusted PROXY protocol headers.")
	dPOverload  = desc("proxy_overload_total", "Connections or UDP sessions refused at the configured bound.")
	dPPackets   = desc("proxy_packets_total", "Synthetic packets run through the engine, by direction (refused: verdict not ACCEPT).", "direction")
	dPDatagrams = desc("proxy_datagrams_total", "UDP datagrams by outcome.", "outcome")
	dPEvicted   = desc("proxy_udp_sessions_evicted_total", "UDP sessions that never got a reply, evicted at the session bound to make room for a new client.")
	dLoads      = desc("ruleset_loads_total", "Successful rule-set loads (start, SIGHUP, control commands).")
	dLoadFail   = desc("ruleset_load_failures_total", "Failed rule-set loads (the running rules stayed).")
	dLastLoad   = desc("ruleset_last_load_timestamp_seconds", "Unix time of the last successful rule-set load.")
	dStart      = desc("start_time_seconds", "Unix time the daemon started.")
)

// Collector is the uptables collector (see the package comment).
type Collector struct{ cfg Config }

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns the collector over cfg.
func NewCollector(cfg Config) *Collector { return &Collector{cfg: cfg} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dRulePkts, dRuleBytes, dPolPkts, dPolBytes, dCtEntries, dCtMax, dCtNew, dCtInvalid,
		dCtDrop, dCtEarly, dCtInsFail, dCtExpired, dRecent, dHashlimit, dQPackets, dQVerdicts, dQPanics, dQUndec, dQOverruns,
		dQMalformed, dQReadErr, dQReplies, dQLogs, dQCut, dQCutRew, dQKWaiting, dQKQDrop, dQKUDrop, dPConns, dPActive, dPUpstream, dPHeader, dPOverload, dPPackets, dPDatagrams, dPEvicted,
		dLoads, dLoadFail, dLastLoad, dStart} {
		ch <- d
	}
	for _, d := range sharedStateDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one read of every counter.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	eng := c.cfg.Engine
	for _, t := range eng.Ruleset().Tables {
		for _, chn := range t.Chains {
			if chn.BuiltIn {
				pol := chn.Policy.String()
				counter(dPolPkts, chn.Counters.Packets, t.Name, chn.Name, pol)
				counter(dPolBytes, chn.Counters.Bytes, t.Name, chn.Name, pol)
			}
			for i, r := range chn.Rules {
				num := strconv.Itoa(i + 1)
				text := ruleText(iptables.FormatRule(chn.Name, r, false), chn.Name)
				counter(dRulePkts, r.Counters.Packets, t.Name, chn.Name, num, text)
				counter(dRuleBytes, r.Counters.Bytes, t.Name, chn.Name, num, text)
			}
		}
	}
	if ct := eng.ConntrackTable(); ct != nil {
		st := ct.Stats()
		gauge(dCtEntries, float64(ct.Count()))
		gauge(dCtMax, float64(ct.Config().Max))
		counter(dCtNew, st.New.Load())
		counter(dCtInvalid, st.Invalid.Load())
		counter(dCtDrop, st.Drop.Load())
		counter(dCtEarly, st.EarlyDrop.Load())
		counter(dCtInsFail, st.InsertFailed.Load())
		counter(dCtExpired, st.Expired.Load())
	}
	named := eng.Named()
	for _, n := range eng.SharedNames(match.NamedRecentKind) {
		if l, ok := match.RecentListByName(named, n); ok {
			gauge(dRecent, float64(l.Len()), n)
		}
	}
	for _, n := range eng.SharedNames(match.NamedHashlimitKind4) {
		if t, ok := match.HashlimitTableByName(named, xt.IPv4, n); ok {
			gauge(dHashlimit, float64(t.Len()), n)
		}
	}
	collectShared(eng, ch)
	if c.cfg.Queues != nil {
		for _, q := range c.cfg.Queues() {
			n := strconv.Itoa(int(q.Num))
			counter(dQPackets, q.Packets.Load(), n)
			counter(dQVerdicts, q.Accepted.Load(), n, "accept")
			counter(dQVerdicts, q.Dropped.Load(), n, "drop")
			counter(dQVerdicts, q.Requeued.Load(), n, "requeue")
			counter(dQPanics, q.Panics.Load(), n)
			counter(dQUndec, q.Undecodable.Load(), n)
			counter(dQReadErr, q.ReadErrors.Load(), n)
			counter(dQReplies, q.Replies.Load(), n)
			counter(dQLogs, q.Logs.Load(), n)
			counter(dQCut, q.Cut.Load(), n)
			counter(dQCutRew, q.CutRewrites.Load(), n)
			gauge(dQKWaiting, float64(q.KernelWaiting.Load()), n)
			counter(dQKQDrop, q.KernelQueueDropped.Load(), n)
			counter(dQKUDrop, q.KernelUserDropped.Load(), n)
			var over, malformed uint64
			if cs := q.ConnStats(); cs != nil {
				over, malformed = cs.Overruns.Load(), cs.Malformed.Load()
			}
			counter(dQOverruns, over, n)
			counter(dQMalformed, malformed, n)
		}
	}
	if c.cfg.Proxy != nil {
		p := c.cfg.Proxy()
		counter(dPConns, p.ConnsAccepted, "accepted")
		counter(dPConns, p.ConnsDropped, "dropped")
		counter(dPConns, p.ConnsReset, "reset")
		counter(dPConns, p.ConnsClosed, "closed")
		counter(dPConns, p.ConnsCut, "cut")
		gauge(dPActive, float64(p.ConnsActive))
		counter(dPUpstream, p.UpstreamErrors)
		counter(dPHeader, p.ProxyHeaderErrs)
		counter(dPOverload, p.Overload)
		counter(dPPackets, p.PacketsIn, "in")
		counter(dPPackets, p.PacketsOut, "out")
		counter(dPPackets, p.PacketsRefused, "refused")
		counter(dPDatagrams, p.DatagramsIn, "in")
		counter(dPDatagrams, p.DatagramsOut, "out")
		counter(dPDatagrams, p.DatagramsDrop, "dropped")
		counter(dPEvicted, p.SessionsEvicted)
	}
	if c.cfg.Loads != nil {
		ls := c.cfg.Loads()
		counter(dLoads, ls.Loads)
		counter(dLoadFail, ls.Failures)
		if !ls.LastLoad.IsZero() {
			gauge(dLastLoad, float64(ls.LastLoad.UnixNano())/1e9)
		}
	}
	if !c.cfg.Started.IsZero() {
		gauge(dStart, float64(c.cfg.Started.UnixNano())/1e9)
	}
}

// ruleText is the rule as -S prints it without "-A CHAIN ", cut to
// RuleTextMax bytes (with "..." when cut).
func ruleText(spec, chain string) string {
	s := spec
	if p := "-A " + chain + " "; len(s) >= len(p) && s[:len(p)] == p {
		s = s[len(p):]
	} else if s == "-A "+chain {
		s = ""
	}
	if len(s) > RuleTextMax {
		s = s[:RuleTextMax-3] + "..."
	}
	return s
}

// Server serves /metrics over HTTP.
type Server struct {
	ln   net.Listener
	http *http.Server
	done chan struct{}
}

// Listen binds addr (host:port, e.g. 127.0.0.1:9595) and serves reg's
// metrics on /metrics.
func Listen(addr string, reg *prometheus.Registry, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn), Registry: reg}))
	s := &Server{ln: ln, done: make(chan struct{}), http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	return s, nil
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server (requests in progress get 5 s).
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	<-s.done
	return err
}
