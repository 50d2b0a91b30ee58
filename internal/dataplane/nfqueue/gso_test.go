package nfqueue

import (
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// partial turns pkt (IPv4, TCP or UDP) into what a CHECKSUM_PARTIAL skb
// holds: the L4 checksum field carries only the folded pseudo-header sum,
// which the device would complete.
func partial(pkt []byte) []byte {
	ip := header.IPv4(pkt)
	hl := ip.HeaderLen()
	l4 := pkt[hl:ip.TotalLen()]
	off := header.TCPChecksumOff
	if ip.Protocol() == header.ProtoUDP {
		off = header.UDPChecksumOff
	}
	ps := header.PseudoHeaderSum(pkt[12:16], pkt[16:20], ip.Protocol(), len(l4))
	l4[off], l4[off+1] = byte(ps>>8), byte(ps)
	return pkt
}

// l4Valid reports whether pkt's TCP/UDP checksum is complete and right.
func l4Valid(pkt []byte) bool {
	ip := header.IPv4(pkt)
	l4 := pkt[ip.HeaderLen():ip.TotalLen()]
	ps := header.PseudoHeaderSum(pkt[12:16], pkt[16:20], ip.Protocol(), len(l4))
	return header.Sum(l4, ps) == 0xffff
}

func syn(srcPort uint16) []byte {
	return packettest.TCP(packettest.TCPOpts{Src: "10.201.0.1", Dst: "10.201.0.2", SrcPort: srcPort, DstPort: 8080,
		Flags: packettest.SYN, Seq: 1000, Window: 64240, Options: packettest.MSS(1460)})
}

// TestSkbInfoChecksum: the engine's conntrack and REJECT verify a TCP
// checksum exactly when the kernel would (nf_ip_checksum): only for a
// packet NFQA_SKB_INFO marks CSUM_NOTVERIFIED. A SYN whose checksum is not
// computed yet (CSUMNOTREADY, as every segment of a local socket over veth
// or loopback is with NFQA_CFG_F_GSO) is NEW, not INVALID, and REJECT
// answers it.
func TestSkbInfoChecksum(t *testing.T) {
	const rules = rulesHeader +
		"-A INPUT -m conntrack --ctstate INVALID -j DROP\n" +
		"-A INPUT -p tcp --dport 8081 -j REJECT --reject-with tcp-reset\n" +
		"-A INPUT -m conntrack --ctstate NEW -j ACCEPT\n" +
		"-A INPUT -j DROP\nCOMMIT\n"
	for _, tc := range []struct {
		name     string
		info     uint32
		partial  bool
		want     Verdict
		wantRepl uint64 // REJECT replies attempted for the SYN to 8081
	}{
		{"not ready", skbCsumNotReady, true, Accept, 1},
		{"not ready, GSO", skbCsumNotReady | skbGSO, true, Accept, 1},
		{"verified (no SKB_INFO)", 0, true, Accept, 1},
		{"not verified, incomplete checksum", skbCsumNotVerified, true, Drop, 0},
		{"not verified, good checksum", skbCsumNotVerified, false, Accept, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, fq := newTestDaemon(t, rules, true, nil)
			w := d.workers[0]
			a, b := syn(40000), packettest.TCP(packettest.TCPOpts{Src: "10.201.0.1", Dst: "10.201.0.2", SrcPort: 40001, DstPort: 8081,
				Flags: packettest.SYN, Seq: 5})
			if tc.partial {
				a, b = partial(a), partial(b)
			}
			w.handle(&Msg{ID: 1, Hook: hookLocalIn, InDev: 2, SkbInfo: tc.info, Payload: a})
			w.handle(&Msg{ID: 2, Hook: hookLocalIn, InDev: 2, SkbInfo: tc.info, Payload: b})
			if len(fq.got) != 2 || fq.got[0].v != tc.want {
				t.Fatalf("verdicts %+v, want %v for the SYN", fq.got, tc.want)
			}
			st := d.Stats()[0]
			// NoReplies: an attempted reply is counted as a reply error.
			if n := st.Replies.Load() + st.ReplyErrors.Load(); n != tc.wantRepl {
				t.Errorf("REJECT replies %d, want %d", n, tc.wantRepl)
			}
		})
	}
}

