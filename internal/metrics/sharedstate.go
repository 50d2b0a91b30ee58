package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt/match"
)

// The shared state store's series (--state redis://...): exported only
// when the engine's stateful matches use one, so that an alert on errors
// or skipped calls tells that the fleet's recent lists or hashlimit
// tables are answering by the fail mode.
var (
	dStoreShared   = desc("state_store_shared", "1 for each kind of state kept in the shared store (recent, hashlimit).", "backend", "kind")
	dStoreCalls    = desc("state_store_calls_total", "Calls to the shared state store by result (ok, error, skipped: answered by the fail mode during a backoff).", "result")
	dStoreHotdrops = desc("state_store_hotdrops_total", "Packets dropped because the shared state store was unreachable (fail=closed).")
)

var sharedStateDescs = []*prometheus.Desc{dStoreShared, dStoreCalls, dStoreHotdrops}

// collectShared reports the engine's shared state store, if it has one.
func collectShared(eng *netfilter.Engine, ch chan<- prometheus.Metric) {
	v, ok := eng.Shared(match.NamedStoreKind, match.NamedStoreName)
	if !ok {
		return
	}
	ss, ok := v.(statestore.SharedStore)
	if !ok {
		return
	}
	st := ss.SharedStatus()
	for _, k := range st.Shared {
		ch <- prometheus.MustNewConstMetric(dStoreShared, prometheus.GaugeValue, 1, st.Backend, k)
	}
	for _, c := range []struct {
		result string
		v      uint64
	}{{"ok", st.Calls}, {"error", st.Errors}, {"skipped", st.Skipped}} {
		ch <- prometheus.MustNewConstMetric(dStoreCalls, prometheus.CounterValue, float64(c.v), c.result)
	}
	ch <- prometheus.MustNewConstMetric(dStoreHotdrops, prometheus.CounterValue, float64(st.Hotdrops))
}
