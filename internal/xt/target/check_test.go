package target

import (
	"errors"
	"syscall"
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

// configure builds a target from option words ("--opt", "arg", ...) via
// the registry, failing the test on any parse error.
func configure(t *testing.T, name string, proto uint8, words ...string) xt.Target {
	t.Helper()
	spec, ok := testRegistry().Target(name)
	if !ok {
		t.Fatalf("%s not registered", name)
	}
	tg := spec.New()
	ctx := &xt.ParseContext{Family: xt.IPv4, Proto: proto}
	for i := 0; i < len(words); i++ {
		opt := words[i][2:]
		arg := ""
		for _, o := range spec.Options {
			if o.Name == opt && o.Arg == xt.RequiredArg {
				i++
				arg = words[i]
			}
		}
		if err := tg.Parse(ctx, opt, false, arg, nil); err != nil {
			t.Fatalf("%s %v: %v", name, words, err)
		}
	}
	if err := tg.Final(ctx); err != nil {
		t.Fatalf("%s %v: final: %v", name, words, err)
	}
	return tg
}

// TestCheck covers the kernel's checkentry refusals, including user chains
// reached from several hooks and unreachable chains (empty mask: pass).
func TestCheck(t *testing.T) {
	all := xt.MaskOf(xt.PreRouting, xt.LocalIn, xt.Forward, xt.LocalOut, xt.PostRouting)
	tests := []struct {
		name   string
		target string
		words  []string
		proto  uint8
		inv    bool
		table  string
		hooks  xt.HookMask
		errno  syscall.Errno // 0 = accepted
	}{
		{"reject input", "REJECT", nil, 0, false, "filter", xt.MaskOf(xt.LocalIn), 0},
		{"reject user chain from input+forward", "REJECT", nil, 0, false, "filter", xt.MaskOf(xt.LocalIn, xt.Forward), 0},
		{"reject unreachable chain", "REJECT", nil, 0, false, "filter", 0, 0},
		{"reject mangle", "REJECT", nil, 0, false, "mangle", xt.MaskOf(xt.LocalIn), syscall.EINVAL},
		{"reject raw", "REJECT", nil, 0, false, "raw", xt.MaskOf(xt.PreRouting), syscall.EINVAL},
		{"tcp-reset tcp", "REJECT", []string{"--reject-with", "tcp-reset"}, 6, false, "filter", xt.MaskOf(xt.LocalIn), 0},
		{"tcp-reset any", "REJECT", []string{"--reject-with", "tcp-reset"}, 0, false, "filter", xt.MaskOf(xt.LocalIn), syscall.EINVAL},
		{"tcp-reset !tcp", "REJECT", []string{"--reject-with", "tcp-reset"}, 6, true, "filter", xt.MaskOf(xt.LocalIn), syscall.EINVAL},
		{"tcp-reset udp", "REJECT", []string{"--reject-with", "tcp-reset"}, 17, false, "filter", xt.MaskOf(xt.LocalIn), syscall.EINVAL},
		{"ttl mangle", "TTL", []string{"--ttl-set", "5"}, 0, false, "mangle", all, 0},
		{"ttl filter", "TTL", []string{"--ttl-set", "5"}, 0, false, "filter", xt.MaskOf(xt.LocalIn), syscall.EINVAL},
		{"dnat prerouting", "DNAT", []string{"--to-destination", "1.2.3.4"}, 0, false, "nat", xt.MaskOf(xt.PreRouting), 0},
		{"dnat output", "DNAT", []string{"--to-destination", "1.2.3.4"}, 0, false, "nat", xt.MaskOf(xt.LocalOut), 0},
		{"dnat input", "DNAT", []string{"--to-destination", "1.2.3.4"}, 0, false, "nat", xt.MaskOf(xt.LocalIn), syscall.EINVAL},
		{"dnat user chain pre+post", "DNAT", []string{"--to-destination", "1.2.3.4"}, 0, false, "nat", xt.MaskOf(xt.PreRouting, xt.PostRouting), syscall.EINVAL},
		{"dnat filter", "DNAT", []string{"--to-destination", "1.2.3.4"}, 0, false, "filter", xt.MaskOf(xt.LocalIn), syscall.EINVAL},
		{"snat input", "SNAT", []string{"--to-source", "1.2.3.4"}, 0, false, "nat", xt.MaskOf(xt.LocalIn), 0},
		{"snat prerouting", "SNAT", []string{"--to-source", "1.2.3.4"}, 0, false, "nat", xt.MaskOf(xt.PreRouting), syscall.EINVAL},
		{"masquerade output", "MASQUERADE", nil, 0, false, "nat", xt.MaskOf(xt.LocalOut), syscall.EINVAL},
		{"masquerade postrouting", "MASQUERADE", nil, 0, false, "nat", xt.MaskOf(xt.PostRouting), 0},
		{"redirect postrouting", "REDIRECT", nil, 0, false, "nat", xt.MaskOf(xt.PostRouting), syscall.EINVAL},
		{"redirect filter", "REDIRECT", nil, 0, false, "filter", xt.MaskOf(xt.LocalIn), syscall.EINVAL},
		{"notrack raw", "NOTRACK", nil, 0, false, "raw", xt.MaskOf(xt.PreRouting, xt.LocalOut), 0},
		{"notrack filter", "NOTRACK", nil, 0, false, "filter", xt.MaskOf(xt.LocalIn), syscall.EINVAL},
		{"ct notrack mangle", "CT", []string{"--notrack"}, 0, false, "mangle", xt.MaskOf(xt.PreRouting), syscall.EINVAL},
		{"ct helper ftp tcp", "CT", []string{"--helper", "ftp"}, 6, false, "raw", xt.MaskOf(xt.PreRouting), 0},
		{"ct helper ftp any", "CT", []string{"--helper", "ftp"}, 0, false, "raw", xt.MaskOf(xt.PreRouting), syscall.ENOENT},
		{"ct helper ftp udp", "CT", []string{"--helper", "ftp"}, 17, false, "raw", xt.MaskOf(xt.PreRouting), syscall.ENOENT},
		{"ct helper ftp notrack", "CT", []string{"--notrack", "--helper", "ftp"}, 0, false, "raw", xt.MaskOf(xt.PreRouting), 0},
		{"ct timeout", "CT", []string{"--timeout", "x"}, 6, false, "raw", xt.MaskOf(xt.PreRouting), syscall.EINVAL},
		{"tcpmss set no proto", "TCPMSS", []string{"--set-mss", "1400"}, 0, false, "mangle", xt.MaskOf(xt.Forward), syscall.EINVAL},
		{"tcpmss set tcp input", "TCPMSS", []string{"--set-mss", "1400"}, 6, false, "filter", xt.MaskOf(xt.LocalIn), 0},
		{"tcpmss clamp prerouting", "TCPMSS", []string{"--clamp-mss-to-pmtu"}, 6, false, "mangle", xt.MaskOf(xt.PreRouting), syscall.EINVAL},
		{"tcpmss clamp nat postrouting", "TCPMSS", []string{"--clamp-mss-to-pmtu"}, 6, false, "nat", xt.MaskOf(xt.PostRouting), 0},
		{"tcpmss clamp forward+output", "TCPMSS", []string{"--clamp-mss-to-pmtu"}, 6, false, "mangle", xt.MaskOf(xt.Forward, xt.LocalOut), 0},
		{"nfqueue balance 0:65535", "NFQUEUE", []string{"--queue-balance", "0:65535"}, 0, false, "filter", xt.MaskOf(xt.LocalIn), syscall.EINVAL},
		{"nfqueue balance 1:65535", "NFQUEUE", []string{"--queue-balance", "1:65535"}, 0, false, "filter", xt.MaskOf(xt.LocalIn), 0},
		{"connmark shift 32", "CONNMARK", []string{"--save-mark", "--left-shift-mark", "32"}, 0, false, "mangle", all, syscall.EINVAL},
		{"connmark filter", "CONNMARK", []string{"--save-mark"}, 0, false, "filter", xt.MaskOf(xt.LocalIn), 0},
		{"dscp filter", "DSCP", []string{"--set-dscp", "1"}, 0, false, "filter", xt.MaskOf(xt.LocalIn), syscall.EINVAL},
		{"tos mangle", "TOS", []string{"--set-tos", "1"}, 0, false, "mangle", all, 0},
		{"tos nat", "TOS", []string{"--set-tos", "1"}, 0, false, "nat", xt.MaskOf(xt.PreRouting), syscall.EINVAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := configure(t, tc.target, tc.proto, tc.words...)
			ck, ok := tg.(xt.Checker)
			if !ok {
				t.Fatalf("%s has no Check", tc.target)
			}
			err := ck.Check(&xt.CheckContext{Family: xt.IPv4, Table: tc.table, Hooks: tc.hooks, Proto: tc.proto, InvProto: tc.inv})
			if tc.errno == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ke *xt.KernelError
			if !errors.As(err, &ke) || ke.Errno != tc.errno {
				t.Fatalf("got %v, want errno %v", err, tc.errno)
			}
		})
	}
}

