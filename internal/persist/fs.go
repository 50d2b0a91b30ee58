package persist

import (
	"io"
	"os"
	"path/filepath"
)

// fileSystem is what writeAtomic needs of the OS; tests inject failures.
type fileSystem interface {
	CreateTemp(dir, pattern string) (tempFile, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	SyncDir(dir string) error
}

// tempFile is the part of *os.File writeAtomic uses.
type tempFile interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

type osFS struct{}

func (osFS) CreateTemp(dir, pattern string) (tempFile, error) { return os.CreateTemp(dir, pattern) }
func (osFS) Rename(oldpath, newpath string) error             { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                         { return os.Remove(name) }

// SyncDir makes a rename in dir durable (rename(2) is atomic but lives in
// the directory's metadata until that is written back).
func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeAtomic replaces dir/FileName with data so that, whatever fails or
// crashes, the file is either the old one or the new one, whole: write a
// temporary file in the same directory (same file system, so the rename is
// atomic), fsync it, rename it over the old file, fsync the directory. On
// failure before the rename the temporary file is removed.
func writeAtomic(fsys fileSystem, dir string, data []byte) (err error) {
	return writeAtomicName(fsys, dir, FileName, data)
}

// writeAtomicName is writeAtomic for dir/name.
func writeAtomicName(fsys fileSystem, dir, name string, data []byte) (err error) {
	f, err := fsys.CreateTemp(dir, ".state-*.tmp")
	if err != nil {
		return err
	}
	closed, renamed := false, false
	defer func() {
		if !closed {
			f.Close()
		}
		if !renamed {
			fsys.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	closed = true
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	renamed = true
	return fsys.SyncDir(dir)
}
