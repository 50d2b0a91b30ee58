package config

import "testing"

func TestIpsetsKey(t *testing.T) {
	f, err := Parse("x.toml", "rules = \"r\"\nipsets = \"/etc/uptables/ipsets\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if f.Ipsets != "/etc/uptables/ipsets" {
		t.Fatalf("ipsets = %q", f.Ipsets)
	}
	if _, err := Parse("x.toml", "ipset = \"typo\"\n"); err == nil {
		t.Fatal("a misspelt key must be an error")
	}
}
