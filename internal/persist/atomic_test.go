package persist

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var errInjected = errors.New("injected failure")

// faultyFS is the real file system with one step failing.
type faultyFS struct {
	osFS
	mu         sync.Mutex
	fail       string // "create", "write", "sync", "close", "rename", "syncdir"; guarded by mu
	writeAfter int    // bytes written before a "write" failure
}

func (f *faultyFS) mode() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail
}

func (f *faultyFS) set(step string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = step
}

type faultyFile struct {
	*os.File
	fs      *faultyFS
	written int
}

func (f *faultyFS) CreateTemp(dir, pattern string) (tempFile, error) {
	if f.mode() == "create" {
		return nil, errInjected
	}
	tf, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &faultyFile{File: tf, fs: f}, nil
}

func (f *faultyFile) Write(p []byte) (int, error) {
	if f.fs.mode() == "write" {
		n := min(len(p), f.fs.writeAfter-f.written)
		n, _ = f.File.Write(p[:n])
		f.written += n
		if n < len(p) {
			return n, errInjected // a full disk midway
		}
	}
	return f.File.Write(p)
}

func (f *faultyFile) Sync() error {
	if f.fs.mode() == "sync" {
		return errInjected
	}
	return f.File.Sync()
}

func (f *faultyFile) Close() error {
	err := f.File.Close()
	if f.fs.mode() == "close" {
		return errInjected
	}
	return err
}

func (f *faultyFS) Rename(o, n string) error {
	if f.mode() == "rename" {
		return errInjected
	}
	return os.Rename(o, n)
}

func (f *faultyFS) SyncDir(dir string) error {
	if f.mode() == "syncdir" {
		return errInjected
	}
	return f.osFS.SyncDir(dir)
}

// TestAtomicWrite: whichever step of a save fails, the previous file is
// still there, whole, and no temporary file is left behind; only a failed
// directory fsync (after the rename) leaves the new file in place.
func TestAtomicWrite(t *testing.T) {
	a := newRig(t, 1, rulesRT)
	now := drive(a, t0)
	for _, step := range []string{"create", "write", "sync", "close", "rename", "syncdir"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			if err := Save(dir, a.e, at(t0)); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, FileName)
			old, _ := os.ReadFile(path)
			err := save(&faultyFS{fail: step, writeAfter: 100}, dir, a.e, at(now))
			if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v: want the injected failure naming %s", err, path)
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if step == "syncdir" {
				if bytes.Equal(got, old) {
					t.Error("rename done but the old file is still there")
				}
			} else if !bytes.Equal(got, old) {
				t.Error("the previous state file was changed by a failed save")
			}
			if _, err := decode(got); err != nil {
				t.Errorf("state file not whole: %v", err)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("files left in the directory: %v", names)
			}
		})
	}
}
