package match

import (
	"errors"
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

// Expected texts were taken from iptables 1.8.9 (nf_tables) in a namespace.
func TestTCP(t *testing.T) {
	psRunCases(t, "tcp", xt.IPv4, []psCase{
		{args: "--dport 80", proto: 6, save: "--dport 80", list: "tcp dpt:80", listN: "tcp dpt:http"},
		{args: "--syn --dport 80:90", proto: 6, save: "--dport 80:90 --tcp-flags FIN,SYN,RST,ACK SYN", list: "tcp dpts:80:90 flags:0x17/0x02", listN: "tcp dpts:http:90 flags:FIN,SYN,RST,ACK/SYN"},
		{args: "--sport 5:5 --dport 0:65535", proto: 6, save: "--sport 5", list: "tcp spt:5"},
		{args: "--sport 1024:", proto: 6, save: "--sport 1024:65535"},
		{args: "--sport :http", proto: 6, save: "--sport 0:80"},
		{args: "--sport 0x10", proto: 6, save: "--sport 16"},
		{args: "! --sport 1:1000 ! --dport 22 ! --tcp-option 2 ! --tcp-flags ALL NONE", proto: 6,
			save: "! --sport 1:1000 ! --dport 22 ! --tcp-option 2 ! --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE",
			list: "tcp spts:!1:1000 dpt:!22 option=!2 flags:!0x3F/0x00", listN: "tcp spts:!tcpmux:1000 dpt:!ssh option=!2 flags:!FIN,SYN,RST,PSH,ACK,URG/NONE"},
		{args: "--tcp-flags ACK ACK --dport 1 --sport 2 --tcp-option 5", proto: 6, save: "--sport 2 --dport 1 --tcp-option 5 --tcp-flags ACK ACK"},
		{args: "--tcp-flags syn,ack,fin SYN", proto: 6, save: "--tcp-flags FIN,SYN,ACK SYN"},
		{args: "! --syn", proto: 6, save: "! --tcp-flags FIN,SYN,RST,ACK SYN", list: "tcp flags:!0x17/0x02"},
		{args: "--tcp-flags NONE NONE", proto: 6, save: "", list: "tcp"},
		{args: "! --sport : --dport 5", proto: 6, save: "--dport 5", list: "tcp dpt:5"},
		{args: "--tcp-option 2 ! --dport 0:65535", proto: 6, save: "--tcp-option 2", list: "tcp dpts:!0:65535 option=2"},
		{args: "--tcp-option 2 --tcp-flags NONE SYN", proto: 6, save: "--tcp-option 2", list: "tcp option=2"},
		{args: "--tcp-option 2 ! --tcp-flags NONE NONE", proto: 6, save: "--tcp-option 2 ! --tcp-flags NONE NONE"},
		{args: "--sport 10:5", proto: 6, err: "invalid portrange (min > max)"},
		{args: "--sport 65536", proto: 6, err: "invalid port/service `65536' specified"},
		{args: "--sport -1", proto: 6, err: "invalid port/service `-1' specified"},
		{args: "--sport 5:6:7", proto: 6, err: "invalid port/service `6:7' specified"},
		{args: "--sport 5 --source-port 6", proto: 6, err: "Only one `--source-port' allowed"},
		{args: "--syn --tcp-flags SYN SYN", proto: 6, err: "Only one of `--syn' or `--tcp-flags'  allowed"},
		{args: "--tcp-option 0", proto: 6, err: "Bad TCP option \"0\""},
		{args: "--tcp-option 1 --tcp-option 2", proto: 6, err: "Only one `--tcp-option' allowed"},
		{args: "--tcp-flags FOO SYN", proto: 6, err: "Unknown TCP flag `FOO'"},
		{args: "--tcp-flags SYN", proto: 6, err: "--tcp-flags requires two args."},
		{args: "--dport 1", proto: 0, err: "TCP match requires '-p tcp'"},
		{args: "--dport 1", proto: 17, err: "TCP match requires '-p tcp'"},
	})
}

func TestTCPNativeAndOmitted(t *testing.T) {
	for _, c := range []struct {
		args            string
		native, omitted bool
		checkErr        bool // with -p udp
	}{
		{"", false, false, true},
		{"--tcp-option 2", false, false, true},
		{"--dport 5", true, false, false},
		{"! --sport :", true, true, false},
		{"! --tcp-flags NONE NONE", true, true, false},
		{"--tcp-flags NONE SYN", true, true, false},
	} {
		m, err := psRun(t, "tcp", xt.IPv4, 6, c.args)
		if err != nil {
			t.Fatalf("%s: %v", c.args, err)
		}
		tcp := m.(*TCP)
		if tcp.Native != c.native || tcp.Omitted() != c.omitted {
			t.Errorf("%q: native %v omitted %v, want %v %v", c.args, tcp.Native, tcp.Omitted(), c.native, c.omitted)
		}
		err = tcp.Check(&xt.CheckContext{Family: xt.IPv4, Proto: 17})
		var ke *xt.KernelError
		if c.checkErr != errors.As(err, &ke) {
			t.Errorf("%q: Check with -p udp = %v", c.args, err)
		}
		if err := tcp.Check(&xt.CheckContext{Family: xt.IPv4, Proto: 6, InvProto: true}); c.checkErr && err == nil {
			t.Errorf("%q: Check with ! -p tcp passed", c.args)
		}
	}
}
