package kerneldiff

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"
)

// kmsgPoll is how often the follower looks for new records when the
// kernel log had nothing to read. The printk ring holds 128 KiB on this
// machine (a few hundred LOG records); at the random scenarios' rate of
// about one packet per 1.5 ms with up to three LOG lines each, 2 ms
// between polls keeps the follower far ahead of the ring's wrap even when
// other suites log at the same time.
const kmsgPoll = 2 * time.Millisecond

// kmsg follows /dev/kmsg from the moment it is opened: a goroutine reads
// each record as the kernel appends it, so long runs keep every LOG line
// even when the ring wraps many times over. Reading the ring only at the
// end lost the oldest lines of every long run.
type kmsg struct {
	fd   int
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	out  []string
	lost int // reads that returned EPIPE: records overwritten before we read them
	err  error
}

// openKmsg opens /dev/kmsg positioned at its end, so only records
// written afterwards are read, and starts following it.
func openKmsg() (*kmsg, error) {
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("/dev/kmsg: %w", err)
	}
	if _, err := syscall.Seek(fd, 0, io.SeekEnd); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("/dev/kmsg seek: %w", err)
	}
	k := &kmsg{fd: fd, stop: make(chan struct{}), done: make(chan struct{})}
	go k.follow()
	return k, nil
}

// follow reads records until stop is closed, then drains what is left.
func (k *kmsg) follow() {
	defer close(k.done)
	buf := make([]byte, 8192)
	for {
		idle := k.drain(buf)
		select {
		case <-k.stop:
			k.drain(buf)
			return
		default:
		}
		if idle {
			time.Sleep(kmsgPoll)
		}
	}
}

// drain reads every record available now (one read(2) per record; EAGAIN
// means nothing more). It reports true when it stopped on EAGAIN.
func (k *kmsg) drain(buf []byte) bool {
	for i := 0; i < maxKmsgRecords; i++ {
		n, err := syscall.Read(k.fd, buf)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) {
				return true
			}
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			k.mu.Lock()
			if errors.Is(err, syscall.EPIPE) { // overwritten: the next read resumes at the oldest record
				k.lost++
				k.mu.Unlock()
				continue
			}
			if k.err == nil {
				k.err = err
			}
			k.mu.Unlock()
			return true
		}
		if n <= 0 {
			return true
		}
		if msg, ok := kmsgMessage(buf[:n]); ok {
			k.mu.Lock()
			if len(k.out) < maxKmsgRecords {
				k.out = append(k.out, msg)
			}
			k.mu.Unlock()
		}
	}
	return false
}

// kmsgMessage extracts the message of one /dev/kmsg record
// ("prio,seq,usec,flags;message\n KEY=value..."), unescaped.
func kmsgMessage(rec []byte) (string, bool) {
	_, msg, ok := strings.Cut(string(rec), ";")
	if !ok {
		return "", false
	}
	// Continuation lines (" KEY=value") follow the message.
	msg, _, _ = strings.Cut(msg, "\n")
	return unescapeKmsg(msg), true
}

// finish stops the follower after a last drain (idempotent).
func (k *kmsg) finish() {
	select {
	case <-k.stop:
	default:
		close(k.stop)
	}
	<-k.done
}

// lines stops following and returns the messages of every record read
// since openKmsg.
func (k *kmsg) lines() ([]string, error) {
	k.finish()
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.out...), k.err
}

// lostRecords is the number of times the ring overwrote records before
// the follower read them (0 on a healthy run). Valid after lines.
func (k *kmsg) lostRecords() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lost
}

func (k *kmsg) close() {
	k.finish()
	_ = syscall.Close(k.fd)
}
