package uptables_test

import (
	"bytes"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables"
)

const tryIptables = "Try `iptables -h' or 'iptables --help' for more information.\n"
const tryRestore = "Try `iptables-restore -h' or 'iptables-restore --help' for more information.\n"

// mustSets loads sets text or fails the test.
func mustSets(t *testing.T, text string) *uptables.Sets {
	t.Helper()
	s, err := uptables.LoadSets(strings.NewReader(text), uptables.WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// beforeHint returns err's text up to the uptables hint line, which is
// uptables' own addition after iptables' text.
func beforeHint(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\nuptables: hint:"); i >= 0 {
		s = s[:i+1]
	}
	return s
}

// A rule naming a set that does not exist is refused with iptables'
// text, as measured with iptables 1.8.9 in a network namespace.
func TestRulesMissingSet(t *testing.T) {
	sets := mustSets(t, "create bl hash:net\n")
	for _, tc := range []struct {
		name, rules string
		sets        *uptables.Sets
		want        string
	}{
		{"match, command form", "-A INPUT -m set --match-set nosuch src -j DROP\n", sets,
			"line 1: iptables v1.8.9 (nf_tables): Set nosuch doesn't exist.\n\n" + tryIptables},
		{"match, no sets at all", "-A INPUT -m set --match-set bl src -j DROP\n", nil,
			"line 1: iptables v1.8.9 (nf_tables): Set bl doesn't exist.\n\n" + tryIptables},
		{"match, save form", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m set --match-set nosuch src -j DROP\nCOMMIT\n", sets,
			"iptables-restore v1.8.9 (nf_tables): Set nosuch doesn't exist.\n\nError occurred at line: 3\n" + tryRestore},
		{"SET target", "-A INPUT -s 127.0.0.1 -j ACCEPT\n-A INPUT -j SET --add-set nosuch src\n", sets,
			"line 2: iptables v1.8.9 (nf_tables): Set nosuch doesn't exist.\n\n" + tryIptables},
		{"SET target del", "-A INPUT -j SET --del-set nosuch src\n", sets,
			"line 1: iptables v1.8.9 (nf_tables): Set nosuch doesn't exist.\n\n" + tryIptables},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := uptables.LoadRulesWithSets(strings.NewReader(tc.rules), tc.sets)
			if err == nil {
				t.Fatal("loaded")
			}
			if got := beforeHint(err); got != tc.want {
				t.Errorf("error\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
	if _, err := uptables.LoadRulesWithSets(strings.NewReader("-A INPUT -m set --match-set bl src,dst -j DROP\n"), sets); err != nil {
		t.Errorf("existing set refused: %v", err)
	}
}

// ipset's own error texts (ipset 7.17 against the kernel, measured).
func TestSetsErrors(t *testing.T) {
	sets := mustSets(t, "create bl hash:net\nadd bl 127.0.0.0/30\n")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"add twice", sets.Add("bl", "127.0.0.0/30"), "ipset v7.17: Element cannot be added to the set: it's already added"},
		{"add bad address", sets.Add("bl", "300.0.0.0/30"), "ipset v7.17: Syntax error: cannot parse 300.0.0.0: resolving to IPv4 address failed"},
		{"add missing set", sets.Add("nosuch", "1.2.3.4"), "ipset v7.17: The set with the given name does not exist"},
		{"del absent", sets.Del("bl", "10.0.0.0/8"), "ipset v7.17: Element cannot be deleted from the set: it's not added"},
		{"exec usage", sets.Exec(nil, nil, nil), "ipset v7.17: No command specified.\nTry `ipset help' for more information."},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if tc.err.Error() != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.err, tc.want)
		}
		if _, ok := tc.err.(*uptables.SetsError); !ok {
			t.Errorf("%s: %T, want *SetsError", tc.name, tc.err)
		}
	}
	if err := sets.Del("bl", "10.0.0.0/8", "-exist"); err != nil {
		t.Errorf("del -exist: %v", err)
	}
	if err := sets.Add("bl", "127.0.0.0/30", "-exist"); err != nil {
		t.Errorf("add -exist: %v", err)
	}
	if _, err := sets.Test("nosuch", "1.2.3.4"); err == nil || err.Error() != "ipset v7.17: The set with the given name does not exist" {
		t.Errorf("test missing set: %v", err)
	}
	for elem, want := range map[string]bool{"127.0.0.3": true, "127.0.0.4": false, "127.0.0.0/30": true} {
		if got, err := sets.Test("bl", elem); err != nil || got != want {
			t.Errorf("Test(%s) = %v, %v; want %v", elem, got, err, want)
		}
	}

	_, err := uptables.LoadSets(strings.NewReader("create bl hash:net\nadd other 10.0.0.1\n"))
	if err == nil || err.Error() != "ipset v7.17: Error in line 2: The set with the given name does not exist" {
		t.Errorf("LoadSets: %v", err)
	}
	if _, err := uptables.NewSets(uptables.WithInterface("eth0")); err == nil {
		t.Error("NewSets accepted WithInterface")
	}
	if _, err := uptables.LoadSetsFile("/nonexistent/x.ipsets"); err == nil {
		t.Error("LoadSetsFile of a missing file")
	}
}

