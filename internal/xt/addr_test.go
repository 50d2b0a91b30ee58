package xt

import "testing"

// TestParseAddrMaskIPv4 pins the address forms iptables 1.8.9 accepts for
// -s/-d, as measured in a network namespace (`iptables -A INPUT -s X`, then
// `iptables -S`).
func TestParseAddrMaskIPv4(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"10.0.0.010", "10.0.0.8/32", ""}, // parts are strtoul base 0: octal
		{"0x0a.1", "10.1.0.0/32", ""},     // hex, missing parts are zero
		{"10.1", "10.1.0.0/32", ""},
		{"10.1.2", "10.1.2.0/32", ""},
		{"012.0.0.1", "10.0.0.1/32", ""},
		{"10.0.0.0012", "10.0.0.10/32", ""},
		{"10.256", "10.0.1.0/32", ""}, // numeric parse fails; the resolver's inet_aton takes it
		{"192.168.1.77/24", "192.168.1.0/24", ""},
		{"10.0.0.0/255.255.0.0", "10.0.0.0/16", ""},
		{"1.2.3.4/255.0.255.0", "1.0.3.0/255.0.255.0", ""},
		{"1.2.3.4/255.255.0", "", "invalid mask `255.255.0' specified"},
		{"1.2.3.4/33", "", "invalid mask `33' specified"},
		{"10.1 ", "", "host/network `10.1 ' not found"},
		{"example.com", "", "host/network `example.com' not found"},
	} {
		a, m, err := ParseAddrMask(IPv4, tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := FormatAddrMask(a, m); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestParseHost: options of libxtables' host type go to the resolver, which
// reads inet_aton forms (recent --mask 16 lists as 0.0.0.16).
func TestParseHost(t *testing.T) {
	for in, want := range map[string]string{"16": "0.0.0.16", "10.1": "10.0.0.1", "255.255.255.0": "255.255.255.0"} {
		a, err := ParseHost(IPv4, in)
		if err != nil || a.String() != want {
			t.Errorf("%q: %v %v, want %s", in, a, err, want)
		}
	}
}
