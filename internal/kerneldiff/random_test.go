package kerneldiff

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestKernelDiffRandom sends the hostile random streams to the real kernel
// and compares its counters, LOG lines and recent lists with uptables'
// replay of the capture (KERNELDIFF_RANDOM_SEEDS, KERNELDIFF_RANDOM_PACKETS
// for long runs).
func TestKernelDiffRandom(t *testing.T) {
	requireKernel(t)
	seeds, packets, err := RandomConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	runSuite(t, suite{name: "random differential scenarios", index: func(i int) int { return 200 + i%40 }, timeout: 3 * time.Minute,
		check: func(sc *Scenario, out *Outcome) error {
			if sent := uint64(sc.Client[0].Random.Packets); out.Uptables.Stats.Frames < sent {
				return fmt.Errorf("the capture holds %d frames, fewer than the %d sent", out.Uptables.Stats.Frames, sent)
			}
			return nil
		}, logTraffic: true}, RandomScenarios(seeds, packets))
}

func testSpec(seed uint64, n int) *RandomSpec {
	return &RandomSpec{Seed: seed, Packets: n, Iface: "veth0", Server: "10.9.0.1", Clients: []string{"10.9.0.2", "10.9.0.3"}, Conns: 2}
}

func testConns() ([]ConnInfo, []UDPFlow) {
	c := netip.MustParseAddr("10.9.0.2")
	return []ConnInfo{{Src: c, SPort: rndConnSport, DPort: rndTCPOpen, Seq: 1000, Ack: 90000}, {Src: c, SPort: rndConnSport + 1, DPort: rndTCPOpen, Seq: 0xfffffff0, Ack: 5}},
		[]UDPFlow{{Src: c, SPort: rndFlowSport, DPort: rndUDPOpen}}
}

// TestRandomGenerate checks the generator offline: deterministic per seed,
// different across seeds, every class present in a long stream, packets
// addressed as asked, and the checksums right except where a class breaks
// them on purpose.
func TestRandomGenerate(t *testing.T) {
	conns, flows := testConns()
	a, err := Generate(testSpec(7, 3000), conns, flows)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(testSpec(7, 3000), conns, flows)
	c, _ := Generate(testSpec(8, 3000), conns, flows)
	if len(a) < 3000 || len(a) > 3000+64 {
		t.Fatalf("%d frames for 3000 asked", len(a))
	}
	same := len(a) == len(b)
	for i := 0; same && i < len(a); i++ {
		same = bytes.Equal(a[i].IP, b[i].IP)
	}
	if !same {
		t.Error("the same seed gave two different streams")
	}
	if len(a) == len(c) && bytes.Equal(a[0].IP, c[0].IP) && bytes.Equal(a[1].IP, c[1].IP) {
		t.Error("seeds 7 and 8 gave the same first packets")
	}
	counts := ClassCounts(a)
	for _, name := range ClassNames() {
		if counts[name] == 0 {
			t.Errorf("class %s never generated in 3000 packets", name)
		}
	}
	srv := netip.MustParseAddr("10.9.0.1").As4()
	var badIP, fragments, flagsSeen = 0, 0, map[uint8]bool{}
	for _, f := range a {
		p := f.IP
		if len(p) < 20 {
			t.Fatalf("%s: %d-byte packet", f.Class, len(p))
		}
		if !bytes.Equal(p[16:20], srv[:]) {
			t.Errorf("%s: destination %v", f.Class, p[16:20])
		}
		if f.Class != "bad-ip" {
			hl := int(p[0]&0x0f) * 4
			if p[0]>>4 != 4 || checksum(p[:hl], 0) != 0 {
				t.Errorf("%s: bad IP header % x", f.Class, p[:hl])
			}
		} else {
			badIP++
		}
		if binary.BigEndian.Uint16(p[6:])&0x3fff != 0 {
			fragments++
		}
		if f.Class == "tcp-flags" && p[9] == 6 {
			flagsSeen[p[20+13]] = true
		}
	}
	if badIP == 0 || fragments < 100 {
		t.Errorf("%d bad-ip packets, %d fragments", badIP, fragments)
	}
	for _, want := range []uint8{0, fFIN | fPSH | fURG, fSYN | fFIN, fSYN | fRST, fFIN} {
		if !flagsSeen[want] {
			t.Errorf("scan flags %#02x never sent", want)
		}
	}
	// Segments of live connections carry their sequence numbers (or
	// offsets from them).
	live := 0
	for _, f := range a {
		if f.Class == "tcp-conn" {
			seq := binary.BigEndian.Uint32(f.IP[24:])
			if seq == 1000 || seq == 0xfffffff0 {
				live++
			}
		}
	}
	if live == 0 {
		t.Error("no segment at a live connection's exact sequence number")
	}
}

func TestRandomGenerateErrors(t *testing.T) {
	for _, s := range []*RandomSpec{
		{Seed: 1, Packets: 0, Server: "10.0.0.1", Clients: []string{"10.0.0.2"}},
		{Seed: 1, Packets: maxRandomPackets + 1, Server: "10.0.0.1", Clients: []string{"10.0.0.2"}},
		{Seed: 1, Packets: 5, Server: "x", Clients: []string{"10.0.0.2"}},
		{Seed: 1, Packets: 5, Server: "10.0.0.1"},
	} {
		if _, err := Generate(s, nil, nil); err == nil {
			t.Errorf("Generate(%+v) accepted", s)
		}
	}
	// Without live connections or flows the stream still fills up.
	fs, err := Generate(testSpec(3, 200), nil, nil)
	if err != nil || len(fs) < 200 {
		t.Fatalf("no live flows: %d frames, %v", len(fs), err)
	}
}

func TestRandomScenarios(t *testing.T) {
	scs := RandomScenarios([]uint64{1, 2}, 300)
	if len(scs) != 4 {
		t.Fatalf("%d scenarios", len(scs))
	}
	for _, sc := range scs {
		if n := sc.Client[0].Random.Packets; n != 300 {
			t.Errorf("%s: %d packets, asked 300", sc.Name, n)
		}
	}
	// CI defaults: long stateful streams, short stateless ones.
	for _, sc := range RandomScenarios([]uint64{1}, 0) {
		want := defaultRandomPackets
		if strings.Contains(sc.Name, "stateful") {
			want = defaultStatefulPackets
		}
		if n := sc.Client[0].Random.Packets; n != want || !strings.HasSuffix(sc.Name, fmt.Sprintf("-n%d", want)) {
			t.Errorf("%s: %d packets by default, want %d", sc.Name, n, want)
		}
	}
	for _, sc := range scs {
		if err := CheckUptables(NewTopology(201, 1, "").Expand(sc.Rules)); err != nil {
			t.Errorf("%s: %v", sc.Name, err)
		}
	}
	t.Setenv("KERNELDIFF_RANDOM_SEEDS", "5, 9")
	t.Setenv("KERNELDIFF_RANDOM_PACKETS", "2000")
	seeds, n, err := RandomConfigFromEnv()
	if err != nil || len(seeds) != 2 || seeds[1] != 9 || n != 2000 {
		t.Errorf("env config: %v %d %v", seeds, n, err)
	}
	t.Setenv("KERNELDIFF_RANDOM_PACKETS", "-3")
	if _, _, err := RandomConfigFromEnv(); err == nil {
		t.Error("negative packet count accepted")
	}
}
