package target

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// natCtx tracks a new UDP connection the way the engine does before nat:
// conntrack at PREROUTING (or OUTPUT for SNAT's POSTROUTING), then the nat
// hook itself.
func natCtx(t *testing.T, tbl *conntrack.Table, src string, sport uint16, dst string, dport uint16, hook xt.Hook) *xt.Ctx {
	t.Helper()
	p := decode(t, packettest.UDP(packettest.UDPOpts{Src: src, Dst: dst, SrcPort: sport, DstPort: dport}))
	ctHook := xt.PreRouting
	if hook == xt.PostRouting || hook == xt.LocalOut {
		ctHook = xt.LocalOut
	}
	c := trackedCtx(t, tbl, p, ctHook)
	c.Hook = hook
	p.OutIface, p.InIface = "eth0", "eth1"
	if ctHook == xt.LocalOut {
		p.InIface = ""
	}
	return c
}

// bind runs target on c, checks ACCEPT, confirms the connection and
// returns the translated address and port of the manip side.
func bind(t *testing.T, tbl *conntrack.Table, target xt.PacketTarget, c *xt.Ctx) netip.AddrPort {
	t.Helper()
	if v := target.Do(c); v != xt.VerdictAccept {
		t.Fatalf("verdict %v, want accept", v)
	}
	conn := c.CT.Conn
	m := conntrack.ManipForHook(c.Hook)
	if !conn.NATInitialized(m) {
		t.Fatal("no binding made")
	}
	r := conn.ReplyTuple()
	got := netip.AddrPortFrom(r.Src, r.SrcID)
	if m == conntrack.ManipSrc {
		got = netip.AddrPortFrom(r.Dst, r.DstID)
	}
	// The engine's rewrite agrees with the binding.
	if rw, ok := c.CT.NAT(c.Hook); ok && (rw.Addr != got.Addr() || rw.HasPort && rw.Port != got.Port()) {
		t.Errorf("engine rewrite %v:%d, binding %v", rw.Addr, rw.Port, got)
	}
	if tbl.Confirm(&c.CT) != conntrack.Accept {
		t.Fatal("confirm failed")
	}
	tbl.Release(&c.CT)
	return got
}

func TestDNAT(t *testing.T) {
	tbl := newCTTable(t)
	env := testEnv("nat", xt.PreRouting)
	dnat := rt(t, env, 17, "DNAT", "--to-destination", "192.168.1.10:8053")
	if got := bind(t, tbl, dnat, natCtx(t, tbl, "10.0.0.1", 5000, "10.0.0.2", 53, xt.PreRouting)); got.String() != "192.168.1.10:8053" {
		t.Errorf("DNAT to %v", got)
	}
	// Address only: the port stays.
	addrOnly := rt(t, env, 17, "DNAT", "--to-destination", "192.168.1.11")
	if got := bind(t, tbl, addrOnly, natCtx(t, tbl, "10.0.0.1", 5001, "10.0.0.2", 53, xt.PreRouting)); got.String() != "192.168.1.11:53" {
		t.Errorf("DNAT to %v", got)
	}
	// Port range: the first free port from the bottom; a client whose
	// tuple would clash gets the next one.
	rng := rt(t, env, 17, "DNAT", "--to-destination", "192.168.1.20:8000-8009")
	a := bind(t, tbl, rng, natCtx(t, tbl, "10.0.0.5", 6000, "10.0.0.2", 53, xt.PreRouting))
	b := bind(t, tbl, rng, natCtx(t, tbl, "10.0.0.5", 6000, "10.0.0.3", 53, xt.PreRouting))
	c := bind(t, tbl, rng, natCtx(t, tbl, "10.0.0.6", 6000, "10.0.0.3", 53, xt.PreRouting))
	if a.String() != "192.168.1.20:8000" || b.String() != "192.168.1.20:8001" || c.String() != "192.168.1.20:8000" {
		t.Errorf("range: %v %v %v", a, b, c)
	}
	// A port already in range is kept.
	if got := bind(t, tbl, rng, natCtx(t, tbl, "10.0.0.7", 6000, "10.0.0.2", 8005, xt.PreRouting)); got.Port() != 8005 {
		t.Errorf("in-range port changed to %v", got)
	}
	// Shifted map A-B/base: port P goes to A + (P - base).
	shift := rt(t, env, 17, "DNAT", "--to-destination", "192.168.1.30:8000-8099/1000")
	if got := bind(t, tbl, shift, natCtx(t, tbl, "10.0.0.1", 7000, "10.0.0.2", 1005, xt.PreRouting)); got.String() != "192.168.1.30:8005" {
		t.Errorf("shifted map to %v", got)
	}
	// ICMP: address only.
	p := decode(t, packettest.EchoRequest("10.0.0.1", "10.0.0.2", 77, 1, 8))
	ic := trackedCtx(t, tbl, p, xt.PreRouting)
	icmpNAT := rt(t, env, 1, "DNAT", "--to-destination", "192.168.1.40")
	if got := bind(t, tbl, icmpNAT, ic); got.Addr().String() != "192.168.1.40" {
		t.Errorf("ICMP DNAT to %v", got)
	}
}

