package persist

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/uptables/uptables/internal/netfilter"
)

// DefaultInterval is how often a Saver saves when its config says 0: a
// crash loses at most a minute of recent-list and hashlimit history.
const DefaultInterval = time.Minute

// SaverConfig configures a Saver.
type SaverConfig struct {
	// Dir holds state.json; it must exist.
	Dir    string
	Engine *netfilter.Engine
	// Interval between saves (0 = DefaultInterval); at least a second, so
	// that a typo cannot turn the disk into the bottleneck.
	Interval time.Duration
	// Now is the engine's clock (nil = time.Now, right for live traffic).
	Now func() time.Time
	// Logger receives failed saves (nil = discard); the last error is also
	// kept (Err).
	Logger *slog.Logger
}

// Saver saves an engine's state periodically from one goroutine it owns,
// so that a crash loses at most one interval. Start it after Load, or its
// first save replaces the file Load was to read. Stop ends it with a final
// save.
type Saver struct {
	cfg   SaverConfig
	fsys  fileSystem
	log   *slog.Logger
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex // serialises saves; guards err and saves
	err   error
	saves int
}

// StartSaver checks cfg and starts the saving goroutine.
func StartSaver(cfg SaverConfig) (*Saver, error) {
	return startSaver(cfg, osFS{})
}

func startSaver(cfg SaverConfig, fsys fileSystem) (*Saver, error) {
	if cfg.Engine == nil {
		return nil, errors.New("persist: saver without an engine")
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Interval < time.Second {
		return nil, fmt.Errorf("persist: save interval %v is below one second", cfg.Interval)
	}
	if fi, err := os.Stat(cfg.Dir); err != nil {
		return nil, fmt.Errorf("persist: state directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("persist: state directory %s is not a directory", cfg.Dir)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Saver{cfg: cfg, fsys: fsys, log: cfg.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	go s.run()
	return s, nil
}

func (s *Saver) run() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.SaveNow(); err != nil {
				s.log.Warn("saving state failed", "dir", s.cfg.Dir, "err", err)
			}
		}
	}
}

// SaveNow saves at once (a control command, SIGUSR1), serialised with the
// periodic saves.
func (s *Saver) SaveNow() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := save(s.fsys, s.cfg.Dir, s.cfg.Engine, s.cfg.Now())
	s.err = err
	if err == nil {
		s.saves++
	}
	return err
}

// Err returns the result of the last save (nil when it succeeded or none
// ran yet).
func (s *Saver) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Saves counts the successful saves.
func (s *Saver) Saves() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves
}

// Stop ends the goroutine, waits for it, and saves one last time; it
// returns that save's error. Later calls do nothing and return nil.
func (s *Saver) Stop() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		err = s.SaveNow()
	})
	return err
}
