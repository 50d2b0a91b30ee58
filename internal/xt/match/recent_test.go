package match

import (
	"errors"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

func TestRecent(t *testing.T) {
	psRunCases(t, "recent", xt.IPv4, []psCase{
		{args: "--set", save: "--set --name DEFAULT --mask 255.255.255.255 --rsource", list: "recent: SET name: DEFAULT side: source mask: 255.255.255.255"},
		{args: "! --rcheck --seconds 10 --reap --hitcount 3 --rttl --name foo --mask 255.255.0.0 --rdest",
			save: "! --rcheck --seconds 10 --reap --hitcount 3 --rttl --name foo --mask 255.255.0.0 --rdest",
			list: "! recent: CHECK seconds: 10 reap hit_count: 3 TTL-Match name: foo side: dest mask: 255.255.0.0"},
		{args: "--name BAD_HTTP_ACCESS --update --seconds 60 --hitcount 100", save: "--update --seconds 60 --hitcount 100 --name BAD_HTTP_ACCESS --mask 255.255.255.255 --rsource",
			list: "recent: UPDATE seconds: 60 hit_count: 100 name: BAD_HTTP_ACCESS side: source mask: 255.255.255.255"},
		{args: "--remove --rsource", save: "--remove --name DEFAULT --mask 255.255.255.255 --rsource"},
		{args: "--rcheck --rsource --rdest", save: "--rcheck --name DEFAULT --mask 255.255.255.255 --rdest"},
		{args: "--rcheck --mask 16", save: "--rcheck --name DEFAULT --mask 0.0.0.16 --rsource"},
		{args: "--rcheck --hitcount 0", save: "--rcheck --name DEFAULT --mask 255.255.255.255 --rsource"},
		{args: "! --set", save: "! --set --name DEFAULT --mask 255.255.255.255 --rsource"},
		{args: "--rcheck --reap", err: "recent: option \"--reap\" also requires \"--seconds\".\n"},
		{args: "--set --reap", err: "recent: option \"--reap\" also requires \"--seconds\".\n"},
		{args: "--seconds 10", err: "recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'"},
		{args: "--set --rcheck", err: "recent: option \"--set\" cannot be used together with \"--rcheck\".\n"},
		{args: "--update --remove", err: "recent: option \"--update\" cannot be used together with \"--remove\".\n"},
		{args: "--set --rttl", err: "recent: option \"--rttl\" cannot be used together with \"--set\".\n"},
		{args: "--rcheck --seconds 0", err: "recent: bad value for option \"--seconds\", or out of range (1-4294967295).\n"},
		{args: "--rcheck --hitcount 4294967296", err: "recent: bad value for option \"--hitcount\", or out of range (0-4294967295).\n"},
		{args: "! --seconds 5 --rcheck", err: "recent: option \"--seconds\" cannot be inverted.\n"},
		{args: "--set --set", err: "recent: option \"--set\" can only be used once.\n"},
	})
	psRunCases(t, "recent", xt.IPv6, []psCase{
		{args: "--set", save: "--set --name DEFAULT --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource"},
	})
}

func TestRecentKernelCheck(t *testing.T) {
	for _, c := range []struct {
		args string
		ok   bool
	}{
		{"--rcheck --hitcount 65535", true},
		{"--rcheck --hitcount 65536", false},
		{"--set --seconds 10", false},
		{"--remove --hitcount 2", false},
		{"--rcheck --name a/b", false},
		{"--rcheck --name ..", false},
		{"--rcheck --name ''", false},
		{"--update --seconds 5 --reap", true},
	} {
		m, err := psRun(t, "recent", xt.IPv4, 0, c.args)
		if err != nil {
			t.Fatalf("%s: %v", c.args, err)
		}
		err = m.(xt.Checker).Check(&xt.CheckContext{Family: xt.IPv4, Table: "filter"})
		var ke *xt.KernelError
		if c.ok != (err == nil) || err != nil && !errors.As(err, &ke) {
			t.Errorf("%s: Check = %v, want ok=%v", c.args, err, c.ok)
		}
	}
	long := strings.Repeat("a", 200)
	m, _ := psRun(t, "recent", xt.IPv4, 0, "--set --name "+long)
	if n := m.(*Recent).Name; len(n) != RecentNameMax {
		t.Errorf("200-char name kept %d chars, want %d", len(n), RecentNameMax)
	}
}
