package persist

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/xt/builtin"
)

func setsEngine(t *testing.T, now int64, lines ...string) (*netfilter.Engine, *ipset.Sets) {
	t.Helper()
	sets := ipset.New(nil)
	for _, l := range lines {
		if err := sets.Exec(strings.Fields(l), nil, &bytes.Buffer{}, now); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}
	sets.MarkOrigin(now)
	e := netfilter.New(netfilter.Config{})
	if err := builtin.PinSets(e, sets); err != nil {
		t.Fatal(err)
	}
	return e, sets
}

// TestSetsSurviveRestart: entries a SET target added (with their time
// left) and a set created at run time come back after Save and Load; the
// report names them.
func TestSetsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Unix(1_700_000_000, 0)
	file := []string{"create knock hash:ip timeout 10", "create bl hash:net", "add bl 10.0.0.0/8"}
	e, sets := setsEngine(t, t0.UnixNano(), file...)
	knock, _ := sets.Get("knock")
	var src [ipset.MaxDim]bool
	src[0] = true
	knock.AddPacket(&ipset.Packet{Src: 192<<24 | 2<<8 | 7}, &src, t0.UnixNano(), 0, false, false)
	if err := sets.Exec([]string{"create", "adhoc", "hash:ip"}, nil, nil, t0.UnixNano()); err != nil {
		t.Fatal(err)
	}
	if err := Save(dir, e, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, SetsFileName)); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(4 * time.Second)
	e2, sets2 := setsEngine(t, t1.UnixNano(), file...)
	rep, err := Load(dir, e2, t1)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := sets2.Exec([]string{"save"}, nil, &b, t1.UnixNano()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "add knock 192.0.2.7 timeout 6\n") || !strings.Contains(b.String(), "create adhoc hash:ip") {
		t.Fatalf("restored sets:\n%s", b.String())
	}
	s := rep.String()
	if !strings.Contains(s, "ipset knock: 1 of 1 restored") || !strings.Contains(s, "ipset adhoc: 0 of 0 restored") {
		t.Fatalf("report:\n%s", s)
	}
}

// TestSetsCorruptFile: a damaged ipsets.state stops Load with its name.
func TestSetsCorruptFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SetsFileName), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, _ := setsEngine(t, 0, "create a hash:ip")
	if _, err := Load(dir, e, time.Unix(0, 0)); err == nil || !strings.Contains(err.Error(), SetsFileName) {
		t.Fatalf("err %v", err)
	}
}
