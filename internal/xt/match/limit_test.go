package match

import (
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

func TestLimit(t *testing.T) {
	psRunCases(t, "limit", xt.IPv4, []psCase{
		{args: "", save: "--limit 3/hour", list: "limit: avg 3/hour burst 5"},
		{args: "--limit 5/s --limit-burst 20", save: "--limit 5/sec --limit-burst 20", list: "limit: avg 5/sec burst 20"},
		{args: "--limit 61/m", save: "--limit 61/min"},
		{args: "--limit 86401/d", save: "--limit 1/sec", list: "limit: avg 1/sec burst 5"},
		{args: "--limit 100/d", save: "--limit 100/day"},
		{args: "--limit 7", save: "--limit 7/sec"},
		{args: "--limit 10/minute", save: "--limit 10/min"},
		{args: "--limit-burst 0", save: "--limit 3/hour", list: "limit: avg 3/hour burst 5"},
		{args: "--limit 3/hour --limit-burst 5", save: "--limit 3/hour"},
		{args: "--limit 10000/s", save: "--limit 10000/sec"},
		{args: "--limit 1/SEC", save: "--limit 1/sec"},
		{args: "--limit 1/mi", save: "--limit 1/min"},
		{args: "--limit 2/h", save: "--limit 2/hour"},
		{args: "--limit 1x/s", save: "--limit 1/sec"},
		{args: "--limit-burst 0x10", save: "--limit 3/hour --limit-burst 16"},
		{args: "--limit 0/s", err: "bad rate \"0/s\"'"},
		{args: "--limit 1/week", err: "bad rate \"1/week\"'"},
		{args: "--limit 1/", err: "bad rate \"1/\"'"},
		{args: "--limit 3/hours", err: "bad rate \"3/hours\"'"},
		{args: "--limit 0x10/s", err: "bad rate \"0x10/s\"'"},
		{args: "--limit 4294967296/d", err: "bad rate \"4294967296/d\"'"},
		{args: "--limit 10001/s", err: "Rate too fast \"10001/s\""},
		{args: "! --limit 1/s", err: "limit: option \"--limit\" cannot be inverted.\n"},
		{args: "--limit-burst 10001", err: "limit: bad value for option \"--limit-burst\", or out of range (0-10000).\n"},
		{args: "--limit 1/s --limit 2/s", err: "limit: option \"--limit\" can only be used once.\n"},
	})
}

func TestLimitBucket(t *testing.T) {
	m, err := psRun(t, "limit", xt.IPv4, 0, "--limit 86401/d --limit-burst 10")
	if err != nil {
		t.Fatal(err)
	}
	l := m.(*Limit)
	// nft holds "rate 1/second burst 10": 1e9 ns per packet, 10 in the bucket.
	if l.Rate != 1 || l.UnitSeconds != 1 || l.CostNS != 1e9 || l.BurstNS != 10e9 {
		t.Errorf("bucket = rate %d/%ds cost %d burst %d", l.Rate, l.UnitSeconds, l.CostNS, l.BurstNS)
	}
}
