package match

import (
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

func TestLength(t *testing.T) {
	psRunCases(t, "length", xt.IPv4, []psCase{
		{args: "--length 1", save: "--length 1", list: "length 1"},
		{args: "--length :2", save: "--length 0:2"},
		{args: "--length 4:", save: "--length 4:65535"},
		{args: "--length 0:65535", save: "--length 0:65535"},
		{args: "! --length 5:10", save: "! --length 5:10", list: "length !5:10"},
		{args: "--length ''", save: "--length 0"},
		{args: "--length :", save: "--length 0:65535"},
		{args: "--length 0x10:0x20", save: "--length 16:32"},
		{args: "--length 010", save: "--length 8"},
		{args: "--length 200:100", save: "--length 200:100"},
		{args: "--length 0:65536", err: "length: bad value for option \"--length\" near \"65536\", or out of range (0-65535).\n"},
		{args: "--length -1:65535", err: "length: bad value for option \"--length\" near \"-1:65535\", or out of range (0-65535).\n"},
		{args: "--length 5::", err: "length: Too many components for option \"--length\" (max: 2)\n"},
		{args: "--length 5x:6", err: "length: Argument to \"--length\" has unexpected characters near \"x:6\".\n"},
		{args: "--length 5:6x", err: "length: Argument to \"--length\" has unexpected characters near \"x\".\n"},
		{args: "--length 5 --length 6", err: "length: option \"--length\" can only be used once.\n"},
		{args: "", err: "length: option \"--length\" must be specified\n"},
	})
}
