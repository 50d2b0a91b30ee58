package match

import (
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

func TestICMP(t *testing.T) {
	psRunCases(t, "icmp", xt.IPv4, []psCase{
		{args: "--icmp-type any", save: "--icmp-type any", list: "icmptype 255", listN: "icmp any"},
		{args: "--icmp-type echo-request", save: "--icmp-type 8", list: "icmptype 8", listN: "icmp echo-request"},
		{args: "--icmp-type pong", save: "--icmp-type 0", listN: "icmp echo-reply"},
		{args: "--icmp-type port-unreachable", save: "--icmp-type 3/3", list: "icmptype 3 code 3", listN: "icmp port-unreachable"},
		{args: "--icmp-type 255/255", save: "--icmp-type any", listN: "icmptype 255 code 255"},
		{args: "--icmp-type 8/0", save: "--icmp-type 8/0", listN: "icmptype 8 code 0"},
		{args: "--icmp-type TOS-host-redirect", save: "--icmp-type 5/3"},
		{args: "--icmp-type ECHO-REQUEST", save: "--icmp-type 8"},
		{args: "--icmp-type 0x8", save: "--icmp-type 8"},
		{args: "--icmp-type 8/0x3", save: "--icmp-type 8/3"},
		{args: "! --icmp-type 8", save: "! --icmp-type 8", list: "icmp !type 8", listN: "icmp !echo-request"},
		{args: "! --icmp-type 8/5", save: "! --icmp-type 8/5", listN: "icmp !type 8 code 5"},
		{args: "--icmp-type foo", err: "Unknown ICMP type `foo'"},
		{args: "--icmp-type 256/3", err: "Unknown ICMP type `256/3'"},
		{args: "--icmp-type 3/256", err: "Unknown ICMP code `3/256'"},
		{args: "--icmp-type 3/", err: "Unknown ICMP code `3/'"},
		{args: "--icmp-type 08", err: "unknown character 8"},
		{args: "--icmp-type 3/1a", err: "unknown character a"},
		{args: "--icmp-type -0", err: "Unknown ICMP type `-0'"},
		{args: "--icmp-type ''", err: "Ambiguous ICMP type `': `any' or `echo-reply'?"},
		{args: "--icmp-type p", err: "Ambiguous ICMP type `p': `pong' or `protocol-unreachable'?"},
		{args: "--icmp-type ttl", err: "Ambiguous ICMP type `ttl': `ttl-exceeded' or `ttl-zero-during-transit'?"},
		{args: "--icmp-type t", err: "Ambiguous ICMP type `t': `TOS-network-unreachable' or `TOS-host-unreachable'?"},
		{args: "--icmp-type 8 --icmp-type 0", err: "icmp: option \"--icmp-type\" can only be used once.\n"},
		{args: "", err: "icmp: option \"--icmp-type\" must be specified\n"},
	})
	m, _ := psRun(t, "icmp", xt.IPv4, 6, "--icmp-type 8")
	if err := m.(*ICMP).Check(&xt.CheckContext{Proto: 6}); err == nil {
		t.Errorf("-p tcp -m icmp should be refused by the kernel")
	}
}
