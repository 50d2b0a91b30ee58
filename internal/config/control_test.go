package config

import "testing"

// The control socket and metrics keys are read, and a typo in them is an
// error like any unknown key.
func TestControlMetricsKeys(t *testing.T) {
	f, err := Parse("u.toml", "control = \"/run/u/ctl.sock\"\nmetrics = \"127.0.0.1:9595\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if f.Control != "/run/u/ctl.sock" || f.Metrics != "127.0.0.1:9595" {
		t.Errorf("got control %q metrics %q", f.Control, f.Metrics)
	}
	if _, err := Parse("u.toml", "metric = \"127.0.0.1:9595\"\n"); err == nil {
		t.Error("unknown key metric accepted")
	}
}