func TestSNAT(t *testing.T) {
	tbl := newCTTable(t)
	env := testEnv("nat", xt.PostRouting)
	snat := rt(t, env, 17, "SNAT", "--to-source", "1.2.3.4")
	if got := bind(t, tbl, snat, natCtx(t, tbl, "10.0.0.1", 5000, "8.8.8.8", 53, xt.PostRouting)); got.String() != "1.2.3.4:5000" {
		t.Errorf("SNAT to %v, want the port kept", got)
	}
	// Same source port from another host to the same server: taken, so
	// a new port of the same class (>= 1024).
	got := bind(t, tbl, snat, natCtx(t, tbl, "10.0.0.2", 5000, "8.8.8.8", 53, xt.PostRouting))
	if got.Addr().String() != "1.2.3.4" || got.Port() == 5000 || got.Port() < 1024 {
		t.Errorf("clash resolved to %v", got)
	}
	// Privileged ports stay privileged: < 512 -> 1-511, 512-1023 -> 600-1023.
	bind(t, tbl, snat, natCtx(t, tbl, "10.0.0.1", 123, "8.8.8.8", 123, xt.PostRouting))
	if got := bind(t, tbl, snat, natCtx(t, tbl, "10.0.0.2", 123, "8.8.8.8", 123, xt.PostRouting)); got.Port() == 123 || got.Port() < 1 || got.Port() > 511 {
		t.Errorf("port 123 clash to %v", got)
	}
	bind(t, tbl, snat, natCtx(t, tbl, "10.0.0.1", 700, "8.8.8.8", 700, xt.PostRouting))
	if got := bind(t, tbl, snat, natCtx(t, tbl, "10.0.0.2", 700, "8.8.8.8", 700, xt.PostRouting)); got.Port() == 700 || got.Port() < 600 || got.Port() > 1023 {
		t.Errorf("port 700 clash to %v", got)
	}
	// Two-port range, three clients with the same port: the first two
	// get distinct ports; the third finds none free and keeps the last one
	// tried, as the kernel (its packets then clash at confirm).
	two := rt(t, env, 17, "SNAT", "--to-source", "1.2.3.5:2000-2001")
	x := bind(t, tbl, two, natCtx(t, tbl, "10.0.1.1", 4000, "8.8.4.4", 53, xt.PostRouting))
	y := bind(t, tbl, two, natCtx(t, tbl, "10.0.1.2", 4000, "8.8.4.4", 53, xt.PostRouting))
	if x == y || x.Port() < 2000 || x.Port() > 2001 || y.Port() < 2000 || y.Port() > 2001 {
		t.Errorf("two-port range: %v %v", x, y)
	}
	cz := natCtx(t, tbl, "10.0.1.3", 4000, "8.8.4.4", 53, xt.PostRouting)
	two.Do(cz)
	if r := cz.CT.Conn.ReplyTuple(); r.DstID < 2000 || r.DstID > 2001 {
		t.Errorf("exhausted range: port %d", r.DstID)
	}
	tbl.Release(&cz.CT)
	// --random draws the port even when the original would do.
	rnd := rt(t, env, 17, "SNAT", "--to-source", "1.2.3.6", "--random")
	changed := 0
	for i := range 20 {
		if bind(t, tbl, rnd, natCtx(t, tbl, "10.0.2.1", uint16(30000+i), "8.8.8.8", 53, xt.PostRouting)).Port() != uint16(30000+i) {
			changed++
		}
	}
	if changed < 15 {
		t.Errorf("--random changed only %d of 20 ports", changed)
	}
}

