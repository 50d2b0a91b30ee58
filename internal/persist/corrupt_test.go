package persist

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// savedFile returns a valid state file made by drive over rulesRT.
func savedFile(t *testing.T) (data []byte, now int64) {
	t.Helper()
	a := newRig(t, 1, rulesRT)
	now = drive(a, t0)
	dir := t.TempDir()
	if err := Save(dir, a.e, at(now)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return data, now
}

// TestCorruptFiles: every damaged file is an error that names the file
// and the problem, and the engine's state is left exactly as it was.
func TestCorruptFiles(t *testing.T) {
	good, now := savedFile(t)
	replace := func(old, new string) []byte {
		if !strings.Contains(string(good), old) {
			t.Fatalf("test file lacks %q", old)
		}
		return []byte(strings.Replace(string(good), old, new, 1))
	}
	// A file whose lists are fine one by one but named twice.
	st, err := decode(good)
	if err != nil {
		t.Fatal(err)
	}
	st.Recent = append(st.Recent, st.Recent[0])
	dupList, err := encode(st)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"not json", []byte("src=10.0.0.1 ttl: 64\n"), "not valid JSON: invalid character"},
		{"truncated early", good[:40], "not valid JSON: truncated"},
		{"truncated half", good[:len(good)/2], "not valid JSON: truncated"},
		{"truncated end", good[:len(good)-3], "not valid JSON: truncated"},
		{"other format", replace(`"format":"uptables-state"`, `"format":"iptables-save"`), `not an uptables state file (format "iptables-save"`},
		{"no format", []byte(`{"version":1}`), "not an uptables state file"},
		{"newer version", replace(`"version":1`, `"version":2`), "format version 2 is written by a newer uptables"},
		{"version 0", replace(`"version":1`, `"version":0`), "format version 0 is not one"},
		{"version as string", replace(`"version":1`, `"version":"1"`), "cannot unmarshal string"},
		{"ttl as string", replace(`"ttl":64`, `"ttl":"64"`), "recent.entries.ttl"},
		{"ttl out of range", replace(`"ttl":64`, `"ttl":300`), "number 300"},
		{"negative credit", replace(`"credit":`, `"credit":-`), "credit"},
		{"fractional index", replace(`"index":13`, `"index":13.5`), "number 13.5"},
		{"unknown field", replace(`"saved_at":`, `"saved_when":`), `unknown field "saved_when"`},
		{"trailing data", append(append([]byte(nil), good...), `{}`...), "data after the end"},
		{"bad address", replace(`"addr":"198.51.100.7"`, `"addr":"198.51.100.700"`), `bad address "198.51.100.700"`},
		{"ipv6 in an ipv4 table", replace(`"src":"10.1.0.3"`, `"src":"2001:db8::1"`), "not of the table's family"},
		{"bad ring", replace(`"ring":32`, `"ring":33`), "ring size 33 is not a power of two"},
		{"bad index", replace(`"index":13`, `"index":40`), "write index 40 cannot occur"},
		{"bad mask", replace(`"mask":"ffffffffffffffffffffffffffffffff"`, `"mask":"ffff"`), "not 16 bytes of hex"},
		{"bad family", replace(`"family":"ipv4"`, `"family":"inet"`), `family "inet"`},
		{"wrong cost", replace(`"cost":27487790600000`, `"cost":27487790600001`), "is not the configured rate's"},
		{"list twice", dupList, `recent list "SCAN" appears twice`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newRig(t, 5, rulesRT)
			drive(b, t0+7e9) // some state of its own
			beforeR, beforeH := procRecent(b.e), procHashlimit(b.e, now)
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir, b.e, at(now))
			if err == nil {
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q: want the path and %q", err, c.want)
			}
			if c.name == "newer version" && !errors.Is(err, errNewer) {
				t.Errorf("newer version not marked: %v", err)
			}
			if r, h := procRecent(b.e), procHashlimit(b.e, now); r != beforeR || h != beforeH {
				t.Errorf("engine state changed by a failed Load")
			}
		})
	}
}
