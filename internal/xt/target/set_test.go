package target

import (
	"io"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

type setNamed struct{ v any }

func (n setNamed) Shared(kind, name string, _ func() (any, error)) (any, error) { return n.v, nil }

// TestSETTarget: port knocking with -j SET --add-set knock src --timeout 5:
// the element appears with the packet's time, expires 5 s of packet time
// later, --exist refreshes it, --del-set removes it; listing text as
// iptables prints it.
func TestSETTarget(t *testing.T) {
	ss := ipset.New(nil)
	for _, c := range []string{"create knock hash:ip timeout 60"} {
		if err := ss.Exec(strings.Fields(c), nil, io.Discard, 0); err != nil {
			t.Fatal(err)
		}
	}
	env := &xt.Env{Family: xt.IPv4, Named: setNamed{ss}}
	mk := func(opts ...[3]string) (*SetTarget, xt.PacketTarget) {
		tg := &SetTarget{opts: tracker{target: "SET", defs: setTargetOpts}, exists: ss.Exists}
		for _, o := range opts {
			var extra []string
			if o[2] != "" {
				extra = []string{o[2]}
			}
			if err := tg.Parse(nil, o[0], false, o[1], extra); err != nil {
				t.Fatal(err)
			}
		}
		if err := tg.Final(nil); err != nil {
			t.Fatal(err)
		}
		rt, err := tg.Build(env)
		if err != nil {
			t.Fatal(err)
		}
		return tg, rt
	}
	add, addRT := mk([3]string{"add-set", "knock", "src"}, [3]string{"exist", "", ""}, [3]string{"timeout", "5", ""})
	var b strings.Builder
	add.Save(&b)
	if b.String() != " --add-set knock src --exist --timeout 5" {
		t.Errorf("save %q", b.String())
	}
	_, delRT := mk([3]string{"del-set", "knock", "src"})
	s, _ := ss.Get("knock")
	pkt := func(sec int64) *xt.Ctx {
		c := &xt.Ctx{P: &packet.Packet{}}
		c.P.Decode(packettest.EchoRequest("192.0.2.7", "10.0.0.1", 1, 1, 8))
		c.P.TimeNS = sec * 1e9
		return c
	}
	in := func(sec int64) bool {
		keys, _ := s.ParseElem("192.0.2.7")
		return s.Test(keys, sec*1e9)
	}
	if v := addRT.Do(pkt(100)); v != xt.Continue {
		t.Fatalf("verdict %v", v)
	}
	if !in(104) || in(105) {
		t.Errorf("timeout 5 from t=100: in at 104 %v, at 105 %v", in(104), in(105))
	}
	addRT.Do(pkt(103)) // --exist: refresh to 108
	if !in(107) {
		t.Errorf("--exist did not refresh the timeout")
	}
	delRT.Do(pkt(104))
	if in(104) {
		t.Errorf("--del-set left the element")
	}
	c := pkt(200)
	if n := testing.AllocsPerRun(100, func() { addRT.Do(c) }); n != 0 {
		t.Errorf("SET --add-set of an existing element: %v allocs", n)
	}
}