func TestSNATAddressRangePersistent(t *testing.T) {
	tbl := newCTTable(t)
	env := testEnv("nat", xt.PostRouting)
	pers := rt(t, env, 17, "SNAT", "--to-source", "10.9.0.1-10.9.0.10", "--persistent")
	plain := rt(t, env, 17, "SNAT", "--to-source", "10.9.0.1-10.9.0.10")
	persAddrs, plainAddrs := map[netip.Addr]bool{}, map[netip.Addr]bool{}
	lo, hi := netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.10")
	for i := range 30 {
		dst := netip.AddrFrom4([4]byte{8, 8, byte(i), 1}).String()
		a := bind(t, tbl, pers, natCtx(t, tbl, "10.0.0.1", uint16(1000+i), dst, 53, xt.PostRouting)).Addr()
		b := bind(t, tbl, plain, natCtx(t, tbl, "10.0.0.1", uint16(2000+i), dst, 53, xt.PostRouting)).Addr()
		for _, x := range []netip.Addr{a, b} {
			if x.Less(lo) || hi.Less(x) {
				t.Fatalf("address %v outside the range", x)
			}
		}
		persAddrs[a], plainAddrs[b] = true, true
	}
	if len(persAddrs) != 1 {
		t.Errorf("--persistent gave one client %d addresses", len(persAddrs))
	}
	if len(plainAddrs) < 3 {
		t.Errorf("without --persistent 30 destinations used only %d addresses", len(plainAddrs))
	}
	// Same client, same destination, new connection: same address (the
	// hash is fixed, so this holds across reloads too).
	again := rt(t, testEnv("nat", xt.PostRouting), 17, "SNAT", "--to-source", "10.9.0.1-10.9.0.10")
	first := bind(t, tbl, plain, natCtx(t, tbl, "10.0.0.9", 1, "9.9.9.9", 53, xt.PostRouting)).Addr()
	second := bind(t, tbl, again, natCtx(t, tbl, "10.0.0.9", 2, "9.9.9.9", 53, xt.PostRouting)).Addr()
	if first != second {
		t.Errorf("address changed across rules: %v %v", first, second)
	}
}

func ifaceAddrs(iface string, fam xt.Family) (netip.Addr, bool) {
	switch iface {
	case "eth0":
		return netip.MustParseAddr("203.0.113.1"), true
	case "eth1":
		return netip.MustParseAddr("192.0.2.254"), true
	}
	return netip.Addr{}, false
}

func TestMasqueradeRedirect(t *testing.T) {
	tbl := newCTTable(t)
	env := testEnv("nat", xt.PostRouting)
	if _, err := mkTarget(t, 17, "MASQUERADE").(xt.TargetBuilder).Build(env); err == nil || !strings.Contains(err.Error(), "IfaceAddr") {
		t.Errorf("MASQUERADE without interface addresses: %v", err)
	}
	env.IfaceAddr = ifaceAddrs
	masq := rt(t, env, 17, "MASQUERADE")
	if got := bind(t, tbl, masq, natCtx(t, tbl, "10.0.0.1", 5000, "8.8.8.8", 53, xt.PostRouting)); got.String() != "203.0.113.1:5000" {
		t.Errorf("MASQUERADE to %v", got)
	}
	ports := rt(t, env, 17, "MASQUERADE", "--to-ports", "40000-40010")
	if got := bind(t, tbl, ports, natCtx(t, tbl, "10.0.0.1", 5001, "8.8.8.8", 53, xt.PostRouting)); got.Port() < 40000 || got.Port() > 40010 {
		t.Errorf("MASQUERADE --to-ports to %v", got)
	}
	c := natCtx(t, tbl, "10.0.0.1", 5002, "8.8.8.8", 53, xt.PostRouting)
	c.P.OutIface = "ppp9"
	if v := masq.Do(c); v != xt.VerdictDrop {
		t.Errorf("interface without address: %v, want drop", v)
	}
	tbl.Release(&c.CT)

	renv := testEnv("nat", xt.PreRouting, xt.LocalOut)
	if _, err := mkTarget(t, 17, "REDIRECT").(xt.TargetBuilder).Build(renv); err == nil {
		t.Error("REDIRECT in PREROUTING built without interface addresses")
	}
	outOnly := rt(t, testEnv("nat", xt.LocalOut), 17, "REDIRECT", "--to-ports", "8080")
	if got := bind(t, tbl, outOnly, natCtx(t, tbl, "10.0.0.1", 5003, "8.8.8.8", 53, xt.LocalOut)); got.String() != "127.0.0.1:8080" {
		t.Errorf("REDIRECT in OUTPUT to %v", got)
	}
	renv.IfaceAddr = ifaceAddrs
	redir := rt(t, renv, 17, "REDIRECT", "--to-ports", "8080")
	if got := bind(t, tbl, redir, natCtx(t, tbl, "10.0.0.1", 5004, "8.8.8.8", 53, xt.PreRouting)); got.String() != "192.0.2.254:8080" {
		t.Errorf("REDIRECT in PREROUTING to %v", got)
	}
	c = natCtx(t, tbl, "10.0.0.1", 5005, "8.8.8.8", 53, xt.PreRouting)
	c.P.InIface = "tun7"
	if v := redir.Do(c); v != xt.VerdictDrop {
		t.Errorf("in-interface without address: %v", v)
	}
	tbl.Release(&c.CT)
}

