package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/persist"
	"github.com/uptables/uptables/internal/statestore/redisstore"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/match"
)

// hostEngineConfig is the engine configuration of a daemon enforcing on this
// host: interface addresses from the system (MASQUERADE, REDIRECT,
// addrtype, pkttype) read when rules load, TRACE lines with the rule text.
func hostEngineConfig(log *slog.Logger) netfilter.Config {
	return netfilter.Config{
		Logger:     log,
		RuleText:   iptables.RuleText,
		IfaceAddr:  hostIfaceAddr,
		LocalAddrs: hostAddrs,
	}
}

// hostIfaceAddr returns the first address of the family on an interface.
func hostIfaceAddr(name string, fam xt.Family) (netip.Addr, bool) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, false
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			if ad := p.Addr(); ad.Is4() == (fam != xt.IPv6) {
				return ad, true
			}
		}
	}
	return netip.Addr{}, false
}

// hostAddrs lists every interface address of the host.
func hostAddrs() []xt.HostAddr {
	ifcs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []xt.HostAddr
	for _, ifc := range ifcs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				out = append(out, xt.HostAddr{Iface: ifc.Name, Prefix: p})
			}
		}
	}
	return out
}

// stateSaver keeps recent lists and hashlimit tables across restarts.
type stateSaver struct{ s *persist.Saver }

// restoreState loads what the previous run saved in dir into the engine
// (after its rules are loaded, before packets flow) and starts saving
// every minute; dir "off" or "" keeps nothing. A corrupt file stops the
// daemon with the reason rather than silently starting empty.
func restoreState(dir string, eng *netfilter.Engine, log *slog.Logger) (*stateSaver, error) {
	if dir == "" || dir == "off" {
		return &stateSaver{}, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--persist-dir: %w", err)
	}
	rep, err := persist.Load(dir, eng, time.Now())
	if err != nil {
		return nil, fmt.Errorf("restoring state: %w (move the file away to start without it)", err)
	}
	if !rep.NoFile {
		log.Info("state restored", "report", rep.String())
	}
	s, err := persist.StartSaver(persist.SaverConfig{Dir: dir, Engine: eng, Interval: time.Minute, Logger: log})
	if err != nil {
		return nil, err
	}
	return &stateSaver{s: s}, nil
}

// stop saves one last time and ends the periodic saver.
func (s *stateSaver) stop(log *slog.Logger) {
	if s == nil || s.s == nil {
		return
	}
	if err := s.s.Stop(); err != nil {
		log.Error("saving state", "err", err)
	}
}

// openStateStore connects the engine's stateful matches to a shared store
// given as --state URL (redis://, rediss://, valkey://, unix://): recent
// lists and hashlimit tables (or those that share= names) then live in
// Redis/Valkey, shared by every daemon using the same URL. "" keeps the
// in-memory store. It must run before the first Load. Redis being down at
// start is logged, not fatal: packets then get the URL's fail mode until
// it answers.
func openStateStore(rawURL string, eng *netfilter.Engine, log *slog.Logger) (func(), error) {
	if rawURL == "" || rawURL == "memory" {
		return func() {}, nil
	}
	st, err := redisstore.Open(rawURL, log)
	if err != nil {
		return nil, fmt.Errorf("--state: %w", err)
	}
	if err := st.Ping(); err != nil {
		log.Warn("state store unreachable; shared matches answer by the fail mode until it is back", "url", redisstore.Describe(rawURL),
			"shared", st.Options().Share.String(), "err", err)
	} else {
		log.Info("state shared through", "url", redisstore.Describe(rawURL), "shared", st.Options().Share.String())
	}
	if err := eng.Pin(match.NamedStoreKind, match.NamedStoreName, st); err != nil {
		st.Close()
		return nil, err
	}
	return func() { st.Close() }, nil
}
