package persist

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/uptables/uptables/internal/netfilter"
)

// FuzzLoad: whatever the bytes, decoding never panics; what decodes
// re-encodes to a file that decodes to the same state, and restores into
// an engine naming the same lists without error (apply's plan never asks a
// list or table for something it refuses).
func FuzzLoad(f *testing.F) {
	good, _ := savedFile(&testing.T{})
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"format":"uptables-state","version":1}`))
	f.Add([]byte(`{"format":"uptables-state","version":1,"recent":[{"name":"SSH","mask":"ffffffffffffffffffffffffffffffff","capacity":100,"ring":4,"entries":[{"addr":"::ffff:1.2.3.4","ttl":1,"index":2,"stamps_ns":[5,6,7,8],"rank":0}]}]}`))
	f.Add([]byte(`{"format":"uptables-state","version":1,"hashlimit":[{"family":"ipv4","name":"HL","mode":6,"srcmask":32,"dstmask":32,"avg":200000,"burst":10,"size":8192,"max":65536,"gcinterval_ms":1000,"expire_ms":1000,"gc_started":true,"gc_next_ns":10,"entries":[{"src":"1.2.3.4","dst":"0.0.0.0","dport":53,"credit":1,"cap":274877906000000,"cost":27487790600000,"last_ns":99999999999999,"expires_ns":-5}]}]}`))
	rules := parseRules(f, rulesRT)
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decode(data)
		if err != nil {
			return
		}
		again, err := encode(st)
		if err != nil {
			t.Fatalf("encode of a decoded state: %v", err)
		}
		st2, err := decode(again)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(st, st2) {
			t.Fatalf("state changed in a round trip:\n%s", again)
		}
		e := netfilter.New(netfilter.Config{Seed: 1})
		if err := e.Load(rules); err != nil {
			t.Fatal(err)
		}
		var rep Report
		if err := apply(st, e, t0, LoadOptions{}, &rep); err != nil {
			t.Fatalf("apply of a valid file: %v\n%s", err, rep.String())
		}
		// Again with the options on (a second restore over the first).
		rep = Report{}
		if err := apply(st2, e, t0+5e9, LoadOptions{KeepOnRingGrowth: true, MaxAge: 1e9}, &rep); err != nil {
			t.Fatalf("apply with options: %v\n%s", err, rep.String())
		}
		if bytes.Contains(again, []byte("NaN")) {
			t.Fatal("non-integer number written")
		}
	})
}