// Save writes what LoadSets reads back (ipset save / restore).
func TestSetsSaveRoundTrip(t *testing.T) {
	text := "create bl hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x00000001\n" +
		"add bl 10.0.0.0/8\nadd bl 10.1.0.0/16 nomatch\n" +
		"create web hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x00000002\n" +
		"add web 192.0.2.1,tcp:443\n"
	sets := mustSets(t, text)
	var b bytes.Buffer
	if err := sets.Save(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != text {
		t.Errorf("save\n%s\nwant\n%s", b.String(), text)
	}
	if got := strings.Join(sets.Names(), ","); got != "bl,web" {
		t.Errorf("Names = %s", got)
	}
}

// fakeClock is a settable clock shared by a firewall and its sets.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// dialOutcome connects from src to the firewall's listener and reports
// what the client saw.
func dialOutcome(t *testing.T, addr, src string) string {
	t.Helper()
	return askFrom(src, addr, "x")
}

// The sets outlive a Reload, -j SET fills them from packets, and the
// rules' references show in listings and keep a set in use from being
// destroyed, as in the kernel.
func TestFirewallSetsReloadAndSETTarget(t *testing.T) {
	sets := mustSets(t, "create bl hash:ip timeout 600\ncreate seen hash:ip\n")
	load := func(text string) *uptables.Rules {
		t.Helper()
		r, err := uptables.LoadRulesWithSets(strings.NewReader(text), sets)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := load("-A INPUT -p tcp --syn -j SET --add-set seen src\n-A INPUT -m set --match-set bl src -j DROP\n")
	fw, err := uptables.New(first, uptables.WithSets(sets))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := fw.Listener(raw)
	defer ln.Close()
	go echoAll(ln, make(chan string, 16))
	addr := ln.Addr().String()

	if got := dialOutcome(t, addr, "127.0.0.7"); got != "reply x" {
		t.Fatalf("unlisted client: %s", got)
	}
	if in, _ := sets.Test("seen", "127.0.0.7"); !in {
		t.Error("-j SET --add-set seen src did not add the client")
	}
	if err := sets.Add("bl", "127.0.0.7"); err != nil {
		t.Fatal(err)
	}
	if got := dialOutcome(t, addr, "127.0.0.7"); got != "closed without a byte" {
		t.Errorf("listed client: %s", got)
	}
	if err := sets.Exec([]string{"destroy", "bl"}, nil, nil); err == nil ||
		err.Error() != "ipset v7.17: Set cannot be destroyed: it is in use by a kernel component" {
		t.Errorf("destroy of a set in use: %v", err)
	}
	var list strings.Builder
	if err := sets.List(&list, "bl"); err != nil || !strings.Contains(list.String(), "\nReferences: 1\n") {
		t.Errorf("list (%v):\n%s", err, list.String())
	}

	// The new rules do not name bl; its contents survive the reload.
	if err := fw.Reload(load("-A INPUT -m set --match-set seen src -m set ! --match-set bl src -j ACCEPT\n-P INPUT DROP\n")); err != nil {
		t.Fatal(err)
	}
	if in, _ := sets.Test("bl", "127.0.0.7"); !in {
		t.Error("Reload lost the set's contents")
	}
	if got := dialOutcome(t, addr, "127.0.0.7"); got != "closed without a byte" {
		t.Errorf("listed client after reload: %s", got)
	}
	if err := sets.Del("bl", "127.0.0.7"); err != nil {
		t.Fatal(err)
	}
	if got := dialOutcome(t, addr, "127.0.0.7"); got != "reply x" {
		t.Errorf("client seen, no longer listed: %s", got)
	}
	list.Reset()
	_ = sets.List(&list, "")
	if !strings.Contains(list.String(), "Name: seen\n") || strings.Count(list.String(), "\nReferences: 1\n") != 2 {
		t.Errorf("references after reload:\n%s", list.String())
	}
	if err := fw.Reload(load("-A INPUT -m set --match-set seen src -j ACCEPT\n")); err != nil {
		t.Fatal(err)
	}
	if err := sets.Exec([]string{"destroy", "bl"}, nil, nil); err != nil {
		t.Errorf("destroy of a set no rule uses: %v", err)
	}
}

// Rules are bound to the sets they were checked against.
func TestFirewallOtherSets(t *testing.T) {
	a := mustSets(t, "create bl hash:net\n")
	b := mustSets(t, "create bl hash:net\n")
	rules, err := uptables.LoadRulesWithSets(strings.NewReader("-A INPUT -m set --match-set bl src -j DROP\n"), a)
	if err != nil {
		t.Fatal(err)
	}
	const want = "uptables: the rules were loaded with other sets than the firewall's (LoadRulesWithSets, WithSets)"
	if _, err := uptables.New(rules, uptables.WithSets(b)); err == nil || err.Error() != want {
		t.Errorf("New with other sets: %v", err)
	}
	plain, err := uptables.New(uptables.MustLoadRules("-A INPUT -j ACCEPT\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Reload(rules); err == nil || err.Error() != want {
		t.Errorf("Reload of a firewall without sets: %v", err)
	}
	fw, err := uptables.New(rules, uptables.WithSets(a))
	if err != nil {
		t.Fatal(err)
	}
	// a is the firewall's; the set b holds is not the rules'.
	if err := fw.Reload(rules); err != nil {
		t.Errorf("Reload with the same sets: %v", err)
	}
	// Two firewalls on one Sets: both rules count as references.
	fw2, err := uptables.New(rules)
	if err != nil {
		t.Fatal(err)
	}
	var list strings.Builder
	_ = a.List(&list, "bl")
	if !strings.Contains(list.String(), "\nReferences: 2\n") {
		t.Errorf("two firewalls:\n%s", list.String())
	}
	// The cleanup that drops a collected firewall's references must not
	// run while they are alive.
	runtime.KeepAlive(fw)
	runtime.KeepAlive(fw2)
}

// Set timeouts run on the clock given to the sets (WithClock), the same
// as the firewall's.
func TestSetsClock(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	sets, err := uptables.LoadSets(strings.NewReader("create knock hash:ip timeout 10\n"), uptables.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	if err := sets.Add("knock", "127.0.0.9"); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(9 * time.Second)
	if in, _ := sets.Test("knock", "127.0.0.9"); !in {
		t.Error("expired after 9 s of 10")
	}
	clk.t = clk.t.Add(time.Second)
	if in, _ := sets.Test("knock", "127.0.0.9"); in {
		t.Error("still there after 10 s")
	}
}

// A firewall that is no longer referenced gives its references back
// (runtime cleanup), so that its sets can be destroyed.
func TestSetsReferencesOfCollectedFirewall(t *testing.T) {
	sets := mustSets(t, "create bl hash:net\n")
	rules, err := uptables.LoadRulesWithSets(strings.NewReader("-A INPUT -m set --match-set bl src -j DROP\n"), sets)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uptables.New(rules); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		err := sets.Exec([]string{"destroy", "bl"}, nil, nil)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collected firewall still holds the set: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A set destroyed between LoadRulesWithSets and New: the engine refuses
// the rule as the kernel refuses a rule naming a missing set.
func TestNewSetDestroyedAfterParse(t *testing.T) {
	sets := mustSets(t, "create bl hash:net\n")
	rules, err := uptables.LoadRulesWithSets(strings.NewReader("-A INPUT -m set --match-set bl src -j DROP\n"), sets)
	if err != nil {
		t.Fatal(err)
	}
	if err := sets.Exec([]string{"destroy", "bl"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	_, err = uptables.New(rules)
	if err == nil || !strings.Contains(err.Error(), "Set bl doesn't exist.") {
		t.Errorf("New: %v", err)
	}
}