func TestNATWithoutConnOrTwice(t *testing.T) {
	env := testEnv("nat", xt.PreRouting)
	dnat := rt(t, env, 17, "DNAT", "--to-destination", "192.168.1.10")
	p := decode(t, udpProbe(1))
	if v := dnat.Do(&xt.Ctx{P: p, Hook: xt.PreRouting}); v != xt.VerdictAccept {
		t.Errorf("no conntrack: %v", v)
	}
	tbl := newCTTable(t)
	c := natCtx(t, tbl, "10.0.0.1", 1, "10.0.0.2", 2, xt.PreRouting)
	dnat.Do(c)
	other := rt(t, env, 17, "DNAT", "--to-destination", "192.168.9.9")
	if v := other.Do(c); v != xt.VerdictAccept || c.CT.Conn.ReplyTuple().Src.String() != "192.168.1.10" {
		t.Errorf("second binding: %v %v", v, c.CT.Conn.ReplyTuple())
	}
	tbl.Release(&c.CT)
}

func TestNFQueue(t *testing.T) {
	env := testEnv("filter", xt.LocalIn)
	p := decode(t, udpProbe(1))
	c := &xt.Ctx{P: p}
	if v := rt(t, env, 0, "NFQUEUE", "--queue-num", "7", "--queue-bypass").Do(c); v != xt.VerdictQueue || c.Queue != (xt.QueueInfo{Num: 7, Bypass: true}) {
		t.Errorf("queue-num: %v %+v", v, c.Queue)
	}
	bal := rt(t, env, 0, "NFQUEUE", "--queue-balance", "10:13")
	counts := map[uint16]int{}
	const flows = 4000
	for i := range flows {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
		b := netip.AddrFrom4([4]byte{172, 16, byte(i), byte(i >> 8)})
		p.Src, p.Dst = a, b
		bal.Do(c)
		q := c.Queue.Num
		p.Src, p.Dst = b, a
		bal.Do(c)
		if c.Queue.Num != q {
			t.Fatalf("directions of %v-%v in queues %d and %d", a, b, q, c.Queue.Num)
		}
		counts[q]++
	}
	for q := uint16(10); q <= 13; q++ {
		if n := counts[q]; n < flows/4*8/10 || n > flows/4*12/10 {
			t.Errorf("queue %d got %d of %d flows", q, n, flows)
		}
	}
	if len(counts) != 4 {
		t.Errorf("queues used: %v", counts)
	}
	fan := rt(t, env, 0, "NFQUEUE", "--queue-balance", "2:4", "--queue-cpu-fanout")
	c.CPU = 5
	if fan.Do(c); c.Queue.Num != 2+5%3 {
		t.Errorf("cpu fanout: queue %d", c.Queue.Num)
	}
}
