package match

import (
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

func TestUDP(t *testing.T) {
	psRunCases(t, "udp", xt.IPv4, []psCase{
		{args: "--sport 1024:", proto: 17, save: "--sport 1024:65535", list: "udp spts:1024:65535"},
		{args: "! --sport 1 --dport 65535", proto: 17, save: "! --sport 1 --dport 65535", list: "udp spt:!1 dpt:65535"},
		{args: "--sport 10:5", proto: 17, save: "--sport 10:5", list: "udp spts:10:5"},
		{args: "--sport 0:65535", proto: 17, save: "", list: "udp"},
		{args: "--sport 65536", proto: 17, save: "--sport 0"},
		{args: "--sport 1:65536", proto: 17, save: "--sport 1:0"},
		{args: "--sport ''", proto: 17, save: "--sport 0"},
		{args: "--sport ftp-data:ssh", proto: 17, save: "--sport 20:22"},
		{args: "--destination-port domain", proto: 17, save: "--dport 53", listN: "udp dpt:domain"},
		{args: "--sport -1", proto: 17, err: "Port \"-1\" does not resolve to anything.\n"},
		{args: "--sport 0x10", proto: 17, err: "Port \"0x10\" does not resolve to anything.\n"},
		{args: "--sport :5:6", proto: 17, err: "udp: Too many components for option \"--source-port\" (max: 2)\n"},
		{args: "--sport 5 --sport 6", proto: 17, err: "udp: option \"--source-port\" can only be used once.\n"},
		{args: "--dport 1", proto: 136, err: "UDP match requires '-p udp'"},
	})
	m, _ := psRun(t, "udp", xt.IPv4, 17, "! --sport : ! --dport 0:65535")
	if u := m.(*UDP); !u.Omitted() {
		t.Errorf("inverted full ranges should leave nothing in the nft rule")
	}
	m, _ = psRun(t, "udp", xt.IPv4, 6, "")
	if err := m.(*UDP).Check(&xt.CheckContext{Proto: 6}); err == nil {
		t.Errorf("-p tcp -m udp should be refused by the kernel")
	}
}
