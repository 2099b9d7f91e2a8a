package templates

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Store holds the template set in force and swaps it atomically: requests in flight keep the set they
// started with, new ones get the new set.
type Store struct {
	cur atomic.Pointer[Set]
}

// NewStore starts with set.
func NewStore(set *Set) *Store {
	s := &Store{}
	s.cur.Store(set)
	return s
}

// Current returns the set in force.
func (s *Store) Current() *Set { return s.cur.Load() }

// Watcher reloads Dir into Store when it changes. A directory that fails to load leaves the previous
// set in force and is reported through OnError; the next good change is picked up as usual.
type Watcher struct {
	Dir     string
	Store   *Store
	OnLoad  func(*Set)
	OnError func(error)
	// Debounce batches the burst of events a ConfigMap update makes (it swaps a symlink).
	Debounce time.Duration
}

// Start watches until ctx is done. It also re-reads every minute, in case an event was missed.
func (w *Watcher) Start(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer fw.Close()
	if err := fw.Add(w.Dir); err != nil {
		return err
	}
	debounce := w.Debounce
	if debounce == 0 {
		debounce = 200 * time.Millisecond
	}
	last := fingerprint(w.Dir)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	resync := time.NewTicker(time.Minute)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-fw.Events:
			timer.Reset(debounce)
		case err := <-fw.Errors:
			w.report(err)
		case <-resync.C:
			timer.Reset(0)
		case <-timer.C:
			fp := fingerprint(w.Dir)
			if fp == last {
				continue
			}
			last = fp
			w.reload()
		}
	}
}

// NeedLeaderElection is false: every replica serves admission, so every replica needs the templates.
func (w *Watcher) NeedLeaderElection() bool { return false }

func (w *Watcher) reload() {
	set, err := LoadDir(w.Dir)
	if err != nil {
		w.report(err)
		return
	}
	w.Store.cur.Store(set)
	if w.OnLoad != nil {
		w.OnLoad(set)
	}
}

func (w *Watcher) report(err error) {
	if w.OnError != nil {
		w.OnError(err)
	}
}

// fingerprint changes when any file's name or content changes; it saves re-parsing on no-op events.
func fingerprint(dir string) string {
	h := sha256.New()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		h.Write([]byte(e.Name()))
		h.Write(data)
	}
	return string(h.Sum(nil))
}
