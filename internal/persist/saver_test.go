package persist

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestSaver: a save every interval on the engine's clock, SaveNow in
// between, a failed save reported and cleared by the next good one, and a
// final save on Stop; the goroutine ends with Stop (synctest fails the
// test if it leaks).
func TestSaver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, 1, rulesRT)
		dir := t.TempDir()
		fsys := &faultyFS{}
		start := time.Now()
		s, err := startSaver(SaverConfig{Dir: dir, Engine: r.e, Interval: time.Minute}, fsys)
		if err != nil {
			t.Fatal(err)
		}
		savedAt := func() time.Time {
			t.Helper()
			data, err := os.ReadFile(filepath.Join(dir, FileName))
			if err != nil {
				t.Fatal(err)
			}
			st, err := decode(data)
			if err != nil {
				t.Fatal(err)
			}
			return time.Unix(0, st.SavedAtNS)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if s.Saves() != 0 {
			t.Fatal("saved before the first interval")
		}
		drive(r, time.Now().UnixNano())
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if s.Saves() != 1 || !savedAt().Equal(start.Add(time.Minute)) {
			t.Fatalf("after 61 s: %d saves, saved at %v", s.Saves(), savedAt().Sub(start))
		}
		if !strings.Contains(string(must(os.ReadFile(filepath.Join(dir, FileName)))), `"198.51.100.7"`) {
			t.Fatal("the periodic save lacks the traffic's state")
		}
		fsys.set("rename")
		time.Sleep(time.Minute)
		synctest.Wait()
		if !errors.Is(s.Err(), errInjected) || s.Saves() != 1 || !savedAt().Equal(start.Add(time.Minute)) {
			t.Fatalf("failed save: err %v, %d saves", s.Err(), s.Saves())
		}
		fsys.set("")
		time.Sleep(10 * time.Second)
		if err := s.SaveNow(); err != nil || s.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		if s.Saves() != 3 || !savedAt().Equal(start.Add(2*time.Minute+16*time.Second)) {
			t.Fatalf("after Stop: %d saves, last at %v", s.Saves(), savedAt().Sub(start))
		}
		if err := s.Stop(); err != nil {
			t.Fatal("second Stop:", err)
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestSaverConfig(t *testing.T) {
	r := newRig(t, 1, rulesRT)
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o600)
	for _, c := range []struct {
		cfg  SaverConfig
		want string
	}{
		{SaverConfig{Dir: t.TempDir()}, "without an engine"},
		{SaverConfig{Dir: t.TempDir(), Engine: r.e, Interval: time.Millisecond}, "below one second"},
		{SaverConfig{Dir: filepath.Join(t.TempDir(), "x"), Engine: r.e}, "no such file"},
		{SaverConfig{Dir: file, Engine: r.e}, "not a directory"},
	} {
		if _, err := StartSaver(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
