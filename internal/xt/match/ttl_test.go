package match

import (
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

func TestTTL(t *testing.T) {
	psRunCases(t, "ttl", xt.IPv4, []psCase{
		{args: "--ttl-eq 5", save: "--ttl-eq 5", list: "TTL match TTL == 5"},
		{args: "--ttl 5", save: "--ttl-eq 5"},
		{args: "! --ttl-eq 5", save: "! --ttl-eq 5", list: "TTL match TTL != 5"},
		{args: "! --ttl 5", save: "! --ttl-eq 5"},
		{args: "--ttl-lt 5", save: "--ttl-lt 5", list: "TTL match TTL < 5"},
		{args: "--ttl-gt 0", save: "--ttl-gt 0", list: "TTL match TTL > 0"},
		{args: "--ttl 0x10", save: "--ttl-eq 16"},
		{args: "! --ttl-lt 5", err: "ttl: option \"--ttl-lt\" cannot be inverted.\n"},
		{args: "--ttl-eq 5 --ttl-lt 6", err: "ttl: option \"--ttl-lt\" cannot be used together with \"--ttl-eq\".\n"},
		{args: "--ttl-lt 6 --ttl-gt 3", err: "ttl: option \"--ttl-lt\" cannot be used together with \"--ttl-gt\".\n"},
		{args: "--ttl-eq 5 --ttl-eq 6", err: "ttl: option \"--ttl-eq\" can only be used once.\n"},
		{args: "--ttl-eq 256", err: "ttl: bad value for option \"--ttl-eq\", or out of range (0-255).\n"},
		{args: "--ttl-eq -1", err: "ttl: bad value for option \"--ttl-eq\", or out of range (0-255).\n"},
		{args: "", err: "TTL match: You must specify one of `--ttl-eq', `--ttl-lt', `--ttl-gt"},
	})
}
