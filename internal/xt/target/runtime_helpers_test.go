package target

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/xt"
)

// recEmitter records what targets emit, copying as the contract asks.
type recEmitter struct {
	replies [][]byte
	logs    []logRec
}

type logRec struct {
	level uint8
	line  string
}

func (e *recEmitter) Reply(_ *xt.Ctx, pkt []byte) {
	e.replies = append(e.replies, append([]byte(nil), pkt...))
}

func (e *recEmitter) Log(_ *xt.Ctx, level uint8, line []byte) {
	e.logs = append(e.logs, logRec{level, string(line)})
}

// nflogEmitter also listens for NFLOG.
type nflogEmitter struct {
	recEmitter
	nflogs []nflogRec
}

type nflogRec struct {
	group     uint16
	prefix    string
	size      int
	threshold uint16
	src       netip.Addr
}

func (e *nflogEmitter) NFLog(c *xt.Ctx, group uint16, prefix string, size int, threshold uint16) {
	e.nflogs = append(e.nflogs, nflogRec{group, prefix, size, threshold, c.P.Src})
}

// countEmitter counts without allocating (for the allocation tests).
type countEmitter struct{ replies, logs, bytes int }

func (e *countEmitter) Reply(_ *xt.Ctx, pkt []byte) { e.replies++; e.bytes += len(pkt) }
func (e *countEmitter) Log(_ *xt.Ctx, _ uint8, line []byte) {
	e.logs++
	e.bytes += len(line)
}

// testNamed is an xt.NamedState like the engine's.
type testNamed struct {
	mu sync.Mutex
	m  map[string]any
}

func (n *testNamed) Shared(kind, name string, create func() (any, error)) (any, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[string]any{}
	}
	k := kind + "/" + name
	if v, ok := n.m[k]; ok {
		return v, nil
	}
	v, err := create()
	if err == nil {
		n.m[k] = v
	}
	return v, err
}

// seqRand is a deterministic Env.Rand.
func seqRand() func() uint32 {
	var mu sync.Mutex
	x := uint32(2463534242)
	return func() uint32 {
		mu.Lock()
		defer mu.Unlock()
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		return x
	}
}

func testEnv(table string, hooks ...xt.Hook) *xt.Env {
	return &xt.Env{Family: xt.IPv4, Table: table, Hooks: xt.MaskOf(hooks...), Named: &testNamed{}, Rand: seqRand()}
}

// mkTarget parses "-j NAME" with the given words, as the grammar does.
func mkTarget(t *testing.T, proto uint8, name string, words ...string) xt.Target {
	t.Helper()
	r := xt.NewRegistry()
	Register(r)
	spec, ok := r.Target(name)
	if !ok {
		t.Fatalf("no target %s", name)
	}
	tg := spec.New()
	ctx := &xt.ParseContext{Family: xt.IPv4, Proto: proto}
	for i := 0; i < len(words); i++ {
		opt := strings.TrimPrefix(words[i], "--")
		arg := ""
		if i+1 < len(words) && !strings.HasPrefix(words[i+1], "--") {
			arg = words[i+1]
			i++
		}
		if err := tg.Parse(ctx, opt, false, arg, nil); err != nil {
			t.Fatalf("%s %v: %v", name, words, err)
		}
	}
	if err := tg.Final(ctx); err != nil {
		t.Fatalf("%s %v: %v", name, words, err)
	}
	return tg
}

// runtimeOf builds the target's runtime the way the engine does.
func runtimeOf(t *testing.T, tg xt.Target, env *xt.Env) xt.PacketTarget {
	t.Helper()
	switch x := tg.(type) {
	case xt.TargetBuilder:
		pt, err := x.Build(env)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		return pt
	case xt.PacketTarget:
		return x
	}
	t.Fatalf("%T has no runtime", tg)
	return nil
}

func rt(t *testing.T, env *xt.Env, proto uint8, name string, words ...string) xt.PacketTarget {
	t.Helper()
	return runtimeOf(t, mkTarget(t, proto, name, words...), env)
}

func decode(t *testing.T, b []byte) *packet.Packet {
	t.Helper()
	p := &packet.Packet{}
	if st := p.Decode(b); st != packet.OK && st != packet.Fragment {
		t.Fatalf("decode: status %v", st)
	}
	p.TimeNS = 1e9
	return p
}

// csum is an independent RFC 1071 checksum for verifying rewrites.
func csum(parts ...[]byte) uint16 {
	var s uint32
	var odd bool
	var carry byte
	for _, b := range parts {
		for _, c := range b {
			if odd {
				s += uint32(carry)<<8 | uint32(c)
			} else {
				carry = c
			}
			odd = !odd
		}
	}
	if odd {
		s += uint32(carry) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// checkIPv4 verifies the IPv4 header checksum and, for TCP/UDP, the L4
// checksum of pkt, recomputed from scratch.
func checkIPv4(t *testing.T, pkt []byte) {
	t.Helper()
	hl := int(pkt[0]&0xf) * 4
	if c := csum(pkt[:hl]); c != 0 {
		t.Errorf("IPv4 header checksum wrong (residue %#04x)", c)
	}
	tot := int(binary.BigEndian.Uint16(pkt[2:]))
	if tot != len(pkt) {
		t.Errorf("total length %d, packet %d bytes", tot, len(pkt))
	}
	proto := pkt[9]
	l4 := pkt[hl:tot]
	switch proto {
	case 6, 17:
		ph := make([]byte, 12)
		copy(ph, pkt[12:20])
		ph[9] = proto
		binary.BigEndian.PutUint16(ph[10:], uint16(len(l4)))
		if c := csum(ph, l4); c != 0 {
			t.Errorf("L4 checksum wrong (residue %#04x)", c)
		}
	case 1:
		if c := csum(l4); c != 0 {
			t.Errorf("ICMP checksum wrong (residue %#04x)", c)
		}
	}
}

func newCTTable(t *testing.T) *conntrack.Table {
	t.Helper()
	tbl, err := conntrack.NewTable(conntrack.Config{Max: 1024})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}
