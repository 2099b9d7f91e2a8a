package certs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"

	"github.com/meshwarden/meshwarden/certs/pki"
)

// fileKeeper is files mode's leader-only loop: it keeps caBundle equal to the mounted ca.crt.
type fileKeeper struct {
	caFile string
	view   *view
	log    logr.Logger
}

// fileResync is how often ca.crt is re-read: a mounted Secret changes on disk without any event
// meshwarden could watch through the API.
const fileResync = 10 * time.Second

// NeedLeaderElection is true: only the leader writes caBundle.
func (k *fileKeeper) NeedLeaderElection() bool { return true }

// Start keeps caBundle right until ctx ends.
func (k *fileKeeper) Start(ctx context.Context) error {
	select {
	case <-k.view.synced:
	case <-ctx.Done():
		return nil
	}
	// Kubelet updates a mounted Secret by swapping a symlink in the directory: watch the directory.
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	if w, err := fsnotify.NewWatcher(); err != nil {
		k.log.Error(err, "not watching the certificate directory; re-reading ca.crt every "+fileResync.String())
	} else {
		defer w.Close()
		if err := w.Add(filepath.Dir(k.caFile)); err != nil {
			k.log.Error(err, "not watching the certificate directory; re-reading ca.crt every "+fileResync.String())
		}
		events, watchErrs = w.Events, w.Errors
	}
	for {
		if err := k.reconcile(ctx); err != nil && ctx.Err() == nil {
			k.log.Error(err, "keeping caBundle from the mounted CA; retrying")
		}
		t := time.NewTimer(fileResync)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-k.view.wake:
		case <-events:
		case err := <-watchErrs:
			// Unread errors would stall the watcher; the resync still catches what an error hid.
			k.log.Error(err, "watching the certificate directory")
		case <-t.C:
		}
		t.Stop()
	}
}

func (k *fileKeeper) reconcile(ctx context.Context) error {
	b, err := os.ReadFile(k.caFile)
	if err != nil {
		return fmt.Errorf("files mode keeps caBundle from %s: %w; mount ca.crt there or set certs.patchCABundle: false", k.caFile, err)
	}
	if _, err := pki.ParseCerts(b); err != nil {
		return fmt.Errorf("%s: %w", k.caFile, err)
	}
	return k.view.keeper.sync(ctx, b)
}
