package replay

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// seedTraceRules are the seeds' SSH defences together: connlimit (seed
// 000's per-IP cap, here above 3) in front of the SSHPOOL recent pair
// (5 new connections per hour).
const seedTraceRules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp --syn --dport 22 -m connlimit --connlimit-above 3 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp --dport 22 -m state --state NEW -m recent --name SSHPOOL --rcheck --seconds 3600 --hitcount 5 -j DROP
-A INPUT -p tcp --dport 22 -m state --state NEW -m recent --name SSHPOOL --set -j ACCEPT
-A INPUT -j DROP
COMMIT
`

func restoreRules(t testing.TB, text string) *ruleset.Ruleset {
	t.Helper()
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), builtin.Registry(), strings.NewReader(text), iptables.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestTraceSeedSSH explains the seeds' SSH scenario rule by rule: the
// client's connection attempts (half-open, 30 s apart) fill SSHPOOL, the
// fourth finds 4 in connlimit's count and is reset (so it is not
// recorded), the seventh finds 5 hits and is dropped; the other host opens
// four connections at once and the fourth is reset; a UDP datagram fails
// -p tcp. The golden shows each recent and connlimit decision with the
// state it consulted.
func TestTraceSeedSSH(t *testing.T) {
	e := engine(t, restoreRules(t, seedTraceRules))
	var out bytes.Buffer
	r := New(e, Config{Local: prefixes(host), Trace: &Trace{W: &out}})
	var frames []frame
	for i := 0; i < 7; i++ {
		frames = append(frames, frame{ip: syn(client, host, uint16(40000+i), 22, 1), at: time.Duration(i) * 30 * time.Second})
	}
	for i := 0; i < 4; i++ {
		frames = append(frames, frame{ip: syn(other, host, uint16(50000+i), 22, 1), at: 200*time.Second + time.Duration(i)*time.Second})
	}
	frames = append(frames, frame{ip: udp(other, host, 5353, 53, 20), at: 210 * time.Second})
	if err := r.Replay(bytes.NewReader(pcapBytes(t, layers.LinkTypeEthernet, frames))); err != nil {
		t.Fatal(err)
	}
	goldenCompare(t, "trace-seed-ssh.txt", out.Bytes())
}

// TestTraceFilterNarrows: --trace-filter keeps the other packets out of
// the explanation, and the state the explained ones consulted still
// counts the packets that were not explained.
func TestTraceFilterNarrows(t *testing.T) {
	e := engine(t, restoreRules(t, seedTraceRules))
	var out bytes.Buffer
	f, err := ParseFilter("src " + client + " and port 22")
	if err != nil {
		t.Fatal(err)
	}
	r := New(e, Config{Local: prefixes(host), Trace: &Trace{W: &out, Filter: f}})
	var frames []frame
	for i := 0; i < 7; i++ {
		frames = append(frames, frame{ip: syn(client, host, uint16(40000+i), 22, 1), at: time.Duration(i) * 30 * time.Second})
		frames = append(frames, frame{ip: syn(other, host, uint16(50000+i), 22, 1), at: time.Duration(i)*30*time.Second + time.Second})
	}
	if err := r.Replay(bytes.NewReader(pcapBytes(t, layers.LinkTypeEthernet, frames))); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if strings.Contains(s, other) {
		t.Errorf("the filtered-out host appears:\n%s", s)
	}
	if n := strings.Count(s, " verdict "); n != 7 {
		t.Errorf("%d packets explained, want 7:\n%s", n, s)
	}
	want := "TRACE: filter:INPUT:rule:3 why: -p tcp: PROTO=TCP; tcp: spt 40006 dpt 22 flags SYN; state: ctstate NEW; recent: SSHPOOL 203.0.113.7: 5 hits within 3600s (need 5), ttl 64 → match\n"
	if !strings.Contains(s, want) {
		t.Errorf("no line\n%s\nin\n%s", want, s)
	}
}

// TestTraceHotDrop: a TCP header cut short under -m tcp is dropped by the
// match itself; the trace says so on the rule, with the match's reason,
// and gives the verdict to that rule.
func TestTraceHotDrop(t *testing.T) {
	e := engine(t, restoreRules(t, `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -j ACCEPT
-A INPUT -p tcp -m tcp -j ACCEPT
COMMIT
`))
	var out bytes.Buffer
	r := New(e, Config{Local: prefixes(host), Trace: &Trace{W: &out}})
	full := syn(client, host, 40000, 22, 1)
	cut := append([]byte(nil), full[:30]...) // IP header + 10 bytes of TCP
	cut[2], cut[3] = 0, 30                   // total length
	cut[10], cut[11] = 0, 0
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(cut[i])<<8 | uint32(cut[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	cut[10], cut[11] = byte(^sum>>8), byte(^sum)
	if err := r.Replay(bytes.NewReader(pcapBytes(t, layers.LinkTypeEthernet, []frame{{ip: cut}}))); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"TRACE: filter:INPUT:rule:1 why: -p udp: PROTO=TCP → no match\n",
		"TRACE: filter:INPUT:rule:2 hotdrop -A INPUT -p tcp -m tcp -j ACCEPT\n",
		"TRACE: filter:INPUT:rule:2 why: tcp: TCP header cut at 10 bytes (needs 20) → hot-drop\n",
		"TRACE: #1 verdict DROP by filter:INPUT:rule:2\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("no line %q in\n%s", want, s)
		}
	}
}