// TestRewriteCompletesChecksum: a rewritten packet whose checksum was not
// computed yet goes back with a complete one (the kernel installs the new
// payload as CHECKSUM_NONE); any other packet keeps the engine's
// incremental update, and an unmodified one goes back untouched.
func TestRewriteCompletesChecksum(t *testing.T) {
	const mangle = "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
	data := packettest.TCP(packettest.TCPOpts{Src: "10.201.0.1", Dst: "10.201.0.2", SrcPort: 40000, DstPort: 8080,
		Flags: packettest.ACK | packettest.PSH, Seq: 1, Ack: 1, Window: 500, Payload: make([]byte, 9000)})
	udp := packettest.UDP(packettest.UDPOpts{Src: "10.201.0.2", Dst: "10.201.0.1", SrcPort: 53, DstPort: 40000, Payload: []byte("answer")})
	for _, tc := range []struct {
		name      string
		rules     string
		hook      uint8
		pkt       []byte
		info      uint32
		modified  bool
		wantValid bool
	}{
		{"ttl, not ready", mangle + "-A INPUT -j TTL --ttl-set 9\nCOMMIT\n", hookLocalIn, partial(clone(data)), skbCsumNotReady | skbGSO, true, true},
		{"ttl, verified", mangle + "-A INPUT -j TTL --ttl-set 9\nCOMMIT\n", hookLocalIn, clone(data), skbCsumNotVerified, true, true},
		{"udp snat, not ready", "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
			"-A POSTROUTING -p udp -j SNAT --to-source 10.201.0.7:5353\nCOMMIT\n", hookLocalOut, partial(clone(udp)), skbCsumNotReady, true, true},
		{"no rewrite, not ready", mangle + "-A INPUT -j TTL --ttl-set 64\nCOMMIT\n", hookLocalIn, partial(clone(data)), skbCsumNotReady, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, fq := newTestDaemon(t, tc.rules, true, nil)
			d.workers[0].handle(&Msg{ID: 1, Hook: tc.hook, InDev: 2, OutDev: 2, SkbInfo: tc.info, Payload: tc.pkt})
			if len(fq.got) != 1 || fq.got[0].v != Accept {
				t.Fatalf("verdicts %+v", fq.got)
			}
			got := fq.got[0].payload
			if !tc.modified {
				if got != nil {
					t.Errorf("unmodified packet sent back as a new payload")
				}
				return
			}
			if got == nil {
				t.Fatal("rewritten packet sent without its payload")
			}
			if l4Valid(got) != tc.wantValid {
				t.Errorf("L4 checksum valid = %v, want %v", l4Valid(got), tc.wantValid)
			}
			if !header.IPv4(got).ChecksumValid() {
				t.Error("IP header checksum wrong")
			}
		})
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// TestRewriteNotReadyAllocs: completing the checksum of a rewritten
// aggregate allocates nothing.
func TestRewriteNotReadyAllocs(t *testing.T) {
	d, _ := newTestDaemon(t, "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"+
		"-A INPUT -j TTL --ttl-dec 1\nCOMMIT\n", true, nil)
	w := d.workers[0]
	w.q = &nullQueue{}
	pkt := partial(packettest.TCP(packettest.TCPOpts{Src: "10.201.0.1", Dst: "10.201.0.2", SrcPort: 40000, DstPort: 8080,
		Flags: packettest.ACK, Seq: 1, Ack: 1, Window: 500, Payload: make([]byte, 60000)}))
	m := Msg{ID: 1, Hook: hookLocalIn, InDev: 2, SkbInfo: skbCsumNotReady | skbGSO, Payload: pkt}
	w.handle(&m)
	if n := testing.AllocsPerRun(50, func() { w.handle(&m) }); n != 0 {
		t.Errorf("handle allocates %.1f times per rewritten packet", n)
	}
}

// TestCutPacket: the kernel copies at most 65531 bytes, so a 65535-byte
// loopback segment arrives 4 bytes short with NFQA_CAP_LEN 65535. It is
// still decided by the rules and counted with its real length; a rewrite
// of it cannot be handed back and gets the fail verdict.
func TestCutPacket(t *testing.T) {
	big := packettest.TCP(packettest.TCPOpts{Src: "127.0.0.1", Dst: "127.0.0.1", SrcPort: 40000, DstPort: 8080,
		Flags: packettest.ACK, Seq: 1, Ack: 1, Window: 500, Payload: make([]byte, 65535-40)})
	if len(big) != 65535 {
		t.Fatalf("built %d bytes", len(big))
	}
	msg := func() *Msg {
		// As Read hands it out: the copy, with room after it.
		buf := make([]byte, 70000)
		copy(buf, big[:maxCopyRange])
		return &Msg{ID: 1, Hook: hookLocalIn, InDev: 1, SkbInfo: skbCsumNotReady, CapLen: 65535, Payload: buf[:maxCopyRange]}
	}
	t.Run("decided", func(t *testing.T) {
		d, fq := newTestDaemon(t, rulesHeader+"-A INPUT -i lo -p tcp --dport 8080 -m conntrack --ctstate NEW -j ACCEPT\n-A INPUT -j DROP\nCOMMIT\n", false, nil)
		d.workers[0].handle(msg())
		if len(fq.got) != 1 || fq.got[0].v != Accept || fq.got[0].payload != nil {
			t.Fatalf("verdicts %+v, want ACCEPT without payload", fq.got)
		}
		st := d.Stats()[0]
		if st.Cut.Load() != 1 || st.Undecodable.Load() != 0 {
			t.Errorf("cut %d undecodable %d", st.Cut.Load(), st.Undecodable.Load())
		}
		var b strings.Builder
		if err := iptables.WriteSave(&b, d.cfg.Engine.Ruleset(), iptables.SaveOptions{Counters: true}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "[1:65535] -A INPUT -i lo") {
			t.Errorf("counters, want [1:65535] on the ACCEPT rule:\n%s", b.String())
		}
	})
	t.Run("rewrite", func(t *testing.T) {
		d, fq := newTestDaemon(t, "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"+
			"-A INPUT -j TTL --ttl-set 9\nCOMMIT\n", false, nil)
		d.workers[0].handle(msg())
		if len(fq.got) != 1 || fq.got[0].v != Drop || fq.got[0].payload != nil {
			t.Fatalf("verdicts %+v, want the fail verdict (DROP, fail-closed)", fq.got)
		}
		if d.Stats()[0].CutRewrites.Load() != 1 {
			t.Error("cut rewrite not counted")
		}
	})
}
