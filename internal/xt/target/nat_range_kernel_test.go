package target

import (
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

// TestDNATAddressRangeAsKernel pins the address the kernel (6.18, x86-64)
// chose for each client of DNAT --to-destination 10.233.3.2-10.233.3.3 to
// the public address 10.232.3.1, with and without --persistent, read from
// conntrack -L in the kerneldiff router scenario dnat-ranges. uptables
// used its own hash before and sent 10.232.3.3 and 10.232.3.6 elsewhere.
func TestDNATAddressRangeAsKernel(t *testing.T) {
	tbl := newCTTable(t)
	env := testEnv("nat", xt.PreRouting)
	plain := rt(t, env, 17, "DNAT", "--to-destination", "10.233.3.2-10.233.3.3")
	pers := rt(t, env, 17, "DNAT", "--to-destination", "10.233.3.2-10.233.3.3:7002", "--persistent")
	cases := []struct {
		client     string
		persistent bool
		want       string
	}{
		{"10.232.3.2", false, "10.233.3.3"},
		{"10.232.3.3", false, "10.233.3.3"},
		{"10.232.3.4", false, "10.233.3.2"},
		{"10.232.3.5", false, "10.233.3.3"},
		{"10.232.3.6", false, "10.233.3.3"},
		{"10.232.3.2", true, "10.233.3.3"},
		{"10.232.3.4", true, "10.233.3.3"},
		{"10.232.3.6", true, "10.233.3.2"},
	}
	for i, c := range cases {
		tg := plain
		if c.persistent {
			tg = pers
		}
		got := bind(t, tbl, tg, natCtx(t, tbl, c.client, uint16(40000+i), "10.232.3.1", 8053, xt.PreRouting)).Addr()
		if got.String() != c.want {
			t.Errorf("client %s (persistent %v): DNAT to %v, the kernel chose %s", c.client, c.persistent, got, c.want)
		}
	}
}