func TestInvertRefused(t *testing.T) {
	tg := newLog()
	err := tg.Parse(&xt.ParseContext{}, "log-uid", true, "", nil)
	var pe *xt.ParamError
	if !errors.As(err, &pe) || pe.Msg != "LOG: option \"--log-uid\" cannot be inverted.\n" {
		t.Fatalf("got %#v", err)
	}
}

func TestApply(t *testing.T) {
	m := configure(t, "MARK", 0, "--and-mark", "0xf0").(*Mark)
	if got := m.Apply(0x1234); got != 0x30 {
		t.Errorf("and-mark 0xf0 on 0x1234 = %#x", got)
	}
	m = configure(t, "MARK", 0, "--set-mark", "0x5/0xf").(*Mark)
	if got := m.Apply(0x1238); got != 0x1235 {
		t.Errorf("set-mark 5/0xf on 0x1238 = %#x", got)
	}
	ttl := configure(t, "TTL", 0, "--ttl-dec", "10").(*TTL)
	if ttl.Apply(5) != 0 || ttl.Apply(64) != 54 {
		t.Errorf("ttl-dec 10: %d %d", ttl.Apply(5), ttl.Apply(64))
	}
	ttl = configure(t, "TTL", 0, "--ttl-inc", "10").(*TTL)
	if ttl.Apply(250) != 255 || ttl.Apply(1) != 11 {
		t.Errorf("ttl-inc 10: %d %d", ttl.Apply(250), ttl.Apply(1))
	}
	tos := configure(t, "TOS", 0, "--set-tos", "Minimize-Delay").(*TOS)
	if got := tos.Apply(0xe8); got != 0xd0 {
		t.Errorf("Minimize-Delay on 0xe8 = %#x (precedence must stay)", got)
	}
	q := configure(t, "NFQUEUE", 0, "--queue-balance", "4:").(*NFQueue)
	if q.Num != 4 || q.Total != 65532 {
		t.Errorf("balance 4: = %d+%d", q.Num, q.Total)
	}
	d := configure(t, "DNAT", 6, "--to-destination", "10.0.0.1-10.0.0.3:1000-2000/3000").(*DNAT)
	if d.Range.MinAddr.String() != "10.0.0.1" || d.Range.MaxAddr.String() != "10.0.0.3" ||
		d.Range.MinPort != 1000 || d.Range.MaxPort != 2000 || !d.Range.HasBase || d.Range.Base != 3000 {
		t.Errorf("DNAT range %+v", d.Range)
	}
}
