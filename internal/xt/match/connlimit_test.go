package match

import (
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

func TestConnlimit(t *testing.T) {
	psRunCases(t, "connlimit", xt.IPv4, []psCase{
		{args: "--connlimit-above 5", save: "--connlimit-above 5 --connlimit-mask 32 --connlimit-saddr", list: "#conn src/32 > 5"},
		{args: "! --connlimit-above 5 --connlimit-mask 24 --connlimit-daddr", save: "--connlimit-upto 5 --connlimit-mask 24 --connlimit-daddr", list: "#conn dst/24 <= 5"},
		{args: "! --connlimit-upto 5", save: "--connlimit-above 5 --connlimit-mask 32 --connlimit-saddr"},
		{args: "--connlimit-upto 5 --connlimit-mask 0x10", save: "--connlimit-upto 5 --connlimit-mask 16 --connlimit-saddr"},
		{args: "--connlimit-upto 0", save: "--connlimit-upto 0 --connlimit-mask 32 --connlimit-saddr"},
		{args: "--connlimit-above 010", save: "--connlimit-above 8 --connlimit-mask 32 --connlimit-saddr"},
		{args: "--connlimit-above 2 --connlimit-mask 33", save: "--connlimit-above 2 --connlimit-mask 32 --connlimit-saddr"},
		{args: "--connlimit-above 2 --connlimit-mask 0", save: "--connlimit-above 2 --connlimit-mask 0 --connlimit-saddr", list: "#conn src/0 > 2"},
		{args: "--connlimit-above 2 --connlimit-mask 255.255.255.0", save: "--connlimit-above 2 --connlimit-mask 24 --connlimit-saddr"},
		{args: "--connlimit-above 2 --connlimit-mask 255.0.255.0", save: "--connlimit-above 2 --connlimit-mask 32 --connlimit-saddr"},
		{args: "--connlimit-above 4294967295", save: "--connlimit-above 4294967295 --connlimit-mask 32 --connlimit-saddr"},
		{args: "--connlimit-upto 4294967296", err: "connlimit: bad value for option \"--connlimit-upto\", or out of range (0-4294967295).\n"},
		{args: "--connlimit-above -1", err: "connlimit: bad value for option \"--connlimit-above\", or out of range (0-4294967295).\n"},
		{args: "--connlimit-above 2 --connlimit-mask abc", err: "connlimit: bad value for option \"--connlimit-mask\", neither a valid network mask nor valid CIDR (0-32).\n"},
		{args: "--connlimit-above 5 ! --connlimit-mask 8", err: "connlimit: option \"--connlimit-mask\" cannot be inverted.\n"},
		{args: "--connlimit-above 10 --connlimit-saddr --connlimit-daddr", err: "connlimit: option \"--connlimit-saddr\" cannot be used together with \"--connlimit-daddr\".\n"},
		{args: "--connlimit-above 20 --connlimit-upto 10", err: "connlimit: option \"--connlimit-upto\" cannot be used together with \"--connlimit-above\".\n"},
		{args: "--connlimit-saddr --connlimit-daddr", err: "You must specify \"--connlimit-above\" or \"--connlimit-upto\"."},
	})
	psRunCases(t, "connlimit", xt.IPv6, []psCase{
		{args: "--connlimit-above 20", save: "--connlimit-above 20 --connlimit-mask 128 --connlimit-saddr"},
	})
}
