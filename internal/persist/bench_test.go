package persist

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSaveLoad: the largest default-sized state, a full hashlimit
// table (htable-max 65536 buckets) and a full recent list (100 entries
// with 32-stamp rings).
func BenchmarkSaveLoad(b *testing.B) {
	const rules = `
-A INPUT -p udp -m hashlimit --hashlimit-upto 5/sec --hashlimit-mode srcip --hashlimit-name BIG -j ACCEPT
-A INPUT -p tcp -m recent --name R --set
`
	t := &testing.T{}
	r := newRig(t, 1, rules)
	now := t0
	for i := 0; i < 65536; i++ {
		r.udp(fmt.Sprintf("10.%d.%d.1", i>>8, i&255), 53, 1, now)
	}
	for i := 0; i < 3200; i++ {
		r.tcp(fmt.Sprintf("192.0.2.%d", i%100), 22, 64, now)
	}
	dir := b.TempDir()
	b.Run("Save", func(b *testing.B) {
		for b.Loop() {
			if err := Save(dir, r.e, at(now)); err != nil {
				b.Fatal(err)
			}
		}
		fi, _ := os.Stat(filepath.Join(dir, FileName))
		b.ReportMetric(float64(fi.Size()), "file-bytes")
	})
	b.Run("Load", func(b *testing.B) {
		for b.Loop() {
			rep, err := Load(dir, r.e, at(now))
			if err != nil || rep.Restored() != 65536+100 {
				b.Fatal(err, rep.Restored())
			}
		}
	})
}
