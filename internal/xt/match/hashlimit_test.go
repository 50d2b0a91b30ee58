package match

import (
	"errors"
	"syscall"
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

func TestHashlimit(t *testing.T) {
	psRunCases(t, "hashlimit", xt.IPv4, []psCase{
		{args: "--hashlimit-upto 5/sec --hashlimit-name foo", save: "--hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name foo", list: "limit: up to 5/sec burst 5"},
		{args: "--hashlimit-above 5/min --hashlimit-burst 10 --hashlimit-mode dstport,srcip --hashlimit-name bar --hashlimit-srcmask 24",
			save: "--hashlimit-above 5/min --hashlimit-burst 10 --hashlimit-mode srcip,dstport --hashlimit-name bar --hashlimit-srcmask 24",
			list: "limit: above 5/min burst 10 mode srcip-dstport srcmask 24"},
		{args: "--hashlimit-upto 1kb/s --hashlimit-mode dstip --hashlimit-name bytes", save: "--hashlimit-upto 1kb/s --hashlimit-mode dstip --hashlimit-name bytes", list: "limit: up to 1kb/s mode dstip"},
		{args: "--hashlimit 5/s --hashlimit-name old --hashlimit-htable-size 1024 --hashlimit-htable-max 2048 --hashlimit-htable-expire 5000 --hashlimit-htable-gcinterval 500",
			save: "--hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name old --hashlimit-htable-size 1024 --hashlimit-htable-max 2048 --hashlimit-htable-gcinterval 500 --hashlimit-htable-expire 5000",
			list: "limit: up to 5/sec burst 5 htable-size 1024 htable-max 2048 htable-gcinterval 500 htable-expire 5000"},
		{args: "! --hashlimit-upto 5/s --hashlimit-name n", save: "--hashlimit-above 5/sec --hashlimit-burst 5 --hashlimit-name n"},
		{args: "! --hashlimit-above 5/s --hashlimit-name n", save: "--hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name n"},
		{args: "--hashlimit-upto 4kb/s --hashlimit-burst 400kb --hashlimit-name mini5", save: "--hashlimit-upto 4kb/s --hashlimit-burst 400kb --hashlimit-name mini5", list: "limit: up to 4kb/s burst 400kb"},
		{args: "--hashlimit-upto 10mb/s --hashlimit-name mini6 --hashlimit-dstmask 16 --hashlimit-srcmask 32", save: "--hashlimit-upto 10mb/s --hashlimit-name mini6 --hashlimit-dstmask 16"},
		{args: "--hashlimit-upto 123456b/s --hashlimit-burst 1mb --hashlimit-name mini7", save: "--hashlimit-upto 123456b/s --hashlimit-burst 1mb --hashlimit-name mini7"},
		{args: "--hashlimit-upto 5kb/s --hashlimit-burst 6kb --hashlimit-name b --hashlimit-htable-expire 60000", save: "--hashlimit-upto 5kb/s --hashlimit-burst 10kb --hashlimit-name b"},
		{args: "--hashlimit-upto 5kb/s --hashlimit-name b --hashlimit-htable-expire 15000", save: "--hashlimit-upto 5kb/s --hashlimit-name b"},
		{args: "--hashlimit-upto 40/sec --hashlimit-burst 20 --hashlimit-mode srcip --hashlimit-name rate3 --hashlimit-rate-match --hashlimit-rate-interval 10",
			save: "--hashlimit-upto 40/sec --hashlimit-burst 20 --hashlimit-mode srcip --hashlimit-name rate3 --hashlimit-rate-match --hashlimit-rate-interval 10",
			list: "limit: up to 4/sec burst 20 mode srcip rate-match rate-interval 10"},
		{args: "--hashlimit-upto 5/min --hashlimit-name b --hashlimit-rate-match",
			save: "--hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name b --hashlimit-htable-expire 60000 --hashlimit-rate-match --hashlimit-rate-interval 60",
			list: "limit: up to 5/min burst 5 rate-match rate-interval 60"},
		{args: "--hashlimit-upto 7/hour --hashlimit-name b --hashlimit-rate-match --hashlimit-rate-interval 5",
			save: "--hashlimit-upto 7/sec --hashlimit-burst 5 --hashlimit-name b --hashlimit-htable-expire 3600000 --hashlimit-rate-match --hashlimit-rate-interval 5",
			list: "limit: up to 84/min burst 5 htable-expire 3600000 rate-match rate-interval 5"},
		{args: "--hashlimit-upto 5/s --hashlimit-name b --hashlimit-rate-interval 3", save: "--hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name b", list: "limit: up to 100/min burst 5 htable-expire 1000"},
		{args: "--hashlimit-upto 5kb/s --hashlimit-name b --hashlimit-rate-match --hashlimit-rate-interval 3", save: "--hashlimit-upto 5kb/s --hashlimit-name b --hashlimit-rate-match --hashlimit-rate-interval 3", list: "limit: up to 5kb/s rate-match rate-interval 3"},
		{args: "--hashlimit-upto 86401/d --hashlimit-name x", save: "--hashlimit-upto 86401/day --hashlimit-burst 5 --hashlimit-name x"},
		{args: "--hashlimit-upto 100/m --hashlimit-name x --hashlimit-htable-expire 1000", save: "--hashlimit-upto 100/min --hashlimit-burst 5 --hashlimit-name x --hashlimit-htable-expire 1000"},
		{args: "--hashlimit-upto 5/s --hashlimit-burst 10kb --hashlimit-name x", save: "--hashlimit-upto 5/sec --hashlimit-burst 10240 --hashlimit-name x"},
		{args: "--hashlimit-upto 1mb --hashlimit-name x", save: "--hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name x"},
		{args: "--hashlimit-upto 5/s --hashlimit-mode '' --hashlimit-name x", save: "--hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name x"},
		{args: "--hashlimit-upto 5/s --hashlimit-mode srcip,srcip --hashlimit-name x", save: "--hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name x"},
		{args: "--hashlimit-upto 0/s --hashlimit-name x", err: "hashlimit: Bad value for \"--hashlimit-upto\" option: \"0/s\""},
		{args: "--hashlimit-upto 2000000/s --hashlimit-name x", err: "Rate too fast \"2000000/s\""},
		{args: "--hashlimit-upto 5/s --hashlimit-burst 1000001 --hashlimit-name x", err: "bad value for option \"--hashlimit-burst\", or out of range (1-1000000)."},
		{args: "--hashlimit-upto 5/s --hashlimit-burst 0 --hashlimit-name x", err: "bad value for option \"--hashlimit-burst\", or out of range (1-1000000)."},
		{args: "--hashlimit-upto 5kb/s --hashlimit-burst 1kb --hashlimit-name x", err: "burst cannot be smaller than 5120b"},
		{args: "--hashlimit-upto 5/s --hashlimit-mode foo --hashlimit-name x", err: "hashlimit: Bad value for \"--hashlimit-mode\" option: \"foo\""},
		{args: "--hashlimit-upto 5/s --hashlimit-above 5/s --hashlimit-name x", err: "hashlimit: option \"--hashlimit-upto\" cannot be used together with \"--hashlimit-above\".\n"},
		{args: "--hashlimit 5/s --hashlimit-upto 5/s --hashlimit-name x", err: "hashlimit: option \"--hashlimit-upto\" can only be used once.\n"},
		{args: "--hashlimit-upto 5/s --hashlimit-name ''", err: "Argument must have a minimum length of 1 characters\n"},
		{args: "--hashlimit-upto 5/s --hashlimit-name x --hashlimit-rate-interval 0", err: "hashlimit: Bad value for \"--hashlimit-rate-interval\" option: \"0\""},
		{args: "--hashlimit-upto 5/s --hashlimit-name x --hashlimit-srcmask -1", err: "hashlimit: bad value for option \"--hashlimit-srcmask\", neither a valid network mask nor valid CIDR (0-32).\n"},
		{args: "--hashlimit-upto 5/s --hashlimit-name x --hashlimit-htable-size -1", err: "hashlimit: bad value for option \"--hashlimit-htable-size\", or out of range (0-4294967295).\n"},
		{args: "--hashlimit-name mini1", err: "You have to specify --hashlimit"},
		{args: "--hashlimit-upto 1/sec", err: "hashlimit: option \"--hashlimit-name\" must be specified\n"},
	})
}

func TestHashlimitKernelCheck(t *testing.T) {
	for _, c := range []struct {
		args  string
		errno syscall.Errno // 0 = accepted
	}{
		{"--hashlimit-upto 40/sec --hashlimit-burst 20 --hashlimit-name a", 0},
		{"--hashlimit-upto 1/day --hashlimit-burst 1000000 --hashlimit-name a", syscall.ERANGE},
		{"--hashlimit-upto 1/day --hashlimit-burst 100000 --hashlimit-name a", syscall.ERANGE},
		{"--hashlimit-upto 1/hour --hashlimit-burst 1000000 --hashlimit-name a", 0},
		{"--hashlimit-upto 5/s --hashlimit-srcmask 33 --hashlimit-name a", syscall.EINVAL},
		{"--hashlimit-upto 5/s --hashlimit-srcmask 256 --hashlimit-name a", syscall.EINVAL},
		{"--hashlimit-upto 5/s --hashlimit-htable-expire 0 --hashlimit-name a", syscall.EINVAL},
		{"--hashlimit-upto 5/s --hashlimit-htable-gcinterval 0 --hashlimit-name a", syscall.EINVAL},
		// The name becomes /proc/net/ipt_hashlimit/NAME (measured).
		{"--hashlimit-upto 5/s --hashlimit-name a/b", syscall.EINVAL},
		{"--hashlimit-upto 5/s --hashlimit-name ..", syscall.EINVAL},
		{"--hashlimit-upto 5/s --hashlimit-name .", syscall.EINVAL},
		{"--hashlimit-upto 5/s --hashlimit-name a.b", 0},
	} {
		m, err := psRun(t, "hashlimit", xt.IPv4, 0, c.args)
		if err != nil {
			t.Fatalf("%s: %v", c.args, err)
		}
		err = m.(xt.Checker).Check(&xt.CheckContext{Family: xt.IPv4, Table: "filter"})
		var ke *xt.KernelError
		if c.errno == 0 && err != nil || c.errno != 0 && (!errors.As(err, &ke) || ke.Errno != c.errno) {
			t.Errorf("%s: Check = %v, want errno %v", c.args, err, c.errno)
		}
	}
}
